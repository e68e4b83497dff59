//! Logical values <-> wire data for one field.
//!
//! The logical ("text") form is what pyiso8583 and the CLI's JSON use:
//! characters for ASCII/EBCDIC fields, one character per nibble for BCD
//! fields, uppercase hex for binary fields.

use std::borrow::Cow;

use super::encoding::{
    ascii_to_ebcdic, bcd_nibbles, ebcdic_to_ascii, hex_value, nibble_char, pack_bcd,
    push_hex_upper, DataEncoding,
};
use super::error::{Location, ValueError};
use super::field::{Field, FieldBuf};
use super::spec::FieldSpec;

/// The logical value of a field. Borrows for ASCII fields.
pub fn text_of<'f>(spec: &FieldSpec, field: &Field<'f>) -> Cow<'f, str> {
    let raw = field.raw();
    match spec.encoding {
        DataEncoding::Ascii => String::from_utf8_lossy(raw),
        DataEncoding::Ebcdic => Cow::Owned(
            raw.iter()
                .map(|&e| ebcdic_to_ascii(e).map_or('?', char::from))
                .collect(),
        ),
        DataEncoding::Bcd => Cow::Owned(
            bcd_nibbles(raw, field.units(), spec.pad)
                .map(nibble_char)
                .collect(),
        ),
        DataEncoding::Binary => {
            let mut s = String::with_capacity(raw.len() * 2);
            push_hex_upper(&mut s, raw);
            Cow::Owned(s)
        }
    }
}

/// Checks a length in units against the field's rule.
fn check_len(spec: &FieldSpec, location: Location, units: usize) -> Result<(), ValueError> {
    let ok = if spec.is_fixed() {
        units == spec.max
    } else {
        units <= spec.max
    };
    if ok {
        Ok(())
    } else {
        Err(ValueError::BadLength {
            location,
            len: units,
            fixed: spec.is_fixed(),
            max: spec.max,
        })
    }
}

/// Validates a logical value and converts it to the field's wire data.
pub fn encode_text(
    spec: &FieldSpec,
    location: Location,
    text: &str,
) -> Result<FieldBuf, ValueError> {
    let mut raw = Vec::new();
    let units = encode_text_into(spec, location, text, &mut raw)?;
    Ok(FieldBuf::new(raw, units))
}

/// [`encode_text`] appending the wire data to `out`; returns the length in
/// the field's unit. On error `out` may hold part of the data: the caller
/// truncates it.
pub(crate) fn encode_text_into(
    spec: &FieldSpec,
    location: Location,
    text: &str,
    out: &mut Vec<u8>,
) -> Result<u16, ValueError> {
    let b = text.as_bytes();
    let bad_char = |index: usize| ValueError::BadChar {
        location,
        index,
        class: spec.class.name(),
    };
    // Every length below is checked against the field's maximum (<= 9,999).
    match spec.encoding {
        DataEncoding::Ascii | DataEncoding::Ebcdic => {
            check_len(spec, location, b.len())?;
            if let Some(i) = spec.class.first_bad_char(b) {
                return Err(bad_char(i));
            }
            if spec.encoding == DataEncoding::Ascii {
                out.extend_from_slice(b);
            } else {
                out.extend(b.iter().map(|&c| ascii_to_ebcdic(c).unwrap_or(0x6F)));
            }
            Ok(b.len() as u16)
        }
        DataEncoding::Bcd => {
            check_len(spec, location, b.len())?;
            for (i, &c) in b.iter().enumerate() {
                // Lowercase hex would not come back the same.
                match hex_value(c) {
                    Some(n) if !c.is_ascii_lowercase() && spec.class.allows_nibble(n) => {}
                    _ => return Err(bad_char(i)),
                }
            }
            out.reserve(b.len().div_ceil(2));
            pack_bcd(b, spec.pad, spec.filler, out);
            Ok(b.len() as u16)
        }
        DataEncoding::Binary => {
            if b.len() % 2 != 0 {
                return Err(ValueError::BadHex(location));
            }
            // The length first: the buffer grows only for a value that fits.
            check_len(spec, location, b.len() / 2)?;
            let start = out.len();
            out.resize(start + b.len() / 2, 0);
            hex::decode_to_slice(b, &mut out[start..]).map_err(|_| ValueError::BadHex(location))?;
            Ok((b.len() / 2) as u16)
        }
    }
}

