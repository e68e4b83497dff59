//! Zero-copy decoder: small `nom` parsers, each named after what it parses,
//! over a complete message (framing has already cut the frame).
//!
//! ```text
//!  [header] MTI  primary-bitmap [secondary] [tertiary]  field field ...
//!                                                        |
//!                              [length prefix] data -----+
//! ```
//! Every field's length is checked against the dialect's maximum before its
//! bytes are taken, so no input can make the decoder allocate more than one
//! `Vec` of field slots per message.
//!
//! Two paths: the planned one (per-field plans from `plan.rs`, fixed-length
//! fields taken a run at a time) and the general one (`field_value`), which
//! decodes every layout and names every error. The planned path hands
//! whatever it does not vouch for to the general one, field by field, so
//! both give the same message or the same error ([`decode_reference`] runs
//! the general path alone, for the tests and the fuzz target that compare
//! them).

use std::borrow::Cow;

use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::bitmap::Bitmap;
use super::encoding::{
    all_bcd_digit_pairs, all_in, all_in_range, ebcdic_to_ascii, first_outside, hex_value, Class,
    DataEncoding, Pad, BCD_DIGIT_PAIR,
};
use super::error::{DecodeError, DecodeErrorKind, Location};
use super::field::{DecodedFields, Field, FrameData, Message};
use super::mti::Mti;
use super::plan::{CheckPlan, FieldPlan, LengthPlan, RunCheck};
use super::spec::{BitmapEncoding, FieldSpec, LengthType, MtiEncoding, PrefixEncoding, Spec};
use super::subfield;

/// A parse failure: the input remaining where it went wrong, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail<'a> {
    pub at: &'a [u8],
    pub kind: DecodeErrorKind,
    /// Set when a sub-field failed: its tag or position.
    pub sub: Option<u32>,
}

impl<'a> Fail<'a> {
    pub(crate) fn new(at: &'a [u8], kind: DecodeErrorKind) -> Fail<'a> {
        Fail {
            at,
            kind,
            sub: None,
        }
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for Fail<'a> {
    fn from_error_kind(input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        // nom's own parsers here (be_u8, be_u16, be_u64) fail only on short input.
        Fail::new(input, DecodeErrorKind::Truncated { needed: 1 })
    }

    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, Fail<'a>>;

#[inline]
pub(crate) fn fail<T>(at: &[u8], kind: DecodeErrorKind) -> PResult<'_, T> {
    Err(nom::Err::Error(Fail::new(at, kind)))
}

/// Exactly `n` bytes, or `Truncated` saying how many are missing.
#[inline]
pub(crate) fn take_bytes(n: usize) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |input: &[u8]| {
        if input.len() >= n {
            Ok((&input[n..], &input[..n]))
        } else {
            fail(
                input,
                DecodeErrorKind::Truncated {
                    needed: n - input.len(),
                },
            )
        }
    }
}

/// Four MTI digits in the dialect's encoding.
fn mti(encoding: MtiEncoding) -> impl Fn(&[u8]) -> PResult<'_, Mti> {
    move |input: &[u8]| {
        let mut d = [0u8; 4];
        let rest = match encoding {
            MtiEncoding::Ascii => {
                let (rest, b) = take_bytes(4)(input)?;
                d.copy_from_slice(b);
                rest
            }
            MtiEncoding::Ebcdic => {
                let (rest, b) = take_bytes(4)(input)?;
                for (o, e) in d.iter_mut().zip(b) {
                    *o = ebcdic_to_ascii(*e).unwrap_or(0);
                }
                rest
            }
            MtiEncoding::Bcd => {
                let (rest, b) = take_bytes(2)(input)?;
                d = [
                    b'0' + (b[0] >> 4),
                    b'0' + (b[0] & 0xF),
                    b'0' + (b[1] >> 4),
                    b'0' + (b[1] & 0xF),
                ];
                rest
            }
        };
        if d.iter().all(u8::is_ascii_digit) {
            Ok((rest, Mti::from_digits_unchecked(d)))
        } else {
            fail(input, DecodeErrorKind::BadMti)
        }
    }
}

