//! Character-level building blocks: content classes, BCD nibble packing and
//! the EBCDIC (code page 500) translation used by EBCDIC fields and prefixes.
//!
//! Everything here works on slices and returns the index of the first bad
//! byte, so callers can report an exact offset.

use serde::Deserialize;

/// How a field's data is represented on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataEncoding {
    /// One ASCII byte per character.
    Ascii,
    /// One EBCDIC (cp500) byte per character.
    Ebcdic,
    /// Two nibbles per byte; odd lengths padded on the side the field says.
    Bcd,
    /// Raw bytes; shown as uppercase hex.
    Binary,
}

/// ISO 8583 content class: which characters a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[repr(u8)]
pub enum Class {
    /// Digits only.
    #[serde(rename = "n")]
    N = 0,
    /// Letters (and space, which real networks use for padding).
    #[serde(rename = "a")]
    A,
    /// Letters, digits and space.
    #[serde(rename = "an")]
    An,
    /// Digits and special characters.
    #[serde(rename = "ns")]
    Ns,
    /// Any printable ASCII character (0x20..=0x7E).
    #[serde(rename = "ans")]
    Ans,
    /// Binary data. With ASCII/EBCDIC encoding: uppercase hex characters.
    #[serde(rename = "b")]
    B,
    /// Track data: digits, field separators (`=`, `D`), sentinels (`;`, `?`).
    #[serde(rename = "z")]
    Z,
}

impl Class {
    /// Whether an ASCII character belongs to the class.
    #[inline]
    pub fn allows_char(self, c: u8) -> bool {
        CLASS_TABLES[self as usize][c as usize]
    }

    /// Whether a BCD nibble belongs to the class.
    #[inline]
    pub fn allows_nibble(self, n: u8) -> bool {
        match self {
            Class::N => n <= 9,
            // Track 2 in BCD: 0xD is the field separator, 0xF a filler.
            Class::Z => n <= 9 || n == 0xD || n == 0xF,
            _ => n <= 0xF,
        }
    }

    /// Index of the first character outside the class, if any.
    #[inline]
    pub fn first_bad_char(self, s: &[u8]) -> Option<usize> {
        first_outside(s, class_table(self))
    }

    /// The short name used in dialect files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Class::N => "n",
            Class::A => "a",
            Class::An => "an",
            Class::Ns => "ns",
            Class::Ans => "ans",
            Class::B => "b",
            Class::Z => "z",
        }
    }
}

/// One 256-entry membership table per class, indexed by `Class as usize`:
/// a table lookup per byte is the cheapest check on the decode hot path.
static CLASS_TABLES: [[bool; 256]; 7] = {
    const CLASSES: [Class; 7] = [
        Class::N,
        Class::A,
        Class::An,
        Class::Ns,
        Class::Ans,
        Class::B,
        Class::Z,
    ];
    let mut t = [[false; 256]; 7];
    let mut k = 0;
    while k < 7 {
        let mut c = 0;
        while c < 256 {
            t[k][c] = class_allows(CLASSES[k], c as u8);
            c += 1;
        }
        k += 1;
    }
    t
};

const fn class_allows(class: Class, c: u8) -> bool {
    match class {
        Class::N => c.is_ascii_digit(),
        Class::A => c.is_ascii_alphabetic() || c == b' ',
        Class::An => c.is_ascii_alphanumeric() || c == b' ',
        Class::Ns => c.is_ascii_digit() || c.is_ascii_punctuation() || c == b' ',
        Class::Ans => c >= 0x20 && c <= 0x7E,
        Class::B => c.is_ascii_digit() || (c >= b'A' && c <= b'F'),
        Class::Z => c.is_ascii_digit() || c == b'=' || c == b'D' || c == b';' || c == b'?',
    }
}

/// Index of the first byte of an ASCII header that is not printable ASCII
/// (class `ans`): such a header could not be shown as text faithfully.
pub(crate) fn first_non_printable(header: &[u8]) -> Option<usize> {
    Class::Ans.first_bad_char(header)
}

/// The byte table of an ASCII character class (`true`: allowed).
#[inline]
pub(crate) fn class_table(class: Class) -> &'static [bool; 256] {
    &CLASS_TABLES[class as usize]
}