/// Validates raw bytes for a binary field (or ASCII/EBCDIC text bytes),
/// appending the wire data to `out` (see [`encode_text_into`]).
pub(crate) fn encode_bytes_into(
    spec: &FieldSpec,
    location: Location,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<u16, ValueError> {
    match spec.encoding {
        DataEncoding::Binary => {
            check_len(spec, location, bytes.len())?;
            out.extend_from_slice(bytes);
            Ok(bytes.len() as u16)
        }
        _ => {
            let text = std::str::from_utf8(bytes).map_err(|_| ValueError::Invalid {
                location,
                reason: "not text",
            })?;
            encode_text_into(spec, location, text, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::encoding::{Class, Pad};
    use crate::iso8583::spec::{LengthType, PrefixEncoding, Sensitivity, Unit};

    fn fs(class: Class, encoding: DataEncoding, length: LengthType, max: usize) -> FieldSpec {
        FieldSpec {
            name: "t".into(),
            class,
            length,
            max,
            unit: match encoding {
                DataEncoding::Bcd => Unit::Nibbles,
                DataEncoding::Binary => Unit::Bytes,
                _ => Unit::Chars,
            },
            encoding,
            prefix: PrefixEncoding::Ascii,
            prefix_bytes: 2,
            pad: Pad::Left,
            filler: 0,
            sensitivity: Sensitivity::None,
            subfields: None,
        }
    }

    #[test]
    fn text_round_trips_per_encoding() {
        let loc = Location::Field(2);
        for (spec, text) in [
            (
                fs(Class::N, DataEncoding::Ascii, LengthType::Llvar, 19),
                "4761739001010119",
            ),
            (
                fs(Class::N, DataEncoding::Bcd, LengthType::Llvar, 19),
                "476173900101011",
            ),
            (
                fs(Class::Ans, DataEncoding::Ebcdic, LengthType::Fixed, 5),
                "A b!9",
            ),
            (
                fs(Class::B, DataEncoding::Binary, LengthType::Llvar, 20),
                "00FF9A",
            ),
        ] {
            let f = encode_text(&spec, loc, text).unwrap();
            assert_eq!(text_of(&spec, &f.as_field()), text);
        }
    }

    #[test]
    fn rejects_bad_values_without_echoing_them() {
        let loc = Location::Field(4);
        let n6 = fs(Class::N, DataEncoding::Ascii, LengthType::Fixed, 6);
        assert_eq!(
            encode_text(&n6, loc, "12345").unwrap_err(),
            ValueError::BadLength {
                location: loc,
                len: 5,
                fixed: true,
                max: 6
            }
        );
        let e = encode_text(&n6, loc, "12a456").unwrap_err();
        assert_eq!(
            e.to_string(),
            "field 4: character 2 not allowed for class n"
        );
        let bcd = fs(Class::N, DataEncoding::Bcd, LengthType::Llvar, 19);
        assert!(encode_text(&bcd, loc, "12F").is_err());
        let b = fs(Class::B, DataEncoding::Binary, LengthType::Llvar, 2);
        assert_eq!(
            encode_text(&b, loc, "ABC").unwrap_err(),
            ValueError::BadHex(loc)
        );
        assert!(encode_text(&b, loc, "AABBCC").is_err());
    }

    #[test]
    fn bcd_vectors() {
        let spec = fs(Class::N, DataEncoding::Bcd, LengthType::Fixed, 3);
        assert_eq!(
            encode_text(&spec, Location::Field(3), "978").unwrap().raw(),
            [0x09, 0x78]
        );
        let mut right = fs(Class::Z, DataEncoding::Bcd, LengthType::Llvar, 37);
        right.pad = Pad::Right;
        right.filler = 0xF;
        assert_eq!(
            encode_text(&right, Location::Field(35), "4761D25")
                .unwrap()
                .raw(),
            [0x47, 0x61, 0xD2, 0x5F]
        );
    }
}
