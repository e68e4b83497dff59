//! Dialect files (`specs/*.toml`) -> validated, typed [`Spec`].
//!
//! A dialect is data: the field table, how the MTI and bitmaps are written,
//! and how each field's length prefix, data and sub-fields are laid out. It is
//! parsed and checked once ("parse, don't validate"); the codec then trusts
//! it and never re-checks the table on the hot path.
//!
//! A field entry:
//!
//! ```toml
//! [fields]
//! 2 = { name = "PAN", class = "n", length = "llvar", max = 19,
//!       encoding = "bcd", prefix = "bcd", sensitivity = "pan" }
//! ```
//!
//! `max` counts the field's unit: characters for ASCII/EBCDIC, nibbles for
//! BCD, bytes for binary (override with `unit`). See `specs/README.md` for
//! every key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::encoding::{hex_value, Class, DataEncoding, Pad};
use super::error::SpecError;
use super::plan::Plans;

/// Highest data element number (with a tertiary bitmap).
pub const MAX_FIELD: u16 = 192;

/// The shape of a field's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthType {
    Fixed,
    Llvar,
    Lllvar,
    Llllvar,
}

impl LengthType {
    /// Decimal digits of the length prefix (0 for fixed).
    pub fn digits(self) -> usize {
        match self {
            LengthType::Fixed => 0,
            LengthType::Llvar => 2,
            LengthType::Lllvar => 3,
            LengthType::Llllvar => 4,
        }
    }
}

/// How a length prefix is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixEncoding {
    /// Decimal digits in ASCII: LL = 2 bytes, LLL = 3, LLLL = 4.
    Ascii,
    /// Decimal digits in EBCDIC, one byte each.
    Ebcdic,
    /// Packed decimal: LL = 1 byte, LLL and LLLL = 2 bytes.
    Bcd,
    /// Unsigned big-endian integer: LL = 1 byte, LLL and LLLL = 2 bytes.
    Binary,
}

/// What a field's length counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Bytes,
    Chars,
    Nibbles,
}

/// How a field's value must be hidden in logs and displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    #[default]
    None,
    /// Primary account number or network token: first 6 / last 4 shown.
    Pan,
    /// Track data: hidden.
    Track,
    /// Cryptograms (CAVV, TAVV, ARQC): hidden.
    Cryptogram,
    /// PIN blocks: hidden.
    Pin,
}

/// How the MTI is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtiEncoding {
    Ascii,
    Bcd,
    Ebcdic,
}

/// How bitmaps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BitmapEncoding {
    /// 8 raw bytes per bitmap.
    Binary,
    /// 16 uppercase hex ASCII characters per bitmap.
    Hex,
}

/// How the tag or length of a simple TLV sub-field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlvPartEncoding {
    /// ASCII characters (tags) or decimal digits (lengths).
    Ascii,
    /// Raw bytes (tags, shown as hex) or a big-endian integer (lengths).
    Binary,
    /// Packed decimal (lengths only).
    Bcd,
}

/// One data element (or sub-field) of a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub class: Class,
    pub length: LengthType,
    /// Maximum length (exact length when fixed), in `unit`s.
    pub max: usize,
    pub unit: Unit,
    pub encoding: DataEncoding,
    pub prefix: PrefixEncoding,
    /// Width of the length prefix in bytes (0 when fixed).
    pub prefix_bytes: usize,
    pub pad: Pad,
    /// Filler nibble for odd-length BCD values.
    pub filler: u8,
    pub sensitivity: Sensitivity,
    pub subfields: Option<Box<Subfields>>,
}

impl FieldSpec {
    /// Wire bytes taken by a value of `units` length (prefix excluded).
    #[inline]
    pub fn wire_len(&self, units: usize) -> usize {
        match self.unit {
            Unit::Nibbles => units.div_ceil(2),
            Unit::Bytes | Unit::Chars => units,
        }
    }

    pub fn is_fixed(&self) -> bool {
        self.length == LengthType::Fixed
    }
}

/// A tag of a TLV container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpec {
    /// Label used as the JSON key: ASCII tags as text, binary tags as hex.
    pub label: String,
    pub name: String,
    pub class: Class,
    /// Value encoding: ASCII text or binary (shown as hex).
    pub encoding: DataEncoding,
    pub max: usize,
    pub sensitivity: Sensitivity,
}

