//! Errors of the ISO 8583 engine.
//!
//! Two levels, as in rustls: [`DecodeError`] is a small `Copy` value made on
//! the hot path (where, at which byte, what); [`SpecError`] and
//! [`ValueError`] are the richer errors of the cold paths (loading a dialect,
//! setting a value).

use std::fmt;

use super::encoding::Class;

/// What part of a message an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The dialect's fixed message header.
    Header,
    /// The message type indicator.
    Mti,
    /// A bitmap: 1 primary, 2 secondary, 3 tertiary.
    Bitmap(u8),
    /// A data element.
    Field(u16),
    /// A sub-field of a data element: container field number and the
    /// sub-field's tag or position (BER-TLV tags as their numeric value).
    Subfield { field: u16, sub: u32 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => f.write_str("header"),
            Location::Mti => f.write_str("MTI"),
            Location::Bitmap(1) => f.write_str("primary bitmap"),
            Location::Bitmap(2) => f.write_str("secondary bitmap"),
            Location::Bitmap(_) => f.write_str("tertiary bitmap"),
            Location::Field(n) => write!(f, "field {n}"),
            Location::Subfield { field, sub } => write!(f, "field {field} sub-field {sub:X}"),
        }
    }
}

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended; `needed` more bytes were expected.
    Truncated { needed: usize },
    /// A length prefix announced more than the field's maximum.
    LengthOverMax { len: usize, max: usize },
    /// A length prefix was not a number in its encoding.
    BadLengthPrefix,
    /// A character (or nibble) outside the field's content class.
    BadChar { class: Class, byte: u8 },
    /// The filler nibble of an odd-length BCD value was not the dialect's.
    BadPadding { nibble: u8 },
    /// The MTI was not four decimal digits.
    BadMti,
    /// A bitmap was malformed (bad hex, or a secondary/tertiary bitmap with
    /// no field in it, which could not be re-encoded to the same bytes).
    BadBitmap,
    /// The bitmap names a field the dialect does not define.
    FieldNotInDialect,
    /// Bytes left over after the last field.
    TrailingBytes { count: usize },
    /// A BER-TLV or TLV structure was malformed (bad tag or length form).
    BadTlv,
    /// BER-TLV constructed objects nested deeper than the dialect allows.
    TlvTooDeep { max: u8 },
    /// A tag appears twice in one container (or one BER-TLV template).
    DuplicateTag,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeErrorKind::Truncated { needed } => {
                write!(f, "truncated: {needed} more byte(s) expected")
            }
            DecodeErrorKind::LengthOverMax { len, max } => {
                write!(f, "length {len} over maximum {max}")
            }
            DecodeErrorKind::BadLengthPrefix => f.write_str("length prefix is not a number"),
            DecodeErrorKind::BadChar { class, byte } => {
                write!(
                    f,
                    "byte 0x{byte:02X} not allowed for class {}",
                    class.name()
                )
            }
            DecodeErrorKind::BadPadding { nibble } => {
                write!(f, "BCD filler nibble {nibble:X} is not the dialect's")
            }
            DecodeErrorKind::BadMti => f.write_str("MTI is not four decimal digits"),
            DecodeErrorKind::BadBitmap => f.write_str("bad bitmap"),
            DecodeErrorKind::FieldNotInDialect => f.write_str("field not defined by the dialect"),
            DecodeErrorKind::TrailingBytes { count } => {
                write!(f, "{count} trailing byte(s) after the last field")
            }
            DecodeErrorKind::BadTlv => f.write_str("malformed tag-length-value data"),
            DecodeErrorKind::DuplicateTag => f.write_str("tag appears twice in the same container"),
            DecodeErrorKind::TlvTooDeep { max } => {
                write!(f, "BER-TLV nested deeper than {max} levels")
            }
        }
    }
}

/// A decode failure: where, at which byte offset of the input, and what.
///
/// Never carries field data, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{location} at byte {offset}: {kind}")]
pub struct DecodeError {
    pub location: Location,
    /// Offset from the start of the message (header included).
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// A value that cannot be placed in a field (setting a field, encoding from
/// JSON). Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{0}: not defined by the dialect")]
    NotInDialect(Location),
    #[error("{location}: length {len} not allowed (fixed {fixed}, maximum {max})")]
    BadLength {
        location: Location,
        len: usize,
        fixed: bool,
        max: usize,
    },
    #[error("{location}: character {index} not allowed for class {class}")]
    BadChar {
        location: Location,
        index: usize,
        class: &'static str,
    },
    #[error("{0}: binary data must be given as an even number of hex digits")]
    BadHex(Location),
    #[error("{0}: this field is a sub-field container; give an object")]
    NeedsObject(Location),
    #[error("{0}: this field has no sub-fields; give a string")]
    NeedsString(Location),
    #[error("MTI must be four decimal digits")]
    BadMti,
    #[error("{0}: bitmap fields are computed, they cannot be set")]
    Reserved(Location),
    #[error("{location}: {reason}")]
    Invalid {
        location: Location,
        reason: &'static str,
    },
}

/// An encode failure. Messages built through [`super::Spec::set_text`] are
/// valid by construction; this catches messages built for another dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{0}: not defined by the dialect")]
    NotInDialect(Location),
    #[error("{location}: length {len} does not fit the field (maximum {max})")]
    BadLength {
        location: Location,
        len: usize,
        max: usize,
    },
    #[error("message header must be {expected} bytes, got {got}")]
    BadHeader { expected: usize, got: usize },
    #[error("message header byte {index} is not printable ASCII (the dialect's header is ASCII)")]
    HeaderNotAscii { index: usize },
}

/// A dialect file that cannot be used, naming the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("dialect file is not valid TOML for a dialect: {0}")]
    Syntax(String),
    #[error("cannot read dialect file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("unknown built-in dialect {0:?} (known: cb2a, iso87ascii, iso87binary)")]
    UnknownBuiltin(String),
    #[error("field {field}: {problem}")]
    Field { field: String, problem: String },
    #[error("{0}")]
    Dialect(String),
}
