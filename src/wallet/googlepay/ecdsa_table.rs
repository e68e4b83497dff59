//! Faster ECDSA P-256 verification for keys that are used many times.
//!
//! p256 0.13 verifies with two generic constant-time scalar multiplications
//! (`u1·G + u2·Q`), each about as costly as an ECDH. Everything in a
//! verification is public (message, signature, key), so variable-time code is
//! fine here, and a point that is used again and again (the generator, the
//! root keys, a cached intermediate key) can use a fixed-base table:
//!
//! ```text
//! table[i][d-1] = d · 16^i · P        for window i in 0..64, digit d in 1..=15
//! k · P         = Σ_i table[i][digit_i(k)]   (64 additions, no doublings)
//! ```
//!
//! (shown for 4-bit windows; the generator uses 8-bit and keys 6-bit windows).
//! A key's table takes a few verifications' time to build, so it is built
//! only for long-lived keys.
//! The result is checked against p256's own `verify` in the tests below.
//! Never use this with secret scalars: it branches on and indexes by the scalar.

use std::sync::OnceLock;

use p256::ecdsa::Signature;
use p256::elliptic_curve::ops::{Invert, Reduce};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::{FieldBytes, ProjectivePoint, Scalar, U256};
use sha2::{Digest, Sha256};

/// Window width for the generator's table: one shared table per process, so
/// it can be large (32 windows x 255 points, about 780 KiB, built once).
pub(crate) const GENERATOR_WINDOW_BITS: u32 = 8;
/// Window width for per-key tables (roots, cached intermediate keys):
/// 43 windows x 63 points, about 250 KiB, built in about a millisecond.
pub(crate) const KEY_WINDOW_BITS: u32 = 6;

/// Precomputed multiples of one point. Kept in projective form: p256 has no
/// public batch inversion, and with primeorder's complete formulas a full
/// addition costs about the same as a mixed one.
pub(crate) struct FixedBaseTable {
    bits: u32,
    digits: usize,
    points: Vec<ProjectivePoint>,
}

impl FixedBaseTable {
    /// `bits` in 1..=8: window width; the table holds d * 2^(bits*i) * base.
    pub(crate) fn new(base: &ProjectivePoint, bits: u32) -> Self {
        let bits = bits.clamp(1, 8);
        let digits = (1usize << bits) - 1;
        let windows = 256usize.div_ceil(bits as usize);
        let mut points = Vec::with_capacity(windows * digits);
        let mut window_base = *base;
        for _ in 0..windows {
            let mut acc = window_base;
            for _ in 0..digits {
                points.push(acc);
                acc += window_base;
            }
            // acc is now 2^bits * window_base, the next window's base.
            window_base = acc;
        }
        FixedBaseTable {
            bits,
            digits,
            points,
        }
    }

    /// k * base, variable time.
    pub(crate) fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let mut le = k.to_bytes(); // big-endian
        le.reverse();
        let mut acc = ProjectivePoint::IDENTITY;
        let mut offset = 0usize;
        let mut window = 0usize;
        while offset < 256 {
            let digit = bits_at(&le, offset, self.bits);
            if digit != 0 {
                if let Some(p) = self.points.get(window * self.digits + digit - 1) {
                    acc += p;
                }
            }
            offset += self.bits as usize;
            window += 1;
        }
        acc
    }
}

/// `width` (<= 8) bits of a little-endian number starting at bit `offset`.
fn bits_at(le: &[u8], offset: usize, width: u32) -> usize {
    let byte = offset / 8;
    let shift = offset % 8;
    let lo = usize::from(le.get(byte).copied().unwrap_or(0));
    let hi = usize::from(le.get(byte + 1).copied().unwrap_or(0));
    ((lo | (hi << 8)) >> shift) & ((1usize << width) - 1)
}

/// The generator's table, shared by every recipient.
pub(crate) fn generator_table() -> &'static FixedBaseTable {
    static TABLE: OnceLock<FixedBaseTable> = OnceLock::new();
    TABLE.get_or_init(|| FixedBaseTable::new(&ProjectivePoint::GENERATOR, GENERATOR_WINDOW_BITS))
}

