//! The switch's in-memory windows, shared by every shard: transaction
//! references in flight or answered ([`ReferenceIndex`]), Google Pay
//! `messageId`s decrypted ([`TokenIndex`]) and vaulted PAN_ONLY cards
//! ([`VaultIndex`]). `now` is passed in; nothing here does I/O.
//!
//! They are the fast path only: the journal is the authority (its claims
//! conflict on what memory has forgotten), so a window that evicts early
//! costs a journal round trip, never a wrong answer.
//!
//! Each is a [`Window`]: two generations of a sharded map (`dashmap`), the
//! older one dropped whole when the newer is half the window old or half
//! the capacity full, so memory stays bounded without a global lock or a
//! per-entry expiry queue.
//!
//! ```text
//!   lookup: current, then previous      insert: current
//!   rotate: previous := current, current := empty   (O(1), one shard at a time)
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::journal::VaultRecord;

/// Keys are already uniform 128-bit hashes: hash them by taking 64 bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Map<V> = DashMap<u128, V, BuildHasherDefault<PreHashed>>;

/// Two generations of a map; see the module documentation.
pub struct Window<V> {
    gens: [Map<V>; 2],
    current: AtomicUsize,
    rotated_ms: AtomicU64,
    /// Rotate when the current generation is this old...
    half_window_ms: u64,
    /// ... or this full.
    half_capacity: usize,
    rotating: Mutex<()>,
}

impl<V: Clone> Window<V> {
    /// Keeps entries at least `window_ms` (up to twice that) and at most
    /// about `capacity` of them.
    pub fn new(window_ms: u64, capacity: usize, now_ms: u64) -> Window<V> {
        Window {
            gens: [Map::default(), Map::default()],
            current: AtomicUsize::new(0),
            rotated_ms: AtomicU64::new(now_ms),
            half_window_ms: (window_ms / 2).max(1),
            half_capacity: (capacity / 2).max(1),
            rotating: Mutex::new(()),
        }
    }

    fn maybe_rotate(&self, now_ms: u64) {
        let cur = self.current.load(Ordering::Acquire);
        let old =
            now_ms.saturating_sub(self.rotated_ms.load(Ordering::Relaxed)) >= self.half_window_ms;
        if !old && self.gens[cur].len() < self.half_capacity {
            return;
        }
        // One rotation at a time; the others carry on with what they see.
        let Ok(_g) = self.rotating.try_lock() else {
            return;
        };
        if self.current.load(Ordering::Acquire) != cur {
            return;
        }
        let next = 1 - cur;
        self.gens[next].clear();
        self.current.store(next, Ordering::Release);
        self.rotated_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The value of `key`, from either generation.
    pub fn get(&self, key: u128) -> Option<V> {
        let cur = self.current.load(Ordering::Acquire);
        self.gens[cur]
            .get(&key)
            .or_else(|| self.gens[1 - cur].get(&key))
            .map(|v| v.clone())
    }

    /// Inserts `value` unless `key` is present and `keep(existing)`;
    /// returns what was kept (`None` when `value` went in).
    pub fn insert_unless(
        &self,
        key: u128,
        value: V,
        now_ms: u64,
        keep: impl Fn(&V) -> bool,
    ) -> Option<V> {
        self.maybe_rotate(now_ms);
        let cur = self.current.load(Ordering::Acquire);
        if let Some(v) = self.gens[1 - cur].get(&key) {
            if keep(&v) {
                return Some(v.clone());
            }
        }
        match self.gens[cur].entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                if keep(e.get()) {
                    return Some(e.get().clone());
                }
                e.insert(value);
                None
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(value);
                None
            }
        }
    }

    /// Sets `key` to `value` in the current generation.
    pub fn put(&self, key: u128, value: V, now_ms: u64) {
        self.maybe_rotate(now_ms);
        let cur = self.current.load(Ordering::Acquire);
        self.gens[cur].insert(key, value);
        self.gens[1 - cur].remove(&key);
    }

    /// Changes `key`'s value where lookups find it (the current
    /// generation first), if `f` says so.
    pub fn update(&self, key: u128, f: impl Fn(&mut V)) {
        let cur = self.current.load(Ordering::Acquire);
        if let Some(mut v) = self.gens[cur].get_mut(&key) {
            f(&mut v);
        } else if let Some(mut v) = self.gens[1 - cur].get_mut(&key) {
            f(&mut v);
        }
    }

    /// Removes `key` if `pred(value)`.
    pub fn remove_if(&self, key: u128, pred: impl Fn(&V) -> bool) {
        for g in &self.gens {
            g.remove_if(&key, |_, v| pred(v));
        }
    }

    pub fn len(&self) -> usize {
        self.gens[0].len() + self.gens[1].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 128-bit keyed hashes of string pairs (two independent SipHash keys per
/// process: keys never leave memory).
#[derive(Clone)]
pub struct KeyHasher(Arc<(RandomState, RandomState)>);

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher(Arc::new((RandomState::new(), RandomState::new())))
    }
}