/// One 64-bit bitmap word: 8 raw bytes or 16 uppercase hex characters.
fn bitmap_word(encoding: BitmapEncoding) -> impl Fn(&[u8]) -> PResult<'_, u64> {
    move |input: &[u8]| match encoding {
        BitmapEncoding::Binary => match input.split_first_chunk::<8>() {
            Some((word, rest)) => Ok((rest, u64::from_be_bytes(*word))),
            None => fail(
                input,
                DecodeErrorKind::Truncated {
                    needed: 8 - input.len(),
                },
            ),
        },
        BitmapEncoding::Hex => {
            let (rest, b) = take_bytes(16)(input)?;
            let mut w = 0u64;
            for &c in b {
                // Uppercase only: lowercase would not re-encode to the same bytes.
                match hex_value(c) {
                    Some(v) if !c.is_ascii_lowercase() => w = (w << 4) | u64::from(v),
                    _ => return fail(input, DecodeErrorKind::BadBitmap),
                }
            }
            Ok((rest, w))
        }
    }
}

/// Decimal digits of a length prefix in ASCII or EBCDIC.
fn decimal_digits(digits: usize, ebcdic: bool) -> impl Fn(&[u8]) -> PResult<'_, usize> {
    move |input: &[u8]| {
        let (rest, b) = take_bytes(digits)(input)?;
        let mut v = 0usize;
        for &c in b {
            let c = if ebcdic {
                ebcdic_to_ascii(c).unwrap_or(0)
            } else {
                c
            };
            if !c.is_ascii_digit() {
                return fail(input, DecodeErrorKind::BadLengthPrefix);
            }
            v = v * 10 + usize::from(c - b'0');
        }
        Ok((rest, v))
    }
}

/// Packed-decimal length prefix of `bytes` bytes.
fn bcd_length(bytes: usize) -> impl Fn(&[u8]) -> PResult<'_, usize> {
    move |input: &[u8]| {
        let (rest, b) = take_bytes(bytes)(input)?;
        let mut v = 0usize;
        for &byte in b {
            let (hi, lo) = (byte >> 4, byte & 0xF);
            if hi > 9 || lo > 9 {
                return fail(input, DecodeErrorKind::BadLengthPrefix);
            }
            v = v * 100 + usize::from(hi) * 10 + usize::from(lo);
        }
        Ok((rest, v))
    }
}

/// A field's length prefix, in the field's unit.
fn length_prefix(spec: &FieldSpec) -> impl Fn(&[u8]) -> PResult<'_, usize> + '_ {
    move |input: &[u8]| match spec.prefix {
        PrefixEncoding::Ascii => decimal_digits(spec.length.digits(), false)(input),
        PrefixEncoding::Ebcdic => decimal_digits(spec.length.digits(), true)(input),
        PrefixEncoding::Bcd => bcd_length(spec.prefix_bytes)(input),
        PrefixEncoding::Binary if spec.prefix_bytes == 1 => be_u8::<&[u8], Fail>(input)
            .map(|(r, v)| (r, usize::from(v)))
            .or_else(|_| fail(input, DecodeErrorKind::Truncated { needed: 1 })),
        PrefixEncoding::Binary => be_u16::<&[u8], Fail>(input)
            .map(|(r, v)| (r, usize::from(v)))
            .or_else(|_| {
                fail(
                    input,
                    DecodeErrorKind::Truncated {
                        needed: 2 - input.len().min(2),
                    },
                )
            }),
    }
}

/// Checks a field's data against its class; the error points at the bad byte.
#[inline]
pub(crate) fn check_content<'a>(
    spec: &FieldSpec,
    data: &'a [u8],
    units: usize,
) -> Result<(), Fail<'a>> {
    match spec.encoding {
        DataEncoding::Binary => Ok(()),
        DataEncoding::Ascii => match spec.class.first_bad_char(data) {
            None => Ok(()),
            Some(i) => Err(Fail::new(
                &data[i..],
                DecodeErrorKind::BadChar {
                    class: spec.class,
                    byte: data[i],
                },
            )),
        },
        DataEncoding::Ebcdic => {
            for (i, &e) in data.iter().enumerate() {
                match ebcdic_to_ascii(e) {
                    Some(c) if spec.class.allows_char(c) => {}
                    _ => {
                        return Err(Fail::new(
                            &data[i..],
                            DecodeErrorKind::BadChar {
                                class: spec.class,
                                byte: e,
                            },
                        ));
                    }
                }
            }
            Ok(())
        }
        DataEncoding::Bcd => check_bcd(spec.class, spec, data, units),
    }
}

