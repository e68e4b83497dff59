//! Deterministic simulation of the switch under faults, in the manner of
//! FoundationDB's and TigerBeetle's simulation testing: one seed is one
//! run, reproduced exactly; a failing seed is printed with the last events
//! before the failure.
//!
//! What runs is the switch's own logic, free of I/O: the switch core
//! ([`crate::switch::core::Core`]: claims, journal batches, outcomes,
//! recovery), the store-and-forward queue ([`crate::switch::saf::Saf`]),
//! the link protocol ([`crate::net::proto::Connection`]: sign-on,
//! matching, timeouts, strays), the journal's in-memory backend (its crash
//! model: what was committed survives, nothing else), and the acquirer
//! simulator's pure rules ([`crate::sim::respond`]) with its fault
//! injection. A seeded scheduler stands in for tokio, the network, the
//! disk and the clock:
//!
//! ```text
//!  events (time, seq) ──► client orders, journal commits landing, frames
//!                         delivered (per-connection order kept, delays
//!                         random), timers, connects, resets, crashes,
//!                         restarts from the journal's durable state
//! ```
//!
//! The steps between the cores mirror `Switch::card_order` and the
//! store-and-forward driver (they share `order_message` and
//! `reversal_message`); the tokio shell itself is covered by the tests on
//! real processes. Why a scheduler of our own rather than `turmoil`: the
//! link and switch cores are already free of I/O, so a scheduler of a few
//! hundred lines drives them with every interleaving choice in one seeded
//! RNG, thousands of runs a second, with no tokio in the loop (turmoil
//! would need the tokio shell's socket calls, which use readiness and
//! `try_read`, ported to its simulated network).
//!
//! Clients cancel half of their approvals, all or part, under an
//! operation reference of their own (retried after a crash), as
//! `Switch::operate` does it with [`crate::switch::cash`].
//!
//! After the faults stop, a run settles (every order answered, every
//! cancellation answered, the queue drained) and is checked: every
//! approval at the acquirer was either told to the client as approved or
//! reversed exactly once, never both (a full cancellation aside); no
//! reference approved twice; nothing the client was told approved is
//! unknown to the acquirer; nothing left open in the journal; and for
//! every approval told, the acquirer holds authorized what the journal
//! says is left, after one reversal per recorded cancellation (a retried
//! cancellation is never applied twice).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::card::{Expiry, Pan};
use crate::iso8583::{Message, Spec};
use crate::journal::memory::MemoryBackend;
use crate::journal::{
    Applied, Backend, Batch, CardKey, Change, Conflict, SafRecord, SentTo, TxState,
};
use crate::net::framing::{Frame, FrameCodec, FramingConfig};
use crate::net::proto::{self, Connection, Event, LinkConfig, LinkState};
use crate::net::StanLease;
use crate::sim::{respond, Action, Faults, Latency, SimState};
use crate::switch::cash;
use crate::switch::core::{ClaimError, Core, CoreSetup, Limits, Outcome, Prepared};
use crate::switch::domain::{
    Authentication, Cryptogram, Currency, Eci, HolderAuthentProgram, OrderChannel,
};
use crate::switch::lifecycle::OperationKind;
use crate::switch::saf::{Attempt, Saf, SafConfig, Step};
use crate::switch::{
    order_message, reversal_message, CardInput, CardOrder, CashRequest, Contract, Mapping,
    Merchant, OrderAnswer, ResponseCode, ResponseCodeTable, Route,
};

/// 2026-01-01T00:00:00Z: the wall clock at virtual time 0.
const T0_MS: u64 = 1_767_225_600_000;
const ACQUIRER: &str = "acq";
const MERCHANT: &str = "sim-merchant";
const DPAN: &str = "4895370012003478";
const TAVV: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";
/// Events kept for the report of a failing run.
const TRACE: usize = 400;

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationConfig {
    /// Client orders per run.
    pub orders: usize,
    /// Links to the acquirer.
    pub links: usize,
    /// The switch's request timeout, virtual milliseconds.
    pub request_timeout_ms: u64,
    /// How long orders arrive and faults happen, virtual milliseconds.
    pub active_ms: u64,
    /// The switch crashes (and restarts from its journal).
    pub crashes: bool,
    /// The acquirer is slow, silent, duplicates, garbles, drops.
    pub acquirer_faults: bool,
    /// Connections reset.
    pub network_faults: bool,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            orders: 24,
            links: 2,
            request_timeout_ms: 300,
            active_ms: 1500,
            crashes: true,
            acquirer_faults: true,
            network_faults: true,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub orders: usize,
    pub told_approved: usize,
    pub approved_at_acquirer: usize,
    pub reversed: usize,
    /// Approvals told to the client that it then cancelled (all or part).
    pub cancelled: usize,
    pub crashes: u32,
    pub resets: u32,
    pub events: u64,
    pub virtual_ms: u64,
    /// Broken invariants; empty for a good run.
    pub violations: Vec<String>,
    /// The last events, when something was broken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Order(u64),
    Reversal(u64),
}

