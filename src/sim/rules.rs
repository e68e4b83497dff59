//! The simulator's behaviour as a pure function: [`respond`] takes a decoded
//! request and the simulator state and returns what to do. No sockets, no
//! clock; randomness comes from the seeded RNG in [`SimState`].
//!
//! Default rules (as acquirer test platforms behave), on the cents of DE 4:
//!
//! | cents | DE 39 | meaning                                      |
//! |-------|-------|----------------------------------------------|
//! | 00    | 00    | approved, DE 38 authorization id, DE 37 RRN |
//! | 05    | 05    | do not honour                                |
//! | 99    | 96    | system malfunction (technical failure)       |
//! | other | 00    | approved                                     |
//!
//! 0400/0420 reversals mark the original (found by DE 90's STAN, else DE 11,
//! with DE 41) as reversed and are answered 00; one with replacement
//! amounts (DE 95, a partial cancellation) leaves the DE 95 amount
//! authorized instead. A 0220/0221 with processing code 20 (DE 3) is a
//! refund of its DE 4 amount, booked against the original the same way and
//! answered 0230 with 00. A repeat (same own STAN) is counted, never
//! applied twice. 0800s are answered 0810 with
//! DE 39 = 00. Other requests are answered with DE 39 = 12.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::iso8583::{Message, Mti, Spec};

/// Added latency per response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    #[default]
    None,
    Fixed(Duration),
    /// Uniformly random between the two bounds.
    Uniform(Duration, Duration),
}

/// Fault injection. Counters ("every n-th") run over financial requests
/// (01xx, 02xx, 04xx) only, so sign-on and echo are never disturbed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub latency: Latency,
    /// Responses come back reversed within windows of this many requests
    /// (response i is delayed by `(window - 1 - i % window) * reorder_step`).
    pub out_of_order: Option<usize>,
    pub reorder_step: Duration,
    /// Every n-th financial request gets no response.
    pub no_response_every: Option<u64>,
    /// Every n-th financial request is answered twice.
    pub duplicate_every: Option<u64>,
    /// The n-th financial request (after the last drop) is not answered and
    /// the connection is closed.
    pub drop_after: Option<u64>,
    /// Every n-th financial request gets a frame that does not decode.
    pub garbage_every: Option<u64>,
    /// Answer sign-on (DE 70 = 001) with DE 39 = 91.
    pub refuse_sign_on: bool,
    /// Never answer echo tests (DE 70 = 301).
    pub ignore_echo: bool,
}

/// What the server must do for one request, in order.
// Built and consumed at once, one per request: boxing the message (its
// field table is inline) would cost an allocation per reply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action<'a> {
    /// Send `msg` after `delay`.
    Reply { msg: Message<'a>, delay: Duration },
    /// Send a well-framed frame whose content is not a message.
    Garbage { delay: Duration },
    /// Close the connection (after writing what is already queued).
    Close,
}

/// Where an authorization stands at the acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    Approved,
    Refused,
    /// Answered with a technical failure code.
    Failed,
    /// Approved, then reversed.
    Reversed,
}

/// One authorization received (whatever its answer), and what the
/// acquirer made of the reversals for it. Serialized as the `/ledger`
/// entries of `acqswitch sim --admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// The request's MTI (`0100`).
    pub mti: String,
    pub terminal: String,
    pub stan: String,
    pub rrn: String,
    /// Minor units, as received (digits).
    #[serde(serialize_with = "as_text")]
    pub amount: u64,
    pub response_code: String,
    /// DE 38 of an approval; unique for the simulator's lifetime.
    pub authorization_id: Option<String>,
    #[serde(skip)]
    pub status: TxStatus,
    /// An approval undone by a reversal.
    pub reversed: bool,
    /// Every 0400/0401 received for it.
    pub reversal_messages: u64,
    /// Distinct reversals applied (told apart by their own STAN; a 0401
    /// repeats its 0400), full or partial. More than one full reversal
    /// is a double reversal.
    pub reversals_applied: u64,
    /// What stays authorized: the amount approved, less what reversals
    /// took back (0 once fully reversed, or not approved).
    #[serde(serialize_with = "as_text")]
    pub authorized_amount: u64,
    /// The sum of the refunds applied to it.
    #[serde(serialize_with = "as_text")]
    pub refunded_amount: u64,
    /// Every refund message (0220/0221) received for it.
    pub refund_messages: u64,
    #[serde(skip)]
    reversal_stans: Vec<String>,
    #[serde(skip)]
    refund_stans: Vec<String>,
}

