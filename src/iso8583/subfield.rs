//! Sub-field containers: BER-TLV (DE 55), simple TLV (national/private
//! data), fixed-position parts and bitmap-driven sub-fields (DE 126 style).
//!
//! The decoder only validates a container's structure (no allocation); the
//! entries are walked on demand, borrowing the field's data. Unknown tags
//! are kept: they are part of the field's bytes, which are never rebuilt.

use bytes::BufMut;

use std::borrow::Cow;

use super::decode::{fail, field_value, take_bytes, unwrap_fail, Fail, PResult};
use super::encode::write_field;
use super::error::{DecodeErrorKind, Location, ValueError};
use super::field::Field;
use super::spec::{FieldSpec, Subfields, TagSpec, TlvLayout, TlvPartEncoding};
use super::value::{encode_text, encode_text_into};

/// One BER-TLV data object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BerObject<'a> {
    /// Tag bytes as a number (`0x9F26`).
    pub tag: u32,
    pub tag_bytes: &'a [u8],
    /// Constructed objects hold further objects in `value`.
    pub constructed: bool,
    pub value: &'a [u8],
}

/// A BER-TLV tag: one byte, or more when the low five bits are all set;
/// subsequent bytes continue while their top bit is set. At most 4 bytes.
fn ber_tag(input: &[u8]) -> PResult<'_, (u32, &[u8], bool)> {
    let (_, first) = take_bytes(1)(input)?;
    let first = first[0];
    let mut len = 1;
    if first & 0x1F == 0x1F {
        loop {
            let (_, b) = take_bytes(len + 1)(input)?;
            len += 1;
            if b[len - 1] & 0x80 == 0 {
                break;
            }
            if len == 4 {
                return fail(input, DecodeErrorKind::BadTlv);
            }
        }
    }
    let (rest, bytes) = take_bytes(len)(input)?;
    Ok((rest, (tag_number(bytes), bytes, first & 0x20 != 0)))
}

/// Marks known tag `i` as seen; true if it already was.
#[inline]
fn first_repeat(seen: &mut u64, i: usize) -> bool {
    let bit = 1u64 << i;
    let was = *seen & bit != 0;
    *seen |= bit;
    was
}

/// A BER length: short form (< 0x80) or long form 0x81..=0x83, in the
/// fewest bytes (a longer form would not re-encode to the same bytes).
fn ber_length(input: &[u8]) -> PResult<'_, usize> {
    let (rest, b) = take_bytes(1)(input)?;
    match b[0] {
        n @ 0..=0x7F => Ok((rest, usize::from(n))),
        0x81..=0x83 => {
            let width = usize::from(b[0] & 0x7F);
            let (rest, bytes) = take_bytes(width)(rest)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let minimal = if width == 1 {
                len >= 0x80
            } else {
                len >> (8 * (width - 1)) != 0
            };
            if minimal {
                Ok((rest, len))
            } else {
                fail(input, DecodeErrorKind::BadTlv)
            }
        }
        _ => fail(input, DecodeErrorKind::BadTlv),
    }
}

fn ber_object(input: &[u8]) -> PResult<'_, BerObject<'_>> {
    let (rest, (tag, tag_bytes, constructed)) = ber_tag(input)?;
    let (rest, len) = ber_length(rest)?;
    let (rest, value) = take_bytes(len)(rest)?;
    Ok((
        rest,
        BerObject {
            tag,
            tag_bytes,
            constructed,
            value,
        },
    ))
}

/// The objects of a BER-TLV sequence, in order. Stops at the first
/// malformed object (validated data never has one).
pub fn ber_objects(data: &[u8]) -> impl Iterator<Item = BerObject<'_>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match ber_object(rest) {
            Ok((r, obj)) => {
                rest = r;
                Some(obj)
            }
            Err(_) => {
                rest = &[];
                None
            }
        }
    })
}