/// Simple tag-length-value layout (national/private data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvLayout {
    pub tag_width: usize,
    pub tag_encoding: TlvPartEncoding,
    pub length_width: usize,
    pub length_encoding: TlvPartEncoding,
    /// Known tags, by wire bytes. Unknown tags are kept too.
    pub tags: Vec<(Vec<u8>, TagSpec)>,
    /// The same tags as big-endian numbers, for cheap lookups while decoding.
    pub tag_numbers: Vec<u32>,
    /// How values of tags not listed are shown: the container's own data
    /// encoding (binary containers: hex; ASCII containers: text).
    pub unknown_values: DataEncoding,
    /// The known tags the decoder's quick walk may accept, boiled down.
    pub(crate) quick: Vec<QuickTag>,
}

/// One known TLV tag as the decoder's quick walk checks it: its number, the
/// bit marking it seen, its maximum length and its value's content check.
/// Tags the quick walk must leave to the full check (a non-printable ASCII
/// tag, the 65th tag and beyond) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuickTag {
    pub number: u32,
    pub bit: u64,
    pub max: usize,
    pub check: super::plan::RunCheck,
}

/// The sub-field structure of a container field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subfields {
    /// EMV-style BER-TLV (DE 55): multi-byte tags, short/long lengths,
    /// constructed tags nested up to `max_depth` levels.
    BerTlv {
        max_depth: u8,
        tags: Vec<(u32, TagSpec)>,
    },
    /// Simple TLV with fixed tag and length widths.
    Tlv(TlvLayout),
    /// Fixed-position parts, in order; the data may end after any part.
    Fixed { parts: Vec<(String, FieldSpec)> },
    /// A bitmap of `bitmap_bytes` bytes, then the sub-fields whose bits are
    /// set, in bit order (Visa DE 126 style). Index 0 is unused.
    Bitmap {
        bitmap_bytes: usize,
        fields: Vec<Option<FieldSpec>>,
    },
}

/// A validated dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub mti: MtiEncoding,
    pub bitmap: BitmapEncoding,
    /// Whether bit 65 announces a tertiary bitmap (fields 129-192).
    pub tertiary: bool,
    /// Length of the fixed message header before the MTI (0: none).
    pub header_len: usize,
    /// Whether the header is ASCII text (else shown as hex).
    pub header_ascii: bool,
    /// Indexed by field number; 0 and 1 (and 65 with a tertiary bitmap) are
    /// always `None`.
    pub(crate) fields: Vec<Option<FieldSpec>>,
    /// The decoder's per-field plans, derived from `fields`.
    pub(crate) plans: Plans,
}

impl Spec {
    /// Parses and validates a dialect from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        let raw: RawDialect = toml::from_str(text).map_err(|e| SpecError::Syntax(e.to_string()))?;
        raw.validate()
    }

    /// Reads, parses and validates a dialect file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Spec::from_toml_str(&text)
    }

    /// One of the dialects shipped in `specs/`, embedded in the binary.
    pub fn builtin(name: &str) -> Result<Spec, SpecError> {
        let text = builtin_text(name).ok_or_else(|| SpecError::UnknownBuiltin(name.into()))?;
        Spec::from_toml_str(text)
    }

    /// A built-in name (`cb2a`) or a path to a dialect file.
    pub fn load(name_or_path: &str) -> Result<Spec, SpecError> {
        match builtin_text(name_or_path) {
            Some(text) => Spec::from_toml_str(text),
            None => Spec::from_file(name_or_path),
        }
    }

    /// The definition of data element `n`.
    #[inline]
    pub fn field(&self, n: u16) -> Option<&FieldSpec> {
        self.fields.get(n as usize).and_then(Option::as_ref)
    }

    /// Numbers of every field the dialect defines, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(n, _)| n as u16)
    }

    /// Highest field number the bitmaps can address.
    pub fn max_field(&self) -> u16 {
        if self.tertiary {
            MAX_FIELD
        } else {
            128
        }
    }
}

/// Dialect files shipped with the crate.
pub const BUILTIN: &[(&str, &str)] = &[
    ("cb2a", include_str!("../../specs/cb2a.toml")),
    ("iso87ascii", include_str!("../../specs/iso87ascii.toml")),
    ("iso87binary", include_str!("../../specs/iso87binary.toml")),
    ("iso87visa", include_str!("../../specs/iso87visa.toml")),
];

