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
//! k · P         = Σ_i table[i][digit_i(k)]   (64 mixed additions, no doublings)
//! ```
//!
//! A table is 960 projective points (about 90 KiB) and takes about as long to
//! build as a few verifications, so it is built only for long-lived keys.
//! The result is checked against p256's own `verify` in the tests below.
//! Never use this with secret scalars: it branches on and indexes by the scalar.

use std::sync::OnceLock;

use p256::ecdsa::Signature;
use p256::elliptic_curve::ops::{Invert, Reduce};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::{FieldBytes, ProjectivePoint, Scalar, U256};
use sha2::{Digest, Sha256};

const WINDOWS: usize = 64;
const DIGITS: usize = 15;

/// Precomputed multiples of one point. Kept in projective form: p256 has no
/// public batch inversion, and with primeorder's complete formulas a full
/// addition costs about the same as a mixed one.
pub(crate) struct FixedBaseTable {
    points: Vec<ProjectivePoint>,
}

impl FixedBaseTable {
    pub(crate) fn new(base: &ProjectivePoint) -> Self {
        let mut proj = Vec::with_capacity(WINDOWS * DIGITS);
        let mut window_base = *base;
        for _ in 0..WINDOWS {
            let mut acc = window_base;
            for _ in 0..DIGITS {
                proj.push(acc);
                acc += window_base;
            }
            // acc is now 16 · window_base, the next window's base.
            window_base = acc;
        }
        FixedBaseTable { points: proj }
    }

    /// k · base, variable time.
    pub(crate) fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let bytes = k.to_bytes(); // big-endian
        let mut acc = ProjectivePoint::IDENTITY;
        for (i, byte) in bytes.iter().rev().enumerate() {
            for (half, digit) in [(0, byte & 0x0f), (1, byte >> 4)] {
                if digit != 0 {
                    let window = 2 * i + half;
                    if let Some(p) = self.points.get(window * DIGITS + usize::from(digit) - 1) {
                        acc += p;
                    }
                }
            }
        }
        acc
    }
}

/// The generator's table, shared by every recipient.
pub(crate) fn generator_table() -> &'static FixedBaseTable {
    static TABLE: OnceLock<FixedBaseTable> = OnceLock::new();
    TABLE.get_or_init(|| FixedBaseTable::new(&ProjectivePoint::GENERATOR))
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
    }

    #[test]
    fn verify_agrees_with_p256() {
        let mut rng = StdRng::seed_from_u64(12);
        for round in 0..24u32 {
            let sk = SigningKey::random(&mut rng);
            let vk = *sk.verifying_key();
            let q = ProjectivePoint::from(*vk.as_affine());
            let qt = FixedBaseTable::new(&q);
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
}