fn as_text<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl LedgerEntry {
    /// Approved at the acquirer (reversed or not).
    pub fn approved(&self) -> bool {
        self.response_code == "00"
    }
}

/// Authorizations received, keyed by (terminal id, STAN); the oldest are
/// forgotten beyond `capacity`.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<(String, String), LedgerEntry>,
    order: VecDeque<(String, String)>,
    capacity: usize,
    /// Reversals whose original was not found.
    pub unmatched_reversals: u64,
    /// Refunds whose original was not found.
    pub unmatched_refunds: u64,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Ledger {
            capacity,
            ..Default::default()
        }
    }

    pub fn get(&self, terminal: &str, stan: &str) -> Option<&LedgerEntry> {
        self.entries.get(&(terminal.to_owned(), stan.to_owned()))
    }

    /// Every authorization received, oldest first.
    pub fn authorizations(&self) -> Vec<LedgerEntry> {
        self.order
            .iter()
            .filter_map(|k| self.entries.get(k).cloned())
            .collect()
    }

    /// The approved ones (reversed or not), oldest first.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.order
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| e.approved())
            .cloned()
            .collect()
    }

    /// Approved authorizations (reversed or not).
    pub fn len(&self) -> usize {
        self.entries.values().filter(|e| e.approved()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, e: LedgerEntry) {
        if self.capacity == 0 {
            return;
        }
        let key = (e.terminal.clone(), e.stan.clone());
        if self.entries.insert(key.clone(), e).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// A reversal (its own STAN `by`) of (terminal, stan): full, or
    /// leaving `replacement` authorized.
    fn reverse(&mut self, terminal: &str, stan: &str, by: &str, replacement: Option<u64>) -> bool {
        match self
            .entries
            .get_mut(&(terminal.to_owned(), stan.to_owned()))
        {
            Some(e) => {
                e.reversal_messages += 1;
                if !e.reversal_stans.iter().any(|s| s == by) {
                    e.reversal_stans.push(by.to_owned());
                    e.reversals_applied += 1;
                    if e.approved() {
                        match replacement.filter(|&r| r > 0) {
                            // DE 95 says what stays authorized, not how much
                            // less: the last message read is what holds (a
                            // switch that let two overtake each other shows).
                            Some(r) => e.authorized_amount = r,
                            None => {
                                e.authorized_amount = 0;
                                e.reversed = true;
                                e.status = TxStatus::Reversed;
                            }
                        }
                    }
                }
                true
            }
            None => {
                self.unmatched_reversals += 1;
                false
            }
        }
    }
}

impl Ledger {
    /// A refund (its own STAN `by`) of `amount` against (terminal, stan).
    fn refund(&mut self, terminal: &str, stan: &str, by: &str, amount: u64) -> bool {
        match self
            .entries
            .get_mut(&(terminal.to_owned(), stan.to_owned()))
        {
            Some(e) => {
                e.refund_messages += 1;
                if !e.refund_stans.iter().any(|s| s == by) {
                    e.refund_stans.push(by.to_owned());
                    e.refunded_amount = e.refunded_amount.saturating_add(amount);
                }
                true
            }
            None => {
                self.unmatched_refunds += 1;
                false
            }
        }
    }
}

/// Counters of what the simulator saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SimCounts {
    pub received: u64,
    pub approved: u64,
    pub refused: u64,
    pub failed: u64,
    pub reversals: u64,
    pub refunds: u64,
    pub network: u64,
    pub responses_received: u64,
    pub no_response: u64,
    pub duplicates: u64,
    pub garbage: u64,
    pub drops: u64,
    pub undecodable: u64,
}

