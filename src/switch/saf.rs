//! Store and forward, without I/O: the queue of messages an acquirer must
//! get (reversals), per acquirer, in order, bounded in flight, retried
//! with backoff until acknowledged or expired. `now` (Unix milliseconds)
//! is passed in; the driver ([`super::Switch`]) does the journal and the
//! sending.
//!
//! ```text
//!   push(record)            queued (already durable: queued in the same
//!                           journal write as the state change that needs it)
//!   poll(now) ─► Send(attempt)   attempt.update durable, then the message
//!                                is written: first as 0400, then as 0401
//!                                (same STAN) for every later attempt
//!            ─► Expire(record)   past its expiry: given up, logged, counted
//!            ─► Idle(wake)        saturated, backing off, or empty
//!   acknowledged(id)  the acquirer answered (0410): done
//!   failed(id)        no answer or no link: retried after the backoff,
//!                     oldest first
//! ```
//! A message's STAN is taken at its first attempt and written with it, so
//! a restart after that repeats the same message (0401, same STAN): the
//! acquirer sees one reversal, however many times it is sent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::journal::{SafKind, SafRecord, SafState, SafUpdate};

/// How the queue sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafConfig {
    /// Messages in flight per acquirer at most (no flood when an acquirer
    /// comes back with a long queue).
    pub max_in_flight: usize,
    /// First retry delay after a failure; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// A message not acknowledged this long after it was queued is given
    /// up (logged as an error, counted).
    pub expiry_ms: u64,
}

impl Default for SafConfig {
    fn default() -> Self {
        SafConfig {
            max_in_flight: 8,
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
            expiry_ms: 24 * 3600 * 1000,
        }
    }
}

/// One send of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The message, its STAN set and this attempt counted.
    pub record: SafRecord,
    /// A retransmission: send the repeat MTI (0401).
    pub repeat: bool,
    /// Must be durable before the message is written.
    pub update: SafUpdate,
}

/// What to do next for an acquirer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(Attempt),
    /// Given up: commit `update`, log, count.
    Expire(SafRecord, SafUpdate),
    /// Nothing now; call again at this time (or when something changes).
    Idle(Option<u64>),
}

#[derive(Debug, Default)]
struct Lane {
    queue: BTreeMap<u64, SafRecord>,
    in_flight: BTreeSet<u64>,
    failures: u32,
    resume_at_ms: u64,
    /// Messages allowed in flight now: one after a failure, one more per
    /// acknowledgement up to `max_in_flight` (a link that drops under a
    /// burst still lets the queue through, a few at a time).
    window: usize,
}

/// Counters of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SafCounts {
    pub queued: u64,
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    pub expired: u64,
}

/// The store-and-forward queue of every acquirer.
#[derive(Debug)]
pub struct Saf {
    cfg: SafConfig,
    lanes: HashMap<String, Lane>,
    /// By kind (its discriminant, [`SafKind::ALL`]'s order).
    counts: [SafCounts; SafKind::ALL.len()],
}

impl Saf {
    pub fn new(cfg: SafConfig) -> Saf {
        Saf {
            cfg,
            lanes: HashMap::new(),
            counts: [SafCounts::default(); SafKind::ALL.len()],
        }
    }

    pub fn config(&self) -> &SafConfig {
        &self.cfg
    }

    /// A durable queued message (new, or recovered at start).
    pub fn push(&mut self, record: SafRecord) {
        if record.state != SafState::Queued {
            return;
        }
        self.count(record.kind).queued += 1;
        let window = self.cfg.max_in_flight.max(1);
        self.lanes
            .entry(record.acquirer.clone())
            .or_insert_with(|| Lane {
                window,
                ..Lane::default()
            })
            .queue
            .insert(record.id, record);
    }

    /// Messages waiting (in flight included), all acquirers.
    pub fn depth(&self) -> usize {
        self.lanes.values().map(|l| l.queue.len()).sum()
    }

    /// Messages waiting for `acquirer`.
    pub fn depth_of(&self, acquirer: &str) -> usize {
        self.lanes.get(acquirer).map_or(0, |l| l.queue.len())
    }

