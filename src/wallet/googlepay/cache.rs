//! Bounded cache of verified intermediate signing keys.
//!
//! Google rotates intermediate keys rarely and every token repeats the same
//! `intermediateSigningKey` object, so remembering "this exact signedKey with
//! these exact signatures was verified" saves one ECDSA verification per token.
//! Entries are keyed by a SHA-256 of the length-value encoding of the signedKey
//! string and every signature string, so a changed byte anywhere is a miss.
//! An entry is valid until the earlier of the intermediate key's expiration and
//! the expiration of the root key that verified it.

use std::sync::Mutex;

use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};

use super::token::length_value;

/// Default number of intermediate keys remembered. Google has one or two live
/// at a time; the headroom covers overlapping rotations and test keys.
pub const DEFAULT_CAPACITY: usize = 16;

pub(crate) type CacheId = [u8; 32];

/// The cache identity of an `intermediateSigningKey` object.
pub(crate) fn cache_id(signed_key: &str, signatures: &[String]) -> CacheId {
    let mut chunks: Vec<&str> = Vec::with_capacity(1 + signatures.len());
    chunks.push(signed_key);
    chunks.extend(signatures.iter().map(String::as_str));
    Sha256::digest(length_value(&chunks)).into()
}

struct Entry {
    id: CacheId,
    key: VerifyingKey,
    valid_until_ms: u64,
    last_used: u64,
}

struct Inner {
    entries: Vec<Entry>,
    tick: u64,
}

/// Thread-safe; a poisoned lock is recovered, since entries are only ever
/// replaced whole.
pub(crate) struct IntermediateKeyCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl IntermediateKeyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        IntermediateKeyCache {
            capacity,
            inner: Mutex::new(Inner {
                entries: Vec::with_capacity(capacity),
                tick: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The verified key, if cached and still valid at `now_ms`.
    pub(crate) fn get(&self, id: &CacheId, now_ms: u64) -> Option<VerifyingKey> {
        if self.capacity == 0 {
            return None;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.iter_mut().find(|e| &e.id == id)?;
        if entry.valid_until_ms <= now_ms {
            return None;
        }
        entry.last_used = tick;
        Some(entry.key)
    }

    /// Remembers a verified key; evicts expired entries first, then the least
    /// recently used one.
    pub(crate) fn insert(&self, id: CacheId, key: VerifyingKey, valid_until_ms: u64, now_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let last_used = inner.tick;
        inner.entries.retain(|e| e.valid_until_ms > now_ms && e.id != id);
        if inner.entries.len() >= self.capacity {
            if let Some(lru) = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            {
                inner.entries.swap_remove(lru);
            }
        }
        inner.entries.push(Entry {
            id,
            key,
            valid_until_ms,
            last_used,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn clear(&self) {
        self.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    fn key(n: u8) -> VerifyingKey {
        let mut bytes = [0u8; 32];
        bytes[31] = n;
        *SigningKey::from_slice(&bytes).unwrap().verifying_key()
    }

    #[test]
    fn bounded_lru_with_expiry() {
        let cache = IntermediateKeyCache::new(2);
        let ids: Vec<CacheId> = (0..3).map(|i| cache_id(&format!("k{i}"), &[])).collect();
        cache.insert(ids[0], key(1), 100, 0);
        cache.insert(ids[1], key(2), 100, 0);
        assert!(cache.get(&ids[0], 50).is_some()); // ids[1] is now least recently used
        cache.insert(ids[2], key(3), 100, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&ids[1], 50).is_none());
        assert!(cache.get(&ids[0], 50).is_some());
        assert!(cache.get(&ids[0], 100).is_none(), "expired at valid_until");
    }

    #[test]
    fn id_covers_every_signature() {
        let a = cache_id("k", &["s1".into()]);
        let b = cache_id("k", &["s1".into(), "s2".into()]);
        let c = cache_id("ks", &["1".into()]);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