/// Everything [`respond`] reads and changes.
#[derive(Debug)]
pub struct SimState {
    pub faults: Faults,
    pub ledger: Ledger,
    pub counts: SimCounts,
    records: VecDeque<Message<'static>>,
    record_capacity: usize,
    rng: StdRng,
    financial: u64,
    since_drop: u64,
    next_auth: u64,
    next_rrn: u64,
}

impl SimState {
    pub fn new(faults: Faults, record_capacity: usize, ledger_capacity: usize, seed: u64) -> Self {
        SimState {
            faults,
            ledger: Ledger::new(ledger_capacity),
            counts: SimCounts::default(),
            records: VecDeque::new(),
            record_capacity,
            rng: StdRng::seed_from_u64(seed),
            financial: 0,
            since_drop: 0,
            next_auth: 0,
            next_rrn: 0,
        }
    }

    /// The last decoded messages received (requests and responses), oldest
    /// first, owned.
    pub fn records(&self) -> impl Iterator<Item = &Message<'static>> {
        self.records.iter()
    }

    fn record(&mut self, msg: &Message<'_>) {
        if self.record_capacity == 0 {
            return;
        }
        if self.records.len() == self.record_capacity {
            self.records.pop_front();
        }
        self.records.push_back(msg.clone().into_owned());
    }

    fn latency(&mut self) -> Duration {
        match self.faults.latency {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform(a, b) if b > a => self.rng.gen_range(a..=b),
            Latency::Uniform(a, _) => a,
        }
    }
}

fn every(n: Option<u64>, seq: u64) -> bool {
    matches!(n, Some(n) if n > 0 && seq % n == 0)
}

/// Fields echoed from request to response when present.
const ECHOED: &[u16] = &[3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49];

/// The simulator's answer to one decoded message.
pub fn respond<'a>(spec: &Spec, req: &Message<'a>, state: &mut SimState) -> Vec<Action<'a>> {
    state.record(req);
    let mti = req.mti();
    let Some(resp_mti) = mti.response() else {
        // A response to one of our own 0800s.
        state.counts.responses_received += 1;
        return Vec::new();
    };
    state.counts.received += 1;
    let class = mti.digits()[1];
    if class == b'8' {
        return network(spec, req, resp_mti, state);
    }
    if !matches!(class, b'1' | b'2' | b'4') {
        let mut resp = echo_fields(req, resp_mti);
        let _ = spec.set_text(&mut resp, 39, "12");
        return vec![Action::Reply {
            msg: resp,
            delay: Duration::ZERO,
        }];
    }

    state.financial += 1;
    state.since_drop += 1;
    let seq = state.financial;
    let faults = state.faults.clone();
    if matches!(faults.drop_after, Some(n) if n > 0 && state.since_drop >= n) {
        state.since_drop = 0;
        state.counts.drops += 1;
        return vec![Action::Close];
    }
    let mut delay = state.latency();
    if let Some(w) = faults.out_of_order.filter(|&w| w > 1) {
        let idx = ((seq - 1) % w as u64) as u32;
        delay += faults.reorder_step * (w as u32 - 1 - idx);
    }
    if every(faults.no_response_every, seq) {
        state.counts.no_response += 1;
        return Vec::new();
    }
    if every(faults.garbage_every, seq) {
        state.counts.garbage += 1;
        return vec![Action::Garbage { delay }];
    }

    // A refund advice: 0220 or its repeat 0221, processing code 20.
    let is_refund = class == b'2'
        && mti.digits()[2] == b'2'
        && spec.text(req, 3).is_some_and(|p| p.starts_with("20"));
    let resp = if class == b'4' {
        reversal(spec, req, resp_mti, state)
    } else if is_refund {
        refund(spec, req, resp_mti, state)
    } else {
        authorization(spec, req, resp_mti, state)
    };
    if every(faults.duplicate_every, seq) {
        state.counts.duplicates += 1;
        vec![
            Action::Reply {
                msg: resp.clone(),
                delay,
            },
            Action::Reply { msg: resp, delay },
        ]
    } else {
        vec![Action::Reply { msg: resp, delay }]
    }
}