/// Index of the first byte whose `table` entry is false. Valid data is the
/// common case: eight bytes are checked per branch, and the culprit is
/// looked for only in a chunk that fails.
#[inline]
pub fn first_outside(s: &[u8], table: &[bool; 256]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let ok = table[c[0] as usize]
            & table[c[1] as usize]
            & table[c[2] as usize]
            & table[c[3] as usize]
            & table[c[4] as usize]
            & table[c[5] as usize]
            & table[c[6] as usize]
            & table[c[7] as usize];
        if !ok {
            break;
        }
        base += 8;
    }
    s[base..]
        .iter()
        .position(|&c| !table[c as usize])
        .map(|i| base + i)
}

/// Whether every byte of `s` has a `true` entry in `table`: the decoder's
/// fast path, with no early exit (one branch per four bytes); the caller
/// looks for the culprit with [`first_outside`] only when this fails.
#[inline(always)]
pub(crate) fn all_in(s: &[u8], table: &[bool; 256]) -> bool {
    let mut chunks = s.chunks_exact(4);
    let mut ok = true;
    for c in &mut chunks {
        ok &= table[c[0] as usize]
            & table[c[1] as usize]
            & table[c[2] as usize]
            & table[c[3] as usize];
    }
    for &c in chunks.remainder() {
        ok &= table[c as usize];
    }
    ok
}

/// Whether every byte of `s` is two decimal nibbles (as [`BCD_DIGIT_PAIR`]
/// says), eight bytes per step: adding 6 to a nibble above 9 carries into
/// the next nibble's lowest bit. Short inputs use the table.
#[inline(always)]
pub(crate) fn all_bcd_digit_pairs(s: &[u8]) -> bool {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const SIX: u64 = 0x0606_0606_0606_0606;
    const CARRY: u64 = 0x1010_1010_1010_1010;
    if s.len() < 8 {
        return all_in(s, &BCD_DIGIT_PAIR);
    }
    let carries = or_of_words(s, |x| ((x & LOW) + SIX) | (((x >> 4) & LOW) + SIX));
    carries & CARRY == 0
}

/// The OR of `f` over the little-endian 64-bit words of `s` (at least
/// eight bytes); a partial last word is taken as the last eight bytes,
/// overlapping ones already seen, which a yes/no check does not mind.
#[inline(always)]
fn or_of_words(s: &[u8], f: impl Fn(u64) -> u64) -> u64 {
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        f(u64::from_le_bytes(b))
    };
    let mut chunks = s.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        acc |= word(c);
    }
    if !chunks.remainder().is_empty() {
        acc |= word(&s[s.len() - 8..]);
    }
    acc
}

/// The one byte range a character class allows, for the classes that are
/// one range (digits, printable ASCII): checked eight bytes at a time by
/// [`all_in_range`].
pub(crate) fn class_range(class: Class) -> Option<(u8, u8)> {
    match class {
        Class::N => Some((b'0', b'9')),
        Class::Ans => Some((0x20, 0x7E)),
        _ => None,
    }
}

/// Whether every byte of `s` is in `lo..=hi` (`1 <= lo <= hi <= 0x7F`),
/// eight bytes per step: with the top bit of each byte cleared, adding
/// `0x80 - lo` sets it exactly for bytes at or above `lo`, and adding
/// `0x7F - hi` exactly for bytes above `hi`; neither sum carries into the
/// next byte. Bytes with the top bit set are out of range.
#[inline]
pub(crate) fn all_in_range(s: &[u8], lo: u8, hi: u8) -> bool {
    const TOP: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    if s.len() < 8 {
        return s.iter().all(|&b| (lo..=hi).contains(&b));
    }
    let (add_lo, add_hi) = (ONES * u64::from(0x80 - lo), ONES * u64::from(0x7F - hi));
    let out = or_of_words(s, |x| {
        let t = x & !TOP;
        x | !(t + add_lo) | (t + add_hi)
    });
    out & TOP == 0
}

/// Bytes whose two nibbles are both decimal digits.
pub static BCD_DIGIT_PAIR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b >> 4) <= 9 && (b & 0xF) <= 9;
        b += 1;
    }
    t
};