#[derive(Debug)]
enum Ev {
    Client(usize),
    Cancel(usize),
    /// An order's answer reaches the client (lost in a crash).
    Told {
        epoch: u32,
        order: usize,
        code: ResponseCode,
        auth: Option<String>,
    },
    /// A cancellation's answer reaches the client (lost in a crash).
    CancelTold {
        epoch: u32,
        order: usize,
        left: u64,
    },
    Landed {
        epoch: u32,
        commit: u64,
    },
    ToSwitch {
        conn: u64,
        bytes: Bytes,
    },
    ToAcquirer {
        conn: u64,
        bytes: Bytes,
    },
    AcquirerWrite {
        conn: u64,
        bytes: Bytes,
    },
    AcquirerClose {
        conn: u64,
    },
    LinkTimer {
        epoch: u32,
        link: usize,
    },
    Connect {
        epoch: u32,
        link: usize,
    },
    SafTick {
        epoch: u32,
    },
    Reset {
        conn: u64,
    },
    Crash,
    Restart,
    Settle,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A client's order and what it was told.
struct Order {
    reference: String,
    amount: u64,
    /// The final answer: response code and authorization id.
    told: Option<(ResponseCode, Option<String>)>,
    waiting: bool,
    /// Once told approved, the client cancels this much (all of it, or
    /// part), under an operation reference of its own: a retry after a
    /// crash must get the recorded answer, never a second cancellation.
    cancel: Option<u64>,
    /// The cancellation's answer: what is left.
    cancel_told: Option<u64>,
    cancel_waiting: bool,
}

/// An order in the switch, between its steps.
struct Flow {
    order: usize,
    p: Prepared,
    tx_id: u64,
    sent_to: SentTo,
    msg: Message<'static>,
    _lease: StanLease,
}

/// What to do once a journal commit is durable.
enum Cont {
    Reserve {
        name: String,
        upto: u64,
    },
    Sent {
        flow: u64,
    },
    Concluded {
        flow: u64,
        state: TxState,
        answer: OrderAnswer,
        queued: Option<SafRecord>,
    },
    Unsent {
        order: usize,
        answer: OrderAnswer,
    },
    Cancelled {
        order: usize,
        left: u64,
        message: Option<SafRecord>,
    },
    SafAttempt(Box<Attempt>),
    Nothing,
}

struct Link {
    conn: Option<Connection<Token>>,
    conn_id: u64,
    rx: BytesMut,
    timer_at: Option<u64>,
    last_write: u64,
}

/// The switch process: everything here is lost in a crash.
struct Node {
    core: Core,
    saf: Saf,
    links: Vec<Link>,
    ctx: Arc<proto::Context>,
    commits: BTreeMap<u64, (Batch, Cont)>,
    next_commit: u64,
    last_land: u64,
    flows: BTreeMap<u64, Flow>,
    next_flow: u64,
    saf_tick_at: Option<u64>,
}

struct World<'c> {
    cfg: &'c SimulationConfig,
    rng: StdRng,
    now: u64,
    base: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    events: u64,
    db: MemoryBackend,
    spec: Arc<Spec>,
    mapping: Arc<Mapping>,
    codec: FrameCodec,
    acq: SimState,
    acq_conns: BTreeMap<u64, BytesMut>,
    acq_last_write: BTreeMap<u64, u64>,
    node: Option<Node>,
    epoch: u32,
    next_conn: u64,
    merchant: Arc<Merchant>,
    orders: Vec<Order>,
    settled: bool,
    report: RunReport,
    trace: VecDeque<String>,
}

fn merchant() -> Arc<Merchant> {
    let route = Route::new(Contract {
        acquirer: ACQUIRER.into(),
        terminal_id: "SIMTERM1".into(),
        acceptor_id: "SIMACCEPTOR0001".into(),
        merchant_category_code: "5999".into(),
        acquirer_id: "00000000001".into(),
        brands: Vec::new(),
        bins: Vec::new(),
    });
    Arc::new(Merchant {
        id: MERCHANT.into(),
        keys: Vec::new(),
        seal_algorithm: Default::default(),
        googlepay: None,
        routes: route.into_iter().collect(),
    })
}

fn setup(cfg: &SimulationConfig, merchant: &Arc<Merchant>) -> CoreSetup {
    CoreSetup {
        cut_off: crate::switch::cutoff::CutOff::paris(),
        merchants: [(MERCHANT.to_owned(), Arc::clone(merchant))]
            .into_iter()
            .collect(),
        codes: ResponseCodeTable::default(),
        key: CardKey::new(&[0x5a; 32]),
        limits: Limits {
            duplicate_window_ms: 3_600_000,
            duplicate_capacity: 10_000,
            token_replay_window_ms: 3_600_000,
            token_replay_capacity: 10_000,
            vault_ttl_ms: 900_000,
            vault_capacity: 1000,
        },
        acquirers: vec![ACQUIRER.into()],
        saf: SafConfig {
            max_in_flight: 4,
            retry_initial_ms: 50,
            retry_max_ms: cfg.request_timeout_ms * 3,
            expiry_ms: 24 * 3600 * 1000,
        },
        fault: None,
    }
}

