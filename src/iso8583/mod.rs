//! ISO 8583 engine driven by dialect files. Pure bytes <-> types: no I/O,
//! no clock.
//!
//! ```
//! use acqswitch::iso8583::{Mti, Message, Spec};
//! let spec = Spec::builtin("iso87ascii").unwrap();
//! let mut msg = Message::new(Mti::AUTHORIZATION_REQUEST);
//! spec.set_text(&mut msg, 2, "4761739001010119").unwrap();
//! spec.set_text(&mut msg, 4, "000000001000").unwrap();
//! spec.set_text(&mut msg, 11, "000001").unwrap();
//! let mut wire = bytes::BytesMut::new();
//! spec.encode(&msg, &mut wire).unwrap();
//! let decoded = spec.decode(&wire).unwrap();   // borrows `wire`
//! assert_eq!(decoded, msg);
//! assert_eq!(spec.text(&decoded, 11).unwrap(), "000001");
//! assert_eq!(spec.display(&decoded).to_string(),
//!            "0100 2=476173******0119 4=000000001000 11=000001");
//! ```
//!
//! # Layout
//! - [`spec`]: dialect files -> validated [`Spec`].
//! - [`encoding`]: content classes, BCD, EBCDIC.
//! - [`mti`], [`bitmap`]: message type and field presence.
//! - [`field`]: [`Message`] and [`Field`], borrowing the decoded frame.
//! - [`decode`] / [`encode`]: the codec, exact inverses of each other.
//! - [`subfield`]: BER-TLV, simple TLV, fixed and bitmap sub-fields.
//! - [`value`]: logical text <-> wire data for one field.
//! - [`mask`], [`json`]: masked display and the JSON document form.
//! - [`error`]: the engine's errors.

pub mod bitmap;
pub mod decode;
pub mod encode;
pub mod encoding;
pub mod error;
pub mod field;
pub mod json;
pub mod mask;
pub mod mti;
mod plan;
pub mod sample;
pub mod spec;
pub mod subfield;
pub mod value;

use std::borrow::Cow;
use std::fmt;

use bytes::BytesMut;

pub use bitmap::Bitmap;
pub use encoding::{Class, DataEncoding};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, Location, SpecError, ValueError};
pub use field::{Field, FieldBuf, Message, INLINE_FIELDS};
pub use mti::Mti;
pub use spec::{FieldSpec, Sensitivity, Spec, Subfields};
pub use subfield::SubValue;