fn builtin_text(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

// ---------------------------------------------------------------------------
// The file format, as written, then validated into the types above.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDialect {
    name: String,
    #[serde(default)]
    description: String,
    mti: RawMti,
    bitmap: RawBitmap,
    #[serde(default)]
    header: Option<RawHeader>,
    fields: BTreeMap<String, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMti {
    encoding: MtiEncoding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBitmap {
    encoding: BitmapEncoding,
    #[serde(default)]
    tertiary: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    length: usize,
    #[serde(default)]
    ascii: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    class: Class,
    length: LengthType,
    max: usize,
    encoding: DataEncoding,
    #[serde(default)]
    prefix: Option<PrefixEncoding>,
    #[serde(default)]
    unit: Option<Unit>,
    #[serde(default)]
    pad: Option<Pad>,
    #[serde(default)]
    pad_char: Option<String>,
    #[serde(default)]
    sensitivity: Sensitivity,
    #[serde(default)]
    subfields: Option<RawSubfields>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubfields {
    format: String,
    #[serde(default)]
    max_depth: Option<u8>,
    #[serde(default)]
    tag_width: Option<usize>,
    #[serde(default)]
    tag_encoding: Option<TlvPartEncoding>,
    #[serde(default)]
    length_width: Option<usize>,
    #[serde(default)]
    length_encoding: Option<TlvPartEncoding>,
    #[serde(default)]
    tags: BTreeMap<String, RawTag>,
    #[serde(default)]
    parts: Vec<RawPart>,
    #[serde(default)]
    bitmap_bytes: Option<usize>,
    #[serde(default)]
    fields: BTreeMap<String, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    name: String,
    #[serde(default)]
    class: Option<Class>,
    #[serde(default)]
    encoding: Option<DataEncoding>,
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    sensitivity: Sensitivity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    id: String,
    #[serde(flatten)]
    field: RawField,
}

/// Most sub-field nesting a dialect may declare (containers in containers).
const MAX_SPEC_NESTING: usize = 3;
/// Upper bound on BER-TLV depth a dialect may ask for.
const MAX_BER_DEPTH: u8 = 8;

impl RawDialect {
    fn validate(self) -> Result<Spec, SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::Dialect("dialect name is empty".into()));
        }
        let tertiary = self.bitmap.tertiary;
        let max_field = if tertiary { MAX_FIELD } else { 128 };
        let mut fields: Vec<Option<FieldSpec>> = vec![None; max_field as usize + 1];
        for (key, raw) in self.fields {
            let n: u16 = key.parse().map_err(|_| SpecError::Field {
                field: key.clone(),
                problem: "field key must be a field number".into(),
            })?;
            if n < 2 || n > max_field {
                return Err(SpecError::Field {
                    field: key,
                    problem: format!("field number must be 2..={max_field}"),
                });
            }
            if n == 65 && tertiary {
                return Err(SpecError::Field {
                    field: key,
                    problem: "field 65 is the tertiary bitmap in this dialect".into(),
                });
            }
            fields[n as usize] = Some(raw.validate(&key, 0)?);
        }
        let (header_len, header_ascii) = self.header.map_or((0, false), |h| (h.length, h.ascii));
        if header_len > 64 {
            return Err(SpecError::Dialect("header length over 64 bytes".into()));
        }
        Ok(Spec {
            name: self.name,
            description: self.description,
            mti: self.mti.encoding,
            bitmap: self.bitmap.encoding,
            tertiary,
            header_len,
            header_ascii,
            plans: Plans::new(&fields),
            fields,
        })
    }
}

fn field_err(field: &str, problem: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.to_string(),
        problem: problem.into(),
    }
}

