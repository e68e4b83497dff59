//! The key that pairs a response with its request.
//!
//! Configurable per acquirer: a list of data elements (default DE 11 STAN and
//! DE 41 terminal id) plus the MTI, where a request contributes the MTI of
//! its expected response (0100 -> 0110, 0800 -> 0810) so that the two sides
//! build the same key.
//!
//! The key is built from each field's wire data (no decoding to text) into a
//! fixed inline buffer, so building one never allocates:
//!
//! ```text
//! | MTI (4) | len(f1) | f1 wire data | len(f2) | f2 wire data | ...   (<= 48 bytes)
//! ```
//! An absent field contributes a length byte of 0xFF.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::iso8583::{Message, Mti};

/// Largest key in bytes.
pub const MAX_KEY: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchKeyConfig {
    /// Data elements whose values make up the key.
    pub fields: Vec<u16>,
    /// Whether the MTI is part of the key (request MTI mapped to its response MTI).
    pub mti: bool,
}

impl Default for MatchKeyConfig {
    fn default() -> Self {
        MatchKeyConfig {
            fields: vec![11, 41],
            mti: true,
        }
    }
}

/// Why no key could be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("MTI {0} is not a request, it has no response to match")]
    NotARequest(Mti),
    #[error("field {0} is too long for a match key")]
    TooLong(u16),
}

/// A match key; cheap to copy and hash.
#[derive(Clone, Copy)]
pub struct MatchKey {
    len: u8,
    buf: [u8; MAX_KEY],
}

impl MatchKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn build(mti: Option<Mti>, msg: &Message<'_>, fields: &[u16]) -> Result<MatchKey, KeyError> {
        let mut k = MatchKey {
            len: 0,
            buf: [0; MAX_KEY],
        };
        let mut at = 0usize;
        if let Some(mti) = mti {
            k.buf[..4].copy_from_slice(mti.digits());
            at = 4;
        }
        for &n in fields {
            match msg.field(n) {
                Some(f) => {
                    let raw = f.raw();
                    let end = at + 1 + raw.len();
                    if raw.len() >= 0xFF || end > MAX_KEY {
                        return Err(KeyError::TooLong(n));
                    }
                    k.buf[at] = raw.len() as u8;
                    k.buf[at + 1..end].copy_from_slice(raw);
                    at = end;
                }
                None => {
                    if at + 1 > MAX_KEY {
                        return Err(KeyError::TooLong(n));
                    }
                    k.buf[at] = 0xFF;
                    at += 1;
                }
            }
        }
        k.len = at as u8;
        Ok(k)
    }
}

impl PartialEq for MatchKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for MatchKey {}
impl Hash for MatchKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}
/// A fast hasher for [`MatchKey`]s (multiply-rotate over 8-byte words),
/// seeded per process so keys chosen by a peer cannot be aimed at collisions.
#[derive(Clone, Copy)]
pub struct KeyHasherBuilder {
    seed: u64,
}

impl Default for KeyHasherBuilder {
    fn default() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
        });
        KeyHasherBuilder { seed }
    }
}

impl std::hash::BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

/// See [`KeyHasherBuilder`].
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(23) ^ w).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(23) ^ u64::from_le_bytes(tail) ^ rest.len() as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (h >> 32)
    }
}

impl std::fmt::Debug for MatchKey {
    // The key's fields are configurable (a dialect could name the PAN):
    // its size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatchKey({} bytes)", self.as_bytes().len())
    }
}

impl MatchKeyConfig {
    /// The key a request's response will carry.
    pub fn request_key(&self, req: &Message<'_>) -> Result<MatchKey, KeyError> {
        let mti = if self.mti {
            Some(
                req.mti()
                    .response()
                    .ok_or(KeyError::NotARequest(req.mti()))?,
            )
        } else {
            None
        };
        MatchKey::build(mti, req, &self.fields)
    }

    /// The key of a received response.
    pub fn response_key(&self, resp: &Message<'_>) -> Result<MatchKey, KeyError> {
        MatchKey::build(self.mti.then(|| resp.mti()), resp, &self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::Spec;

    #[test]
    fn request_and_response_keys_agree() {
        let spec = Spec::builtin("cb2a").unwrap();
        let cfg = MatchKeyConfig::default();
        let mut req = Message::new(Mti::AUTHORIZATION_REQUEST);
        spec.set_text(&mut req, 11, "000042").unwrap();
        spec.set_text(&mut req, 41, "TERM0001").unwrap();
        let mut resp = Message::new(Mti::AUTHORIZATION_RESPONSE);
        spec.set_text(&mut resp, 11, "000042").unwrap();
        spec.set_text(&mut resp, 41, "TERM0001").unwrap();
        spec.set_text(&mut resp, 39, "00").unwrap();
        let k = cfg.request_key(&req).unwrap();
        assert_eq!(k, cfg.response_key(&resp).unwrap());
        // BCD STAN: 3 bytes of wire data.
        assert_eq!(k.as_bytes(), b"0110\x03\x00\x00\x42\x08TERM0001");
        spec.set_text(&mut resp, 11, "000043").unwrap();
        assert_ne!(k, cfg.response_key(&resp).unwrap());
        // A 0810 never matches a 0100.
        resp.set_mti(Mti::NETWORK_RESPONSE);
        spec.set_text(&mut resp, 11, "000042").unwrap();
        assert_ne!(k, cfg.response_key(&resp).unwrap());
    }

    #[test]
    fn errors() {
        let cfg = MatchKeyConfig::default();
        let resp = Message::new(Mti::AUTHORIZATION_RESPONSE);
        assert_eq!(
            cfg.request_key(&resp),
            Err(KeyError::NotARequest(Mti::AUTHORIZATION_RESPONSE))
        );
        // Absent fields still give a key (0800s usually carry no DE 41).
        let req = Message::new(Mti::NETWORK_REQUEST);
        assert_eq!(cfg.request_key(&req).unwrap().as_bytes(), b"0810\xff\xff");
    }
}