fn check_bcd<'a>(
    class: Class,
    spec: &FieldSpec,
    data: &'a [u8],
    units: usize,
) -> Result<(), Fail<'a>> {
    let Some((&first, _)) = data.split_first() else {
        return Ok(());
    };
    let odd = units % 2 == 1;
    // The filler nibble of an odd length sits in the first or last byte; it
    // must be the dialect's, and is excluded from the class check.
    let (filler_byte, filler_nibble) = match (odd, spec.pad) {
        (false, _) => (usize::MAX, 0),
        (true, super::encoding::Pad::Left) => (0, first >> 4),
        (true, super::encoding::Pad::Right) => (data.len() - 1, data[data.len() - 1] & 0xF),
    };
    if odd && filler_nibble != spec.filler {
        return Err(Fail::new(
            &data[filler_byte..],
            DecodeErrorKind::BadPadding {
                nibble: filler_nibble,
            },
        ));
    }
    let bad = |i: usize, b: u8| {
        Err(Fail::new(
            &data[i..],
            DecodeErrorKind::BadChar { class, byte: b },
        ))
    };
    match class {
        // The common case: digits with a decimal (or no) filler: one table
        // lookup per byte.
        Class::N if spec.filler <= 9 => {
            if let Some(i) = first_outside(data, &BCD_DIGIT_PAIR) {
                return bad(i, data[i]);
            }
        }
        Class::N => {
            for (i, &b) in data.iter().enumerate() {
                let (hi, lo) = if i == filler_byte {
                    if spec.pad == super::encoding::Pad::Left {
                        (0, b & 0xF)
                    } else {
                        (b >> 4, 0)
                    }
                } else {
                    (b >> 4, b & 0xF)
                };
                if hi > 9 || lo > 9 {
                    return bad(i, b);
                }
            }
        }
        _ => {
            for (i, &b) in data.iter().enumerate() {
                let hi_ok = (i == filler_byte && spec.pad == super::encoding::Pad::Left)
                    || class.allows_nibble(b >> 4);
                let lo_ok = (i == filler_byte && spec.pad == super::encoding::Pad::Right)
                    || class.allows_nibble(b & 0xF);
                if !(hi_ok && lo_ok) {
                    return bad(i, b);
                }
            }
        }
    }
    Ok(())
}

/// One field: length prefix (if variable), data, content check, and the
/// sub-field structure if the field is a container.
#[inline]
pub(crate) fn field_value<'a>(spec: &FieldSpec, input: &'a [u8]) -> PResult<'a, Field<'a>> {
    let (rest, units) = if spec.length == LengthType::Fixed {
        (input, spec.max)
    } else {
        let (rest, units) = length_prefix(spec)(input)?;
        if units > spec.max {
            return fail(
                input,
                DecodeErrorKind::LengthOverMax {
                    len: units,
                    max: spec.max,
                },
            );
        }
        (rest, units)
    };
    let (rest, data) = take_bytes(spec.wire_len(units))(rest)?;
    check_content(spec, data, units).map_err(nom::Err::Error)?;
    if let Some(subs) = &spec.subfields {
        subfield::validate(subs, data).map_err(nom::Err::Error)?;
    }
    // `units` fits u16: the dialect caps max at 9999.
    Ok((rest, Field::borrowed(data, units as u16)))
}

/// Byte offset of `at` within `input` (`at` is always a sub-slice of it;
/// anything else is clamped to the end).
pub(crate) fn offset_in(input: &[u8], at: &[u8]) -> usize {
    let start = input.as_ptr() as usize;
    (at.as_ptr() as usize)
        .checked_sub(start)
        .map_or(input.len(), |o| o.min(input.len()))
}

