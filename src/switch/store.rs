//! Two bounded, time-windowed in-memory stores, sans-IO (`now` is passed in;
//! the caller holds the lock):
//!
//! - [`ReferenceWindow`]: the `transactionReference`s seen per merchant, so
//!   a second request with the same reference is refused (94).
//! - [`TokenVault`]: PAN_ONLY card numbers kept by the switch, so the
//!   merchant holds an opaque reference instead of the PAN.
//!
//! Both forget entries older than their window, and the oldest entries
//! beyond their capacity, so memory is bounded whatever the traffic. A
//! reference window sized below `rate x window` forgets early; size it for
//! the peak rate.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::domain::{Expiry, Pan};

/// Seen `(merchant, transactionReference)` pairs.
///
/// Pairs are stored as 128-bit keyed hashes (two independent SipHash keys):
/// fixed size per entry, no copy of merchant data, and a false "duplicate"
/// needs a 2^-128-scale collision.
pub struct ReferenceWindow {
    seen: HashSet<u128>,
    order: VecDeque<(Instant, u128)>,
    capacity: usize,
    window: Duration,
    keys: (RandomState, RandomState),
}

impl fmt::Debug for ReferenceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReferenceWindow")
            .field("len", &self.seen.len())
            .field("capacity", &self.capacity)
            .field("window", &self.window)
            .finish()
    }
}

impl ReferenceWindow {
    pub fn new(capacity: usize, window: Duration) -> Self {
        ReferenceWindow {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
            window,
            keys: (RandomState::new(), RandomState::new()),
        }
    }

    fn key(&self, merchant: &str, reference: &str) -> u128 {
        let h = |s: &RandomState| s.hash_one((merchant, reference));
        (u128::from(h(&self.keys.0)) << 64) | u128::from(h(&self.keys.1))
    }

    /// Records the pair; `false` when it was already seen within the window.
    pub fn insert(&mut self, merchant: &str, reference: &str, now: Instant) -> bool {
        self.expire(now);
        let key = self.key(merchant, reference);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back((now, key));
        while self.order.len() > self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.order.front() {
            if now.saturating_duration_since(t) < self.window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Prefix of vault references: tells them from card numbers at a glance.
pub const VAULT_PREFIX: &str = "vlt_";

struct VaultEntry {
    merchant: String,
    pan: Pan,
    expiry: Expiry,
    stored: Instant,
}

/// Card numbers behind opaque references, per merchant. A reference is
/// `vlt_` and 32 hex digits of randomness: it says nothing about the card.
/// `Pan` zeroizes on drop, so forgotten entries leave no card number behind.
pub struct TokenVault {
    entries: HashMap<String, VaultEntry>,
    order: VecDeque<(Instant, String)>,
    capacity: usize,
    ttl: Duration,
}

impl fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVault")
            .field("len", &self.entries.len())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TokenVault {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TokenVault {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    /// Keeps the card for `merchant`; returns its reference.
    pub fn put(
        &mut self,
        merchant: &str,
        pan: Pan,
        expiry: Expiry,
        now: Instant,
        rng: &mut impl RngCore,
    ) -> String {
        self.expire(now);
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let reference = format!("{VAULT_PREFIX}{}", hex::encode(id));
        self.entries.insert(
            reference.clone(),
            VaultEntry {
                merchant: merchant.to_owned(),
                pan,
                expiry,
                stored: now,
            },
        );
        self.order.push_back((now, reference.clone()));
        while self.order.len() > self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        reference
    }

    /// The card behind `reference`, if it is this merchant's and still kept.
    pub fn get(&mut self, merchant: &str, reference: &str, now: Instant) -> Option<(Pan, Expiry)> {
        self.expire(now);
        let e = self.entries.get(reference)?;
        (e.merchant == merchant && now.saturating_duration_since(e.stored) < self.ttl)
            .then(|| (e.pan.clone(), e.expiry))
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            if let Some((_, r)) = self.order.pop_front() {
                self.entries.remove(&r);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn duplicates_within_the_window_are_refused() {
        let t0 = Instant::now();
        let mut w = ReferenceWindow::new(3, Duration::from_secs(60));
        assert!(w.insert("m1", "r1", t0));
        assert!(!w.insert("m1", "r1", t0 + Duration::from_secs(59)));
        assert!(w.insert("m2", "r1", t0), "per merchant");
        // After the window the reference may be used again.
        assert!(w.insert("m1", "r1", t0 + Duration::from_secs(61)));
        // Capacity bounds memory: the oldest is forgotten.
        let t1 = t0 + Duration::from_secs(62);
        for r in ["a", "b", "c", "d"] {
            assert!(w.insert("m1", r, t1));
        }
        assert_eq!(w.len(), 3);
        assert!(w.insert("m1", "a", t1));
    }

    #[test]
    fn vault_is_per_merchant_bounded_and_expires() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut v = TokenVault::new(2, Duration::from_secs(900));
        let pan = Pan::new("5413330089020011").unwrap();
        let exp = Expiry::new(2030, 1).unwrap();
        let r = v.put("m1", pan.clone(), exp, t0, &mut rng);
        assert!(r.starts_with(VAULT_PREFIX) && r.len() == 36);
        assert!(!r.contains("5413"));
        assert_eq!(v.get("m1", &r, t0).unwrap().0, pan);
        assert!(
            v.get("m2", &r, t0).is_none(),
            "another merchant's reference"
        );
        assert!(v.get("m1", &r, t0 + Duration::from_secs(901)).is_none());
        assert!(v.is_empty());
        let a = v.put("m1", pan.clone(), exp, t0, &mut rng);
        let _b = v.put("m1", pan.clone(), exp, t0, &mut rng);
        let _c = v.put("m1", pan, exp, t0, &mut rng);
        assert_eq!(v.len(), 2);
        assert!(v.get("m1", &a, t0).is_none(), "oldest evicted");
        assert!(!format!("{v:?}").contains("5413"));
    }
}