impl KeyHasher {
    pub fn key(&self, a: &str, b: &str) -> u128 {
        let h = |s: &RandomState| s.hash_one((a, b));
        (u128::from(h(&self.0 .0)) << 64) | u128::from(h(&self.0 .1))
    }
}

/// Where a transaction reference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefStatus {
    /// Sent or about to be; no answer yet.
    InFlight,
    /// Answered: a retry with the same content gets the same answer.
    Final,
}

/// A reference held by a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefEntry {
    pub tx_id: u64,
    /// Keyed hash of the request's content (first 16 bytes).
    pub content: u128,
    pub created_ms: u64,
    pub status: RefStatus,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The reference is this transaction's now.
    Taken,
    /// Another transaction holds it within the window.
    Held(RefEntry),
}

/// `(merchant, transactionReference)` -> the transaction holding it.
pub struct ReferenceIndex {
    window: Window<RefEntry>,
    window_ms: u64,
    keys: KeyHasher,
}

impl ReferenceIndex {
    pub fn new(window_ms: u64, capacity: usize, now_ms: u64) -> ReferenceIndex {
        ReferenceIndex {
            window: Window::new(window_ms, capacity, now_ms),
            window_ms,
            keys: KeyHasher::default(),
        }
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    fn live(&self, e: &RefEntry, now_ms: u64) -> bool {
        now_ms.saturating_sub(e.created_ms) < self.window_ms
    }

    /// The key of `(merchant, reference)` in this index (compute it once
    /// per order).
    pub fn key(&self, merchant: &str, reference: &str) -> u128 {
        self.keys.key(merchant, reference)
    }

    /// Takes the reference for `tx_id` unless a live entry holds it.
    pub fn claim(
        &self,
        merchant: &str,
        reference: &str,
        content: u128,
        tx_id: u64,
        now_ms: u64,
    ) -> Claim {
        self.claim_key(self.key(merchant, reference), content, tx_id, now_ms)
    }

    /// [`claim`](Self::claim) by key.
    pub fn claim_key(&self, key: u128, content: u128, tx_id: u64, now_ms: u64) -> Claim {
        let entry = RefEntry {
            tx_id,
            content,
            created_ms: now_ms,
            status: RefStatus::InFlight,
        };
        match self
            .window
            .insert_unless(key, entry, now_ms, |e| self.live(e, now_ms))
        {
            None => Claim::Taken,
            Some(held) => Claim::Held(held),
        }
    }

    /// Records what the journal holds (recovery, or a conflict the journal
    /// found that memory had forgotten).
    pub fn restore(&self, merchant: &str, reference: &str, entry: RefEntry, now_ms: u64) {
        self.window
            .put(self.keys.key(merchant, reference), entry, now_ms);
    }

    /// `tx_id` has its answer.
    pub fn finish(&self, merchant: &str, reference: &str, tx_id: u64) {
        self.finish_key(self.key(merchant, reference), tx_id);
    }

    /// [`finish`](Self::finish) by key.
    pub fn finish_key(&self, key: u128, tx_id: u64) {
        self.window.update(key, |e| {
            if e.tx_id == tx_id {
                e.status = RefStatus::Final;
            }
        });
    }

    /// `tx_id` gives the reference back (nothing was sent).
    pub fn release(&self, merchant: &str, reference: &str, tx_id: u64) {
        self.release_key(self.key(merchant, reference), tx_id);
    }

    /// [`release`](Self::release) by key.
    pub fn release_key(&self, key: u128, tx_id: u64) {
        self.window.remove_if(key, |e| e.tx_id == tx_id);
    }

    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }
}

/// `(merchant, messageId)` of the Google Pay tokens decrypted.
pub struct TokenIndex {
    window: Window<u64>,
    window_ms: u64,
    keys: KeyHasher,
}