    /// All kinds together.
    pub fn counts(&self) -> SafCounts {
        self.counts
            .iter()
            .fold(SafCounts::default(), |a, c| SafCounts {
                queued: a.queued + c.queued,
                sent: a.sent + c.sent,
                acknowledged: a.acknowledged + c.acknowledged,
                failed: a.failed + c.failed,
                expired: a.expired + c.expired,
            })
    }

    /// The messages of one kind.
    pub fn counts_of(&self, kind: SafKind) -> SafCounts {
        self.counts[kind as usize]
    }

    fn count(&mut self, kind: SafKind) -> &mut SafCounts {
        &mut self.counts[kind as usize]
    }

    /// Whether `id` is queued (in flight or not).
    pub fn contains(&self, id: u64) -> bool {
        self.lanes.values().any(|l| l.queue.contains_key(&id))
    }

    /// The next thing to do for `acquirer`. `stan` gives a STAN to a
    /// message's first attempt (`None`: none free now, try later).
    pub fn poll(
        &mut self,
        acquirer: &str,
        now_ms: u64,
        stan: &mut dyn FnMut() -> Option<String>,
    ) -> Step {
        let cfg = self.cfg;
        let Some(lane) = self.lanes.get_mut(acquirer) else {
            return Step::Idle(None);
        };
        // Expiry first: a message past it is not sent again.
        let expired = lane
            .queue
            .values()
            .find(|r| r.expires_ms <= now_ms && !lane.in_flight.contains(&r.id))
            .map(|r| r.id);
        if let Some(id) = expired {
            if let Some(r) = lane.queue.remove(&id) {
                self.counts[r.kind as usize].expired += 1;
                let update = SafUpdate {
                    id: r.id,
                    tx_id: r.tx_id,
                    state: SafState::Expired,
                    stan: r.stan.clone(),
                    attempts: r.attempts,
                    updated_ms: now_ms,
                    response_code: None,
                };
                return Step::Expire(r, update);
            }
        }
        let earliest_expiry = lane
            .queue
            .values()
            .filter(|r| !lane.in_flight.contains(&r.id))
            .map(|r| r.expires_ms)
            .min();
        let wake = |at: Option<u64>| match (at, earliest_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if lane.in_flight.len() >= lane.window.clamp(1, cfg.max_in_flight.max(1)) {
            return Step::Idle(wake(None));
        }
        if now_ms < lane.resume_at_ms {
            return Step::Idle(wake(Some(lane.resume_at_ms)));
        }
        // Oldest first; a transaction's messages one at a time, in order
        // (a partial cancellation must not overtake the one before it).
        let mut earlier = HashSet::new();
        let next = lane.queue.values_mut().find(|r| {
            let free = !lane.in_flight.contains(&r.id) && !earlier.contains(&r.tx_id);
            earlier.insert(r.tx_id);
            free
        });
        let Some(r) = next else {
            return Step::Idle(wake(None));
        };
        if r.stan.is_empty() {
            match stan() {
                Some(s) => r.stan = s,
                None => return Step::Idle(wake(Some(now_ms + cfg.retry_initial_ms))),
            }
        }
        let repeat = r.attempts > 0;
        r.attempts = r.attempts.saturating_add(1);
        r.updated_ms = now_ms;
        lane.in_flight.insert(r.id);
        self.counts[r.kind as usize].sent += 1;
        let update = SafUpdate {
            id: r.id,
            tx_id: r.tx_id,
            state: SafState::Queued,
            stan: r.stan.clone(),
            attempts: r.attempts,
            updated_ms: now_ms,
            response_code: None,
        };
        Step::Send(Attempt {
            record: r.clone(),
            repeat,
            update,
        })
    }

    /// The acquirer answered message `id` (with `response_code`): it is
    /// done. The update to commit.
    pub fn acknowledged(
        &mut self,
        acquirer: &str,
        id: u64,
        response_code: Option<String>,
        now_ms: u64,
    ) -> Option<SafUpdate> {
        let lane = self.lanes.get_mut(acquirer)?;
        lane.in_flight.remove(&id);
        let r = lane.queue.remove(&id)?;
        lane.failures = 0;
        lane.resume_at_ms = 0;
        lane.window = lane
            .window
            .saturating_add(1)
            .min(self.cfg.max_in_flight.max(1));
        self.counts[r.kind as usize].acknowledged += 1;
        Some(SafUpdate {
            id: r.id,
            tx_id: r.tx_id,
            state: SafState::Acknowledged,
            stan: r.stan,
            attempts: r.attempts,
            updated_ms: now_ms,
            response_code,
        })
    }

    /// Message `id` got no answer (or could not be written): it stays
    /// queued and the acquirer's lane backs off.
    pub fn failed(&mut self, acquirer: &str, id: u64, now_ms: u64) {
        let Some(lane) = self.lanes.get_mut(acquirer) else {
            return;
        };
        if !lane.in_flight.remove(&id) {
            return;
        }
        let kind = lane.queue.get(&id).map_or(SafKind::Reversal, |r| r.kind);
        self.counts[kind as usize].failed += 1;
        lane.failures = lane.failures.saturating_add(1);
        lane.window = 1;
        let shift = lane.failures.saturating_sub(1).min(20);
        let delay = self
            .cfg
            .retry_initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.cfg.retry_max_ms);
        lane.resume_at_ms = now_ms.saturating_add(delay);
    }