fn validate_ber<'a>(
    data: &'a [u8],
    depth: u8,
    max_depth: u8,
    tags: &[(u32, TagSpec)],
) -> Result<(), Fail<'a>> {
    if depth > max_depth {
        return Err(Fail::new(
            data,
            DecodeErrorKind::TlvTooDeep { max: max_depth },
        ));
    }
    let mut rest = data;
    let mut seen = 0u64;
    while !rest.is_empty() {
        let (r, obj) = ber_object(rest).map_err(unwrap_fail)?;
        let with_sub = |mut f: Fail<'a>| {
            f.sub.get_or_insert(obj.tag);
            f
        };
        // A template holds each tag once; a second one could not be shown
        // or rebuilt from a keyed document. Known tags are tracked in a
        // bit set; only unknown ones cost a rescan.
        let known = tags
            .iter()
            .position(|(t, _)| *t == obj.tag)
            .filter(|i| *i < 64);
        let repeated = match known {
            Some(i) => first_repeat(&mut seen, i),
            None => ber_objects(&data[..data.len() - rest.len()]).any(|o| o.tag == obj.tag),
        };
        if repeated {
            return Err(with_sub(Fail::new(rest, DecodeErrorKind::DuplicateTag)));
        }
        if obj.constructed {
            validate_ber(obj.value, depth + 1, max_depth, tags).map_err(with_sub)?;
        } else if let Some((_, ts)) = tags.iter().find(|(t, _)| *t == obj.tag) {
            check_tag_value(ts, obj.value).map_err(with_sub)?;
        }
        rest = r;
    }
    Ok(())
}

fn check_tag_value<'a>(ts: &TagSpec, value: &'a [u8]) -> Result<(), Fail<'a>> {
    if value.len() > ts.max {
        return Err(Fail::new(
            value,
            DecodeErrorKind::LengthOverMax {
                len: value.len(),
                max: ts.max,
            },
        ));
    }
    if ts.encoding != super::encoding::DataEncoding::Binary {
        if let Some(i) = ts.class.first_bad_char(value) {
            return Err(Fail::new(
                &value[i..],
                DecodeErrorKind::BadChar {
                    class: ts.class,
                    byte: value[i],
                },
            ));
        }
    }
    Ok(())
}

/// One simple-TLV entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvEntry<'a> {
    pub tag: &'a [u8],
    pub value: &'a [u8],
}

/// A simple-TLV length of `layout.length_width` bytes.
#[inline]
fn tlv_length(layout: &TlvLayout, b: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    match layout.length_encoding {
        // One length byte is the common layout: no loop for it.
        TlvPartEncoding::Binary => match b {
            [one] => v = usize::from(*one),
            _ => b.iter().for_each(|&c| v = (v << 8) | usize::from(c)),
        },
        TlvPartEncoding::Ascii => {
            for &c in b {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + usize::from(c - b'0');
            }
        }
        TlvPartEncoding::Bcd => {
            for &c in b {
                let (hi, lo) = (c >> 4, c & 0xF);
                if hi > 9 || lo > 9 {
                    return None;
                }
                v = v * 100 + usize::from(hi) * 10 + usize::from(lo);
            }
        }
    }
    Some(v)
}

/// One simple-TLV entry: tag, length, value. A plain function rather than
/// composed closures: it runs for every entry of every container decoded.
#[inline]
fn tlv_entry<'a>(layout: &TlvLayout, input: &'a [u8]) -> PResult<'a, TlvEntry<'a>> {
    let (rest, tag) = take_bytes(layout.tag_width)(input)?;
    // ASCII tags are visible characters: anything else is not a tag (and
    // could not be shown or rebuilt faithfully).
    if layout.tag_encoding == TlvPartEncoding::Ascii && !tag.iter().all(u8::is_ascii_graphic) {
        return fail(input, DecodeErrorKind::BadTlv);
    }
    let (rest, len_bytes) = take_bytes(layout.length_width)(rest)?;
    let Some(len) = tlv_length(layout, len_bytes) else {
        return fail(input, DecodeErrorKind::BadTlv);
    };
    let (rest, value) = take_bytes(len)(rest)?;
    Ok((rest, TlvEntry { tag, value }))
}

