//! The journal key: card data sealed with AES-256-GCM, and keyed hashes.
//!
//! One 32-byte key (from configuration, an environment variable or a file)
//! is never used directly: HKDF-SHA-256 derives one subkey per purpose.
//!
//! ```text
//!   sealed card = nonce (12) || AES-256-GCM(subkey "card seal", nonce,
//!                                  plaintext = PAN "|" YYYYMM, aad)
//!   nonce       = domain (1) || id (8, big-endian) || 0 0 0
//! ```
//! Nonces come from the switch's persisted id sequence, not a random
//! draw: ids are never reused, across restarts too (the sequence is
//! reserved in blocks in the journal before use), so no nonce repeats under
//! one key however many cards are sealed (random 96-bit nonces would cap a
//! key at 2^32 seals). The associated data binds a sealed card to its row
//! (transaction id, vault reference), so a blob copied to another row does
//! not open.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::card::{Expiry, Pan};

/// Length of the journal key.
pub const KEY_LEN: usize = 32;
/// Nonce (12) + tag (16) around the plaintext.
pub const SEAL_OVERHEAD: usize = 28;

/// What a sealed card is for (the nonce's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SealDomain {
    Transaction = 1,
    Vault = 2,
}

/// Why a key cannot be used, or a blob not opened. Never carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the journal key must be 32 bytes, as 64 hex digits or base64")]
    Format,
    #[error("cannot read the journal key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {0} is not set")]
    Env(String),
    #[error("a sealed card does not open with this key (wrong key, or the record was altered)")]
    Open,
    #[error("a sealed card's content is malformed")]
    Content,
}

/// The journal key's subkeys. Zeroized on drop (the AES key schedule
/// too: the `aes` crate's `zeroize` feature); never printed.
pub struct CardKey {
    cipher: Aes256Gcm,
    hash_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardKey(****)")
    }
}

impl CardKey {
    /// From the 32 key bytes.
    pub fn new(key: &[u8; KEY_LEN]) -> CardKey {
        let hk = Hkdf::<Sha256>::new(Some(b"acqswitch journal v1"), key);
        let mut seal_key = Zeroizing::new([0u8; 32]);
        let mut hash_key = Zeroizing::new([0u8; 32]);
        // 32 bytes are always a valid HKDF-SHA-256 output length.
        let _ = hk.expand(b"card seal", &mut seal_key[..]);
        let _ = hk.expand(b"content hash", &mut hash_key[..]);
        CardKey {
            cipher: Aes256Gcm::new((&*seal_key).into()),
            hash_key,
        }
    }

    /// From text: 64 hex digits, or base64 of 32 bytes (surrounding
    /// whitespace ignored).
    pub fn from_text(text: &str) -> Result<CardKey, KeyError> {
        let t = text.trim();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if t.len() == 2 * KEY_LEN && hex::decode_to_slice(t, &mut key[..]).is_ok() {
            return Ok(CardKey::new(&key));
        }
        let bytes = Zeroizing::new(STANDARD.decode(t).map_err(|_| KeyError::Format)?);
        if bytes.len() != KEY_LEN {
            return Err(KeyError::Format);
        }
        key.copy_from_slice(&bytes);
        Ok(CardKey::new(&key))
    }

