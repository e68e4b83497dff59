//! Encoder: the exact inverse of [`super::decode`], into `bytes::BytesMut`.
//!
//! Fields already hold their wire data, so encoding a message is writing the
//! MTI, the bitmaps, and for each field its length prefix and data: no
//! per-field allocation, one `reserve` per message.

use bytes::{BufMut, BytesMut};

use super::encoding::ascii_to_ebcdic;
use super::error::{EncodeError, Location};
use super::field::{Field, Message};
use super::spec::{BitmapEncoding, FieldSpec, MtiEncoding, PrefixEncoding, Spec};

/// Writes a variable field's length prefix.
#[inline]
pub(crate) fn write_prefix(spec: &FieldSpec, units: usize, out: &mut BytesMut) {
    match spec.prefix {
        PrefixEncoding::Ascii | PrefixEncoding::Ebcdic => {
            let digits = spec.length.digits();
            let mut d = [b'0'; 4];
            let mut v = units;
            for slot in d[..digits].iter_mut().rev() {
                *slot = b'0' + (v % 10) as u8;
                v /= 10;
            }
            if spec.prefix == PrefixEncoding::Ebcdic {
                d.iter_mut()
                    .for_each(|c| *c = ascii_to_ebcdic(*c).unwrap_or(0xF0));
            }
            out.put_slice(&d[..digits]);
        }
        // units <= 9999 (the dialect caps `max`), so two BCD bytes suffice.
        PrefixEncoding::Bcd => {
            let pair = |v: usize| ((((v / 10) % 10) << 4) | (v % 10)) as u8;
            if spec.prefix_bytes == 1 {
                out.put_u8(pair(units));
            } else {
                out.put_slice(&[pair(units / 100), pair(units)]);
            }
        }
        PrefixEncoding::Binary if spec.prefix_bytes == 1 => out.put_u8(units as u8),
        PrefixEncoding::Binary => out.put_u16(units as u16),
    }
}

/// Writes one field (prefix + data) after checking it fits the spec.
#[inline(always)]
pub(crate) fn write_field(
    spec: &FieldSpec,
    field: Field<'_>,
    out: &mut BytesMut,
) -> Result<(), ()> {
    let units = field.units();
    let fits = if spec.is_fixed() {
        units == spec.max
    } else {
        units <= spec.max
    };
    if !fits || spec.wire_len(units) != field.raw().len() {
        return Err(());
    }
    if !spec.is_fixed() {
        write_prefix(spec, units, out);
    }
    out.put_slice(field.raw());
    Ok(())
}

fn write_bitmap_word(encoding: BitmapEncoding, word: u64, out: &mut BytesMut) {
    match encoding {
        BitmapEncoding::Binary => out.put_u64(word),
        BitmapEncoding::Hex => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            for i in (0..16).rev() {
                out.put_u8(HEX[((word >> (i * 4)) & 0xF) as usize]);
            }
        }
    }
}

/// Encodes a whole message, appending to `out`.
pub fn encode(spec: &Spec, msg: &Message<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    if msg.header().len() != spec.header_len {
        return Err(EncodeError::BadHeader {
            expected: spec.header_len,
            got: msg.header().len(),
        });
    }
    if spec.header_ascii {
        if let Some(index) = super::encoding::first_non_printable(msg.header()) {
            return Err(EncodeError::HeaderNotAscii { index });
        }
    }
    let bitmap = msg.bitmap(spec.tertiary);
    // Header, MTI, three bitmaps, and at most 4 prefix bytes per field.
    out.reserve(msg.header().len() + 4 + 48 + msg.data_len() + 4 * msg.len());
    out.put_slice(msg.header());
    let d = msg.mti();
    let d = d.digits();
    match spec.mti {
        MtiEncoding::Ascii => out.put_slice(d),
        MtiEncoding::Ebcdic => d
            .iter()
            .for_each(|&c| out.put_u8(ascii_to_ebcdic(c).unwrap_or(0xF0))),
        MtiEncoding::Bcd => {
            out.put_u8(((d[0] - b'0') << 4) | (d[1] - b'0'));
            out.put_u8(((d[2] - b'0') << 4) | (d[3] - b'0'));
        }
    }
    write_bitmap_word(spec.bitmap, bitmap.word(0), out);
    if bitmap.get(1) {
        write_bitmap_word(spec.bitmap, bitmap.word(1), out);
        if spec.tertiary && bitmap.get(65) {
            write_bitmap_word(spec.bitmap, bitmap.word(2), out);
        }
    }
    for (n, field) in msg.fields() {
        let location = Location::Field(n);
        if n == 65 && spec.tertiary {
            return Err(EncodeError::NotInDialect(location));
        }
        let fs = spec.field(n).ok_or(EncodeError::NotInDialect(location))?;
        write_field(fs, field, out).map_err(|()| EncodeError::BadLength {
            location,
            len: field.units(),
            max: fs.max,
        })?;
    }
    Ok(())
}