/// The entries of a simple-TLV container, in order.
pub fn tlv_entries<'a>(
    layout: &'a TlvLayout,
    data: &'a [u8],
) -> impl Iterator<Item = TlvEntry<'a>> + 'a {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match tlv_entry(layout, rest) {
            Ok((r, e)) => {
                rest = r;
                Some(e)
            }
            Err(_) => {
                rest = &[];
                None
            }
        }
    })
}

/// A tag's number (its key in sub-field locations, lookups and errors): its
/// bytes as a big-endian number (tags are at most four bytes).
#[inline]
pub(crate) fn tag_number(tag: &[u8]) -> u32 {
    match *tag {
        [a, b] => u32::from(u16::from_be_bytes([a, b])),
        [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
        _ => tag.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
    }
}

/// Whether a container is valid, for the decoder's fast path: simple TLV
/// containers holding only known tags, each once, are checked here with
/// no error bookkeeping; anything else (unknown tags, any failure, other
/// layouts) is left to [`validate`], which has the final word and names
/// the error.
#[inline]
pub(crate) fn quick_valid(subs: &Subfields, data: &[u8]) -> bool {
    match subs {
        Subfields::Tlv(layout) => tlv_quick_valid(layout, data),
        _ => validate(subs, data).is_ok(),
    }
}

fn tlv_quick_valid(layout: &TlvLayout, data: &[u8]) -> bool {
    let (tw, lw) = (layout.tag_width, layout.length_width);
    // The common layout (CB2A-style national data): one binary length byte.
    let byte_len = lw == 1 && layout.length_encoding == TlvPartEncoding::Binary;
    let mut rest = data;
    let mut seen = 0u64;
    while !rest.is_empty() {
        let Some((tag, after)) = rest.split_at_checked(tw) else {
            return false;
        };
        let (len, after) = if byte_len {
            let Some((&len, after)) = after.split_first() else {
                return false;
            };
            (usize::from(len), after)
        } else {
            let Some((len_bytes, after)) = after.split_at_checked(lw) else {
                return false;
            };
            let Some(len) = tlv_length(layout, len_bytes) else {
                return false;
            };
            (len, after)
        };
        let Some((value, after)) = after.split_at_checked(len) else {
            return false;
        };
        // Only known tags (printable, when ASCII: see `QuickTag`), once each.
        let number = tag_number(tag);
        let Some(q) = layout.quick.iter().find(|q| q.number == number) else {
            return false;
        };
        if seen & q.bit != 0 || len > q.max || !q.check.passes(value) {
            return false;
        }
        seen |= q.bit;
        rest = after;
    }
    true
}

/// Walks a container without allocating; the error points into `data`.
pub(crate) fn validate<'a>(subs: &Subfields, data: &'a [u8]) -> Result<(), Fail<'a>> {
    match subs {
        Subfields::BerTlv { max_depth, tags } => validate_ber(data, 1, *max_depth, tags),
        Subfields::Tlv(layout) => {
            let mut rest = data;
            let mut seen = 0u64;
            while !rest.is_empty() {
                let (r, e) = tlv_entry(layout, rest).map_err(unwrap_fail)?;
                let number = tag_number(e.tag);
                // Each tag once (see validate_ber): a bit set for known tags,
                // a rescan only for unknown ones.
                let known = layout.tag_numbers.iter().position(|t| *t == number);
                let repeated = match known.filter(|i| *i < 64) {
                    Some(i) => first_repeat(&mut seen, i),
                    None => tlv_entries(layout, &data[..data.len() - rest.len()])
                        .any(|p| p.tag == e.tag),
                };
                if repeated {
                    let mut f = Fail::new(rest, DecodeErrorKind::DuplicateTag);
                    f.sub = Some(number);
                    return Err(f);
                }
                if let Some(i) = known {
                    let ts = &layout.tags[i].1;
                    check_tag_value(ts, e.value).map_err(|mut f| {
                        f.sub = Some(number);
                        f
                    })?;
                }
                rest = r;
            }
            Ok(())
        }
        Subfields::Fixed { parts } => {
            let mut rest = data;
            for (i, (_, spec)) in parts.iter().enumerate() {
                if rest.is_empty() {
                    break;
                }
                let (r, _) = field_value(spec, rest).map_err(|e| {
                    let mut f = unwrap_fail(e);
                    f.sub = Some(i as u32 + 1);
                    f
                })?;
                rest = r;
            }
            trailing(rest)
        }
        Subfields::Bitmap {
            bitmap_bytes,
            fields,
        } => {
            let (mut rest, bitmap) = take_bytes(*bitmap_bytes)(data).map_err(unwrap_fail)?;
            for n in set_bits(bitmap) {
                let Some(spec) = fields.get(n).and_then(Option::as_ref) else {
                    let mut f = Fail::new(rest, DecodeErrorKind::FieldNotInDialect);
                    f.sub = Some(n as u32);
                    return Err(f);
                };
                let (r, _) = field_value(spec, rest).map_err(|e| {
                    let mut f = unwrap_fail(e);
                    f.sub = Some(n as u32);
                    f
                })?;
                rest = r;
            }
            trailing(rest)
        }
    }
}