    pub fn from_file(path: &Path) -> Result<CardKey, KeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?);
        CardKey::from_text(&text)
    }

    pub fn from_env(var: &str) -> Result<CardKey, KeyError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyError::Env(var.into()))?);
        CardKey::from_text(&text)
    }

    /// Writes a new random key to `path` (readable by its owner only) and
    /// returns it. Fails if the file exists.
    pub fn generate_file(path: &Path) -> Result<CardKey, KeyError> {
        use rand::RngCore;
        use std::io::Write;
        let file_err = |e: std::io::Error| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        let text = Zeroizing::new(hex::encode(&key[..]));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(file_err)?;
        f.write_all(text.as_bytes()).map_err(file_err)?;
        f.write_all(b"\n").map_err(file_err)?;
        f.sync_all().map_err(file_err)?;
        Ok(CardKey::new(&key))
    }

    fn nonce(domain: SealDomain, id: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[0] = domain as u8;
        n[1..9].copy_from_slice(&id.to_be_bytes());
        n
    }

    /// Seals a card for the row `(domain, id)`; `aad` names the row.
    pub fn seal_card(
        &self,
        domain: SealDomain,
        id: u64,
        aad: &[u8],
        pan: &Pan,
        expiry: Expiry,
    ) -> Vec<u8> {
        let mut plain = Zeroizing::new(String::with_capacity(26));
        plain.push_str(pan.reveal());
        plain.push('|');
        plain.push_str(&expiry.yyyymm());
        let nonce = Self::nonce(domain, id);
        // Encryption into a Vec cannot fail for inputs this size.
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(nonce.len() + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a card sealed by [`seal_card`](Self::seal_card) with the same
    /// `aad`.
    pub fn open_card(&self, sealed: &[u8], aad: &[u8]) -> Result<(Pan, Expiry), KeyError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(KeyError::Open);
        }
        let (nonce, body) = sealed.split_at(12);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
                .map_err(|_| KeyError::Open)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| KeyError::Content)?;
        let (pan, expiry) = text.split_once('|').ok_or(KeyError::Content)?;
        Ok((
            Pan::new(pan).ok_or(KeyError::Content)?,
            Expiry::parse_yyyymm(expiry).ok_or(KeyError::Content)?,
        ))
    }

    /// HMAC-SHA-256 under the content-hash subkey of `parts`, each length
    /// prefixed (so `["ab","c"]` and `["a","bc"]` differ).
    pub fn keyed_hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CardKey {
        CardKey::from_text(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn seal_and_open_bound_to_the_row() {
        let k = key();
        let pan = Pan::new("4895370012003478").unwrap();
        let exp = Expiry::new(2030, 12).unwrap();
        let sealed = k.seal_card(SealDomain::Transaction, 42, b"tx:42", &pan, exp);
        assert_eq!(sealed.len(), SEAL_OVERHEAD + 16 + 1 + 6);
        assert!(!sealed.windows(4).any(|w| w == b"4895" || w == b"3478"));
        let (p, e) = k.open_card(&sealed, b"tx:42").unwrap();
        assert_eq!((p, e), (pan.clone(), exp));
        // Another row, another key, a flipped bit: refused.
        assert_eq!(k.open_card(&sealed, b"tx:43"), Err(KeyError::Open));
        let other = CardKey::from_text(&"cd".repeat(32)).unwrap();
        assert_eq!(other.open_card(&sealed, b"tx:42"), Err(KeyError::Open));
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(k.open_card(&bad, b"tx:42"), Err(KeyError::Open));
        assert_eq!(k.open_card(&sealed[..10], b"tx:42"), Err(KeyError::Open));
        // Distinct ids give distinct nonces (and ciphertexts).
        let s2 = k.seal_card(SealDomain::Transaction, 43, b"tx:42", &pan, exp);
        assert_ne!(sealed[..12], s2[..12]);
        let v = k.seal_card(SealDomain::Vault, 42, b"tx:42", &pan, exp);
        assert_ne!(sealed[..12], v[..12]);
    }

    #[test]
    fn key_forms() {
        let b64 = STANDARD.encode([0xab; 32]);
        let h1 = key().keyed_hash(&[b"x"]);
        assert_eq!(CardKey::from_text(&b64).unwrap().keyed_hash(&[b"x"]), h1);
        assert_eq!(
            CardKey::from_text(&format!(" {} \n", "ab".repeat(32)))
                .unwrap()
                .keyed_hash(&[b"x"]),
            h1
        );
        assert_eq!(CardKey::from_text("abcd").unwrap_err(), KeyError::Format);
        assert_eq!(
            CardKey::from_text(&STANDARD.encode([1; 31])).unwrap_err(),
            KeyError::Format
        );
        assert_eq!(format!("{:?}", key()), "CardKey(****)");
        assert_ne!(
            key().keyed_hash(&[b"ab", b"c"]),
            key().keyed_hash(&[b"a", b"bc"])
        );
    }

    #[test]
    fn generated_key_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.key");
        let k = CardKey::generate_file(&p).unwrap();
        let again = CardKey::from_file(&p).unwrap();
        assert_eq!(k.keyed_hash(&[b"x"]), again.keyed_hash(&[b"x"]));
        assert!(CardKey::generate_file(&p).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let e = CardKey::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
