//! Per-acquirer STAN (DE 11, system trace audit number) allocation.
//!
//! STANs run 000001..=999999 and wrap. A STAN is held by a [`StanLease`] until
//! the request it numbers is finished (answered, timed out, failed); while
//! leased it is skipped, so a long-running request never shares its STAN with
//! a newer one.
//!
//! The in-flight set is a bitset of `AtomicU64` (125 KB per acquirer), so
//! allocation from many tasks needs no lock: claim = `fetch_or` of one bit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Number of distinct STANs.
pub const STAN_COUNT: u32 = 999_999;

/// A system trace audit number, 1..=999999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stan(u32);

impl Stan {
    pub fn new(n: u32) -> Option<Stan> {
        (1..=STAN_COUNT).contains(&n).then_some(Stan(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The six ASCII digits, e.g. `*b"000042"`.
    pub fn digits(self) -> [u8; 6] {
        let mut out = [b'0'; 6];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out
    }
}

impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// The allocator of one acquirer; share it with `Arc`.
///
/// `next` counts allocations from the start of the acquirer's history (it
/// never wraps; the STAN is `next % 999,999 + 1`), so a journal can
/// persist it: [`resume_at`](StanAllocator::resume_at) continues after a
/// restart, and [`set_limit`](StanAllocator::set_limit) bounds it by what
/// the journal has reserved.
pub struct StanAllocator {
    next: AtomicU64,
    /// Positions at or above this are refused (`u64::MAX`: no bound).
    limit: AtomicU64,
    in_flight: Box<[AtomicU64]>,
}

impl fmt::Debug for StanAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StanAllocator")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl StanAllocator {
    /// Starts at 000001.
    pub fn new() -> Arc<Self> {
        Self::starting_at(Stan(1))
    }

    /// Starts at `first` (tests).
    pub fn starting_at(first: Stan) -> Arc<Self> {
        Self::resume_at(u64::from(first.0 - 1), u64::MAX)
    }

    /// Continues at allocation `position` (the STAN is `position % 999,999
    /// + 1`), refusing positions from `limit` on.
    pub fn resume_at(position: u64, limit: u64) -> Arc<Self> {
        let words = (STAN_COUNT as usize).div_ceil(64);
        Arc::new(StanAllocator {
            next: AtomicU64::new(position),
            limit: AtomicU64::new(limit),
            in_flight: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The position of the next allocation.
    pub fn position(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Allows positions below `limit` (never lowers it).
    pub fn set_limit(&self, limit: u64) {
        self.limit.fetch_max(limit, Ordering::AcqRel);
    }

    /// The next STAN not in flight, or `None` if all 999,999 are, or the
    /// position has reached the limit.
    pub fn allocate(self: &Arc<Self>) -> Option<StanLease> {
        for _ in 0..STAN_COUNT {
            let pos = self.next.fetch_add(1, Ordering::Relaxed);
            if pos >= self.limit.load(Ordering::Acquire) {
                return None;
            }
            // 0-based; the STAN is n + 1.
            let n = (pos % u64::from(STAN_COUNT)) as u32;
            if let Some(lease) = self.lease(Stan(n + 1)) {
                return Some(lease);
            }
        }
        None
    }

    /// STAN `stan`'s word in the in-flight bitmap and its bit there.
    fn slot(stan: Stan) -> (usize, u64) {
        let n = stan.0 - 1;
        ((n / 64) as usize, 1u64 << (n % 64))
    }

    /// A lease on `stan` itself, if it is not in flight: a message that
    /// keeps its STAN across retransmissions and restarts (a queued
    /// reversal) holds it so that no new request takes it meanwhile.
    pub fn lease(self: &Arc<Self>, stan: Stan) -> Option<StanLease> {
        let (word, bit) = Self::slot(stan);
        (self.in_flight[word].fetch_or(bit, Ordering::AcqRel) & bit == 0).then(|| StanLease {
            alloc: Arc::clone(self),
            stan,
        })
    }

    /// Number of STANs currently leased (a linear scan; for metrics and tests).
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    fn release(&self, stan: Stan) {
        let (word, bit) = Self::slot(stan);
        self.in_flight[word].fetch_and(!bit, Ordering::AcqRel);
    }
}

/// A STAN in use; released when dropped.
#[derive(Debug)]
pub struct StanLease {
    alloc: Arc<StanAllocator>,
    stan: Stan,
}

impl StanLease {
    pub fn stan(&self) -> Stan {
        self.stan
    }
}

impl Drop for StanLease {
    fn drop(&mut self) {
        self.alloc.release(self.stan);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_and_formatted() {
        let a = StanAllocator::new();
        let s1 = a.allocate().unwrap();
        let s2 = a.allocate().unwrap();
        assert_eq!(s1.stan().to_string(), "000001");
        assert_eq!(&s2.stan().digits(), b"000002");
        assert_eq!(a.in_flight(), 2);
        drop(s1);
        assert_eq!(a.in_flight(), 1);
    }

    #[test]
    fn a_given_stan_is_leased_once_and_then_skipped() {
        let a = StanAllocator::new();
        let held = a.lease(Stan::new(2).unwrap()).unwrap();
        assert!(a.lease(Stan::new(2).unwrap()).is_none(), "already held");
        assert_eq!(a.allocate().unwrap().stan().get(), 1);
        assert_eq!(a.allocate().unwrap().stan().get(), 3, "2 is skipped");
        drop(held);
        assert!(a.lease(Stan::new(2).unwrap()).is_some());
    }

    #[test]
    fn wraps_after_999999_and_skips_in_flight() {
        let a = StanAllocator::starting_at(Stan::new(999_998).unwrap());
        let held = a.allocate().unwrap(); // 999998, kept in flight
        assert_eq!(held.stan().get(), 999_998);
        let s = a.allocate().unwrap();
        assert_eq!(s.stan().get(), 999_999);
        drop(s);
        assert_eq!(a.allocate().unwrap().stan().get(), 1);
        // Run the counter round to 999998 again: it is skipped.
        a.next.store(999_997, Ordering::Relaxed);
        assert_eq!(a.allocate().unwrap().stan().get(), 999_999);
        drop(held);
        a.next.store(999_997, Ordering::Relaxed);
        assert_eq!(a.allocate().unwrap().stan().get(), 999_998);
    }

    #[test]
    fn resumes_at_a_position_and_stops_at_the_limit() {
        let a = StanAllocator::resume_at(
            2 * u64::from(STAN_COUNT) + 41,
            2 * u64::from(STAN_COUNT) + 43,
        );
        assert_eq!(a.allocate().unwrap().stan().get(), 42);
        assert_eq!(a.allocate().unwrap().stan().get(), 43);
        assert!(a.allocate().is_none(), "limit reached");
        a.set_limit(u64::MAX);
        assert_eq!(
            a.allocate().unwrap().stan().get(),
            45,
            "the refused position is skipped"
        );
        assert_eq!(a.position(), 2 * u64::from(STAN_COUNT) + 45);
    }

    #[test]
    fn range_checks() {
        assert!(Stan::new(0).is_none());
        assert!(Stan::new(1_000_000).is_none());
        assert_eq!(Stan::new(42).unwrap().to_string(), "000042");
    }

    #[test]
    fn concurrent_allocations_are_unique() {
        let a = StanAllocator::new();
        let leases: Vec<Vec<StanLease>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5000).map(|_| a.allocate().unwrap()).collect()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u32> = leases.iter().flatten().map(|l| l.stan().get()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 20_000);
    }
}