fn trailing(rest: &[u8]) -> Result<(), Fail<'_>> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Fail::new(
            rest,
            DecodeErrorKind::TrailingBytes { count: rest.len() },
        ))
    }
}

/// Set bits of a big-endian bitmap, 1-based.
fn set_bits(bitmap: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..bitmap.len() * 8)
        .filter(move |i| bitmap[i / 8] & (0x80 >> (i % 8)) != 0)
        .map(|i| i + 1)
}

/// The parts of a fixed-position container that are present, in order.
pub fn fixed_parts<'a>(
    parts: &'a [(String, FieldSpec)],
    data: &'a [u8],
) -> Vec<(&'a str, &'a FieldSpec, Field<'a>)> {
    let mut out = Vec::with_capacity(parts.len());
    let mut rest = data;
    for (id, spec) in parts {
        if rest.is_empty() {
            break;
        }
        match field_value(spec, rest) {
            Ok((r, f)) => {
                out.push((id.as_str(), spec, f));
                rest = r;
            }
            Err(_) => break,
        }
    }
    out
}

/// The sub-fields of a bitmap-driven container that are present, in order.
pub fn bitmap_subfields<'a>(
    bitmap_bytes: usize,
    fields: &'a [Option<FieldSpec>],
    data: &'a [u8],
) -> Vec<(usize, &'a FieldSpec, Field<'a>)> {
    let mut out = Vec::new();
    let Some(bitmap) = data.get(..bitmap_bytes) else {
        return out;
    };
    let mut rest = &data[bitmap_bytes..];
    for n in set_bits(bitmap) {
        let Some(spec) = fields.get(n).and_then(Option::as_ref) else {
            break;
        };
        match field_value(spec, rest) {
            Ok((r, f)) => {
                out.push((n, spec, f));
                rest = r;
            }
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Building containers.

/// A value given for a sub-field when building a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubValue<'v> {
    /// Text in the sub-field's logical form (hex for binary values).
    Text(&'v str),
    /// The entries of a constructed BER-TLV object.
    Nested(Vec<(&'v str, SubValue<'v>)>),
}

/// Builds a container's data from `(key, value)` entries, keys being BER
/// tags in hex, TLV tag labels, part ids or sub-field numbers.
pub(crate) fn build(
    subs: &Subfields,
    field: u16,
    entries: &[(&str, SubValue<'_>)],
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let loc = |sub: u32| Location::Subfield { field, sub };
    fn need_text<'v>(v: &SubValue<'v>, location: Location) -> Result<&'v str, ValueError> {
        match v {
            SubValue::Text(t) => Ok(t),
            SubValue::Nested(_) => Err(ValueError::NeedsString(location)),
        }
    }
    if entries
        .iter()
        .enumerate()
        .any(|(i, (k, _))| entries[..i].iter().any(|(p, _)| p == k))
    {
        return Err(ValueError::Invalid {
            location: Location::Field(field),
            reason: "the same sub-field is given twice",
        });
    }
    match subs {
        Subfields::BerTlv { max_depth, tags } => {
            build_ber(entries, field, 1, *max_depth, tags, out)
        }
        Subfields::Tlv(layout) => {
            for (key, v) in entries {
                let (tag, ts) = match layout.tags.iter().find(|(_, ts)| ts.label == *key) {
                    Some((tag, ts)) => (Cow::Borrowed(tag.as_slice()), Some(ts)),
                    None => (Cow::Owned(parse_tlv_tag(layout, key, field)?), None),
                };
                let sub = tag_number(&tag);
                let text = need_text(v, loc(sub))?;
                let value = match ts {
                    Some(ts) => tag_value(ts, text, loc(sub))?,
                    // Unknown tags: in the container's own encoding.
                    None if layout.unknown_values == super::encoding::DataEncoding::Binary => {
                        Cow::Owned(hex::decode(text).map_err(|_| ValueError::BadHex(loc(sub)))?)
                    }
                    None => Cow::Borrowed(text.as_bytes()),
                };
                out.extend_from_slice(&tag);
                write_tlv_length(layout, value.len(), loc(sub), out)?;
                out.extend_from_slice(&value);
            }
            Ok(())
        }
        Subfields::Fixed { parts } => {
            let mut given = entries.iter().peekable();
            let mut missing = false;
            for (i, (id, spec)) in parts.iter().enumerate() {
                let sub = i as u32 + 1;
                match given.peek() {
                    Some((k, v)) if *k == id.as_str() => {
                        if missing {
                            return Err(ValueError::Invalid {
                                location: loc(sub),
                                reason: "a part cannot follow a missing one",
                            });
                        }
                        encode_text_into(spec, loc(sub), need_text(v, loc(sub))?, out)?;
                        given.next();
                    }
                    _ => missing = true,
                }
            }
            if given.next().is_some() {
                return Err(ValueError::Invalid {
                    location: Location::Field(field),
                    reason: "unknown part id, or parts not in dialect order",
                });
            }
            Ok(())
        }
        Subfields::Bitmap {
            bitmap_bytes,
            fields,
        } => {
            let mut numbered: Vec<(usize, &SubValue<'_>)> = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let n: usize = k.parse().map_err(|_| ValueError::Invalid {
                    location: Location::Field(field),
                    reason: "bitmap sub-field keys are numbers",
                })?;
                numbered.push((n, v));
            }
            numbered.sort_by_key(|(n, _)| *n);
            let start = out.len();
            out.resize(start + bitmap_bytes, 0);
            for (n, v) in numbered {
                let spec = fields
                    .get(n)
                    .and_then(Option::as_ref)
                    .ok_or(ValueError::NotInDialect(loc(n as u32)))?;
                out[start + (n - 1) / 8] |= 0x80 >> ((n - 1) % 8);
                let f = encode_text(spec, loc(n as u32), need_text(v, loc(n as u32))?)?;
                let mut buf = bytes::BytesMut::new();
                write_field(spec, f.as_field(), &mut buf).map_err(|_| ValueError::Invalid {
                    location: loc(n as u32),
                    reason: "value does not fit the sub-field",
                })?;
                out.put_slice(&buf);
            }
            Ok(())
        }
    }
}

fn parse_tlv_tag(layout: &TlvLayout, key: &str, field: u16) -> Result<Vec<u8>, ValueError> {
    let bytes = match layout.tag_encoding {
        TlvPartEncoding::Binary => {
            hex::decode(key).map_err(|_| ValueError::BadHex(Location::Field(field)))?
        }
        _ => key.as_bytes().to_vec(),
    };
    let visible =
        layout.tag_encoding != TlvPartEncoding::Ascii || bytes.iter().all(u8::is_ascii_graphic);
    if bytes.len() != layout.tag_width || !visible {
        return Err(ValueError::Invalid {
            location: Location::Field(field),
            reason: "tag does not have the container's tag width and characters",
        });
    }
    Ok(bytes)
}

fn tag_value<'t>(
    ts: &TagSpec,
    text: &'t str,
    location: Location,
) -> Result<Cow<'t, [u8]>, ValueError> {
    let too_long = |len| ValueError::BadLength {
        location,
        len,
        fixed: false,
        max: ts.max,
    };
    let value = match ts.encoding {
        super::encoding::DataEncoding::Binary => {
            // The length first: nothing is decoded for a value that cannot fit.
            if text.len() / 2 > ts.max {
                return Err(too_long(text.len() / 2));
            }
            Cow::Owned(hex::decode(text).map_err(|_| ValueError::BadHex(location))?)
        }
        _ => {
            if let Some(index) = ts.class.first_bad_char(text.as_bytes()) {
                return Err(ValueError::BadChar {
                    location,
                    index,
                    class: ts.class.name(),
                });
            }
            Cow::Borrowed(text.as_bytes())
        }
    };
    if value.len() > ts.max {
        return Err(too_long(value.len()));
    }
    Ok(value)
}