    /// The acquirers with messages.
    pub fn acquirers(&self) -> Vec<String> {
        self.lanes
            .iter()
            .filter(|(_, l)| !l.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SafKind;

    fn record(id: u64, created_ms: u64) -> SafRecord {
        SafRecord {
            id,
            tx_id: id,
            kind: SafKind::Reversal,
            acquirer: "a".into(),
            reason: "TIMEOUT".into(),
            stan: String::new(),
            amount: 1000,
            state: SafState::Queued,
            attempts: 0,
            created_ms,
            updated_ms: created_ms,
            expires_ms: created_ms + 100_000,
            response_code: None,
            replacement: None,
        }
    }

    fn stans() -> impl FnMut() -> Option<String> {
        let mut n = 0;
        move || {
            n += 1;
            Some(format!("{n:06}"))
        }
    }

    fn cfg() -> SafConfig {
        SafConfig {
            max_in_flight: 2,
            retry_initial_ms: 100,
            retry_max_ms: 400,
            expiry_ms: 100_000,
        }
    }

    #[test]
    fn in_order_bounded_then_acknowledged() {
        let mut saf = Saf::new(cfg());
        let mut stan = stans();
        for id in [3, 1, 2] {
            saf.push(record(id, 0));
        }
        let Step::Send(a) = saf.poll("a", 10, &mut stan) else {
            panic!()
        };
        assert_eq!((a.record.id, a.repeat, a.record.attempts), (1, false, 1));
        assert_eq!(a.update.stan, "000001");
        let Step::Send(b) = saf.poll("a", 10, &mut stan) else {
            panic!()
        };
        assert_eq!(b.record.id, 2);
        assert_eq!(
            saf.poll("a", 10, &mut stan),
            Step::Idle(Some(100_000)),
            "two in flight"
        );
        let u = saf.acknowledged("a", 1, Some("00".into()), 20).unwrap();
        assert_eq!(
            (u.state, u.response_code.as_deref()),
            (SafState::Acknowledged, Some("00"))
        );
        let Step::Send(c) = saf.poll("a", 20, &mut stan) else {
            panic!()
        };
        assert_eq!(c.record.id, 3);
        assert_eq!(saf.depth(), 2);
        assert_eq!(saf.poll("b", 20, &mut stan), Step::Idle(None));
    }

    #[test]
    fn after_a_failure_one_at_a_time_then_one_more_per_acknowledgement() {
        let mut saf = Saf::new(SafConfig {
            max_in_flight: 3,
            ..cfg()
        });
        let mut stan = stans();
        for id in 1..=5 {
            saf.push(record(id, 0));
        }
        let mut sent = |saf: &mut Saf, t| match saf.poll("a", t, &mut stan) {
            Step::Send(a) => Some(a.record.id),
            _ => None,
        };
        let burst: Vec<_> = std::iter::from_fn(|| sent(&mut saf, 0)).collect();
        assert_eq!(burst, [1, 2, 3]);
        for id in 1..=3 {
            saf.failed("a", id, 0);
        }
        // Three failures: the lane waits 400 ms (100, doubled twice).
        assert_eq!(sent(&mut saf, 400), Some(1));
        assert_eq!(sent(&mut saf, 400), None, "one in flight after a failure");
        saf.acknowledged("a", 1, None, 410);
        assert_eq!(sent(&mut saf, 410), Some(2));
        assert_eq!(sent(&mut saf, 410), Some(3));
        assert_eq!(sent(&mut saf, 410), None, "two after one acknowledgement");
        saf.acknowledged("a", 2, None, 420);
        assert_eq!(sent(&mut saf, 420), Some(4));
        assert_eq!(sent(&mut saf, 420), Some(5));
    }

    #[test]
    fn failures_back_off_and_repeat_with_the_same_stan() {
        let mut saf = Saf::new(cfg());
        let mut stan = stans();
        saf.push(record(1, 0));
        let Step::Send(a) = saf.poll("a", 0, &mut stan) else {
            panic!()
        };
        saf.failed("a", 1, 0);
        assert_eq!(saf.poll("a", 50, &mut stan), Step::Idle(Some(100)));
        let Step::Send(b) = saf.poll("a", 100, &mut stan) else {
            panic!()
        };
        assert!(b.repeat, "a retransmission is a repeat");
        assert_eq!(b.record.stan, a.record.stan, "same STAN");
        assert_eq!(b.record.attempts, 2);
        saf.failed("a", 1, 100);
        assert_eq!(
            saf.poll("a", 150, &mut stan),
            Step::Idle(Some(300)),
            "doubled"
        );
        for t in [300, 700, 1100] {
            let Step::Send(_) = saf.poll("a", t, &mut stan) else {
                panic!("{t}")
            };
            saf.failed("a", 1, t);
        }
        assert_eq!(
            saf.poll("a", 1101, &mut stan),
            Step::Idle(Some(1500)),
            "capped at 400"
        );
        assert_eq!(saf.counts().failed, 5);
    }

    #[test]
    fn a_recovered_message_goes_as_a_repeat_and_expires_when_due() {
        let mut saf = Saf::new(cfg());
        let mut stan = stans();
        let mut r = record(7, 0);
        r.attempts = 1;
        r.stan = "000777".into();
        saf.push(r);
        let Step::Send(a) = saf.poll("a", 0, &mut stan) else {
            panic!()
        };
        assert!(a.repeat);
        assert_eq!(a.record.stan, "000777");
        saf.failed("a", 7, 0);
        let Step::Expire(r, u) = saf.poll("a", 100_000, &mut stan) else {
            panic!()
        };
        assert_eq!((r.id, u.state), (7, SafState::Expired));
        assert_eq!(saf.depth(), 0);
        assert_eq!(saf.counts().expired, 1);
        // No STAN free: nothing is sent, tried again later.
        saf.push(record(8, 150_000));
        assert_eq!(
            saf.poll("a", 200_000, &mut || None),
            Step::Idle(Some(200_100))
        );
    }

    #[test]
    fn one_transaction_s_messages_go_one_at_a_time_in_order() {
        let mut saf = Saf::new(cfg());
        let mut stan = stans();
        // Two cancellations of transaction 7 (partial, then full) and a
        // reversal of transaction 9.
        for (id, tx) in [(10, 7), (11, 7), (12, 9)] {
            saf.push(SafRecord {
                tx_id: tx,
                kind: SafKind::Cancel,
                ..record(id, 0)
            });
        }
        let sent = |step: Step| match step {
            Step::Send(a) => a.record.id,
            other => panic!("expected a send, got {other:?}"),
        };
        assert_eq!(sent(saf.poll("a", 1, &mut stan)), 10);
        // 11 waits for 10 (same transaction): 12 goes in the window.
        assert_eq!(sent(saf.poll("a", 1, &mut stan)), 12);
        assert!(matches!(saf.poll("a", 1, &mut stan), Step::Idle(_)));
        saf.acknowledged("a", 12, Some("00".into()), 2);
        assert!(matches!(saf.poll("a", 2, &mut stan), Step::Idle(_)));
        saf.acknowledged("a", 10, Some("00".into()), 3);
        assert_eq!(sent(saf.poll("a", 3, &mut stan)), 11);
    }
}