/// Which side of an odd-length BCD value gets the filler nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pad {
    #[default]
    Left,
    Right,
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Value of one hex character (either case), or `None`.
#[inline]
pub fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Character for a nibble, uppercase.
#[inline]
pub fn nibble_char(n: u8) -> char {
    HEX_UPPER[(n & 0x0F) as usize] as char
}

/// Appends the uppercase hex form of `bytes` to `out`.
pub fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(nibble_char(b >> 4));
        out.push(nibble_char(*b));
    }
}

/// Iterates over the significant nibbles of a packed BCD value of `nibbles`
/// length, skipping the filler of an odd length.
pub fn bcd_nibbles(data: &[u8], nibbles: usize, pad: Pad) -> impl Iterator<Item = u8> + '_ {
    let skip = usize::from(nibbles % 2 == 1 && pad == Pad::Left);
    data.iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .skip(skip)
        .take(nibbles)
}

/// The filler nibble of an odd-length BCD value.
#[inline]
pub fn bcd_filler(data: &[u8], nibbles: usize, pad: Pad) -> Option<u8> {
    if nibbles % 2 == 0 {
        return None;
    }
    match pad {
        Pad::Left => data.first().map(|b| b >> 4),
        Pad::Right => data.last().map(|b| b & 0x0F),
    }
}

