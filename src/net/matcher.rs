//! I/O-free pending table: pairs responses with requests by key.
//!
//! The link task owns one [`Matcher`] and drives it:
//!
//! ```text
//! request out   -> insert(key, token, deadline)   Err(Duplicate | Full) -> tell caller now
//! response in   -> on_response(&key)              Matched(token) | Stray(kind)
//! timer fires   -> poll_timeout(now)              Some((key, token)) until None
//! link drops    -> drain()                        every pending (key, token)
//! ```
//!
//! The matcher never sleeps, reads a clock or touches a socket: `now` is an
//! argument and [`next_deadline`](Matcher::next_deadline) says when to call
//! back. It is generic over the key (`K`) and what is kept per request (`T`,
//! in the link a `oneshot::Sender`).
//!
//! Strays are classified from a bounded memory of recently finished keys:
//! a response for a key that timed out is [`StrayKind::Late`], for a key that
//! was already answered [`StrayKind::Duplicate`], for anything else (or a key
//! forgotten since) [`StrayKind::Unknown`].

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

/// Why a response matched no pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrayKind {
    /// The request had timed out (the caller was told "timeout").
    Late,
    /// The request had already been answered.
    Duplicate,
    /// No request with this key is remembered.
    Unknown,
}

impl StrayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrayKind::Late => "late",
            StrayKind::Duplicate => "duplicate",
            StrayKind::Unknown => "unknown",
        }
    }
}

/// Outcome of [`Matcher::on_response`].
#[derive(Debug, PartialEq, Eq)]
pub enum Match<T> {
    Matched(T),
    Stray(StrayKind),
}

/// Why [`Matcher::insert`] refused a request; the token is handed back so the
/// caller can be answered through it.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError<T> {
    /// A request with the same key is in flight (never overwritten).
    Duplicate(T),
    /// `capacity` requests are in flight.
    Full(T),
}

#[derive(Debug)]
struct Pending<T> {
    token: T,
    seq: u64,
}

/// What is remembered about a finished key, to classify strays.
#[derive(Debug, Clone, Copy)]
enum Finished {
    Answered,
    TimedOut,
}