/// The hot path for one field, driven by its precompiled plan: the rest of
/// the input and the field when the plan covers the field and the field is
/// valid; `None` otherwise, and [`general_field`] then decides (it accepts
/// or names the error).
#[inline(always)]
fn planned_field<'a>(
    spec: &Spec,
    plan: &FieldPlan,
    n: u16,
    input: &'a [u8],
) -> Option<(&'a [u8], Field<'a>)> {
    // Fixed lengths are the common case: a plain branch for them, the
    // prefix kinds behind it (a jump table here costs more than the work).
    let (units, wire, body) = if let LengthPlan::Fixed { units, wire } = plan.length {
        (units as usize, wire as usize, input)
    } else {
        let (units, body) = length_prefix_planned(plan.length, input)?;
        if units > usize::from(plan.max) {
            return None;
        }
        let wire = if plan.nibbles {
            units.div_ceil(2)
        } else {
            units
        };
        (units, wire, body)
    };
    let data = body.get(..wire)?;
    // Most frequent first; plain branches rather than a jump table.
    if let CheckPlan::BcdDigits { filler, pad } = plan.check {
        if !all_bcd_digit_pairs(data) {
            return None;
        }
        if units % 2 == 1 {
            let nibble = match pad {
                Pad::Left => data[0] >> 4,
                Pad::Right => data[data.len() - 1] & 0xF,
            };
            if nibble != filler {
                return None;
            }
        }
    } else if let CheckPlan::Table(table) = plan.check {
        if !all_in(data, table) {
            return None;
        }
    } else if let CheckPlan::Range { lo, hi } = plan.check {
        if !all_in_range(data, lo, hi) {
            return None;
        }
    }
    if plan.container {
        let subs = spec.field(n)?.subfields.as_deref()?;
        if !subfield::quick_valid(subs, data) {
            return None;
        }
    }
    // `units` fits u16: the dialect caps max at 9999.
    Some((&body[wire..], Field::borrowed(data, units as u16)))
}

/// The fields of `bits` from its lowest bit (a member of the group
/// `members` describes) up to the first present field outside the group:
/// on the wire, one stretch of fixed-length fields. Never empty when
/// `bits` is not, so the field loop always advances.
#[inline(always)]
fn run_bits(bits: u64, members: u64) -> u64 {
    let first = bits & bits.wrapping_neg();
    let others = bits & !(members | first);
    // Bits below the lowest outsider (no outsider: all of them).
    bits & (others & others.wrapping_neg()).wrapping_sub(1)
}

/// A run of fixed-length fields of one group (`run`, fields of bitmap word
/// `w`) at the start of `rest`: pushed, then their bytes checked in one
/// pass. `None` when anything is wrong (the caller then takes back what
/// was pushed and decodes the fields one at a time).
#[inline(always)]
fn fixed_run<'a>(
    spec: &Spec,
    check: RunCheck,
    w: u16,
    mut run: u64,
    input: &'a [u8],
    rest: &'a [u8],
    out: &mut DecodedFields<'_, '_>,
) -> Option<&'a [u8]> {
    // Offsets in the frame: the run starts `base` bytes in.
    let base = input.len() - rest.len();
    let mut at = 0usize;
    while run != 0 {
        let n = w * 64 + run.trailing_zeros() as u16 + 1;
        run &= run - 1;
        let plan = spec.plans.get(n);
        let end = at + usize::from(plan.wire);
        let data = rest.get(at..end)?;
        if let Some((pad, filler)) = plan.filler {
            let nibble = match pad {
                Pad::Left => data.first()? >> 4,
                Pad::Right => data.last()? & 0xF,
            };
            if nibble != filler {
                return None;
            }
        }
        out.push(n, base + at, data.len(), plan.max);
        at = end;
    }
    let (bytes, rest) = rest.split_at_checked(at)?;
    if !check.passes(bytes) {
        return None;
    }
    out.add_data(at);
    Some(rest)
}