impl RawField {
    fn validate(self, id: &str, nesting: usize) -> Result<FieldSpec, SpecError> {
        let unit = self.unit.unwrap_or(match self.encoding {
            DataEncoding::Ascii | DataEncoding::Ebcdic => Unit::Chars,
            DataEncoding::Bcd => Unit::Nibbles,
            DataEncoding::Binary => Unit::Bytes,
        });
        let unit_ok = matches!(
            (self.encoding, unit),
            (
                DataEncoding::Ascii | DataEncoding::Ebcdic,
                Unit::Chars | Unit::Bytes
            ) | (DataEncoding::Bcd, Unit::Nibbles)
                | (DataEncoding::Binary, Unit::Bytes)
        );
        if !unit_ok {
            return Err(field_err(
                id,
                format!("unit {unit:?} does not fit encoding {:?}", self.encoding),
            ));
        }
        // Chars and bytes are the same thing for single-byte encodings.
        let unit = if unit == Unit::Bytes && self.encoding != DataEncoding::Binary {
            Unit::Chars
        } else {
            unit
        };
        let class_ok = match self.encoding {
            DataEncoding::Binary => self.class == Class::B,
            DataEncoding::Bcd => matches!(self.class, Class::N | Class::Z | Class::B),
            DataEncoding::Ascii | DataEncoding::Ebcdic => true,
        };
        if !class_ok {
            return Err(field_err(
                id,
                format!(
                    "class {} cannot be written with encoding {:?}",
                    self.class.name(),
                    self.encoding
                ),
            ));
        }
        if self.max == 0 {
            return Err(field_err(id, "max must be at least 1"));
        }
        if self.max > 9999 {
            return Err(field_err(id, "max over 9999 is not an ISO 8583 length"));
        }
        let prefix_bytes = match (self.length, self.prefix) {
            (LengthType::Fixed, None) => 0,
            (LengthType::Fixed, Some(_)) => {
                return Err(field_err(id, "a fixed field has no length prefix"));
            }
            (_, None) => return Err(field_err(id, "a variable field needs `prefix`")),
            (lt, Some(p)) => {
                let digits = lt.digits();
                let (bytes, max_value) = match p {
                    PrefixEncoding::Ascii | PrefixEncoding::Ebcdic => {
                        (digits, 10usize.pow(digits as u32) - 1)
                    }
                    PrefixEncoding::Bcd => (digits.div_ceil(2), 10usize.pow(digits as u32) - 1),
                    PrefixEncoding::Binary => {
                        let b = if lt == LengthType::Llvar { 1 } else { 2 };
                        (b, if b == 1 { 255 } else { 65535 })
                    }
                };
                if self.max > max_value {
                    return Err(field_err(
                        id,
                        format!(
                            "max {} does not fit a {lt:?} prefix (at most {max_value})",
                            self.max
                        ),
                    ));
                }
                bytes
            }
        };
        let pad = self.pad.unwrap_or_default();
        let filler = match &self.pad_char {
            None => 0,
            Some(c) if self.encoding == DataEncoding::Bcd && c.len() == 1 => {
                hex_value(c.as_bytes()[0])
                    .ok_or_else(|| field_err(id, "pad_char must be one hex digit"))?
            }
            Some(_) => return Err(field_err(id, "pad_char is one hex digit, BCD fields only")),
        };
        let subfields = match self.subfields {
            None => None,
            Some(raw) => {
                if nesting >= MAX_SPEC_NESTING {
                    return Err(field_err(id, "sub-fields nested too deeply"));
                }
                if !matches!(self.encoding, DataEncoding::Ascii | DataEncoding::Binary) {
                    return Err(field_err(
                        id,
                        "a sub-field container must be ascii or binary data",
                    ));
                }
                Some(Box::new(raw.validate(id, self.encoding, nesting + 1)?))
            }
        };
        Ok(FieldSpec {
            name: self.name,
            class: self.class,
            length: self.length,
            max: self.max,
            unit,
            encoding: self.encoding,
            prefix: self.prefix.unwrap_or(PrefixEncoding::Ascii),
            prefix_bytes,
            pad,
            filler,
            sensitivity: self.sensitivity,
            subfields,
        })
    }
}