fn echo_fields<'a>(req: &Message<'a>, mti: Mti) -> Message<'a> {
    let mut resp = Message::new(mti);
    for &n in ECHOED {
        if let Some(f) = req.field(n) {
            resp.insert(n, f);
        }
    }
    resp
}

fn network<'a>(
    spec: &Spec,
    req: &Message<'a>,
    resp_mti: Mti,
    state: &mut SimState,
) -> Vec<Action<'a>> {
    state.counts.network += 1;
    let code = spec
        .text(req, 70)
        .map(|c| c.into_owned())
        .unwrap_or_default();
    if code == "301" && state.faults.ignore_echo {
        return Vec::new();
    }
    let mut resp = req.clone();
    resp.set_mti(resp_mti);
    let rc = if code == "001" && state.faults.refuse_sign_on {
        "91"
    } else {
        "00"
    };
    let _ = spec.set_text(&mut resp, 39, rc);
    vec![Action::Reply {
        msg: resp,
        delay: Duration::ZERO,
    }]
}

fn authorization<'a>(
    spec: &Spec,
    req: &Message<'a>,
    resp_mti: Mti,
    state: &mut SimState,
) -> Message<'a> {
    let mut resp = echo_fields(req, resp_mti);
    let amount = spec
        .text(req, 4)
        .map(|a| a.into_owned())
        .unwrap_or_default();
    let cents = amount.get(amount.len().saturating_sub(2)..).unwrap_or("");
    let rc = match cents {
        "05" => "05",
        "99" => "96",
        _ => "00",
    };
    let rrn = match spec.text(req, 37) {
        Some(r) => r.into_owned(),
        None => {
            state.next_rrn += 1;
            let r = format!("{:012}", state.next_rrn % 1_000_000_000_000);
            let _ = spec.set_text(&mut resp, 37, &r);
            r
        }
    };
    let _ = spec.set_text(&mut resp, 39, rc);
    let mut authorization_id = None;
    let status = match rc {
        "00" => {
            state.counts.approved += 1;
            state.next_auth += 1;
            let auth_id = auth_id(state.next_auth);
            let _ = spec.set_text(&mut resp, 38, &auth_id);
            authorization_id = Some(auth_id);
            TxStatus::Approved
        }
        "05" => {
            state.counts.refused += 1;
            TxStatus::Refused
        }
        _ => {
            state.counts.failed += 1;
            TxStatus::Failed
        }
    };
    let text = |n| {
        spec.text(req, n)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    };
    state.ledger.insert(LedgerEntry {
        mti: req.mti().to_string(),
        terminal: text(41),
        stan: text(11),
        rrn,
        amount: amount.parse().unwrap_or(0),
        response_code: rc.into(),
        authorization_id,
        status,
        reversed: false,
        reversal_messages: 0,
        reversals_applied: 0,
        authorized_amount: if rc == "00" {
            amount.parse().unwrap_or(0)
        } else {
            0
        },
        refunded_amount: 0,
        refund_messages: 0,
        reversal_stans: Vec::new(),
        refund_stans: Vec::new(),
    });
    resp
}

/// Authorization ids: six base-36 characters, unique for 36^6 approvals.
fn auth_id(n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = [b'0'; 6];
    let mut v = n % 36u64.pow(6);
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reversal<'a>(
    spec: &Spec,
    req: &Message<'a>,
    resp_mti: Mti,
    state: &mut SimState,
) -> Message<'a> {
    state.counts.reversals += 1;
    let text = |n| spec.text(req, n).map(|t| t.into_owned());
    // DE 90: original MTI (4) + original STAN (6) + ...
    let stan = text(90)
        .and_then(|d| d.get(4..10).map(str::to_owned))
        .or_else(|| text(11))
        .unwrap_or_default();
    let terminal = text(41).unwrap_or_default();
    let own = text(11).unwrap_or_default();
    // DE 95: the transaction amount that stays (12 digits first).
    let replacement = text(95).and_then(|d| d.get(..12).and_then(|a| a.parse().ok()));
    state.ledger.reverse(&terminal, &stan, &own, replacement);
    let mut resp = echo_fields(req, resp_mti);
    let _ = spec.set_text(&mut resp, 39, "00");
    resp
}