/// A run [`fixed_run`] refused: what it pushed is taken back and its fields
/// go through [`general_field`] one at a time.
#[cold]
#[inline(never)]
fn fields_one_by_one<'a>(
    spec: &Spec,
    w: u16,
    mut run: u64,
    input: &'a [u8],
    mut rest: &'a [u8],
    mark: usize,
    out: &mut DecodedFields<'_, '_>,
) -> Result<&'a [u8], DecodeError> {
    out.truncate(mark);
    while run != 0 {
        let n = w * 64 + run.trailing_zeros() as u16 + 1;
        run &= run - 1;
        let (r, field) = general_field(spec, n, input, rest)?;
        let len = field.raw().len();
        out.push(n, input.len() - r.len() - len, len, field.units() as u16);
        out.add_data(len);
        rest = r;
    }
    Ok(rest)
}

/// A planned length prefix: the length in the field's unit and the input
/// after the prefix; `None` for anything the general path must judge.
#[inline(always)]
fn length_prefix_planned(length: LengthPlan, input: &[u8]) -> Option<(usize, &[u8])> {
    match length {
        LengthPlan::Bcd { bytes } => {
            let b = bytes as usize;
            let mut units = 0usize;
            for &byte in input.get(..b)? {
                let (hi, lo) = (byte >> 4, byte & 0xF);
                if hi > 9 || lo > 9 {
                    return None;
                }
                units = units * 100 + usize::from(hi) * 10 + usize::from(lo);
            }
            Some((units, &input[b..]))
        }
        LengthPlan::Ascii { digits } => {
            let d = digits as usize;
            let mut units = 0usize;
            for &c in input.get(..d)? {
                let v = c.wrapping_sub(b'0');
                if v > 9 {
                    return None;
                }
                units = units * 10 + usize::from(v);
            }
            Some((units, &input[d..]))
        }
        LengthPlan::Binary { bytes: 1 } => Some((usize::from(*input.first()?), &input[1..])),
        LengthPlan::Binary { .. } => {
            let p = input.get(..2)?;
            Some((usize::from(u16::from_be_bytes([p[0], p[1]])), &input[2..]))
        }
        LengthPlan::Fixed { .. } | LengthPlan::General => None,
    }
}

/// One field the plan did not take: decoded by [`field_value`], which
/// covers every layout and names what is wrong and where.
#[cold]
#[inline(never)]
fn general_field<'a>(
    spec: &Spec,
    n: u16,
    input: &'a [u8],
    rest: &'a [u8],
) -> Result<(&'a [u8], Field<'a>), DecodeError> {
    let Some(fs) = spec.field(n) else {
        return Err(located(
            input,
            &Fail::new(rest, DecodeErrorKind::FieldNotInDialect),
            Location::Field(n),
        ));
    };
    field_value(fs, rest).map_err(|e| located(input, &unwrap_fail(e), Location::Field(n)))
}

/// A parse failure inside `input` as a [`DecodeError`] at `location`
/// (a sub-field location when the failure came from one).
#[cold]
fn located(input: &[u8], fail: &Fail<'_>, location: Location) -> DecodeError {
    DecodeError {
        location: match (location, fail.sub) {
            (Location::Field(field), Some(sub)) => Location::Subfield { field, sub },
            (l, _) => l,
        },
        offset: offset_in(input, fail.at),
        kind: fail.kind,
    }
}

/// The failure inside a nom error.
#[cold]
pub(crate) fn unwrap_fail(e: nom::Err<Fail<'_>>) -> Fail<'_> {
    match e {
        nom::Err::Error(f) | nom::Err::Failure(f) => f,
        // Complete parsers never ask for more input.
        nom::Err::Incomplete(_) => Fail::new(&[], DecodeErrorKind::Truncated { needed: 1 }),
    }
}

/// Decodes one whole message; every byte must belong to it.
pub fn decode<'a>(spec: &Spec, input: &'a [u8]) -> Result<Message<'a>, DecodeError> {
    decode_with::<true>(spec, input)
}