/// How to multiply by the public key: with its table, or generically.
pub(crate) enum KeyMul<'a> {
    Table(&'a FixedBaseTable),
    Point(&'a ProjectivePoint),
}

/// ECDSA P-256 with SHA-256 over `message`, the same equation as p256's
/// `hazmat::verify_prehashed`: r == x(u1·G + u2·Q) mod n with w = s⁻¹,
/// u1 = z·w, u2 = r·w.
pub(crate) fn verify(key: KeyMul<'_>, message: &[u8], signature: &Signature) -> bool {
    let digest: FieldBytes = Sha256::digest(message);
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&digest);
    let (r, s) = signature.split_scalars();
    let s_inv = *s.invert_vartime();
    let u1 = z * s_inv;
    let u2 = *r * s_inv;
    let u2q = match key {
        KeyMul::Table(t) => t.mul_vartime(&u2),
        KeyMul::Point(q) => q * &u2,
    };
    let point = generator_table().mul_vartime(&u1) + u2q;
    let x = point.to_affine().x();
    *r == <Scalar as Reduce<U256>>::reduce_bytes(&x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::SigningKey;
    use p256::elliptic_curve::Field;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn table_multiplication_matches_generic() {
        let mut rng = StdRng::seed_from_u64(11);
        let table = generator_table();
        for k in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(16u64)] {
            assert_eq!(table.mul_vartime(&k), ProjectivePoint::GENERATOR * k);
        }
        for _ in 0..20 {
            let k = Scalar::random(&mut rng);
            assert_eq!(table.mul_vartime(&k), ProjectivePoint::GENERATOR * k);
        }
        let p = ProjectivePoint::GENERATOR * Scalar::from(7u64);
        for bits in [1, 3, 5, 6, 7] {
            let t = FixedBaseTable::new(&p, bits);
            for k in [-Scalar::ONE, Scalar::random(&mut rng)] {
                assert_eq!(t.mul_vartime(&k), p * k, "{bits}-bit windows");
            }
        }
    }

    #[test]
    fn verify_agrees_with_p256() {
        let mut rng = StdRng::seed_from_u64(12);
        for round in 0..24u32 {
            let sk = SigningKey::random(&mut rng);
            let vk = *sk.verifying_key();
            let q = ProjectivePoint::from(*vk.as_affine());
            let qt = FixedBaseTable::new(&q, 1 + round % 8);
            let msg = format!("message {round}");
            let sig: Signature = sk.sign(msg.as_bytes());
            let other: Signature = sk.sign(b"other");
            for (m, s) in [
                (msg.as_bytes(), sig),
                (msg.as_bytes(), other),
                (&b"x"[..], sig),
            ] {
                let expected = vk.verify(m, &s).is_ok();
                assert_eq!(verify(KeyMul::Table(&qt), m, &s), expected);
                assert_eq!(verify(KeyMul::Point(&q), m, &s), expected);
            }
        }
    }

    /// Signatures that are not the key's: another key's, random (r, s),
    /// and r or s replaced by n - r / n - s (high-S is valid for p256 0.13
    /// and Google's verifiers alike). Both paths must answer as p256 does.
    #[test]
    fn foreign_random_and_negated_signatures_agree_with_p256() {
        let mut rng = StdRng::seed_from_u64(13);
        let sk = SigningKey::random(&mut rng);
        let vk = *sk.verifying_key();
        let q = ProjectivePoint::from(*vk.as_affine());
        let qt = FixedBaseTable::new(&q, KEY_WINDOW_BITS);
        let msg = b"signed string";
        let good: Signature = sk.sign(msg);
        let (r, s) = good.split_scalars();
        let mut cases = vec![
            good,
            SigningKey::random(&mut rng).sign(msg),
            Signature::from_scalars(*r, -*s).unwrap(),
            Signature::from_scalars(-*r, *s).unwrap(),
        ];
        for _ in 0..16 {
            let (r, s) = (Scalar::random(&mut rng), Scalar::random(&mut rng));
            if let Ok(sig) = Signature::from_scalars(r, s) {
                cases.push(sig);
            }
        }
        let mut accepted = 0;
        for sig in cases {
            let expected = vk.verify(msg, &sig).is_ok();
            accepted += usize::from(expected);
            assert_eq!(verify(KeyMul::Table(&qt), msg, &sig), expected);
            assert_eq!(verify(KeyMul::Point(&q), msg, &sig), expected);
        }
        // The good signature and its high-S twin.
        assert_eq!(accepted, 2);
    }
}