impl TokenIndex {
    pub fn new(window_ms: u64, capacity: usize, now_ms: u64) -> TokenIndex {
        TokenIndex {
            window: Window::new(window_ms, capacity, now_ms),
            window_ms,
            keys: KeyHasher::default(),
        }
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Records the token; `false` when it was seen within the window.
    pub fn first_use(&self, merchant: &str, message_id: &str, now_ms: u64) -> bool {
        let key = self.keys.key(merchant, message_id);
        self.window
            .insert_unless(key, now_ms, now_ms, |seen| {
                now_ms.saturating_sub(*seen) < self.window_ms
            })
            .is_none()
    }

    /// Forgets a token whose use could not be recorded in the journal.
    pub fn forget(&self, merchant: &str, message_id: &str, seen_ms: u64) {
        self.window
            .remove_if(self.keys.key(merchant, message_id), |s| *s == seen_ms);
    }

    pub fn restore(&self, merchant: &str, message_id: &str, seen_ms: u64, now_ms: u64) {
        self.window
            .put(self.keys.key(merchant, message_id), seen_ms, now_ms);
    }

    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }
}

/// Prefix of vault references: tells them from card numbers at a glance.
pub const VAULT_PREFIX: &str = "vlt_";

/// The 128 random bits of a vault reference (`vlt_` + 32 hex digits).
pub fn vault_key(reference: &str) -> Option<u128> {
    let hex = reference.strip_prefix(VAULT_PREFIX)?;
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

/// Vaulted cards (sealed), by reference; misses go to the journal.
pub struct VaultIndex {
    window: Window<Arc<VaultRecord>>,
}

impl VaultIndex {
    pub fn new(ttl_ms: u64, capacity: usize, now_ms: u64) -> VaultIndex {
        VaultIndex {
            window: Window::new(ttl_ms, capacity, now_ms),
        }
    }

    pub fn put(&self, record: VaultRecord, now_ms: u64) {
        if let Some(k) = vault_key(&record.reference) {
            self.window.put(k, Arc::new(record), now_ms);
        }
    }

    /// The entry of `reference`, whoever it belongs to, if memory has it.
    pub fn get(&self, reference: &str) -> Option<Arc<VaultRecord>> {
        self.window.get(vault_key(reference)?)
    }

    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_claim_finish_release_and_expire() {
        let t0 = 1_000_000;
        let idx = ReferenceIndex::new(60_000, 1000, t0);
        assert_eq!(idx.claim("m1", "r1", 5, 1, t0), Claim::Taken);
        let Claim::Held(e) = idx.claim("m1", "r1", 5, 2, t0 + 1) else {
            panic!("held")
        };
        assert_eq!((e.tx_id, e.status), (1, RefStatus::InFlight));
        assert_eq!(
            idx.claim("m2", "r1", 5, 3, t0),
            Claim::Taken,
            "per merchant"
        );
        idx.finish("m1", "r1", 1);
        let Claim::Held(e) = idx.claim("m1", "r1", 6, 4, t0 + 2) else {
            panic!("held")
        };
        assert_eq!((e.status, e.content), (RefStatus::Final, 5));
        idx.release("m1", "r1", 99);
        assert!(matches!(idx.claim("m1", "r1", 5, 4, t0), Claim::Held(_)));
        idx.release("m1", "r1", 1);
        assert_eq!(idx.claim("m1", "r1", 5, 4, t0 + 3), Claim::Taken);
        // After the window, taken again.
        assert_eq!(idx.claim("m1", "r1", 5, 7, t0 + 60_003), Claim::Taken);
    }

    #[test]
    fn windows_stay_bounded_and_keep_the_recent_half() {
        let t0 = 0;
        let idx = TokenIndex::new(1_000_000, 100, t0);
        for i in 0..1000 {
            assert!(idx.first_use("m", &format!("id{i}"), t0));
        }
        assert!(idx.len() <= 100, "{}", idx.len());
        // The most recent ones are still known.
        assert!(!idx.first_use("m", "id999", t0));
        // Rotation by age: after two half-windows the first is forgotten.
        let idx = TokenIndex::new(1000, 1_000_000, t0);
        assert!(idx.first_use("m", "a", t0));
        assert!(
            !idx.first_use("m", "a", t0 + 600),
            "rotated once, still known"
        );
        assert!(idx.first_use("m", "b", t0 + 1200));
        assert!(idx.first_use("m", "a", t0 + 1200), "a is past its window");
    }

    #[test]
    fn vault_keys() {
        let r = format!("{VAULT_PREFIX}{}", "0f".repeat(16));
        assert_eq!(
            vault_key(&r),
            Some(0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f)
        );
        assert_eq!(vault_key("vlt_12"), None);
        assert_eq!(vault_key("5413330089020011"), None);
        let v = VaultIndex::new(1000, 10, 0);
        v.put(
            VaultRecord {
                reference: r.clone(),
                merchant_id: "m".into(),
                card: vec![1],
                stored_ms: 0,
                expires_ms: 1000,
            },
            0,
        );
        assert_eq!(v.get(&r).unwrap().merchant_id, "m");
    }
}
