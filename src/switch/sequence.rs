//! Numbers that must never repeat across restarts (transaction ids, which
//! also make the card-sealing nonces; RRNs; STANs), reserved in blocks in
//! the journal.
//!
//! ```text
//!   journal: counters.reserved = R          (durable)
//!   memory:  next ... R  (numbers below R may be handed out)
//!   when next passes R - block/2: Reserve { upto: R + block } is committed
//!   on its own; once durable, R = R + block
//! ```
//! A restart resumes at the durable `R`: the numbers handed out before it
//! are all below, so none is given twice (the gap is at most one block).
//! If numbers run ahead of the reservation (the journal cannot keep up
//! with a block in half a block's time) they are refused, never reused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::journal::Change;

/// The durable upper bound of a sequence; see the module documentation.
#[derive(Debug)]
pub struct Reservation {
    name: String,
    reserved: AtomicU64,
    block: u64,
    extending: AtomicBool,
}

/// The numbers of a sequence ran ahead of its durable reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sequence ahead of its journal reservation")]
pub struct Exhausted;

impl Reservation {
    /// A reservation durable up to `reserved`, grown `block` at a time.
    pub fn new(name: impl Into<String>, reserved: u64, block: u64) -> Reservation {
        Reservation {
            name: name.into(),
            reserved: AtomicU64::new(reserved),
            block: block.max(2),
            extending: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The durable bound: numbers below it may be handed out.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// After number `pos` was taken: the change that grows the
    /// reservation, when it is time and no growth is under way. Commit it,
    /// then call [`confirm`](Self::confirm) (or [`failed`](Self::failed)).
    pub fn check(&self, pos: u64) -> Option<Change> {
        let r = self.reserved();
        if pos.saturating_add(self.block / 2) < r {
            return None;
        }
        if self.extending.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Change::Reserve {
            name: self.name.clone(),
            upto: r + self.block,
        })
    }

    /// The reservation up to `upto` is durable.
    pub fn confirm(&self, upto: u64) {
        self.reserved.fetch_max(upto, Ordering::AcqRel);
        self.extending.store(false, Ordering::Release);
    }

    /// The growth could not be committed; the next number tries again.
    pub fn failed(&self) {
        self.extending.store(false, Ordering::Release);
    }
}

/// A counter under a [`Reservation`].
#[derive(Debug)]
pub struct Sequence {
    next: AtomicU64,
    reservation: Reservation,
}

impl Sequence {
    /// Numbers from `start`, durable up to `reserved`.
    pub fn new(name: impl Into<String>, start: u64, reserved: u64, block: u64) -> Sequence {
        Sequence {
            next: AtomicU64::new(start),
            reservation: Reservation::new(name, reserved, block),
        }
    }

    /// The next number, and the change that grows the reservation when it
    /// is time.
    pub fn next(&self) -> Result<(u64, Option<Change>), Exhausted> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if n >= self.reservation.reserved() {
            return Err(Exhausted);
        }
        Ok((n, self.reservation.check(n)))
    }

    pub fn reservation(&self) -> &Reservation {
        &self.reservation
    }

    /// The next number to be handed out.
    pub fn position(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_at_half_a_block_and_refuses_past_the_reservation() {
        let s = Sequence::new("ids", 100, 110, 10);
        let mut growth = None;
        for want in 100..110 {
            let (n, change) = s.next().unwrap();
            assert_eq!(n, want);
            if let Some(c) = change {
                assert!(growth.is_none(), "one growth at a time");
                assert_eq!(n, 105, "asked at half a block");
                growth = Some(c);
            }
        }
        assert_eq!(s.next(), Err(Exhausted));
        let Some(Change::Reserve { name, upto }) = growth else {
            panic!("no growth asked")
        };
        assert_eq!((name.as_str(), upto), ("ids", 120));
        s.reservation().confirm(upto);
        // The refused number is skipped, never given later.
        assert_eq!(s.next().unwrap().0, 111);
    }

    #[test]
    fn a_failed_growth_is_asked_again() {
        let r = Reservation::new("stan:a", 20, 10);
        assert!(r.check(1).is_none());
        assert!(r.check(15).is_some());
        assert!(r.check(16).is_none());
        r.failed();
        assert!(r.check(16).is_some());
        r.confirm(30);
        r.confirm(25);
        assert_eq!(r.reserved(), 30);
    }
}
