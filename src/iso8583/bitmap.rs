//! Bitmaps: which data elements a message carries.
//!
//! ```text
//!  primary (8 bytes)      secondary (8 bytes)      tertiary (8 bytes)
//!  bit 1 = secondary      bit 65 = tertiary        bits 129..192
//!  bits 2..64             bits 66..128             (only when the dialect
//!                         (bit 65 is a field         enables it)
//!                          without tertiary)
//! ```
//! Bit 1 is the most significant bit of the first byte.

/// Up to three 64-bit bitmaps, bit `n` (1-based) of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bitmap([u64; 3]);

impl Bitmap {
    #[inline]
    pub fn set(&mut self, n: u16) {
        if (1..=192).contains(&n) {
            let i = (n - 1) as usize;
            self.0[i / 64] |= 1u64 << (63 - (i % 64));
        }
    }

    #[inline]
    pub fn clear(&mut self, n: u16) {
        if (1..=192).contains(&n) {
            let i = (n - 1) as usize;
            self.0[i / 64] &= !(1u64 << (63 - (i % 64)));
        }
    }

    #[inline]
    pub fn get(&self, n: u16) -> bool {
        if !(1..=192).contains(&n) {
            return false;
        }
        let i = (n - 1) as usize;
        self.0[i / 64] & (1u64 << (63 - (i % 64))) != 0
    }

    /// One 64-bit word (0 primary, 1 secondary, 2 tertiary).
    #[inline]
    pub fn word(&self, i: usize) -> u64 {
        self.0[i]
    }

    #[inline]
    pub fn set_word(&mut self, i: usize, w: u64) {
        self.0[i] = w;
    }

    /// Set bits in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let lead = bits.leading_zeros();
                bits &= !(1u64 << (63 - lead));
                Some((w as u16) * 64 + lead as u16 + 1)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_numbering_is_msb_first() {
        let mut b = Bitmap::default();
        b.set(1);
        b.set(2);
        b.set(64);
        b.set(65);
        b.set(128);
        b.set(192);
        assert_eq!(b.word(0), 0xC000_0000_0000_0001);
        assert_eq!(b.word(1), 0x8000_0000_0000_0001);
        assert_eq!(b.word(2), 0x0000_0000_0000_0001);
        assert_eq!(b.iter().collect::<Vec<_>>(), [1, 2, 64, 65, 128, 192]);
        assert!(b.get(65) && !b.get(66) && !b.get(0) && !b.get(193));
    }
}