#[derive(Debug)]
struct Deadline<K> {
    at: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Deadline<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<K> Eq for Deadline<K> {}
impl<K> PartialOrd for Deadline<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Deadline<K> {
    // Reversed: BinaryHeap is a max-heap, we want the earliest deadline on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The pending table. See the module documentation. `S` is the hasher of
/// the two tables (the link uses a fast seeded one for [`super::MatchKey`]).
#[derive(Debug)]
pub struct Matcher<K, T, S = RandomState> {
    pending: HashMap<K, Pending<T>, S>,
    /// Deadlines with lazy deletion: an entry whose `seq` no longer matches
    /// the pending entry is stale. Compacted when stale entries dominate.
    deadlines: BinaryHeap<Deadline<K>>,
    finished: HashMap<K, (Finished, u64), S>,
    finished_order: VecDeque<(K, u64)>,
    capacity: usize,
    remember: usize,
    seq: u64,
}

impl<K: Hash + Eq + Clone, T, S: BuildHasher + Default> Matcher<K, T, S> {
    /// `capacity`: requests in flight at most. `remember`: how many finished
    /// keys are kept to tell late and duplicate responses from unknown ones.
    pub fn new(capacity: usize, remember: usize) -> Self {
        Matcher {
            pending: HashMap::with_capacity_and_hasher(capacity.min(4096), S::default()),
            deadlines: BinaryHeap::new(),
            finished: HashMap::with_hasher(S::default()),
            finished_order: VecDeque::new(),
            capacity,
            remember,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.capacity
    }

    pub fn contains(&self, key: &K) -> bool {
        self.pending.contains_key(key)
    }

    /// Registers a request that must be answered by `deadline`.
    pub fn insert(&mut self, key: K, token: T, deadline: Instant) -> Result<(), InsertError<T>> {
        self.insert_with(key, token, deadline, |t| t)
    }

    /// Like [`insert`](Self::insert), the token built by `wrap` once the
    /// key is known to be free and there is room; a refusal hands `value`
    /// back as it was given (one hash lookup either way).
    pub fn insert_with<V>(
        &mut self,
        key: K,
        value: V,
        deadline: Instant,
        wrap: impl FnOnce(V) -> T,
    ) -> Result<(), InsertError<V>> {
        let full = self.pending.len() >= self.capacity;
        let slot = match self.pending.entry(key) {
            Entry::Occupied(_) => return Err(InsertError::Duplicate(value)),
            Entry::Vacant(_) if full => return Err(InsertError::Full(value)),
            Entry::Vacant(slot) => slot,
        };
        self.seq += 1;
        let seq = self.seq;
        self.deadlines.push(Deadline {
            at: deadline,
            seq,
            key: slot.key().clone(),
        });
        slot.insert(Pending {
            token: wrap(value),
            seq,
        });
        self.compact_if_needed();
        Ok(())
    }

    /// A response arrived with `key`.
    pub fn on_response(&mut self, key: &K) -> Match<T> {
        if let Some(p) = self.pending.remove(key) {
            self.remember_finished(key.clone(), Finished::Answered);
            return Match::Matched(p.token);
        }
        match self.finished.get_mut(key) {
            Some((state @ Finished::TimedOut, _)) => {
                // A second copy after the late one is a duplicate.
                *state = Finished::Answered;
                Match::Stray(StrayKind::Late)
            }
            Some((Finished::Answered, _)) => Match::Stray(StrayKind::Duplicate),
            None => Match::Stray(StrayKind::Unknown),
        }
    }

    /// Removes a request without an answer (the caller gave up).
    pub fn cancel(&mut self, key: &K) -> Option<T> {
        self.pending.remove(key).map(|p| p.token)
    }

    /// The earliest deadline still pending, after discarding stale entries.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.discard_stale();
        self.deadlines.peek().map(|d| d.at)
    }

    /// Returns one expired request, if any; call until `None`.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<(K, T)> {
        loop {
            self.discard_stale();
            let top = self.deadlines.peek()?;
            if top.at > now {
                return None;
            }
            let d = self.deadlines.pop()?;
            if let Some(p) = self.pending.remove(&d.key) {
                self.remember_finished(d.key.clone(), Finished::TimedOut);
                return Some((d.key, p.token));
            }
        }
    }

    /// Removes every pending request (the link dropped).
    pub fn drain(&mut self) -> impl Iterator<Item = (K, T)> + '_ {
        self.deadlines.clear();
        self.pending.drain().map(|(k, p)| (k, p.token))
    }

    fn is_live(&self, d: &Deadline<K>) -> bool {
        self.pending.get(&d.key).is_some_and(|p| p.seq == d.seq)
    }

    fn discard_stale(&mut self) {
        while let Some(top) = self.deadlines.peek() {
            if self.is_live(top) {
                break;
            }
            self.deadlines.pop();
        }
    }

    /// Keeps the heap within a constant factor of the pending table, so a
    /// long timeout under high throughput does not grow it without bound.
    fn compact_if_needed(&mut self) {
        if self.deadlines.len() > 2 * self.pending.len() + 1024 {
            let heap = std::mem::take(&mut self.deadlines);
            let live: Vec<_> = heap.into_iter().filter(|d| self.is_live(d)).collect();
            self.deadlines = BinaryHeap::from(live);
        }
    }

