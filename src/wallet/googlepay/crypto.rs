//! The hybrid encryption of `signedMessage` (ECIES-KEM + AES-CTR/HMAC DEM),
//! both directions, and DER signature parsing (verification: `ecdsa_table`).
//!
//! ```text
//! shared   = ECDH(merchant private key, ephemeralPublicKey).x          32 bytes
//! keys     = HKDF-SHA256(salt = "", ikm = ephemeralPublicKey || shared,
//!                        info = "Google", len = aes + mac)             ECv2: 32+32, ECv1: 16+16
//! tag      = HMAC-SHA256(mac key, encryptedMessage)                    32 bytes
//! message  = AES-CTR(aes key, iv = 0^16, encryptedMessage)             128-bit big-endian counter
//! ```

use aes::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use p256::ecdsa::Signature;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::TokenError;
use super::token::ProtocolVersion;

/// HKDF `info`, the sender id.
const HKDF_INFO: &[u8] = b"Google";
/// An uncompressed SEC1 P-256 point: 0x04 || X || Y.
pub(crate) const EPHEMERAL_KEY_LEN: usize = 65;
/// HMAC-SHA256 output.
pub(crate) const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Derived DEM keys, wiped on drop.
pub(crate) struct DemKeys {
    bytes: Zeroizing<[u8; 64]>,
    aes_len: usize,
    mac_len: usize,
}

impl DemKeys {
    fn aes_key(&self) -> &[u8] {
        &self.bytes[..self.aes_len]
    }

    fn mac_key(&self) -> &[u8] {
        &self.bytes[self.aes_len..self.aes_len + self.mac_len]
    }
}

/// Checks the SEC1 form before parsing: Google always sends the 65-byte
/// uncompressed point, and p256 would also accept a compressed one.
pub(crate) fn parse_ephemeral_key(bytes: &[u8]) -> Result<PublicKey, TokenError> {
    if bytes.len() != EPHEMERAL_KEY_LEN || bytes[0] != 0x04 {
        return Err(TokenError::Format("ephemeralPublicKey"));
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| TokenError::EphemeralKey)
}

/// ECDH on p256: the x coordinate of `secret · public`. The sender's half
/// of the KEM (ephemeral secret, recipient public) and, without the
/// `aws-lc` feature, the recipient's (merchant secret, ephemeral public).
pub(crate) fn p256_shared_x(secret: &SecretKey, public: &PublicKey) -> Zeroizing<[u8; 32]> {
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    let mut x = Zeroizing::new([0u8; 32]);
    x.copy_from_slice(shared.raw_secret_bytes());
    x
}

/// KEM, after the ECDH: HKDF over the ephemeral key and the shared x, as in
/// Tink's `computeEciesHkdfSymmetricKey`.
pub(crate) fn derive_keys(
    version: ProtocolVersion,
    ephemeral_bytes: &[u8],
    shared_x: &[u8; 32],
) -> Result<DemKeys, TokenError> {
    // Callers pass the checked 65-byte form; checking again keeps
    // copy_from_slice below panic-free whatever the caller does.
    if ephemeral_bytes.len() != EPHEMERAL_KEY_LEN {
        return Err(TokenError::Format("ephemeralPublicKey"));
    }
    let mut ikm = Zeroizing::new([0u8; EPHEMERAL_KEY_LEN + 32]);
    ikm[..EPHEMERAL_KEY_LEN].copy_from_slice(ephemeral_bytes);
    ikm[EPHEMERAL_KEY_LEN..].copy_from_slice(shared_x);
    // An empty salt is the same as HashLen zero bytes (RFC 5869 section 2.2).
    let hk = Hkdf::<Sha256>::new(None, &ikm[..]);
    let aes_len = version.aes_key_len();
    let mac_len = version.mac_key_len();
    let mut bytes = Zeroizing::new([0u8; 64]);
    hk.expand(HKDF_INFO, &mut bytes[..aes_len + mac_len])
        .map_err(|_| TokenError::Internal("hkdf length"))?;
    Ok(DemKeys {
        bytes,
        aes_len,
        mac_len,
    })
}

/// HMAC-SHA256 of the ciphertext, as the tag.
pub(crate) fn compute_tag(keys: &DemKeys, ciphertext: &[u8]) -> Result<[u8; TAG_LEN], TokenError> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(keys.mac_key())
        .map_err(|_| TokenError::Internal("hmac key"))?;
    mac.update(ciphertext);
    Ok(mac.finalize().into_bytes().into())
}

/// Constant-time comparison of the received tag with the computed one.
pub(crate) fn tag_matches(
    keys: &DemKeys,
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<bool, TokenError> {
    let computed = compute_tag(keys, ciphertext)?;
    Ok(bool::from(computed.as_slice().ct_eq(tag)))
}

/// AES-CTR with a zero IV, in place. Encrypting and decrypting are the same.
pub(crate) fn aes_ctr_apply(keys: &DemKeys, data: &mut [u8]) -> Result<(), TokenError> {
    let iv = [0u8; 16];
    match keys.aes_len {
        16 => ctr::Ctr128BE::<aes::Aes128>::new_from_slices(keys.aes_key(), &iv)
            .map_err(|_| TokenError::Internal("aes key"))?
            .apply_keystream(data),
        32 => ctr::Ctr128BE::<aes::Aes256>::new_from_slices(keys.aes_key(), &iv)
            .map_err(|_| TokenError::Internal("aes key"))?
            .apply_keystream(data),
        _ => return Err(TokenError::Internal("aes key length")),
    }
    Ok(())
}

/// Parses a DER signature; a malformed one is simply one that does not verify.
pub(crate) fn parse_signature(der: &[u8]) -> Option<Signature> {
    Signature::from_der(der).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_key_must_be_uncompressed_and_on_the_curve() {
        assert_eq!(
            parse_ephemeral_key(&[4u8; 64]).unwrap_err(),
            TokenError::Format("ephemeralPublicKey")
        );
        let mut not_on_curve = [0u8; 65];
        not_on_curve[0] = 4;
        not_on_curve[64] = 1;
        assert_eq!(
            parse_ephemeral_key(&not_on_curve).unwrap_err(),
            TokenError::EphemeralKey
        );
        let compressed_prefix = [2u8; 65];
        assert!(parse_ephemeral_key(&compressed_prefix).is_err());
    }
}