fn refund<'a>(spec: &Spec, req: &Message<'a>, resp_mti: Mti, state: &mut SimState) -> Message<'a> {
    state.counts.refunds += 1;
    let text = |n| spec.text(req, n).map(|t| t.into_owned());
    let stan = text(90)
        .and_then(|d| d.get(4..10).map(str::to_owned))
        .unwrap_or_default();
    let terminal = text(41).unwrap_or_default();
    let own = text(11).unwrap_or_default();
    let amount = text(4).and_then(|a| a.parse().ok()).unwrap_or(0);
    state.ledger.refund(&terminal, &stan, &own, amount);
    let mut resp = echo_fields(req, resp_mti);
    let _ = spec.set_text(&mut resp, 39, "00");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::builtin("cb2a").unwrap()
    }

    fn auth(spec: &Spec, stan: &str, amount: &str) -> Message<'static> {
        let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
        spec.set_text(&mut m, 4, amount).unwrap();
        spec.set_text(&mut m, 11, stan).unwrap();
        spec.set_text(&mut m, 41, "TERM0001").unwrap();
        m
    }

    fn reply<'a>(actions: &'a [Action<'a>]) -> &'a Message<'a> {
        match actions {
            [Action::Reply { msg, .. }] => msg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn amount_rules() {
        let spec = spec();
        let mut st = SimState::new(Faults::default(), 8, 100, 1);
        for (amount, rc) in [
            ("000000001000", "00"),
            ("000000001005", "05"),
            ("000000001099", "96"),
            ("000000001042", "00"),
        ] {
            let req = auth(&spec, "000001", amount);
            let a = respond(&spec, &req, &mut st);
            let r = reply(&a);
            assert_eq!(r.mti(), Mti::AUTHORIZATION_RESPONSE);
            assert_eq!(spec.text(r, 39).unwrap(), rc, "{amount}");
            assert_eq!(spec.text(r, 11).unwrap(), "000001");
            assert_eq!(spec.text(r, 41).unwrap(), "TERM0001");
            assert_eq!(spec.text(r, 37).unwrap().len(), 12);
            assert_eq!(r.has(38), rc == "00");
        }
        assert_eq!(st.counts.approved, 2);
        assert_eq!(st.counts.refused, 1);
        assert_eq!(st.counts.failed, 1);
        assert_eq!(st.records().count(), 4);
    }

    #[test]
    fn reversal_marks_ledger() {
        let spec = spec();
        let mut st = SimState::new(Faults::default(), 0, 100, 1);
        respond(&spec, &auth(&spec, "000007", "000000000500"), &mut st);
        assert_eq!(
            st.ledger.get("TERM0001", "000007").unwrap().status,
            TxStatus::Approved
        );
        let mut rev = auth(&spec, "000008", "000000000500");
        rev.set_mti(Mti::REVERSAL_REQUEST);
        spec.set_text(&mut rev, 90, &format!("0100000007{}", "0".repeat(32)))
            .unwrap();
        let a = respond(&spec, &rev, &mut st);
        assert_eq!(reply(&a).mti(), Mti::REVERSAL_RESPONSE);
        assert_eq!(
            st.ledger.get("TERM0001", "000007").unwrap().status,
            TxStatus::Reversed
        );
        assert_eq!(st.ledger.unmatched_reversals, 0);
    }

    #[test]
    fn ledger_keeps_every_authorization_and_counts_reversals() {
        let spec = spec();
        let mut st = SimState::new(Faults::default(), 0, 100, 1);
        respond(&spec, &auth(&spec, "000001", "000000000500"), &mut st);
        respond(&spec, &auth(&spec, "000002", "000000000505"), &mut st);
        let all = st.ledger.authorizations();
        assert_eq!(all.len(), 2);
        assert_eq!(st.ledger.len(), 1, "one approved");
        assert_eq!(all[1].response_code, "05");
        assert_eq!(all[1].authorization_id, None);
        let reversal = |own: &str, mti: &[u8; 4]| {
            let mut rev = auth(&spec, own, "000000000500");
            rev.set_mti(Mti::new(*mti));
            spec.set_text(&mut rev, 90, &format!("0100000001{}", "0".repeat(32)))
                .unwrap();
            rev
        };
        let a = respond(&spec, &reversal("000010", b"0400"), &mut st);
        assert_eq!(reply(&a).mti(), Mti::REVERSAL_RESPONSE);
        // The repeat: counted, not applied again; answered 0410.
        let a = respond(&spec, &reversal("000010", b"0401"), &mut st);
        assert_eq!(reply(&a).mti(), Mti::REVERSAL_RESPONSE);
        let e = st.ledger.get("TERM0001", "000001").unwrap().clone();
        assert!(e.reversed);
        assert_eq!((e.reversal_messages, e.reversals_applied), (2, 1));
        // Another reversal of the same authorization: a double reversal.
        respond(&spec, &reversal("000011", b"0400"), &mut st);
        let e = st.ledger.get("TERM0001", "000001").unwrap();
        assert_eq!((e.reversal_messages, e.reversals_applied), (3, 2));
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["amount"], "500");
        assert_eq!(json["mti"], "0100");
        assert_eq!(json["reversal_messages"], 3);
    }

    #[test]
    fn authorization_ids_are_unique_and_six_characters() {
        let ids: std::collections::HashSet<String> = (0..100_000).map(auth_id).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|i| i.len() == 6));
    }

    #[test]
    fn network_management() {
        let spec = spec();
        let mut st = SimState::new(
            Faults {
                ignore_echo: true,
                ..Faults::default()
            },
            0,
            0,
            1,
        );
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        spec.set_text(&mut m, 11, "000001").unwrap();
        spec.set_text(&mut m, 70, "001").unwrap();
        let a = respond(&spec, &m, &mut st);
        assert_eq!(spec.text(reply(&a), 39).unwrap(), "00");
        assert_eq!(spec.text(reply(&a), 70).unwrap(), "001");
        spec.set_text(&mut m, 70, "301").unwrap();
        assert!(respond(&spec, &m, &mut st).is_empty());
    }

    #[test]
    fn faults_by_sequence() {
        let spec = spec();
        let faults = Faults {
            no_response_every: Some(3),
            duplicate_every: Some(4),
            garbage_every: Some(5),
            drop_after: Some(7),
            ..Faults::default()
        };
        let mut st = SimState::new(faults, 0, 0, 1);
        let kinds: Vec<String> = (1..=8)
            .map(|i| {
                let req = auth(&spec, &format!("{i:06}"), "000000000100");
                let a = respond(&spec, &req, &mut st);
                match a.as_slice() {
                    [] => "none".into(),
                    [Action::Close] => "close".into(),
                    [Action::Garbage { .. }] => "garbage".into(),
                    [Action::Reply { .. }] => "reply".into(),
                    [Action::Reply { .. }, Action::Reply { .. }] => "dup".into(),
                    other => format!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(
            kinds,
            ["reply", "reply", "none", "dup", "garbage", "none", "close", "dup"]
        );
    }

    #[test]
    fn out_of_order_delays_reverse_each_window() {
        let spec = spec();
        let faults = Faults {
            out_of_order: Some(3),
            reorder_step: Duration::from_millis(1),
            ..Faults::default()
        };
        let mut st = SimState::new(faults, 0, 0, 1);
        let delays: Vec<u128> = (1..=4)
            .map(|i| {
                let req = auth(&spec, &format!("{i:06}"), "000000000100");
                match respond(&spec, &req, &mut st).as_slice() {
                    [Action::Reply { delay, .. }] => delay.as_millis(),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(delays, [2, 1, 0, 2]);
    }
}