    fn remember_finished(&mut self, key: K, how: Finished) {
        if self.remember == 0 {
            return;
        }
        self.seq += 1;
        self.finished.insert(key.clone(), (how, self.seq));
        self.finished_order.push_back((key, self.seq));
        while self.finished_order.len() > self.remember {
            if let Some((old, seq)) = self.finished_order.pop_front() {
                if self.finished.get(&old).is_some_and(|(_, s)| *s == seq) {
                    self.finished.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn matches_in_any_order() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(10, 10);
        for k in 0..5u32 {
            m.insert(k, k * 10, now + Duration::from_secs(1)).unwrap();
        }
        for k in [3u32, 0, 4, 1, 2] {
            assert_eq!(m.on_response(&k), Match::Matched(k * 10));
        }
        assert!(m.is_empty());
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn duplicate_key_is_rejected_not_overwritten() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(10, 10);
        m.insert("k", 1, now).unwrap();
        assert_eq!(m.insert("k", 2, now), Err(InsertError::Duplicate(2)));
        assert_eq!(m.on_response(&"k"), Match::Matched(1));
        // Once answered the key is free again.
        m.insert("k", 3, now).unwrap();
    }

    #[test]
    fn capacity_bound() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(2, 0);
        m.insert(1, (), now).unwrap();
        m.insert(2, (), now).unwrap();
        assert!(m.is_full());
        assert_eq!(m.insert(3, (), now), Err(InsertError::Full(())));
    }

    #[test]
    fn timeouts_in_deadline_order_then_late() {
        let now = t0();
        let s = Duration::from_secs(1);
        let mut m: Matcher<_, _> = Matcher::new(10, 10);
        m.insert(1, 'a', now + 3 * s).unwrap();
        m.insert(2, 'b', now + s).unwrap();
        m.insert(3, 'c', now + 2 * s).unwrap();
        assert_eq!(m.next_deadline(), Some(now + s));
        assert_eq!(m.poll_timeout(now), None);
        assert_eq!(m.on_response(&2), Match::Matched('b'));
        // The stale heap entry for key 2 is skipped.
        assert_eq!(m.next_deadline(), Some(now + 2 * s));
        assert_eq!(m.poll_timeout(now + 5 * s), Some((3, 'c')));
        assert_eq!(m.poll_timeout(now + 5 * s), Some((1, 'a')));
        assert_eq!(m.poll_timeout(now + 5 * s), None);
        assert_eq!(m.on_response(&3), Match::Stray(StrayKind::Late));
        assert_eq!(m.on_response(&3), Match::Stray(StrayKind::Duplicate));
        assert_eq!(m.on_response(&2), Match::Stray(StrayKind::Duplicate));
        assert_eq!(m.on_response(&9), Match::Stray(StrayKind::Unknown));
    }

    #[test]
    fn forgotten_keys_become_unknown() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(10, 2);
        for k in 0..3 {
            m.insert(k, (), now).unwrap();
            assert_eq!(m.on_response(&k), Match::Matched(()));
        }
        assert_eq!(m.on_response(&0), Match::Stray(StrayKind::Unknown));
        assert_eq!(m.on_response(&2), Match::Stray(StrayKind::Duplicate));
    }

    #[test]
    fn drain_returns_everything_pending() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(10, 10);
        for k in 0..4 {
            m.insert(k, k, now).unwrap();
        }
        m.on_response(&1);
        let mut drained: Vec<_> = m.drain().collect();
        drained.sort();
        assert_eq!(drained, vec![(0, 0), (2, 2), (3, 3)]);
        assert!(m.is_empty());
        assert_eq!(m.poll_timeout(now + Duration::from_secs(9)), None);
    }

    #[test]
    fn heap_stays_bounded_under_churn() {
        let now = t0();
        let mut m: Matcher<_, _> = Matcher::new(10, 0);
        m.insert(u32::MAX, (), now + Duration::from_secs(60))
            .unwrap();
        for k in 0..100_000u32 {
            m.insert(k, (), now + Duration::from_secs(30)).unwrap();
            assert_eq!(m.on_response(&k), Match::Matched(()));
        }
        assert!(m.deadlines.len() < 2000, "{}", m.deadlines.len());
        assert_eq!(m.next_deadline(), Some(now + Duration::from_secs(60)));
    }
}