impl Spec {
    /// Decodes one complete message, borrowing `input`.
    #[inline]
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        decode::decode(self, input)
    }

    /// Decodes one complete message into a `Message<'static>` on the heap
    /// that keeps `frame`, a shared handle on the bytes (no field copied):
    /// for a message handed from the task that received it to another
    /// (moving a boxed message moves a pointer). On error the frame is
    /// handed back with it.
    #[inline]
    pub fn decode_shared(
        &self,
        frame: bytes::Bytes,
    ) -> Result<Box<Message<'static>>, (DecodeError, bytes::Bytes)> {
        decode::decode_shared(self, frame)
    }

    /// Encodes a message, appending to `out`.
    #[inline]
    pub fn encode(&self, msg: &Message<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode::encode(self, msg, out)
    }

    /// Encodes a message into a fresh buffer.
    pub fn encode_to_bytes(&self, msg: &Message<'_>) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(msg, &mut out)?;
        Ok(out)
    }

    /// The logical value of field `n` (digits, text, or uppercase hex).
    pub fn text<'m>(&self, msg: &'m Message<'_>, n: u16) -> Option<Cow<'m, str>> {
        let fs = self.field(n)?;
        msg.field(n).map(|f| value::text_of(fs, &f))
    }

    /// Sets field `n` from its logical value, validated against the dialect.
    pub fn set_text(&self, msg: &mut Message<'_>, n: u16, text: &str) -> Result<(), ValueError> {
        let fs = self.settable(n)?;
        msg.insert_with(n, |out| {
            let start = out.len();
            let units = value::encode_text_into(fs, Location::Field(n), text, out)?;
            Self::check_decodable(fs, n, Field::borrowed(&out[start..], units))?;
            Ok(units)
        })
    }

    /// What a setter built must be what the decoder accepts: the field's
    /// class over its whole data (a container's values included) and, for
    /// a container, well-formed sub-fields (each tag once, nesting, lengths),
    /// checked by the decoder's own functions.
    fn check_decodable(fs: &FieldSpec, n: u16, field: Field<'_>) -> Result<(), ValueError> {
        let data = field.raw();
        if let Err(f) = decode::check_content(fs, data, field.units()) {
            return Err(ValueError::BadChar {
                location: Location::Field(n),
                index: decode::offset_in(data, f.at),
                class: fs.class.name(),
            });
        }
        match &fs.subfields {
            Some(subs) => subfield::validate(subs, data).map_err(|_| ValueError::Invalid {
                location: Location::Field(n),
                reason: "malformed sub-field container",
            }),
            None => Ok(()),
        }
    }

    /// Sets a binary field from raw bytes (text fields: from UTF-8 text).
    pub fn set_bytes(&self, msg: &mut Message<'_>, n: u16, bytes: &[u8]) -> Result<(), ValueError> {
        let fs = self.settable(n)?;
        msg.insert_with(n, |out| {
            let start = out.len();
            let units = value::encode_bytes_into(fs, Location::Field(n), bytes, out)?;
            Self::check_decodable(fs, n, Field::borrowed(&out[start..], units))?;
            Ok(units)
        })
    }

    /// Builds container field `n` from sub-field entries (TLV tag labels,
    /// BER tags in hex, part ids or sub-field numbers).
    pub fn set_subfields(
        &self,
        msg: &mut Message<'_>,
        n: u16,
        entries: &[(&str, SubValue<'_>)],
    ) -> Result<(), ValueError> {
        let location = Location::Field(n);
        let fs = self.settable(n)?;
        let subs = fs
            .subfields
            .as_deref()
            .ok_or(ValueError::NeedsString(location))?;
        msg.insert_with(n, |out| {
            let start = out.len();
            subfield::build(subs, n, entries, out)?;
            // Containers are ASCII or binary data: one unit per byte.
            let units = out.len() - start;
            let fits = if fs.is_fixed() {
                units == fs.max
            } else {
                units <= fs.max
            };
            if !fits {
                return Err(ValueError::BadLength {
                    location,
                    len: units,
                    fixed: fs.is_fixed(),
                    max: fs.max,
                });
            }
            // `units` <= max <= 9,999.
            Self::check_decodable(fs, n, Field::borrowed(&out[start..], units as u16))?;
            Ok(units as u16)
        })
    }

    /// The logical value of one sub-field of container field `n`: a TLV tag
    /// label, a BER tag in hex, a part id or a sub-field number.
    pub fn subfield_text(&self, msg: &Message<'_>, n: u16, key: &str) -> Option<String> {
        let fs = self.field(n)?;
        let data = msg.field(n)?.raw();
        let hex = |b: &[u8]| {
            let mut s = String::new();
            encoding::push_hex_upper(&mut s, b);
            s
        };
        match fs.subfields.as_deref()? {
            Subfields::BerTlv { .. } => {
                let tag = u32::from_str_radix(key, 16).ok()?;
                subfield::ber_objects(data)
                    .find(|o| o.tag == tag)
                    .map(|o| hex(o.value))
            }
            Subfields::Tlv(layout) => {
                let (tag, ts) = layout.tags.iter().find(|(_, ts)| ts.label == key)?;
                let e = subfield::tlv_entries(layout, data).find(|e| e.tag == tag.as_slice())?;
                Some(match ts.encoding {
                    DataEncoding::Binary => hex(e.value),
                    _ => String::from_utf8_lossy(e.value).into_owned(),
                })
            }
            Subfields::Fixed { parts } => subfield::fixed_parts(parts, data)
                .into_iter()
                .find(|(id, _, _)| *id == key)
                .map(|(_, s, f)| value::text_of(s, &f).into_owned()),
            Subfields::Bitmap {
                bitmap_bytes,
                fields,
            } => {
                let k: usize = key.parse().ok()?;
                subfield::bitmap_subfields(*bitmap_bytes, fields, data)
                    .into_iter()
                    .find(|(num, _, _)| *num == k)
                    .map(|(_, s, f)| value::text_of(s, &f).into_owned())
            }
        }
    }

    fn settable(&self, n: u16) -> Result<&FieldSpec, ValueError> {
        let location = Location::Field(n);
        if n == 1 || (n == 65 && self.tertiary) {
            return Err(ValueError::Reserved(location));
        }
        self.field(n).ok_or(ValueError::NotInDialect(location))
    }

    /// A masked, single-line view of a message for logs:
    /// `0100 2=476173******0119 4=000000001000 ...`.
    pub fn display<'s, 'm>(&'s self, msg: &'m Message<'m>) -> Display<'s, 'm> {
        Display { spec: self, msg }
    }
}

/// Masked display of a message; see [`Spec::display`].
pub struct Display<'s, 'm> {
    spec: &'s Spec,
    msg: &'m Message<'m>,
}

impl fmt::Display for Display<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg.mti())?;
        for (n, field) in self.msg.fields() {
            let Some(fs) = self.spec.field(n) else {
                continue;
            };
            if fs.subfields.is_some() {
                let doc = json::to_document(self.spec, &only(self.msg, n), false);
                let v = doc.get(n.to_string()).cloned().unwrap_or_default();
                write!(f, " {n}={v}")?;
            } else {
                write!(
                    f,
                    " {n}={}",
                    mask::mask(fs.sensitivity, &value::text_of(fs, &field))
                )?;
            }
        }
        Ok(())
    }
}

fn only<'m>(msg: &Message<'m>, n: u16) -> Message<'m> {
    let mut m = Message::new(msg.mti());
    if let Some(f) = msg.field(n) {
        m.insert(n, f);
    }
    m
}

#[cfg(test)]
mod tests;