impl World<'_> {
    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(T0_MS + self.now)
    }

    fn wall_ms(&self) -> u64 {
        T0_MS + self.now
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    fn log(&mut self, what: impl FnOnce() -> String) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        let line = format!("{:>7} ms  {}", self.now, what());
        self.trace.push_back(line);
    }

    /// A network delay, milliseconds.
    fn latency(&mut self) -> u64 {
        self.rng.gen_range(0..=3)
    }

    // ---- the journal ----

    fn commit(&mut self, batch: Batch, cont: Cont) {
        let epoch = self.epoch;
        let disk = self.rng.gen_range(0..=4);
        let now = self.now;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let id = node.next_commit;
        node.next_commit += 1;
        // One writer: commits land in order.
        let at = node.last_land.max(now + disk);
        node.last_land = at;
        node.commits.insert(id, (batch, cont));
        self.at(at, Ev::Landed { epoch, commit: id });
    }

    fn grow(&mut self, change: Option<Change>) {
        if let Some(Change::Reserve { name, upto }) = change {
            let c = Change::Reserve {
                name: name.clone(),
                upto,
            };
            self.commit(vec![c], Cont::Reserve { name, upto });
        }
    }

    fn landed(&mut self, commit: u64) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let Some((batch, cont)) = node.commits.remove(&commit) else {
            return;
        };
        let applied = match self.db.commit(std::slice::from_ref(&batch)) {
            Ok(mut a) => a.pop().unwrap_or(Applied::Done),
            Err(e) => {
                self.report
                    .violations
                    .push(format!("journal refused a batch: {e}"));
                return;
            }
        };
        match cont {
            Cont::Reserve { name, upto } => node.core.confirm(&name, upto),
            Cont::Sent { flow } => self.sent_landed(flow, applied),
            Cont::Concluded {
                flow,
                state,
                answer,
                queued,
            } => {
                if let Some(f) = node.flows.remove(&flow) {
                    node.core.concluded(&f.p, f.tx_id, state);
                    if let Some(q) = queued {
                        node.saf.push(q);
                    }
                    self.log(|| format!("order {} concluded {state:?}", f.order));
                    self.answer_later(f.order, answer);
                }
                self.pump_saf();
            }
            Cont::Unsent { order, answer } => self.answer_later(order, answer),
            Cont::Cancelled {
                order,
                left,
                message,
            } => {
                if let Some(m) = message {
                    node.saf.push(m);
                }
                // Durable; the answer is on its way to the client.
                self.log(|| format!("order {order} cancelled, {left} left"));
                let epoch = self.epoch;
                let at = self.now + self.latency();
                self.at(at, Ev::CancelTold { epoch, order, left });
                self.pump_saf();
            }
            Cont::SafAttempt(a) => self.send_reversal(*a),
            Cont::Nothing => {}
        }
    }

    // ---- the clients ----

    /// A durable answer on its way to the client: a crash before it
    /// arrives loses it, and the client asks again (and must get the
    /// recorded answer).
    fn answer_later(&mut self, order: usize, answer: OrderAnswer) {
        let epoch = self.epoch;
        let at = self.now + self.latency();
        self.at(
            at,
            Ev::Told {
                epoch,
                order,
                code: answer.response_code,
                auth: answer.authorisation_id,
            },
        );
    }

    fn tell(&mut self, order: usize, code: ResponseCode, auth: Option<String>) {
        let o = &mut self.orders[order];
        if !o.waiting {
            return;
        }
        o.waiting = false;
        if code == ResponseCode::Duplicate {
            // Its own earlier attempt is still in flight: ask again later.
            let at = self.now + 100;
            self.at(at, Ev::Client(order));
            return;
        }
        o.told = Some((code, auth));
        if code.is_approved() && o.cancel.is_some() {
            let at = self.now + self.rng.gen_range(1..=200);
            self.at(at, Ev::Cancel(order));
        }
    }

    /// The client's cancellation of order `i` (told approved): as
    /// `Switch::operate` does it, the decision on what the journal holds,
    /// one durable write, then the acquirer's message queued.
    fn cancel(&mut self, i: usize) {
        let (Some(amount), None, false) = (
            self.orders[i].cancel,
            self.orders[i].cancel_told,
            self.orders[i].cancel_waiting,
        ) else {
            return;
        };
        if self.node.is_none() {
            let at = self.now + 50;
            self.at(at, Ev::Cancel(i));
            return;
        }
        let now_ms = self.wall_ms();
        let reference = self.orders[i].reference.clone();
        let tx = match self.db.transaction(MERCHANT, &reference) {
            Ok(Some(t)) => t,
            other => {
                self.report.violations.push(format!(
                    "{reference}: told approved, not in the journal: {other:?}"
                ));
                return;
            }
        };
        let ops = self.db.operations(tx.id).unwrap_or_default();
        let req = CashRequest {
            kind: OperationKind::Cancel,
            transaction_reference: reference.clone(),
            amount,
            currency: None,
            operation_reference: Some(format!("CANCEL{i}")),
        };
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let today = node.core.cut_off().business_day(now_ms);
        match cash::decide(&tx, &ops, &req, today) {
            Ok(cash::Decision::Repeat(a)) => {
                self.log(|| format!("order {i} cancel retried: recorded answer"));
                self.orders[i].cancel_told = Some(a.new_amount);
            }
            Ok(cash::Decision::Apply { next, notice }) => {
                let expiry = node.core.saf_config().expiry_ms;
                let mut grows = Vec::new();
                let new_id = || {
                    let (id, g) = node.core.next_id().ok()?;
                    grows.push(g);
                    Some(id)
                };
                let Some((batch, message, answer)) =
                    cash::record(&tx, &req, &next, notice, now_ms, expiry, new_id)
                else {
                    self.report.violations.push("ids exhausted".into());
                    return;
                };
                for g in grows {
                    self.grow(g);
                }
                self.orders[i].cancel_waiting = true;
                self.commit(
                    batch,
                    Cont::Cancelled {
                        order: i,
                        left: answer.new_amount,
                        message,
                    },
                );
            }
            Err(r) => self
                .report
                .violations
                .push(format!("{reference}: cancel of an approval refused: {r}")),
        }
    }

    fn client(&mut self, i: usize) {
        if self.orders[i].told.is_some() || self.orders[i].waiting {
            return;
        }
        if self.node.is_none() {
            let at = self.now + 50;
            self.at(at, Ev::Client(i));
            return;
        }
        self.orders[i].waiting = true;
        let now_ms = self.wall_ms();
        let order = CardOrder {
            capture: crate::switch::Capture::default(),
            transaction_reference: self.orders[i].reference.clone(),
            amount: self.orders[i].amount,
            currency: Currency::parse("978").unwrap_or_else(|| unreachable!()),
            order_channel: OrderChannel::Internet,
            card: CardInput::Number(Pan::new(DPAN).unwrap_or_else(|| unreachable!())),
            card_field: "cardNumber",
            expiry: Expiry::new(2030, 12),
            pan_entry_mode: None,
            brand: None,
            wallet: None,
            authentication: Some(Authentication {
                program: HolderAuthentProgram::GooglePay,
                eci: Eci::parse("05"),
                cryptogram: Cryptogram::from_base64(TAVV),
                three_ds: None,
            }),
        };
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let pan = Pan::new(DPAN).unwrap_or_else(|| unreachable!());
        let p = match node
            .core
            .prepare(now_ms, &self.merchant, order, (pan, None, false))
        {
            Ok(p) => p,
            Err(r) => {
                self.report
                    .violations
                    .push(format!("order {i} refused before sending: {r}"));
                self.orders[i].waiting = false;
                return;
            }
        };
        let (tx_id, grow) = match node.core.claim(&p) {
            Ok(c) => c,
            Err(ClaimError::Held(held)) => {
                let answer = self
                    .db
                    .transaction(MERCHANT, &p.request.transaction_reference)
                    .ok()
                    .flatten()
                    .filter(|t| t.id == held.tx_id)
                    .and_then(|t| node.core.retry_answer(&p, &t).ok());
                self.log(|| format!("order {i} retried: held by tx {}", held.tx_id));
                match answer {
                    Some(a) => self.tell(i, a.response_code, a.authorisation_id),
                    None => self.tell(i, ResponseCode::Duplicate, None),
                }
                return;
            }
            Err(ClaimError::Exhausted) => {
                self.tell(i, ResponseCode::Duplicate, None);
                return;
            }
        };
        self.grow(grow);
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let ready = node.links.iter().any(|l| {
            l.conn
                .as_ref()
                .is_some_and(|c| c.state() == LinkState::Ready)
        });
        if !ready {
            node.core.release(&p, tx_id);
            let code = node.core.codes().unreachable;
            let (batch, answer) = node.core.unsent(&p, tx_id, code, now_ms);
            self.log(|| format!("order {i} not sent: no link"));
            self.commit(batch, Cont::Unsent { order: i, answer });
            return;
        }
        let Some(book) = node.core.stans(ACQUIRER) else {
            return;
        };
        let Some(lease) = book.allocator.allocate() else {
            node.core.release(&p, tx_id);
            let grow = book.check();
            self.grow(grow);
            self.tell(i, ResponseCode::Duplicate, None);
            return;
        };
        let grow = book.check();
        let rrn = node.core.next_rrn();
        let (rrn, grow2) = match rrn {
            Ok(r) => r,
            Err(_) => {
                node.core.release(&p, tx_id);
                self.tell(i, ResponseCode::Duplicate, None);
                return;
            }
        };
        let stan = lease.stan().to_string();
        let built = order_message(
            ACQUIRER,
            &self.spec,
            &self.mapping,
            &p,
            stan,
            rrn,
            UNIX_EPOCH + Duration::from_millis(now_ms),
        );
        let (msg, sent_to) = match built {
            Ok(b) => b,
            Err(e) => {
                self.report
                    .violations
                    .push(format!("order {i}: cannot build the 0100: {e}"));
                return;
            }
        };
        let batch = node.core.sent(&p, tx_id, sent_to.clone());
        let flow = node.next_flow;
        node.next_flow += 1;
        node.flows.insert(
            flow,
            Flow {
                order: i,
                p,
                tx_id,
                sent_to,
                msg,
                _lease: lease,
            },
        );
        self.log(|| format!("order {i} tx {tx_id}: sent record committing"));
        self.grow(grow);
        self.grow(grow2);
        self.commit(batch, Cont::Sent { flow });
    }

    fn sent_landed(&mut self, flow: u64, applied: Applied) {
        let now = self.instant();
        let Some(node) = self.node.as_mut() else {
            return;
        };
        match applied {
            Applied::Done => {}
            Applied::Conflict(Conflict::Reference(held)) => {
                let Some(f) = node.flows.remove(&flow) else {
                    return;
                };
                let answer = held.and_then(|t| {
                    node.core.learn_holder(&f.p, f.tx_id, &t);
                    node.core.retry_answer(&f.p, &t).ok()
                });
                match answer {
                    Some(a) => self.tell(f.order, a.response_code, a.authorisation_id),
                    None => self.tell(f.order, ResponseCode::Duplicate, None),
                }
                return;
            }
            Applied::Conflict(Conflict::TokenId) => return,
        }
        // The write-ahead rule holds: the 0100 may go.
        let Some(f) = node.flows.get(&flow) else {
            return;
        };
        let order = f.order;
        let pick = node
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.conn
                    .as_ref()
                    .filter(|c| c.state() == LinkState::Ready)
                    .map(|c| (c.in_flight(), i))
            })
            .min();
        let refused = match pick {
            None => Some(node.core.codes().unreachable),
            Some((_, li)) => match node.ctx.encode_request(&f.msg) {
                Ok(enc) => {
                    let conn = node.links[li].conn.as_mut();
                    match conn.map(|c| c.submit(now, enc, Token::Order(flow))) {
                        Some(Ok(())) => {
                            self.log(|| format!("order {order}: 0100 on link {li}"));
                            self.drive_link(li);
                            None
                        }
                        Some(Err(e)) => Some(node.core.codes().for_link_error(&e.link_error())),
                        None => Some(node.core.codes().unreachable),
                    }
                }
                Err(_) => Some(ResponseCode::TechnicalProblem),
            },
        };
        if let Some(code) = refused {
            self.conclude(flow, Outcome::NotSent(code));
        }
    }

    fn conclude(&mut self, flow: u64, outcome: Outcome) {
        let now_ms = self.wall_ms();
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let Some(f) = node.flows.get(&flow) else {
            return;
        };
        let crate::switch::core::Concluded {
            state,
            batch,
            told: answer,
            queued,
        } = node
            .core
            .conclude(&f.p, f.tx_id, &f.sent_to, &outcome, now_ms);
        self.commit(
            batch,
            Cont::Concluded {
                flow,
                state,
                answer,
                queued,
            },
        );
    }

    // ---- store and forward ----

    fn pump_saf(&mut self) {
        let now_ms = self.wall_ms();
        let epoch = self.epoch;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let ready = node.links.iter().any(|l| {
            l.conn
                .as_ref()
                .is_some_and(|c| c.state() == LinkState::Ready)
        });
        if !ready {
            return;
        }
        loop {
            let Some(node) = self.node.as_mut() else {
                return;
            };
            let core = &node.core;
            let mut stan = || {
                let book = core.stans(ACQUIRER)?;
                book.allocator.allocate().map(|l| l.stan().to_string())
            };
            match node.saf.poll(ACQUIRER, now_ms, &mut stan) {
                Step::Send(a) => {
                    self.log(|| {
                        format!(
                            "reversal of tx {} attempt {} (repeat {})",
                            a.record.tx_id, a.record.attempts, a.repeat
                        )
                    });
                    let update = a.update.clone();
                    self.commit(
                        vec![Change::UpdateSaf(update)],
                        Cont::SafAttempt(Box::new(a)),
                    );
                }
                Step::Expire(r, u) => {
                    self.report
                        .violations
                        .push(format!("reversal of tx {} expired", r.tx_id));
                    self.commit(vec![Change::UpdateSaf(u)], Cont::Nothing);
                }
                Step::Idle(at) => {
                    if let Some(at) = at {
                        let v = at.saturating_sub(T0_MS);
                        if node.saf_tick_at.is_none_or(|t| v < t || t < self.now) {
                            node.saf_tick_at = Some(v);
                            self.at(v, Ev::SafTick { epoch });
                        }
                    }
                    return;
                }
            }
        }
    }

    fn send_reversal(&mut self, a: Attempt) {
        let wall = self.wall();
        let now = self.instant();
        let now_ms = self.wall_ms();
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let id = a.record.id;
        let Some(tx) = self.db.tx(a.record.tx_id).cloned() else {
            self.report.violations.push(format!(
                "reversal of tx {}: no such transaction",
                a.record.tx_id
            ));
            return;
        };
        let msg = match reversal_message(&node.core, &self.spec, &self.mapping, &tx, &a, wall) {
            Ok(m) => m,
            Err(e) => {
                self.report
                    .violations
                    .push(format!("reversal of tx {}: {e}", tx.id));
                return;
            }
        };
        let pick = node
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.conn
                    .as_ref()
                    .filter(|c| c.state() == LinkState::Ready)
                    .map(|c| (c.in_flight(), i))
            })
            .min();
        let sent = match (pick, node.ctx.encode_request(&msg)) {
            (Some((_, li)), Ok(enc)) => node.links[li]
                .conn
                .as_mut()
                .map(|c| c.submit(now, enc, Token::Reversal(id)).is_ok())
                .unwrap_or(false)
                .then_some(li),
            _ => None,
        };
        match sent {
            Some(li) => self.drive_link(li),
            None => {
                node.saf.failed(ACQUIRER, id, now_ms);
                self.pump_saf();
            }
        }
    }

    // ---- links ----

    /// Hands a link's events to their owners, writes what it queued, arms
    /// its timer.
    fn drive_link(&mut self, li: usize) {
        let epoch = self.epoch;
        let mut events = Vec::new();
        let mut out = BytesMut::new();
        let (conn_id, timeout) = {
            let Some(node) = self.node.as_mut() else {
                return;
            };
            let link = &mut node.links[li];
            let Some(c) = link.conn.as_mut() else {
                return;
            };
            while let Some(e) = c.poll_event() {
                events.push(e);
            }
            c.poll_transmit(&mut out);
            (link.conn_id, c.poll_timeout())
        };
        // The pending table's drain order is a hash order: sort failures so
        // a seed replays the same way.
        events.sort_by_key(|e| match e {
            Event::Failed { token, .. } => (1, Some(*token)),
            _ => (0, None),
        });
        if !out.is_empty() {
            let lat = self.latency();
            let now = self.now;
            if let Some(node) = self.node.as_mut() {
                let link = &mut node.links[li];
                let at = link.last_write.max(now + lat);
                link.last_write = at;
                self.at(
                    at,
                    Ev::ToAcquirer {
                        conn: conn_id,
                        bytes: out.freeze(),
                    },
                );
            }
        }
        if let Some(t) = timeout {
            let at = u64::try_from(t.saturating_duration_since(self.base).as_millis())
                .unwrap_or(u64::MAX);
            if let Some(node) = self.node.as_mut() {
                let link = &mut node.links[li];
                if link.timer_at != Some(at) {
                    link.timer_at = Some(at);
                    self.at(at, Ev::LinkTimer { epoch, link: li });
                }
            }
        }
        for e in events {
            self.on_link_event(li, conn_id, e);
        }
    }

    fn on_link_event(&mut self, li: usize, conn_id: u64, e: Event<Token>) {
        let now_ms = self.wall_ms();
        match e {
            Event::Answered { token, response } => {
                let a = self.mapping.read_response(&self.spec, response.message());
                match token {
                    Token::Order(flow) => {
                        self.log(|| format!("flow {flow}: answered {:?}", a.response_code));
                        self.conclude(
                            flow,
                            Outcome::Answered {
                                response_code: a.response_code,
                                authorisation_id: a.authorisation_id,
                            },
                        );
                    }
                    Token::Reversal(id) => {
                        self.log(|| format!("reversal {id}: acknowledged"));
                        if let Some(node) = self.node.as_mut() {
                            if let Some(u) =
                                node.saf.acknowledged(ACQUIRER, id, a.response_code, now_ms)
                            {
                                self.commit(vec![Change::UpdateSaf(u)], Cont::Nothing);
                            }
                        }
                        self.pump_saf();
                    }
                }
            }
            Event::Failed { token, failure } => match token {
                Token::Order(flow) => {
                    self.log(|| format!("flow {flow}: failed {failure:?}"));
                    // As the switch reads it (the driver turns a failure
                    // into this error).
                    let e = crate::net::LinkError::from(failure);
                    let outcome = match self.node.as_ref() {
                        Some(n) => Outcome::of_link_error(n.core.codes(), &e),
                        None => return,
                    };
                    self.conclude(flow, outcome);
                }
                Token::Reversal(id) => {
                    if let Some(node) = self.node.as_mut() {
                        node.saf.failed(ACQUIRER, id, now_ms);
                    }
                    self.pump_saf();
                }
            },
            Event::Stray(s) => self.log(|| format!("link {li}: stray {:?}", s.kind)),
            Event::StateChanged(st) => {
                self.log(|| format!("link {li}: {st:?}"));
                if st == LinkState::Ready {
                    self.pump_saf();
                }
            }
            Event::Down(reason) => {
                self.log(|| format!("link {li}: down ({reason})"));
                self.acq_conns.remove(&conn_id);
                let epoch = self.epoch;
                let backoff = self.rng.gen_range(20..=150);
                let now = self.now;
                if let Some(node) = self.node.as_mut() {
                    node.links[li].conn = None;
                    node.links[li].timer_at = None;
                }
                self.at(now + backoff, Ev::Connect { epoch, link: li });
            }
        }
    }

    fn connect(&mut self, li: usize) {
        let now = self.instant();
        let wall = self.wall();
        let conn_id = self.next_conn;
        let reset_after = (self.cfg.network_faults && !self.settled && self.rng.gen_bool(0.3))
            .then(|| self.rng.gen_range(20..=self.cfg.active_ms.max(21)));
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let link = &mut node.links[li];
        if link.conn.is_some() {
            return;
        }
        self.next_conn += 1;
        self.acq_conns.insert(conn_id, BytesMut::new());
        let mut c = Connection::new(Arc::clone(&node.ctx), now, wall);
        c.handle_connected(now);
        link.conn = Some(c);
        link.conn_id = conn_id;
        link.rx.clear();
        link.last_write = 0;
        self.log(|| format!("link {li}: connected (connection {conn_id})"));
        if let Some(after) = reset_after {
            let at = self.now + after;
            self.at(at, Ev::Reset { conn: conn_id });
        }
        self.drive_link(li);
    }

    /// The switch side of a connection learns it is closed.
    fn close_switch_side(&mut self, conn: u64) {
        let now = self.instant();
        let found = self.node.as_mut().and_then(|node| {
            node.links
                .iter_mut()
                .position(|l| l.conn_id == conn && l.conn.is_some())
        });
        if let (Some(li), Some(node)) = (found, self.node.as_mut()) {
            if let Some(c) = node.links[li].conn.as_mut() {
                c.handle_closed(now);
            }
            self.drive_link(li);
        }
    }

    fn deliver_to_switch(&mut self, conn: u64, bytes: Bytes) {
        let now = self.instant();
        let codec = self.codec.clone();
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let Some(li) = node
            .links
            .iter()
            .position(|l| l.conn_id == conn && l.conn.is_some())
        else {
            return;
        };
        let link = &mut node.links[li];
        link.rx.extend_from_slice(&bytes);
        while let Some(c) = link.conn.as_mut() {
            match codec.decode_frame(&mut link.rx) {
                Ok(Some(frame)) => c.handle_frame(now, frame),
                Ok(None) => break,
                Err(e) => {
                    c.handle_corrupt(now, e);
                    break;
                }
            }
        }
        self.drive_link(li);
    }

    // ---- the acquirer ----

    fn deliver_to_acquirer(&mut self, conn: u64, bytes: Bytes) {
        let Some(rx) = self.acq_conns.get_mut(&conn) else {
            return;
        };
        rx.extend_from_slice(&bytes);
        let mut writes = Vec::new();
        let mut close = false;
        loop {
            let frame = match self.codec.decode_frame(rx) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    close = true;
                    break;
                }
            };
            let Frame::Message { header, body } = frame else {
                continue;
            };
            let Ok(msg) = self.spec.decode(&body) else {
                continue;
            };
            for action in respond(&self.spec, &msg, &mut self.acq) {
                let (delay, content) = match action {
                    Action::Reply { msg, delay } => {
                        let mut out = BytesMut::new();
                        let start = self.codec.begin_with_header(&mut out, &header);
                        if self.spec.encode(&msg, &mut out).is_err()
                            || self.codec.finish(&mut out, start).is_err()
                        {
                            continue;
                        }
                        (delay, out.freeze())
                    }
                    Action::Garbage { delay } => {
                        let mut out = BytesMut::new();
                        let start = self.codec.begin_with_header(&mut out, &header);
                        out.extend_from_slice(b"\xFF\xFFgarbage\x00");
                        if self.codec.finish(&mut out, start).is_err() {
                            continue;
                        }
                        (delay, out.freeze())
                    }
                    Action::Close => {
                        close = true;
                        break;
                    }
                };
                writes.push((u64::try_from(delay.as_millis()).unwrap_or(0), content));
            }
            if close {
                break;
            }
        }
        for (delay, content) in writes {
            let at = self.now + delay;
            self.at(
                at,
                Ev::AcquirerWrite {
                    conn,
                    bytes: content,
                },
            );
        }
        if close {
            let at = self.now;
            self.at(at, Ev::AcquirerClose { conn });
        }
    }

    fn acquirer_write(&mut self, conn: u64, bytes: Bytes) {
        if !self.acq_conns.contains_key(&conn) {
            return;
        }
        let lat = self.latency();
        let last = self.acq_last_write.entry(conn).or_insert(0);
        let at = (*last).max(self.now + lat);
        *last = at;
        self.at(at, Ev::ToSwitch { conn, bytes });
    }

    // ---- crashes ----

    fn crash(&mut self) {
        if self.node.is_none() || self.settled {
            return;
        }
        self.report.crashes += 1;
        self.epoch += 1;
        self.log(|| "CRASH".into());
        if let Some(node) = self.node.take() {
            for l in &node.links {
                if l.conn.is_some() {
                    self.acq_conns.remove(&l.conn_id);
                }
            }
        }
        let restart = self.now + self.rng.gen_range(10..=300);
        for i in 0..self.orders.len() {
            if self.orders[i].waiting {
                // The client's connection died with the switch: it retries.
                self.orders[i].waiting = false;
                let at = restart + self.rng.gen_range(1..=100);
                self.at(at, Ev::Client(i));
            }
            if self.orders[i].cancel_waiting {
                self.orders[i].cancel_waiting = false;
                let at = restart + self.rng.gen_range(1..=100);
                self.at(at, Ev::Cancel(i));
            }
        }
        self.at(restart, Ev::Restart);
    }

    fn restart(&mut self) {
        if self.node.is_some() {
            return;
        }
        let now_ms = self.wall_ms();
        let s = setup(self.cfg, &self.merchant);
        let span = s.limits.recovery_span(now_ms);
        let rec = match self.db.recover(&span) {
            Ok(r) => r,
            Err(e) => {
                self.report.violations.push(format!("recovery failed: {e}"));
                return;
            }
        };
        let (core, startup, report) = Core::recover(s, rec, now_ms);
        if let Err(e) = self.db.commit(std::slice::from_ref(&startup)) {
            self.report
                .violations
                .push(format!("start-up batch refused: {e}"));
            return;
        }
        core.start(&startup);
        let stans = core
            .stans(ACQUIRER)
            .map(|b| Arc::clone(&b.allocator))
            .unwrap_or_else(crate::net::StanAllocator::new);
        let mut saf = Saf::new(*core.saf_config());
        for q in report.saf {
            saf.push(q);
        }
        let ctx = Arc::new(proto::Context {
            cfg: LinkConfig {
                request_timeout: Duration::from_millis(self.cfg.request_timeout_ms),
                network_timeout: Duration::from_millis(self.cfg.request_timeout_ms),
                echo_interval: None,
                sign_on: true,
                max_in_flight: 64,
                remember_finished: 1024,
                ..LinkConfig::default()
            },
            spec: Arc::clone(&self.spec),
            codec: self.codec.clone(),
            stans,
        });
        let unknown = report.unknown.len();
        self.log(|| format!("RESTART: {unknown} unknown"));
        self.node = Some(Node {
            core,
            saf,
            links: (0..self.cfg.links)
                .map(|_| Link {
                    conn: None,
                    conn_id: u64::MAX,
                    rx: BytesMut::new(),
                    timer_at: None,
                    last_write: 0,
                })
                .collect(),
            ctx,
            commits: BTreeMap::new(),
            next_commit: 0,
            last_land: 0,
            flows: BTreeMap::new(),
            next_flow: 0,
            saf_tick_at: None,
        });
        let epoch = self.epoch;
        for li in 0..self.cfg.links {
            let at = self.now + self.rng.gen_range(1..=20);
            self.at(at, Ev::Connect { epoch, link: li });
        }
    }

    fn quiet(&self) -> bool {
        let Some(node) = self.node.as_ref() else {
            return false;
        };
        self.orders.iter().all(|o| o.told.is_some())
            && self.orders.iter().all(|o| {
                o.cancel.is_none()
                    || o.cancel_told.is_some()
                    || !o.told.as_ref().is_some_and(|(c, _)| c.is_approved())
            })
            && node.saf.depth() == 0
            && node.commits.is_empty()
            && node.flows.is_empty()
    }

    fn step(&mut self, ev: Ev) {
        self.events += 1;
        let epoch = self.epoch;
        match ev {
            Ev::Client(i) => self.client(i),
            Ev::Cancel(i) => self.cancel(i),
            Ev::CancelTold {
                epoch: e,
                order,
                left,
            } if e == epoch => {
                let o = &mut self.orders[order];
                o.cancel_waiting = false;
                o.cancel_told = Some(left);
            }
            Ev::CancelTold { .. } => {}
            Ev::Told {
                epoch: e,
                order,
                code,
                auth,
            } if e == epoch => self.tell(order, code, auth),
            Ev::Told { .. } => {}
            Ev::Landed { epoch: e, commit } if e == epoch => self.landed(commit),
            Ev::Landed { .. } => {}
            Ev::ToSwitch { conn, bytes } => self.deliver_to_switch(conn, bytes),
            Ev::ToAcquirer { conn, bytes } => self.deliver_to_acquirer(conn, bytes),
            Ev::AcquirerWrite { conn, bytes } => self.acquirer_write(conn, bytes),
            Ev::AcquirerClose { conn } => {
                if self.acq_conns.remove(&conn).is_some() {
                    self.log(|| format!("acquirer closed connection {conn}"));
                    self.close_switch_side(conn);
                }
            }
            Ev::Reset { conn } => {
                if !self.settled && self.acq_conns.remove(&conn).is_some() {
                    self.report.resets += 1;
                    self.log(|| format!("network reset connection {conn}"));
                    self.close_switch_side(conn);
                }
            }
            Ev::LinkTimer { epoch: e, link } if e == epoch => {
                let now = self.instant();
                let fire = self.node.as_mut().is_some_and(|n| {
                    n.links[link].timer_at = None;
                    if let Some(c) = n.links[link].conn.as_mut() {
                        c.handle_timeout(now);
                        true
                    } else {
                        false
                    }
                });
                if fire {
                    self.drive_link(link);
                }
            }
            Ev::LinkTimer { .. } => {}
            Ev::Connect { epoch: e, link } if e == epoch => self.connect(link),
            Ev::Connect { .. } => {}
            Ev::SafTick { epoch: e } if e == epoch => {
                if let Some(n) = self.node.as_mut() {
                    n.saf_tick_at = None;
                }
                self.pump_saf();
            }
            Ev::SafTick { .. } => {}
            Ev::Crash => self.crash(),
            Ev::Restart => self.restart(),
            Ev::Settle => {
                self.settled = true;
                self.acq.faults = Faults::default();
                self.log(|| "SETTLE: faults and crashes stop".into());
                // Whatever waits for a retry gets one.
                self.pump_saf();
            }
        }
    }

    fn check(&mut self) {
        let db = &self.db;
        let by_stan: HashMap<(String, String), (u64, String)> = db
            .all_transactions()
            .filter_map(|t| {
                t.sent_to.as_ref().map(|s| {
                    (
                        (s.terminal_id.clone(), s.stan.clone()),
                        (t.id, t.reference.clone()),
                    )
                })
            })
            .collect();
        let told: HashMap<&str, &(ResponseCode, Option<String>)> = self
            .orders
            .iter()
            .filter_map(|o| o.told.as_ref().map(|t| (o.reference.as_str(), t)))
            .collect();
        let mut v = Vec::new();
        let mut approved_per_reference: HashMap<String, usize> = HashMap::new();
        let ledger = self.acq.ledger.authorizations();
        let approved_ids: Vec<&str> = ledger
            .iter()
            .filter(|e| e.approved())
            .filter_map(|e| e.authorization_id.as_deref())
            .collect();
        for e in ledger.iter().filter(|e| e.approved()) {
            self.report.approved_at_acquirer += 1;
            let Some((tx, reference)) = by_stan.get(&(e.terminal.clone(), e.stan.clone())) else {
                v.push(format!(
                    "approval {}/{} unknown to the journal",
                    e.terminal, e.stan
                ));
                continue;
            };
            *approved_per_reference.entry(reference.clone()).or_default() += 1;
            let was_told = told.get(reference.as_str()).is_some_and(|(c, auth)| {
                c.is_approved() && auth.as_deref() == e.authorization_id.as_deref()
            });
            // The merchant's cancellations of it (each one reversal at the
            // acquirer, full or partial), and what the journal says is left.
            let record = db.tx(*tx);
            let cancels = db.operations_of(*tx).filter(|o| o.kind == "cancel").count() as u64;
            let left = record.map(|t| cash::lifecycle_of(t).remaining);
            if e.reversed && !was_told {
                self.report.reversed += 1;
            }
            let expected = if was_told { cancels } else { 1 };
            if e.reversals_applied > expected {
                v.push(format!(
                    "tx {tx} ({reference}): {} reversals applied, {expected} expected",
                    e.reversals_applied
                ));
            }
            match (was_told, e.reversed) {
                (true, true) if left != Some(0) => {
                    v.push(format!("tx {tx} ({reference}): told approved and reversed"))
                }
                (false, false) => v.push(format!(
                    "tx {tx} ({reference}): approval lost (not told, not reversed)"
                )),
                _ => {}
            }
            if was_told {
                self.report.cancelled += usize::from(cancels > 0);
                // The acquirer's view balances with the journal's.
                if Some(e.authorized_amount) != left || e.reversals_applied != cancels {
                    v.push(format!(
                        "tx {tx} ({reference}): the acquirer holds {} authorized after {} reversals, the journal {left:?} after {cancels} cancellations",
                        e.authorized_amount, e.reversals_applied
                    ));
                }
            }
        }
        for (r, n) in approved_per_reference {
            if n > 1 {
                v.push(format!("{r}: approved {n} times at the acquirer"));
            }
        }
        for o in &self.orders {
            // A cancellation applied exactly once, however often retried.
            if let (Some(cancel), Some(told_left)) = (o.cancel, o.cancel_told) {
                let t = db
                    .all_transactions()
                    .filter(|t| t.reference == o.reference)
                    .max_by_key(|t| t.id);
                let left = t.map(|t| cash::lifecycle_of(t).remaining);
                let want = o.amount - cancel;
                if left != Some(want) || told_left != want {
                    v.push(format!(
                        "{}: cancelled {cancel} of {}: told {told_left} left, the journal {left:?}",
                        o.reference, o.amount
                    ));
                }
            }
            match &o.told {
                None => v.push(format!("{}: never answered", o.reference)),
                Some((c, auth)) if c.is_approved() => {
                    self.report.told_approved += 1;
                    if !auth.as_deref().is_some_and(|a| approved_ids.contains(&a)) {
                        v.push(format!(
                            "{}: told approved, unknown to the acquirer",
                            o.reference
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        for t in db.all_transactions() {
            if t.state == TxState::Sent {
                v.push(format!("tx {}: still open", t.id));
            }
        }
        for q in db.saf() {
            if q.state != crate::journal::SafState::Acknowledged {
                v.push(format!("reversal of tx {}: {:?}", q.tx_id, q.state));
            }
        }
        self.report.violations.extend(v);
    }
}

/// Runs seed `seed`; see the module documentation.
pub fn run(seed: u64, cfg: &SimulationConfig) -> RunReport {
    run_traced(seed, cfg, false)
}

/// Runs seed `seed`, keeping its last events in the report even when it
/// passes (`keep_trace`: a replay, for reading).
pub fn run_traced(seed: u64, cfg: &SimulationConfig, keep_trace: bool) -> RunReport {
    let spec = match Spec::builtin("cb2a") {
        Ok(s) => Arc::new(s),
        Err(e) => {
            return RunReport {
                seed,
                violations: vec![format!("dialect: {e}")],
                ..RunReport::default()
            }
        }
    };
    let mapping = match Mapping::load("cb2a", &spec) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            return RunReport {
                seed,
                violations: vec![format!("mapping: {e}")],
                ..RunReport::default()
            }
        }
    };
    let codec = match FramingConfig::default().codec() {
        Ok(c) => c,
        Err(e) => {
            return RunReport {
                seed,
                violations: vec![format!("framing: {e}")],
                ..RunReport::default()
            }
        }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Faults::default();
    if cfg.acquirer_faults {
        let t = cfg.request_timeout_ms;
        faults.latency = match rng.gen_range(0..3) {
            0 => Latency::Uniform(Duration::ZERO, Duration::from_millis(t / 3)),
            1 => Latency::Uniform(Duration::ZERO, Duration::from_millis(t * 2)),
            _ => Latency::Uniform(
                Duration::from_millis(t / 2),
                Duration::from_millis(t * 3 / 2),
            ),
        };
        let every = |rng: &mut StdRng, p: f64, lo: u64, hi: u64| {
            rng.gen_bool(p).then(|| rng.gen_range(lo..=hi))
        };
        faults.no_response_every = every(&mut rng, 0.5, 3, 20);
        faults.duplicate_every = every(&mut rng, 0.4, 2, 12);
        faults.garbage_every = every(&mut rng, 0.3, 3, 20);
        faults.drop_after = every(&mut rng, 0.4, 4, 40);
    }
    let acq = SimState::new(faults, 0, 1_000_000, seed);
    let orders = (0..cfg.orders)
        .map(|i| Order {
            reference: format!("S{seed}N{i}"),
            amount: match rng.gen_range(0..10) {
                0 => 1005,
                1 => 1099,
                _ => 1000,
            },
            told: None,
            waiting: false,
            cancel: match rng.gen_range(0..6) {
                0 => Some(1000),
                1 | 2 => Some(rng.gen_range(1..1000)),
                _ => None,
            },
            cancel_told: None,
            cancel_waiting: false,
        })
        .collect();
    let mut w = World {
        cfg,
        rng,
        now: 0,
        base: Instant::now(),
        seq: 0,
        queue: BinaryHeap::new(),
        events: 0,
        db: MemoryBackend::new(),
        spec,
        mapping,
        codec,
        acq,
        acq_conns: BTreeMap::new(),
        acq_last_write: BTreeMap::new(),
        node: None,
        epoch: 0,
        next_conn: 0,
        merchant: merchant(),
        orders,
        settled: false,
        report: RunReport {
            seed,
            orders: cfg.orders,
            ..RunReport::default()
        },
        trace: VecDeque::new(),
    };
    w.restart();
    for i in 0..cfg.orders {
        let at = w.rng.gen_range(0..cfg.active_ms);
        w.at(at, Ev::Client(i));
    }
    if cfg.crashes {
        for _ in 0..w.rng.gen_range(0..=3) {
            let at = w.rng.gen_range(1..cfg.active_ms);
            w.at(at, Ev::Crash);
        }
    }
    w.at(cfg.active_ms, Ev::Settle);
    let limit = cfg.active_ms + 120_000;
    while let Some(Reverse(s)) = w.queue.pop() {
        w.now = s.at;
        if w.now > limit || w.events > 2_000_000 {
            w.report.violations.push("did not settle in time".into());
            break;
        }
        w.step(s.ev);
        if w.settled && w.quiet() {
            break;
        }
    }
    if !w.quiet() && w.report.violations.is_empty() {
        let untold = w.orders.iter().filter(|o| o.told.is_none()).count();
        let depth = w.node.as_ref().map_or(0, |n| n.saf.depth());
        w.report.violations.push(format!(
            "did not settle: {untold} orders unanswered, {depth} reversals queued"
        ));
    }
    w.check();
    w.report.events = w.events;
    w.report.virtual_ms = w.now;
    if keep_trace || !w.report.violations.is_empty() {
        w.report.trace = w.trace.into_iter().collect();
    }
    w.report
}

/// Runs `count` seeds from `first`; the summary and the failing runs.
pub fn run_many(first: u64, count: u64, cfg: &SimulationConfig) -> (Summary, Vec<RunReport>) {
    let mut s = Summary::default();
    let mut failed = Vec::new();
    for seed in first..first.saturating_add(count) {
        let r = run(seed, cfg);
        s.runs += 1;
        s.orders += r.orders as u64;
        s.told_approved += r.told_approved as u64;
        s.approved_at_acquirer += r.approved_at_acquirer as u64;
        s.reversed += r.reversed as u64;
        s.cancelled += r.cancelled as u64;
        s.crashes += u64::from(r.crashes);
        s.resets += u64::from(r.resets);
        s.events += r.events;
        if !r.violations.is_empty() {
            s.failed += 1;
            failed.push(r);
        }
    }
    (s, failed)
}

/// Totals over many runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub runs: u64,
    pub failed: u64,
    pub orders: u64,
    pub told_approved: u64,
    pub approved_at_acquirer: u64,
    pub reversed: u64,
    /// Approvals told and then cancelled by the client (all or part).
    pub cancelled: u64,
    pub crashes: u64,
    pub resets: u64,
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_exactly() {
        let cfg = SimulationConfig::default();
        let a = run(42, &cfg);
        let b = run(42, &cfg);
        assert_eq!(a, b);
        assert!(a.events > 100, "{a:?}");
    }

    #[test]
    fn without_faults_everything_is_told_and_nothing_reversed() {
        let cfg = SimulationConfig {
            crashes: false,
            acquirer_faults: false,
            network_faults: false,
            ..SimulationConfig::default()
        };
        let r = run(7, &cfg);
        assert!(r.violations.is_empty(), "{:#?}", r);
        assert_eq!(r.reversed, 0);
        assert_eq!(r.told_approved, r.approved_at_acquirer);
        assert!(r.told_approved > 0);
    }
}