impl RawSubfields {
    fn validate(
        self,
        id: &str,
        container: DataEncoding,
        nesting: usize,
    ) -> Result<Subfields, SpecError> {
        match self.format.as_str() {
            "ber-tlv" => {
                if container != DataEncoding::Binary {
                    return Err(field_err(id, "ber-tlv sub-fields need binary data"));
                }
                let max_depth = self.max_depth.unwrap_or(4);
                if max_depth == 0 || max_depth > MAX_BER_DEPTH {
                    return Err(field_err(
                        id,
                        format!("max_depth must be 1..={MAX_BER_DEPTH}"),
                    ));
                }
                let mut tags = Vec::new();
                for (label, raw) in self.tags {
                    let bytes = hex::decode(&label)
                        .map_err(|_| field_err(id, format!("tag {label:?} is not hex")))?;
                    if bytes.is_empty() || bytes.len() > 4 {
                        return Err(field_err(id, format!("tag {label:?} must be 1-4 bytes")));
                    }
                    let value = super::subfield::tag_number(&bytes);
                    let label = label.to_ascii_uppercase();
                    tags.push((value, raw.validate(id, label, DataEncoding::Binary)?));
                }
                Ok(Subfields::BerTlv { max_depth, tags })
            }
            "tlv" => {
                let tag_width = self
                    .tag_width
                    .ok_or_else(|| field_err(id, "tlv needs tag_width"))?;
                let length_width = self
                    .length_width
                    .ok_or_else(|| field_err(id, "tlv needs length_width"))?;
                let tag_encoding = self.tag_encoding.unwrap_or(TlvPartEncoding::Ascii);
                let length_encoding = self.length_encoding.unwrap_or(TlvPartEncoding::Ascii);
                if !(1..=4).contains(&tag_width) || !(1..=4).contains(&length_width) {
                    return Err(field_err(id, "tag_width and length_width must be 1..=4"));
                }
                if tag_encoding == TlvPartEncoding::Bcd {
                    return Err(field_err(id, "tlv tags are ascii or binary"));
                }
                let mut tags = Vec::new();
                for (label, raw) in self.tags {
                    let bytes = match tag_encoding {
                        TlvPartEncoding::Binary => hex::decode(&label).map_err(|_| {
                            field_err(id, format!("binary tag {label:?} is not hex"))
                        })?,
                        _ => label.as_bytes().to_vec(),
                    };
                    if bytes.len() != tag_width {
                        return Err(field_err(
                            id,
                            format!("tag {label:?} is not {tag_width} byte(s) wide"),
                        ));
                    }
                    let label = if tag_encoding == TlvPartEncoding::Binary {
                        label.to_ascii_uppercase()
                    } else {
                        label
                    };
                    tags.push((bytes, raw.validate(id, label, container)?));
                }
                let tag_numbers: Vec<u32> = tags
                    .iter()
                    .map(|(t, _)| super::subfield::tag_number(t))
                    .collect();
                let quick = tags
                    .iter()
                    .zip(&tag_numbers)
                    .enumerate()
                    .filter(|(i, ((bytes, _), _))| {
                        *i < 64
                            && (tag_encoding != TlvPartEncoding::Ascii
                                || bytes.iter().all(u8::is_ascii_graphic))
                    })
                    .map(|(i, ((_, ts), number))| QuickTag {
                        number: *number,
                        bit: 1 << i,
                        max: ts.max,
                        check: super::plan::RunCheck::of_text(ts.encoding, ts.class),
                    })
                    .collect();
                Ok(Subfields::Tlv(TlvLayout {
                    quick,
                    tag_numbers,
                    unknown_values: container,
                    tag_width,
                    tag_encoding,
                    length_width,
                    length_encoding,
                    tags,
                }))
            }
            "fixed" => {
                if self.parts.is_empty() {
                    return Err(field_err(id, "fixed sub-fields need at least one part"));
                }
                let mut parts = Vec::with_capacity(self.parts.len());
                for part in self.parts {
                    let sub_id = format!("{id}.{}", part.id);
                    if parts
                        .iter()
                        .any(|(p, _): &(String, FieldSpec)| *p == part.id)
                    {
                        return Err(field_err(&sub_id, "duplicate part id"));
                    }
                    let spec = part.field.validate(&sub_id, nesting)?;
                    if !spec.is_fixed() {
                        return Err(field_err(
                            &sub_id,
                            "fixed-position parts must be fixed length",
                        ));
                    }
                    parts.push((part.id, spec));
                }
                Ok(Subfields::Fixed { parts })
            }
            "bitmap" => {
                let bitmap_bytes = self.bitmap_bytes.unwrap_or(8);
                if !(1..=16).contains(&bitmap_bytes) {
                    return Err(field_err(id, "bitmap_bytes must be 1..=16"));
                }
                if container != DataEncoding::Binary {
                    return Err(field_err(id, "bitmap sub-fields need binary data"));
                }
                let mut fields = vec![None; bitmap_bytes * 8 + 1];
                for (key, raw) in self.fields {
                    let sub_id = format!("{id}.{key}");
                    let n: usize = key
                        .parse()
                        .map_err(|_| field_err(&sub_id, "sub-field key must be a number"))?;
                    if n == 0 || n > bitmap_bytes * 8 {
                        return Err(field_err(&sub_id, "sub-field number outside the bitmap"));
                    }
                    fields[n] = Some(raw.validate(&sub_id, nesting)?);
                }
                Ok(Subfields::Bitmap {
                    bitmap_bytes,
                    fields,
                })
            }
            other => Err(field_err(
                id,
                format!("unknown sub-field format {other:?} (ber-tlv, tlv, fixed, bitmap)"),
            )),
        }
    }
}