/// Packs hex/decimal characters into BCD, appending to `out`. The caller has
/// validated every character with [`hex_value`].
pub fn pack_bcd(text: &[u8], pad: Pad, filler: u8, out: &mut Vec<u8>) {
    let odd = text.len() % 2 == 1;
    let mut iter = text.iter().map(|&c| hex_value(c).unwrap_or(0));
    if odd && pad == Pad::Left {
        let first = iter.next().unwrap_or(0);
        out.push((filler << 4) | first);
    }
    loop {
        match (iter.next(), iter.next()) {
            (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
            (Some(hi), None) => {
                out.push((hi << 4) | filler);
                break;
            }
            _ => break,
        }
    }
}

/// ASCII -> EBCDIC (cp500) for the 7-bit range, taken from Python's `cp500`
/// codec so EBCDIC fields interoperate with pyiso8583 dialects.
const ASCII_TO_EBCDIC: [u8; 128] = [
    0x00, 0x01, 0x02, 0x03, 0x37, 0x2D, 0x2E, 0x2F, 0x16, 0x05, 0x25, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
    0x10, 0x11, 0x12, 0x13, 0x3C, 0x3D, 0x32, 0x26, 0x18, 0x19, 0x3F, 0x27, 0x1C, 0x1D, 0x1E, 0x1F,
    0x40, 0x4F, 0x7F, 0x7B, 0x5B, 0x6C, 0x50, 0x7D, 0x4D, 0x5D, 0x5C, 0x4E, 0x6B, 0x60, 0x4B, 0x61,
    0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0x7A, 0x5E, 0x4C, 0x7E, 0x6E, 0x6F,
    0x7C, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6,
    0xD7, 0xD8, 0xD9, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0x4A, 0xE0, 0x5A, 0x5F, 0x6D,
    0x79, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xC0, 0xBB, 0xD0, 0xA1, 0x07,
];

/// EBCDIC -> ASCII, the inverse of [`ASCII_TO_EBCDIC`]; 0xFF marks bytes with
/// no 7-bit ASCII equivalent (cp500 maps 0xFF to 0x9F, never to 0xFF).
const EBCDIC_TO_ASCII: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 128 {
        t[ASCII_TO_EBCDIC[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// ASCII byte -> EBCDIC byte; `None` for bytes above 0x7F.
#[inline]
pub fn ascii_to_ebcdic(c: u8) -> Option<u8> {
    ASCII_TO_EBCDIC.get(c as usize).copied()
}

/// EBCDIC byte -> ASCII byte; `None` when it has no 7-bit equivalent.
#[inline]
pub fn ebcdic_to_ascii(c: u8) -> Option<u8> {
    match EBCDIC_TO_ASCII[c as usize] {
        0xFF => None,
        a => Some(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range check says what the class table says, for every byte at
    /// every position of every length.
    #[test]
    fn class_ranges_agree_with_the_tables() {
        for class in [Class::N, Class::Ans] {
            let (lo, hi) = class_range(class).unwrap();
            let table = class_table(class);
            for len in 1..20 {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut s = vec![lo; len];
                        s[pos] = b;
                        assert_eq!(
                            all_in_range(&s, lo, hi),
                            table[b as usize],
                            "{class:?} {len} {pos} {b:02X}"
                        );
                    }
                }
            }
            assert!(all_in_range(&[], lo, hi));
        }
        assert_eq!(class_range(Class::An), None);
    }

    /// The eight-bytes-at-a-time check says what the table says, for every
    /// length and every position of one bad byte.
    #[test]
    fn bcd_digit_pairs_agree_with_the_table() {
        let good: Vec<u8> = (0..40u8).map(|i| (i % 10) << 4 | (9 - i % 10)).collect();
        for len in 0..good.len() {
            assert!(all_bcd_digit_pairs(&good[..len]));
            for pos in 0..len {
                for bad in [0x0A, 0xA0, 0xFF, 0x9F, 0xF9, 0x1C] {
                    let mut s = good[..len].to_vec();
                    s[pos] = bad;
                    assert!(!all_bcd_digit_pairs(&s), "len {len} pos {pos} {bad:02X}");
                }
            }
        }
        for b in 0..=255u8 {
            assert_eq!(all_bcd_digit_pairs(&[b; 9]), BCD_DIGIT_PAIR[b as usize]);
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Class::N.first_bad_char(b"0123456789"), None);
        assert_eq!(Class::N.first_bad_char(b"01a3"), Some(2));
        assert_eq!(Class::An.first_bad_char(b"TERM 001"), None);
        assert_eq!(Class::An.first_bad_char(b"TERM-001"), Some(4));
        assert_eq!(Class::Ans.first_bad_char(b"a~ !"), None);
        assert_eq!(Class::Ans.first_bad_char(b"a\x7f"), Some(1));
        assert_eq!(Class::Z.first_bad_char(b";4761=2512?"), None);
        assert_eq!(Class::B.first_bad_char(b"9F26ab"), Some(4));
        assert!(Class::Z.allows_nibble(0xD));
        assert!(!Class::N.allows_nibble(0xA));
    }

    #[test]
    fn bcd_pack_and_walk_left_and_right() {
        let mut out = Vec::new();
        pack_bcd(b"12345", Pad::Left, 0, &mut out);
        assert_eq!(out, [0x01, 0x23, 0x45]);
        let digits: Vec<u8> = bcd_nibbles(&out, 5, Pad::Left).collect();
        assert_eq!(digits, [1, 2, 3, 4, 5]);
        assert_eq!(bcd_filler(&out, 5, Pad::Left), Some(0));

        out.clear();
        pack_bcd(b"4761D25", Pad::Right, 0xF, &mut out);
        assert_eq!(out, [0x47, 0x61, 0xD2, 0x5F]);
        let n: Vec<u8> = bcd_nibbles(&out, 7, Pad::Right).collect();
        assert_eq!(n, [4, 7, 6, 1, 0xD, 2, 5]);
        assert_eq!(bcd_filler(&out, 7, Pad::Right), Some(0xF));

        out.clear();
        pack_bcd(b"0100", Pad::Left, 0, &mut out);
        assert_eq!(out, [0x01, 0x00]);
        assert_eq!(bcd_filler(&out, 4, Pad::Left), None);
    }

    #[test]
    fn ebcdic_round_trip_printable() {
        for c in 0x20u8..0x7F {
            let e = ascii_to_ebcdic(c).unwrap();
            assert_eq!(ebcdic_to_ascii(e), Some(c));
        }
        assert_eq!(ascii_to_ebcdic(b'0'), Some(0xF0));
        assert_eq!(ascii_to_ebcdic(b'A'), Some(0xC1));
        assert_eq!(ascii_to_ebcdic(0x80), None);
        assert_eq!(ebcdic_to_ascii(0xFF), None);
    }

    #[test]
    fn hex_helpers() {
        let mut s = String::new();
        push_hex_upper(&mut s, &[0x9F, 0x26, 0x0a]);
        assert_eq!(s, "9F260A");
        assert_eq!(hex_value(b'f'), Some(15));
        assert_eq!(hex_value(b'g'), None);
    }
}