fn write_tlv_length(
    layout: &TlvLayout,
    len: usize,
    location: Location,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let w = layout.length_width;
    let too_long = || ValueError::BadLength {
        location,
        len,
        fixed: false,
        max: 0,
    };
    match layout.length_encoding {
        TlvPartEncoding::Ascii => {
            if len >= 10usize.pow(w as u32) {
                return Err(too_long());
            }
            out.extend_from_slice(format!("{len:0w$}").as_bytes());
        }
        TlvPartEncoding::Bcd => {
            if len >= 100usize.pow(w as u32) {
                return Err(too_long());
            }
            let digits = format!("{len:0width$}", width = 2 * w);
            super::encoding::pack_bcd(digits.as_bytes(), super::encoding::Pad::Left, 0, out);
        }
        TlvPartEncoding::Binary => {
            if w < 8 && len >= 1usize << (8 * w) {
                return Err(too_long());
            }
            out.extend_from_slice(&(len as u64).to_be_bytes()[8 - w..]);
        }
    }
    Ok(())
}

fn build_ber(
    entries: &[(&str, SubValue<'_>)],
    field: u16,
    depth: u8,
    max_depth: u8,
    tags: &[(u32, TagSpec)],
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    for (key, v) in entries {
        let tag_bytes = hex::decode(key).map_err(|_| ValueError::BadHex(Location::Field(field)))?;
        let (_, (tag, parsed, constructed)) =
            ber_tag(&tag_bytes).map_err(|_| ValueError::Invalid {
                location: Location::Field(field),
                reason: "not a BER-TLV tag",
            })?;
        let location = Location::Subfield { field, sub: tag };
        if parsed.len() != tag_bytes.len() {
            return Err(ValueError::Invalid {
                location,
                reason: "not a BER-TLV tag",
            });
        }
        let value = match (v, constructed) {
            (SubValue::Nested(inner), true) => {
                if depth >= max_depth {
                    return Err(ValueError::Invalid {
                        location,
                        reason: "BER-TLV nested too deeply",
                    });
                }
                if inner
                    .iter()
                    .enumerate()
                    .any(|(i, (k, _))| inner[..i].iter().any(|(p, _)| p == k))
                {
                    return Err(ValueError::Invalid {
                        location,
                        reason: "the same tag is given twice",
                    });
                }
                let mut buf = Vec::new();
                build_ber(inner, field, depth + 1, max_depth, tags, &mut buf)?;
                buf
            }
            (SubValue::Text(t), constructed) => {
                let bytes = hex::decode(t).map_err(|_| ValueError::BadHex(location))?;
                // A constructed tag given as raw hex must still hold BER-TLV,
                // or the decoder would refuse what the builder made.
                if constructed && validate_ber(&bytes, depth + 1, max_depth, tags).is_err() {
                    return Err(ValueError::Invalid {
                        location,
                        reason: "a constructed tag's value must be BER-TLV",
                    });
                }
                if let Some((_, ts)) = tags.iter().find(|(t, _)| *t == tag) {
                    if bytes.len() > ts.max {
                        return Err(ValueError::BadLength {
                            location,
                            len: bytes.len(),
                            fixed: false,
                            max: ts.max,
                        });
                    }
                }
                bytes
            }
            (SubValue::Nested(_), false) => return Err(ValueError::NeedsString(location)),
        };
        out.extend_from_slice(&tag_bytes);
        match value.len() {
            n @ 0..=0x7F => out.push(n as u8),
            n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
            n @ 0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
            _ => {
                return Err(ValueError::BadLength {
                    location,
                    len: value.len(),
                    fixed: false,
                    max: 0xFFFF,
                })
            }
        }
        out.extend_from_slice(&value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_numbers_are_the_tag_bytes_big_endian() {
        let fold = |t: &[u8]| t.iter().fold(0u32, |a, b| a << 8 | u32::from(*b));
        for tag in [
            &b"0"[..],
            b"01",
            b"9F2",
            b"0100",
            b"\xff\xfe",
            b"\x01\x02\x03\x04",
        ] {
            assert_eq!(tag_number(tag), fold(tag), "{tag:?}");
        }
        assert_eq!(tag_number(b"01"), 0x3031);
    }

    #[test]
    fn ber_tags_and_lengths() {
        let data = hex::decode("9F2608AABBCCDDEEFF00115F2A020978").unwrap();
        let objs: Vec<_> = ber_objects(&data).collect();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].tag, 0x9F26);
        assert_eq!(objs[0].value.len(), 8);
        assert_eq!(objs[1].tag, 0x5F2A);
        assert_eq!(objs[1].value, [0x09, 0x78]);

        let long = [&[0x9F, 0x10, 0x81, 0x80][..], &[0u8; 128]].concat();
        let objs: Vec<_> = ber_objects(&long).collect();
        assert_eq!(objs[0].value.len(), 128);
        // 0x84 length form is refused, and so are lengths not in the
        // fewest bytes.
        assert!(ber_length(&[0x84, 0, 0, 0, 1]).is_err());
        assert!(ber_length(&[0x81, 0x00]).is_err());
        assert!(ber_length(&[0x81, 0x7F]).is_err());
        assert!(ber_length(&[0x82, 0x00, 0xFF]).is_err());
        assert_eq!(ber_length(&[0x82, 0x01, 0x00]).unwrap().1, 256);
        // A tag of more than four bytes is refused.
        assert!(ber_tag(&[0x1F, 0x81, 0x81, 0x81, 0x01]).is_err());
    }

    #[test]
    fn ber_depth_limit() {
        // 70 03 71 01 00 ... nested constructed objects.
        let mut v = vec![0x5A, 0x01, 0x00];
        for _ in 0..5 {
            let mut outer = vec![0x70, v.len() as u8];
            outer.extend_from_slice(&v);
            v = outer;
        }
        assert!(validate_ber(&v, 1, 8, &[]).is_ok());
        let e = validate_ber(&v, 1, 3, &[]).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TlvTooDeep { max: 3 });
    }
}