/// [`decode`] into a message on the heap that keeps `frame` (a shared
/// handle, no copy) rather than borrowing it; on error `frame` is handed
/// back. The message is decoded where it stays: not moved once decoded.
pub fn decode_shared(
    spec: &Spec,
    frame: bytes::Bytes,
) -> Result<Box<Message<'static>>, (DecodeError, bytes::Bytes)> {
    let filled = prelude(spec, &frame).and_then(|start| {
        let mut msg = Box::new(Message::empty());
        // The header, rare in dialects (a TPDU is framing, not message),
        // is copied; the slots point into `frame`, attached below.
        let header = |h: &[u8]| match h {
            [] => Cow::Borrowed(&[][..]),
            h => Cow::Owned(h.to_vec()),
        };
        start.fill::<true, _>(spec, &frame, FrameData::Borrowed(&[]), header, &mut msg)?;
        Ok(msg)
    });
    match filled {
        Ok(mut msg) => {
            msg.attach_frame(frame);
            Ok(msg)
        }
        Err(e) => Err((e, frame)),
    }
}

/// [`decode`] without the per-field plans: every field goes through
/// `field_value`. The reference the planned path is checked against
/// (unit tests, the `iso_decode` fuzz target).
pub fn decode_reference<'a>(spec: &Spec, input: &'a [u8]) -> Result<Message<'a>, DecodeError> {
    decode_with::<false>(spec, input)
}

#[inline(always)]
fn decode_with<'a, const PLANNED: bool>(
    spec: &Spec,
    input: &'a [u8],
) -> Result<Message<'a>, DecodeError> {
    let start = prelude(spec, input)?;
    let mut result = Ok(Message::empty());
    if let Ok(msg) = &mut result {
        let frame = FrameData::Borrowed(input);
        if let Err(e) = start.fill::<PLANNED, _>(spec, input, frame, Cow::Borrowed, msg) {
            result = Err(e);
        }
    }
    result
}

/// What comes before the data elements: header, MTI, bitmaps.
struct Prelude<'a> {
    header: &'a [u8],
    mti: Mti,
    /// The data elements' bits, reversed per word (see `prelude`).
    words: [u64; 3],
    present: Bitmap,
    count: usize,
    /// The input from the first data element on.
    rest: &'a [u8],
}

#[inline(always)]
fn prelude<'a>(spec: &Spec, input: &'a [u8]) -> Result<Prelude<'a>, DecodeError> {
    let at = |fail: &Fail<'_>, location: Location| located(input, fail, location);
    let unwrap = unwrap_fail;
    let (rest, header) =
        take_bytes(spec.header_len)(input).map_err(|e| at(&unwrap(e), Location::Header))?;
    // An ASCII header is text: printable characters only, so it shows and
    // re-encodes faithfully.
    if spec.header_ascii {
        if let Some(i) = super::encoding::first_non_printable(header) {
            let kind = DecodeErrorKind::BadChar {
                class: Class::Ans,
                byte: header[i],
            };
            return Err(at(&Fail::new(&header[i..], kind), Location::Header));
        }
    }
    let (rest, mti) = mti(spec.mti)(rest).map_err(|e| at(&unwrap(e), Location::Mti))?;

    let word = bitmap_word(spec.bitmap);
    let mut bitmap = Bitmap::default();
    let (mut rest, primary) = word(rest).map_err(|e| at(&unwrap(e), Location::Bitmap(1)))?;
    bitmap.set_word(0, primary);
    if bitmap.get(1) {
        let before = rest;
        let (r, secondary) = word(rest).map_err(|e| at(&unwrap(e), Location::Bitmap(2)))?;
        // An empty secondary bitmap would not re-encode to the same bytes
        // (one holding only bit 65 is checked through its tertiary bitmap).
        if secondary == 0 {
            return Err(at(
                &Fail::new(before, DecodeErrorKind::BadBitmap),
                Location::Bitmap(2),
            ));
        }
        bitmap.set_word(1, secondary);
        rest = r;
        if spec.tertiary && bitmap.get(65) {
            let before = rest;
            let (r, tertiary) = word(rest).map_err(|e| at(&unwrap(e), Location::Bitmap(3)))?;
            if tertiary == 0 {
                return Err(at(
                    &Fail::new(before, DecodeErrorKind::BadBitmap),
                    Location::Bitmap(3),
                ));
            }
            bitmap.set_word(2, tertiary);
            rest = r;
        }
    }

    let count = (bitmap.word(0).count_ones()
        + bitmap.word(1).count_ones()
        + bitmap.word(2).count_ones()) as usize;
    // Data-element bits only: bit 1 (and 65 with a tertiary bitmap) announce
    // bitmaps, not fields.
    // Reversed, so field 64w + 1 is bit 0 of word w: the field loop takes
    // the lowest bit and clears it (`b & (b - 1)`), a short dependency chain.
    let mut words = [
        (bitmap.word(0) & !(1 << 63)).reverse_bits(),
        bitmap.word(1).reverse_bits(),
        bitmap.word(2).reverse_bits(),
    ];
    if spec.tertiary {
        words[1] &= !1;
    }
    let mut present = bitmap;
    present.clear(1);
    if spec.tertiary {
        present.clear(65);
    }
    Ok(Prelude {
        header,
        mti,
        words,
        present,
        count,
        rest,
    })
}