impl RawTag {
    fn validate(
        self,
        id: &str,
        label: String,
        container: DataEncoding,
    ) -> Result<TagSpec, SpecError> {
        let encoding = self.encoding.unwrap_or(container);
        if !matches!(encoding, DataEncoding::Ascii | DataEncoding::Binary) {
            return Err(field_err(
                id,
                format!("tag {label}: value encoding must be ascii or binary"),
            ));
        }
        let class = self.class.unwrap_or(match encoding {
            DataEncoding::Binary => Class::B,
            _ => Class::Ans,
        });
        if encoding == DataEncoding::Binary && class != Class::B {
            return Err(field_err(
                id,
                format!("tag {label}: binary values have class b"),
            ));
        }
        if self.max == Some(0) {
            return Err(field_err(
                id,
                format!("tag {label}: max must be at least 1"),
            ));
        }
        Ok(TagSpec {
            label,
            name: self.name,
            class,
            encoding,
            max: self.max.unwrap_or(usize::MAX),
            sensitivity: self.sensitivity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        mti = { encoding = "ascii" }
        bitmap = { encoding = "binary" }
        [fields]
        2 = { name = "PAN", class = "n", length = "llvar", max = 19, encoding = "ascii", prefix = "ascii", sensitivity = "pan" }
    "#;

    #[test]
    fn loads_minimal_dialect() {
        let spec = Spec::from_toml_str(MINIMAL).unwrap();
        let f = spec.field(2).unwrap();
        assert_eq!(f.prefix_bytes, 2);
        assert_eq!(f.unit, Unit::Chars);
        assert_eq!(f.sensitivity, Sensitivity::Pan);
        assert!(spec.field(3).is_none());
    }

    #[test]
    fn builtins_load() {
        for (name, _) in BUILTIN {
            Spec::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(matches!(
            Spec::builtin("nope"),
            Err(SpecError::UnknownBuiltin(_))
        ));
    }

    fn err_of(fields: &str) -> String {
        let text = format!(
            "name = \"t\"\nmti = {{ encoding = \"ascii\" }}\nbitmap = {{ encoding = \"binary\" }}\n[fields]\n{fields}\n"
        );
        Spec::from_toml_str(&text).unwrap_err().to_string()
    }

    #[test]
    fn bad_specs_name_field_and_problem() {
        let e = err_of(
            r#"3 = { name = "x", class = "n", length = "llvar", max = 19, encoding = "ascii" }"#,
        );
        assert_eq!(e, "field 3: a variable field needs `prefix`");
        let e = err_of(
            r#"3 = { name = "x", class = "n", length = "llvar", max = 100, encoding = "ascii", prefix = "ascii" }"#,
        );
        assert!(e.starts_with("field 3: max 100 does not fit"), "{e}");
        let e = err_of(
            r#"3 = { name = "x", class = "an", length = "fixed", max = 6, encoding = "bcd" }"#,
        );
        assert!(e.starts_with("field 3: class an cannot be written"), "{e}");
        let e = err_of(
            r#"1 = { name = "x", class = "n", length = "fixed", max = 6, encoding = "ascii" }"#,
        );
        assert!(e.starts_with("field 1: field number"), "{e}");
        let e = err_of(
            r#"3 = { name = "x", class = "n", lenght = "fixed", max = 6, encoding = "ascii" }"#,
        );
        assert!(e.contains("lenght"), "{e}");
        let e = err_of(
            r#"55 = { name = "x", class = "b", length = "lllvar", max = 255, encoding = "binary", prefix = "binary", subfields = { format = "ber-tlv", tags = { "9FZZ" = { name = "bad" } } } }"#,
        );
        assert!(e.starts_with("field 55: tag \"9FZZ\" is not hex"), "{e}");
        let e = err_of(
            r#"48 = { name = "x", class = "ans", length = "lllvar", max = 255, encoding = "ascii", prefix = "ascii", subfields = { format = "wat" } }"#,
        );
        assert!(e.contains("unknown sub-field format"), "{e}");
    }
}