impl<'a> Prelude<'a> {
    /// Fills the empty `msg` with the data elements.
    #[inline(always)]
    fn fill<'m, const PLANNED: bool, H>(
        self,
        spec: &Spec,
        input: &'a [u8],
        frame: FrameData<'m>,
        header: H,
        msg: &mut Message<'m>,
    ) -> Result<(), DecodeError>
    where
        H: FnOnce(&'a [u8]) -> Cow<'m, [u8]>,
    {
        msg.begin_decoding(
            frame,
            header(self.header),
            self.mti,
            self.count,
            self.present,
        );
        fields::<PLANNED>(spec, input, self.rest, self.words, msg)
    }
}

/// The data elements of `words` (bit `i` of word `w` is field `64w + i + 1`)
/// from `rest` on, into `msg`; every byte of `input` must be used.
#[inline(always)]
fn fields<'a, const PLANNED: bool>(
    spec: &Spec,
    input: &'a [u8],
    mut rest: &'a [u8],
    words: [u64; 3],
    msg: &mut Message<'_>,
) -> Result<(), DecodeError> {
    let mut out = msg.decoded_fields();
    for (w, mut bits) in (0u16..).zip(words) {
        while bits != 0 {
            let n = w * 64 + bits.trailing_zeros() as u16 + 1;
            let plan = spec.plans.get(n);
            // A run of fixed-length fields with one check, taken at once;
            // if anything in it is wrong, its fields are taken back and
            // decoded one at a time by the general path, which names the
            // first bad one.
            if PLANNED && plan.run_members != 0 {
                let run = run_bits(bits, plan.run_members);
                let mark = out.len();
                rest = match fixed_run(spec, plan.run_check, w, run, input, rest, &mut out) {
                    Some(r) => r,
                    None => fields_one_by_one(spec, w, run, input, rest, mark, &mut out)?,
                };
                bits ^= run;
                continue;
            }
            bits &= bits - 1;
            let planned = if PLANNED {
                planned_field(spec, plan, n, rest)
            } else {
                None
            };
            let (r, field) = match planned {
                Some(ok) => ok,
                None => general_field(spec, n, input, rest)?,
            };
            let len = field.raw().len();
            out.push(n, input.len() - r.len() - len, len, field.units() as u16);
            out.add_data(len);
            rest = r;
        }
    }
    drop(out);
    if !rest.is_empty() {
        let last = msg.fields().last().map_or(0, |(n, _)| n);
        return Err(located(
            input,
            &Fail::new(rest, DecodeErrorKind::TrailingBytes { count: rest.len() }),
            Location::Field(last),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::run_bits;

    /// A run starts at the lowest present field, takes the following
    /// present members, and stops at the first present non-member.
    #[test]
    fn run_bits_stop_at_the_first_outsider() {
        let bits = 0b1011_0110u64;
        assert_eq!(run_bits(bits, 0b0011_0110), 0b0011_0110);
        assert_eq!(run_bits(bits, 0b1111_0010), 0b0000_0010);
        assert_eq!(run_bits(bits, u64::MAX), bits);
        // Never empty, even for a field wrongly left out of its own group.
        assert_eq!(run_bits(bits, 0), 0b0000_0010);
        assert_eq!(run_bits(1 << 63, 0), 1 << 63);
    }
}
