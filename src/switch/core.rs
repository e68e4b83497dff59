//! The switch's decisions, without I/O: what an order becomes, what the
//! journal gets and what the merchant is told at each step, and what a
//! restart makes of the journal. `now` (Unix milliseconds) is passed in;
//! the shared state (windows, sequences) sits in sharded maps and atomics.
//!
//! [`super::Switch`] drives these steps with the journal and the acquirer
//! links; a deterministic simulation drives the same steps with its own
//! scheduler. A card order goes:
//!
//! ```text
//!  prepare ──► claim ──► sent (Batch: claim + record) ══durable══► send 0100
//!    │ 12/30/03   │ held: replay or 94                                  │
//!    ▼            ▼                                                     ▼
//!  refusal      answer from the journal            conclude (Batch: outcome) ══durable══► answer
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use super::codes::{ResponseCode, ResponseCodeTable};
use super::cutoff::CutOff;
use super::domain::{
    Authentication, AuthorizationRequest, CardBrand, Currency, HolderAuthentProgram, OrderChannel,
    PanEntryMode, ReversalReason, ReversalRequest, Wallet,
};
use super::lifecycle::{CaptureMode, MAX_CAPTURE_DAY};
use super::operation::{Capture, CardOrder, OrderAnswer, Refusal};
use super::routing::{self, Route};
use super::saf::SafConfig;
use super::sequence::{Exhausted, Reservation, Sequence};
use super::windows::{Claim, RefEntry, RefStatus, ReferenceIndex, TokenIndex, VaultIndex};
use super::Merchant;
use crate::card::{Expiry, Pan};
use crate::journal::crypto::SealDomain;
use crate::journal::{
    Answer, Batch, CardKey, Change, Recovered, RecoverySpan, ReversalState, SafKind, SafRecord,
    SentTo, TxRecord, TxState, TxUpdate, VaultRecord,
};
use crate::net::StanAllocator;

/// Sequence names in the journal's `counters`.
pub const IDS: &str = "ids";
pub const RRNS: &str = "rrn";

/// The counter name of an acquirer's STANs.
pub fn stan_counter(acquirer: &str) -> String {
    format!("stan:{acquirer}")
}

/// Blocks reserved at a time.
const ID_BLOCK: u64 = 100_000;
const STAN_BLOCK: u64 = 20_000;
/// RRNs are 12 digits; the sequence wraps below this.
const RRN_MODULUS: u64 = 1_000_000_000_000;

/// A fault to inject, for the tests that prove the write-ahead rule
/// (`ACQSWITCH_FAULT`): the process aborts at that point, as a kill would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// After the "sent" record is durable, before the 0100 is written.
    CrashAfterJournalBeforeSend,
    /// The first approval's outcome is not recorded (its commit is taken
    /// as failed), as a full disk would do.
    FirstApprovalNotRecorded,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        match s {
            "crash-after-journal-before-send" => Some(Fault::CrashAfterJournalBeforeSend),
            "first-approval-not-recorded" => Some(Fault::FirstApprovalNotRecorded),
            _ => None,
        }
    }
}

/// How long the windows remember, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub duplicate_window_ms: u64,
    pub duplicate_capacity: usize,
    pub token_replay_window_ms: u64,
    pub token_replay_capacity: usize,
    pub vault_ttl_ms: u64,
    pub vault_capacity: usize,
}

impl Limits {
    /// What start-up reads back from the journal.
    pub fn recovery_span(&self, now_ms: u64) -> RecoverySpan {
        RecoverySpan {
            references_since_ms: now_ms.saturating_sub(self.duplicate_window_ms),
            references_max: self.duplicate_capacity,
            token_ids_since_ms: now_ms.saturating_sub(self.token_replay_window_ms),
            token_ids_max: self.token_replay_capacity,
            vault_valid_at_ms: now_ms,
            vault_max: self.vault_capacity,
        }
    }
}

/// An acquirer's STAN numbering: the allocator its pools share, bounded by
/// the journal's reservation.
#[derive(Debug)]
pub struct StanBook {
    pub allocator: Arc<StanAllocator>,
    pub reservation: Reservation,
}

impl StanBook {
    /// After a STAN was taken: the change that grows the reservation,
    /// when due.
    pub fn check(&self) -> Option<Change> {
        self.reservation
            .check(self.allocator.position().saturating_sub(1))
    }

    /// The growth to `upto` is durable.
    pub fn confirm(&self, upto: u64) {
        self.reservation.confirm(upto);
        self.allocator.set_limit(upto);
    }
}

/// What start-up found, for the log and for the reversal work.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Transactions found without an outcome, now `unknown` (a reversal
    /// queued for each).
    pub unknown: Vec<TxRecord>,
    /// Store-and-forward messages queued: those found in the journal and
    /// those queued for the unknown transactions.
    pub saf: Vec<SafRecord>,
    pub references: usize,
    pub token_ids: usize,
    pub vault: usize,
}

/// An order ready to go: the typed request, its route and content hash.
/// Owns what it needs (the merchant is shared), so it can wait for the
/// journal and the acquirer.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub merchant: Arc<Merchant>,
    pub request: AuthorizationRequest,
    /// Index of the chosen contract in the merchant's routes.
    route: usize,
    pub content_hash: [u8; 32],
    pub now_ms: u64,
    /// The reference's key in the in-memory window.
    ref_key: u128,
    pub capture: Capture,
}

impl Prepared {
    /// The contract the order goes through.
    pub fn route(&self) -> &Route {
        // The index was found in these routes; they never change.
        &self.merchant.routes[self.route]
    }

    /// The first 16 bytes of the content hash, as memory keeps it.
    pub fn content_key(&self) -> u128 {
        content_key(&self.content_hash)
    }
}

fn content_key(h: &[u8; 32]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    u128::from_be_bytes(b)
}

/// What became of a request at the acquirer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The acquirer answered: its response code and authorization id.
    Answered {
        response_code: Option<String>,
        authorisation_id: Option<String>,
    },
    /// Nothing was written: the code to answer (no link, busy...).
    NotSent(ResponseCode),
    /// Written, no answer (timeout, link dropped): the code to answer, and
    /// why it is reversed.
    MaybeDelivered(ResponseCode, ReversalReason),
}

/// What [`Core::conclude`] decided: the transaction's state, the batch
/// that records it, the merchant's answer, and the reversal the batch
/// queues (to push to the store-and-forward queue once it is durable).
#[derive(Debug, Clone)]
pub struct Concluded {
    pub state: TxState,
    pub batch: Batch,
    pub told: OrderAnswer,
    pub queued: Option<SafRecord>,
}

impl Outcome {
    /// What a link failure means for an order: not sent, or maybe
    /// delivered (then reversed), with the code `codes` answers for it.
    pub fn of_link_error(codes: &ResponseCodeTable, e: &crate::net::LinkError) -> Outcome {
        let code = codes.for_link_error(e);
        if !e.maybe_delivered() {
            return Outcome::NotSent(code);
        }
        let reason = match e {
            crate::net::LinkError::Timeout => ReversalReason::Timeout,
            _ => ReversalReason::LinkDropped,
        };
        Outcome::MaybeDelivered(code, reason)
    }
}

/// Why a claim did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    Held(RefEntry),
    /// Transaction ids ran ahead of their reservation (answer 90).
    Exhausted,
}

/// See the module documentation.
pub struct Core {
    merchants: HashMap<String, Arc<Merchant>>,
    codes: ResponseCodeTable,
    key: CardKey,
    pub(crate) references: ReferenceIndex,
    pub(crate) tokens: TokenIndex,
    pub(crate) vault: VaultIndex,
    ids: Sequence,
    rrns: Sequence,
    stans: HashMap<String, StanBook>,
    limits: Limits,
    saf: SafConfig,
    fault: Option<Fault>,
    fault_fired: std::sync::atomic::AtomicBool,
    cut_off: CutOff,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("merchants", &self.merchants.len())
            .field("references", &self.references.len())
            .field("tokens", &self.tokens.len())
            .field("vault", &self.vault.len())
            .finish_non_exhaustive()
    }
}

/// What [`Core::recover`] needs besides the journal's contents.
pub struct CoreSetup {
    pub merchants: HashMap<String, Arc<Merchant>>,
    pub codes: ResponseCodeTable,
    pub key: CardKey,
    pub limits: Limits,
    /// Acquirer names (one STAN sequence each).
    pub acquirers: Vec<String>,
    pub saf: SafConfig,
    pub fault: Option<Fault>,
    /// When business days end (capture days, the daily cut-off).
    pub cut_off: CutOff,
}

fn reserved(rec: &Recovered, name: &str) -> Option<u64> {
    rec.counters
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
}

impl Core {
    /// Rebuilds the switch's state from the journal. The returned batch
    /// (the transactions left open marked `unknown`, and fresh sequence
    /// reservations) must be durable before [`Core::start`] and any
    /// traffic.
    pub fn recover(setup: CoreSetup, rec: Recovered, now_ms: u64) -> (Core, Batch, RecoveryReport) {
        let mut batch = Batch::new();
        let mut sequence = |name: &str, first: u64, block: u64| {
            let start = reserved(&rec, name).unwrap_or(first).max(first);
            batch.push(Change::Reserve {
                name: name.to_owned(),
                upto: start + block,
            });
            (start, block)
        };
        let (id0, idb) = sequence(IDS, 1, ID_BLOCK);
        let (rrn0, rrnb) = sequence(RRNS, 1, ID_BLOCK);
        let mut stan_starts = Vec::new();
        for a in &setup.acquirers {
            let name = stan_counter(a);
            let (s0, sb) = sequence(&name, 0, STAN_BLOCK);
            stan_starts.push((a.clone(), name, s0, sb));
        }
        let stans = stan_starts
            .into_iter()
            .map(|(a, name, s0, sb)| {
                (
                    a,
                    StanBook {
                        // Refuses every STAN until the reservation is durable.
                        allocator: StanAllocator::resume_at(s0, s0),
                        reservation: Reservation::new(name, s0, sb),
                    },
                )
            })
            .collect();
        let limits = setup.limits;
        let core = Core {
            merchants: setup.merchants,
            codes: setup.codes,
            key: setup.key,
            references: ReferenceIndex::new(
                limits.duplicate_window_ms,
                limits.duplicate_capacity,
                now_ms,
            ),
            tokens: TokenIndex::new(
                limits.token_replay_window_ms,
                limits.token_replay_capacity,
                now_ms,
            ),
            vault: VaultIndex::new(limits.vault_ttl_ms, limits.vault_capacity, now_ms),
            ids: Sequence::new(IDS, id0, id0, idb),
            rrns: Sequence::new(RRNS, rrn0, rrn0, rrnb),
            stans,
            limits,
            saf: setup.saf,
            fault: setup.fault,
            fault_fired: std::sync::atomic::AtomicBool::new(false),
            cut_off: setup.cut_off,
        };
        let mut report = RecoveryReport {
            saf: rec.saf.clone(),
            ..RecoveryReport::default()
        };
        // Every transaction left open may have been approved: it is
        // reversed (queued in the same durable write that marks it).
        for tx in rec.open {
            batch.push(Change::UpdateTx(TxUpdate {
                id: tx.id,
                state: TxState::Unknown,
                updated_ms: now_ms,
                answer: None,
            }));
            if let Some(q) = core.reversal_record(&tx, ReversalReason::UnknownAtStart, now_ms) {
                batch.push(Change::QueueSaf(Box::new(q.clone())));
                report.saf.push(q);
            }
            report.unknown.push(TxRecord {
                state: TxState::Unknown,
                updated_ms: now_ms,
                reversal: ReversalState::Queued,
                ..tx
            });
        }
        // Every reference held is final now: a transaction that was open
        // is `unknown` (answered 99 on a retry, never approved).
        for t in &rec.references {
            core.references.restore(
                &t.merchant_id,
                &t.reference,
                RefEntry {
                    tx_id: t.tx_id,
                    content: content_key(&t.content_hash),
                    created_ms: t.created_ms,
                    status: RefStatus::Final,
                },
                now_ms,
            );
        }
        report.references = rec.references.len();
        for t in &rec.token_ids {
            core.tokens
                .restore(&t.merchant_id, &t.message_id, t.seen_ms, now_ms);
        }
        report.token_ids = rec.token_ids.len();
        report.vault = rec.vault.len();
        for v in rec.vault {
            core.vault.put(v, now_ms);
        }
        (core, batch, report)
    }

    /// The start-up batch is durable: the sequences may hand out numbers.
    pub fn start(&self, startup: &Batch) {
        for c in startup {
            if let Change::Reserve { name, upto } = c {
                self.confirm(name, *upto);
            }
        }
    }

    /// A reservation growth is durable.
    pub fn confirm(&self, name: &str, upto: u64) {
        if name == IDS {
            self.ids.reservation().confirm(upto);
        } else if name == RRNS {
            self.rrns.reservation().confirm(upto);
        } else if let Some(book) = self.stans.values().find(|b| b.reservation.name() == name) {
            book.confirm(upto);
        }
    }

    /// A reservation growth failed to commit: it is asked again later.
    pub fn growth_failed(&self, name: &str) {
        if name == IDS {
            self.ids.reservation().failed();
        } else if name == RRNS {
            self.rrns.reservation().failed();
        } else if let Some(book) = self.stans.values().find(|b| b.reservation.name() == name) {
            book.reservation.failed();
        }
    }

    pub fn merchant(&self, id: &str) -> Option<&Arc<Merchant>> {
        self.merchants.get(id)
    }

    pub fn merchants(&self) -> impl Iterator<Item = &Arc<Merchant>> {
        self.merchants.values()
    }

    pub fn codes(&self) -> &ResponseCodeTable {
        &self.codes
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn key(&self) -> &CardKey {
        &self.key
    }

    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Whether the one-shot fault `f` fires now (at most once).
    pub fn fault_fires(&self, f: Fault) -> bool {
        self.fault == Some(f)
            && !self
                .fault_fired
                .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    pub fn saf_config(&self) -> &SafConfig {
        &self.saf
    }

    /// The reversal to queue for `tx` (one per authorization: its id is
    /// the transaction's). `None` for a transaction never sent.
    pub fn reversal_record(
        &self,
        tx: &TxRecord,
        reason: ReversalReason,
        now_ms: u64,
    ) -> Option<SafRecord> {
        let to = tx.sent_to.as_ref()?;
        Some(self.reversal_for(tx.id, &to.acquirer, tx.amount, reason, now_ms))
    }

    fn reversal_for(
        &self,
        tx_id: u64,
        acquirer: &str,
        amount: u64,
        reason: ReversalReason,
        now_ms: u64,
    ) -> SafRecord {
        SafRecord::queued(
            tx_id,
            tx_id,
            SafKind::Reversal,
            acquirer.into(),
            reason.as_str(),
            amount,
            None,
            now_ms,
            now_ms.saturating_add(self.saf.expiry_ms),
        )
    }

    /// The reversal message's content for a journaled transaction (its
    /// card opened from the journal).
    pub fn reversal_request(
        &self,
        tx: &TxRecord,
        reason: ReversalReason,
    ) -> Option<ReversalRequest> {
        let to = tx.sent_to.as_ref()?;
        let (card_number, expiry) = self.open_tx_card(tx)?;
        Some(ReversalRequest {
            card_number,
            expiry,
            amount: tx.amount,
            currency: Currency::parse(&tx.currency)?,
            brand: CardBrand::parse(&tx.brand).unwrap_or(CardBrand::Other),
            pan_entry_mode: PanEntryMode::parse(&tx.pan_entry_mode).unwrap_or(PanEntryMode::Wallet),
            wallet: tx.wallet.as_deref().and_then(Wallet::parse),
            order_channel: OrderChannel::parse(&tx.order_channel).unwrap_or(OrderChannel::Internet),
            transaction_reference: tx.reference.clone(),
            terminal_id: to.terminal_id.clone(),
            acceptor_id: to.acceptor_id.clone(),
            acquirer_id: to.acquirer_id.clone(),
            merchant_category_code: to.merchant_category_code.clone(),
            rrn: to.rrn.clone(),
            original_stan: to.stan.clone(),
            original_mti: crate::iso8583::Mti::AUTHORIZATION_REQUEST,
            original_sent: std::time::UNIX_EPOCH + std::time::Duration::from_millis(to.sent_ms),
            reason,
            replacement: None,
        })
    }

    /// An acquirer's STAN numbering.
    pub fn stans(&self, acquirer: &str) -> Option<&StanBook> {
        self.stans.get(acquirer)
    }

    /// A fresh id (transactions, sealing nonces) and the growth due.
    pub fn next_id(&self) -> Result<(u64, Option<Change>), Exhausted> {
        self.ids.next()
    }

    /// The next RRN (12 digits) and the growth due.
    pub fn next_rrn(&self) -> Result<(String, Option<Change>), Exhausted> {
        let (n, grow) = self.rrns.next()?;
        Ok((format!("{:012}", n % RRN_MODULUS), grow))
    }

    /// The typed authorization of `order` for `merchant`, routed: every
    /// rule that ties the fields together, checked before anything is
    /// claimed. `card` is the resolved card (a vault reference already
    /// opened: its expiry, and `true`).
    pub fn prepare(
        &self,
        now_ms: u64,
        merchant: &Arc<Merchant>,
        order: CardOrder,
        card: (Pan, Option<Expiry>, bool),
    ) -> Result<Prepared, Refusal> {
        let (pan, vault_expiry, from_vault) = card;
        // A 3-D Secure result that is not a success: refused here, never
        // sent (Sips answers 05 to a failed authentication).
        let three_ds = order
            .authentication
            .as_ref()
            .and_then(|a| a.three_ds.as_ref());
        if three_ds.is_some_and(|t| !t.status.is_success()) {
            return Err(Refusal {
                code: ResponseCode::Refused,
                field: Some("threeDSStatus"),
            });
        }
        let expiry = match (order.expiry, vault_expiry) {
            (Some(e), Some(v)) if e != v => return Err(Refusal::invalid("cardExpiryDate")),
            (Some(e), _) | (None, Some(e)) => e,
            (None, None) => return Err(Refusal::format("cardExpiryDate")),
        };
        let (year, month) = crate::civil::year_month(now_ms / 1000);
        if !expiry.valid_in(year, month) {
            return Err(Refusal::invalid("cardExpiryDate"));
        }
        let pan_entry_mode = match order.pan_entry_mode {
            Some(PanEntryMode::OemPay) if from_vault => {
                return Err(Refusal::invalid("panEntryMode"))
            }
            Some(m) => m,
            None if from_vault => PanEntryMode::Wallet,
            None => match &order.authentication {
                Some(Authentication {
                    program: HolderAuthentProgram::GooglePay,
                    ..
                }) => PanEntryMode::OemPay,
                _ => PanEntryMode::Wallet,
            },
        };
        let brand = order.brand.unwrap_or_else(|| CardBrand::of_pan(&pan));
        let request = AuthorizationRequest {
            merchant_id: merchant.id.clone(),
            amount: order.amount,
            currency: order.currency,
            transaction_reference: order.transaction_reference,
            order_channel: order.order_channel,
            pan_entry_mode,
            card_number: pan,
            expiry,
            brand,
            // The vault keeps Google Pay's PAN_ONLY cards only.
            wallet: order
                .wallet
                .or((pan_entry_mode == PanEntryMode::OemPay || from_vault)
                    .then_some(Wallet::GooglePay)),
            authentication: order.authentication,
        };
        request.check().map_err(|e| Refusal::invalid(e.field))?;
        let route = routing::route_index(&merchant.routes, brand, &request.card_number)
            .ok_or(Refusal::code(ResponseCode::InvalidMerchant))?;
        let content_hash = self.content_hash(&request, order.capture);
        let ref_key = self
            .references
            .key(&merchant.id, &request.transaction_reference);
        Ok(Prepared {
            merchant: Arc::clone(merchant),
            request,
            route,
            content_hash,
            now_ms,
            ref_key,
            capture: order.capture,
        })
    }

    /// Keyed hash of what makes an authorization the same one: a retry
    /// must match it to be answered from the journal.
    fn content_hash(&self, r: &AuthorizationRequest, capture: Capture) -> [u8; 32] {
        let auth = r.authentication.as_ref();
        let expiry = r.expiry.yyyymm();
        let parts: [&[u8]; 15] = [
            capture.mode.as_str().as_bytes(),
            &[capture.days],
            r.merchant_id.as_bytes(),
            r.transaction_reference.as_bytes(),
            &r.amount.to_be_bytes(),
            r.currency.code().as_bytes(),
            r.order_channel.as_str().as_bytes(),
            r.pan_entry_mode.as_str().as_bytes(),
            r.card_number.reveal().as_bytes(),
            expiry.as_bytes(),
            r.brand.as_str().as_bytes(),
            r.wallet.map_or("", |w| w.as_str()).as_bytes(),
            auth.map_or("", |a| a.program.as_str()).as_bytes(),
            auth.and_then(|a| a.eci.as_ref())
                .map_or("", |e| e.as_str())
                .as_bytes(),
            auth.and_then(|a| a.cryptogram.as_ref())
                .map_or(&[][..], |c| c.reveal()),
        ];
        // A 3-D Secure result counts when there is one (a retry with
        // another status or directory-server id is another order); an
        // order without one keeps the hash it always had.
        match auth.and_then(|a| a.three_ds.as_ref()) {
            None => self.key.keyed_hash(&parts),
            Some(t) => {
                let mut all: [&[u8]; 18] = [&[]; 18];
                all[..15].copy_from_slice(&parts);
                all[15] = t.version.as_bytes();
                all[16] = t.ds_transaction_id.as_deref().unwrap_or("").as_bytes();
                all[17] = t.status.as_str().as_bytes();
                self.key.keyed_hash(&all)
            }
        }
    }

    /// Takes the order's reference for a new transaction id, in memory.
    /// The id's reservation growth, when due, comes with it.
    pub fn claim(&self, p: &Prepared) -> Result<(u64, Option<Change>), ClaimError> {
        let (id, grow) = self.ids.next().map_err(|_| ClaimError::Exhausted)?;
        match self
            .references
            .claim_key(p.ref_key, p.content_key(), id, p.now_ms)
        {
            Claim::Taken => Ok((id, grow)),
            Claim::Held(e) => Err(ClaimError::Held(e)),
        }
    }

    /// Gives a claimed reference back (nothing was sent).
    pub fn release(&self, p: &Prepared, tx_id: u64) {
        self.references.release_key(p.ref_key, tx_id);
    }

    /// What a retry is told: the journal's answer when the reference was
    /// answered for the same content, otherwise 94.
    pub fn retry_answer(&self, p: &Prepared, held: &TxRecord) -> Result<OrderAnswer, Refusal> {
        if held.state.is_final() && held.content_hash == p.content_hash {
            Ok(self.answer_of(held))
        } else {
            Err(Refusal::code(ResponseCode::Duplicate))
        }
    }

    /// A record the journal holds that memory had forgotten: memory learns
    /// it (and forgets our own claim).
    pub fn learn_holder(&self, p: &Prepared, ours: u64, held: &TxRecord) {
        self.release(p, ours);
        self.references.restore(
            &held.merchant_id,
            &held.reference,
            RefEntry {
                tx_id: held.id,
                content: content_key(&held.content_hash),
                created_ms: held.created_ms,
                status: if held.state.is_final() {
                    RefStatus::Final
                } else {
                    RefStatus::InFlight
                },
            },
            p.now_ms,
        );
    }

    fn base_record(&self, p: &Prepared, tx_id: u64, state: TxState) -> TxRecord {
        let r = &p.request;
        let aad = tx_aad(tx_id);
        TxRecord {
            id: tx_id,
            merchant_id: r.merchant_id.clone(),
            reference: r.transaction_reference.clone(),
            state,
            created_ms: p.now_ms,
            updated_ms: p.now_ms,
            amount: r.amount,
            currency: r.currency.code().to_owned(),
            masked_pan: r.card_number.masked(),
            brand: r.brand.as_str().into(),
            pan_entry_mode: r.pan_entry_mode.as_str().into(),
            wallet: r.wallet.map(|w| w.as_str().into()),
            order_channel: r.order_channel.as_str().into(),
            card: self.key.seal_card(
                SealDomain::Transaction,
                tx_id,
                &aad,
                &r.card_number,
                r.expiry,
            ),
            content_hash: p.content_hash,
            sent_to: None,
            answer: None,
            reversal: ReversalState::None,
            capture_mode: p.capture.mode.as_str().into(),
            capture_day: self.cut_off.business_day(p.now_ms) + i32::from(p.capture.days),
            settlement: None,
        }
    }

    /// The batch that must be durable before the 0100 is written: the
    /// reference claim and the `sent` record.
    pub fn sent(&self, p: &Prepared, tx_id: u64, sent_to: SentTo) -> Batch {
        let mut record = self.base_record(p, tx_id, TxState::Sent);
        record.sent_to = Some(sent_to);
        vec![
            Change::ClaimReference {
                merchant_id: p.merchant.id.clone(),
                reference: p.request.transaction_reference.clone(),
                tx_id,
                content_hash: p.content_hash,
                now_ms: p.now_ms,
                window_start_ms: p.now_ms.saturating_sub(self.limits.duplicate_window_ms),
            },
            Change::InsertTx(Box::new(record)),
        ]
    }

    /// An order that was never sent because no link was up: recorded as
    /// `not_sent` (no claim: the reference stays free), and its answer.
    pub fn unsent(
        &self,
        p: &Prepared,
        tx_id: u64,
        code: ResponseCode,
        now_ms: u64,
    ) -> (Batch, OrderAnswer) {
        let mut record = self.base_record(p, tx_id, TxState::NotSent);
        let answer = Answer {
            response_code: code.as_str().into(),
            acquirer_response_code: None,
            authorisation_id: None,
            answered_ms: now_ms,
        };
        record.answer = Some(answer);
        record.updated_ms = now_ms;
        let told = self.answer_of(&record);
        let note = Change::NoteReference {
            merchant_id: p.merchant.id.clone(),
            reference: p.request.transaction_reference.clone(),
            tx_id,
            content_hash: p.content_hash,
            window_start_ms: p.now_ms.saturating_sub(self.limits.duplicate_window_ms),
        };
        (vec![Change::InsertTx(Box::new(record)), note], told)
    }

    /// The state, journal batch and answer for what the acquirer did.
    pub fn conclude(
        &self,
        p: &Prepared,
        tx_id: u64,
        sent_to: &SentTo,
        outcome: &Outcome,
        now_ms: u64,
    ) -> Concluded {
        let (state, answer) = match outcome {
            Outcome::Answered {
                response_code,
                authorisation_id,
            } => {
                let code = self.codes.map(response_code.as_deref());
                let state = if code.is_approved() {
                    TxState::Approved
                } else if code.is_technical() {
                    TxState::Failed
                } else {
                    TxState::Refused
                };
                (
                    state,
                    Answer {
                        response_code: code.as_str().into(),
                        acquirer_response_code: response_code.clone(),
                        // Only an approval carries an authorization id.
                        authorisation_id: authorisation_id.clone().filter(|_| code.is_approved()),
                        answered_ms: now_ms,
                    },
                )
            }
            Outcome::NotSent(code) => (TxState::NotSent, bare_answer(*code, now_ms)),
            Outcome::MaybeDelivered(code, _) => (TxState::TimedOut, bare_answer(*code, now_ms)),
        };
        let mut batch = vec![Change::UpdateTx(TxUpdate {
            id: tx_id,
            state,
            updated_ms: now_ms,
            answer: Some(answer.clone()),
        })];
        if state == TxState::NotSent {
            batch.push(Change::ReleaseReference {
                merchant_id: p.merchant.id.clone(),
                reference: p.request.transaction_reference.clone(),
                tx_id,
            });
        }
        // Maybe approved at the acquirer, answered 90/99 here: reversed,
        // queued in the same durable write as the answer.
        let queued = match outcome {
            Outcome::MaybeDelivered(_, reason) => {
                let q =
                    self.reversal_for(tx_id, &sent_to.acquirer, p.request.amount, *reason, now_ms);
                batch.push(Change::QueueSaf(Box::new(q.clone())));
                Some(q)
            }
            _ => None,
        };
        let told = OrderAnswer {
            response_code: ResponseCode::parse(&answer.response_code)
                .unwrap_or(ResponseCode::TechnicalProblem),
            acquirer_response_code: answer.acquirer_response_code,
            authorisation_id: answer.authorisation_id,
            transaction_reference: p.request.transaction_reference.clone(),
            transaction_ms: p.now_ms,
            masked_pan: p.request.card_number.masked(),
            brand: p.request.brand,
            wallet: p.request.wallet,
            pan_entry_mode: p.request.pan_entry_mode,
            capture: p.capture,
        };
        Concluded {
            state,
            batch,
            told,
            queued,
        }
    }

    /// The outcome is durable: memory follows.
    pub fn concluded(&self, p: &Prepared, tx_id: u64, state: TxState) {
        if state == TxState::NotSent {
            self.release(p, tx_id);
        } else {
            self.references.finish_key(p.ref_key, tx_id);
        }
    }

    /// What the merchant is (or was) told for a recorded transaction.
    pub fn answer_of(&self, t: &TxRecord) -> OrderAnswer {
        let (code, acq, auth) = match &t.answer {
            Some(a) => (
                ResponseCode::parse(&a.response_code).unwrap_or(ResponseCode::TechnicalProblem),
                a.acquirer_response_code.clone(),
                a.authorisation_id.clone(),
            ),
            // Unknown (found open at start-up): never approved to anyone.
            None => (ResponseCode::TechnicalProblem, None, None),
        };
        OrderAnswer {
            response_code: code,
            acquirer_response_code: acq,
            authorisation_id: auth,
            transaction_reference: t.reference.clone(),
            transaction_ms: t.created_ms,
            masked_pan: t.masked_pan.clone(),
            brand: CardBrand::parse(&t.brand).unwrap_or(CardBrand::Other),
            wallet: t.wallet.as_deref().and_then(Wallet::parse),
            pan_entry_mode: PanEntryMode::parse(&t.pan_entry_mode).unwrap_or(PanEntryMode::Wallet),
            capture: self.capture_of(t),
        }
    }

    /// How a recorded transaction is captured (its days counted from its
    /// own business day).
    pub fn capture_of(&self, t: &TxRecord) -> Capture {
        let days = t.capture_day - self.cut_off.business_day(t.created_ms);
        Capture {
            mode: CaptureMode::parse(&t.capture_mode).unwrap_or(CaptureMode::AuthorCapture),
            days: u8::try_from(days.clamp(0, i32::from(MAX_CAPTURE_DAY))).unwrap_or(0),
        }
    }

    /// When business days end.
    pub fn cut_off(&self) -> &CutOff {
        &self.cut_off
    }

    /// A new vault entry for a PAN_ONLY card: its reference and record.
    pub fn vault_entry(
        &self,
        merchant: &str,
        pan: &Pan,
        expiry: Expiry,
        now_ms: u64,
        rng: &mut impl rand::RngCore,
    ) -> Result<(VaultRecord, Option<Change>), Exhausted> {
        let (id, grow) = self.ids.next()?;
        let mut bits = [0u8; 16];
        rng.fill_bytes(&mut bits);
        let reference = format!("{}{}", super::windows::VAULT_PREFIX, hex::encode(bits));
        let card = self.key.seal_card(
            SealDomain::Vault,
            id,
            &vault_aad(&reference, merchant),
            pan,
            expiry,
        );
        Ok((
            VaultRecord {
                reference,
                merchant_id: merchant.into(),
                card,
                stored_ms: now_ms,
                expires_ms: now_ms.saturating_add(self.limits.vault_ttl_ms),
            },
            grow,
        ))
    }

    /// The card behind a vault record, if it is `merchant`'s and still
    /// kept.
    pub fn open_vault(
        &self,
        record: &VaultRecord,
        merchant: &str,
        now_ms: u64,
    ) -> Option<(Pan, Expiry)> {
        if record.merchant_id != merchant || now_ms >= record.expires_ms {
            return None;
        }
        self.key
            .open_card(&record.card, &vault_aad(&record.reference, merchant))
            .ok()
    }

    /// The card of a recorded transaction (for reversals).
    pub fn open_tx_card(&self, t: &TxRecord) -> Option<(Pan, Expiry)> {
        self.key.open_card(&t.card, &tx_aad(t.id)).ok()
    }
}

fn bare_answer(code: ResponseCode, now_ms: u64) -> Answer {
    Answer {
        response_code: code.as_str().into(),
        acquirer_response_code: None,
        authorisation_id: None,
        answered_ms: now_ms,
    }
}

/// A transaction's sealed card names its row.
fn tx_aad(id: u64) -> Vec<u8> {
    format!("tx:{id}").into_bytes()
}

fn vault_aad(reference: &str, merchant: &str) -> Vec<u8> {
    format!("vault:{reference}:{merchant}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::memory::MemoryBackend;
    use crate::journal::{Applied, Backend};
    use crate::switch::domain::{Cryptogram, Currency, Eci, OrderChannel};
    use crate::switch::operation::CardInput;
    use crate::switch::routing::Contract;

    const T0: u64 = 1_767_225_600_000; // 2026-01-01

    fn merchant() -> Arc<Merchant> {
        Arc::new(Merchant {
            id: "m1".into(),
            keys: vec![],
            seal_algorithm: Default::default(),
            googlepay: None,
            routes: vec![Route::new(Contract {
                acquirer: "cb2a".into(),
                terminal_id: "ACQ00001".into(),
                acceptor_id: "MERCHANT0000001".into(),
                merchant_category_code: "5999".into(),
                acquirer_id: "00000000001".into(),
                brands: vec![],
                bins: vec![],
            })
            .unwrap()],
        })
    }

    fn setup(m: Arc<Merchant>) -> CoreSetup {
        CoreSetup {
            cut_off: crate::switch::cutoff::CutOff::paris(),
            merchants: [(m.id.clone(), m)].into_iter().collect(),
            codes: ResponseCodeTable::default(),
            key: CardKey::from_text(&"11".repeat(32)).unwrap(),
            limits: Limits {
                duplicate_window_ms: 3_600_000,
                duplicate_capacity: 1000,
                token_replay_window_ms: 3_600_000,
                token_replay_capacity: 1000,
                vault_ttl_ms: 900_000,
                vault_capacity: 1000,
            },
            acquirers: vec!["cb2a".into()],
            saf: SafConfig::default(),
            fault: None,
        }
    }

    fn order(reference: &str, amount: u64) -> CardOrder {
        CardOrder {
            capture: crate::switch::Capture::default(),
            transaction_reference: reference.into(),
            amount,
            currency: Currency::parse("978").unwrap(),
            order_channel: OrderChannel::Internet,
            card: CardInput::Number(Pan::new("4895370012003478").unwrap()),
            card_field: "cardNumber",
            expiry: Expiry::new(2030, 12),
            pan_entry_mode: None,
            brand: None,
            wallet: None,
            authentication: Some(Authentication {
                program: HolderAuthentProgram::GooglePay,
                eci: Eci::parse("05"),
                cryptogram: Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA="),
                three_ds: None,
            }),
        }
    }

    #[test]
    fn a_3ds_result_is_part_of_what_makes_an_order_the_same() {
        use crate::switch::domain::{ThreeDsResult, ThreeDsStatus};
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let with = |status: Option<ThreeDsStatus>| {
            let mut o = order("R3DS", 1000);
            if let Some(a) = o.authentication.as_mut() {
                a.three_ds = status.map(|status| ThreeDsResult {
                    version: "2.2.0".into(),
                    ds_transaction_id: Some("f25084f0-5b16-4c0a-ae5d-b24808a95e4b".into()),
                    status,
                });
            }
            core.prepare(T0, &m, o, card()).unwrap().content_hash
        };
        assert_ne!(with(Some(ThreeDsStatus::Y)), with(Some(ThreeDsStatus::A)));
        assert_ne!(with(Some(ThreeDsStatus::Y)), with(None));
        assert_eq!(with(Some(ThreeDsStatus::Y)), with(Some(ThreeDsStatus::Y)));
        assert_eq!(with(None), with(None));
    }

    fn card() -> (Pan, Option<Expiry>, bool) {
        (Pan::new("4895370012003478").unwrap(), None, false)
    }

    fn started(db: &mut MemoryBackend, m: &Arc<Merchant>) -> (Core, RecoveryReport) {
        let rec = db
            .recover(&setup(m.clone()).limits.recovery_span(T0))
            .unwrap();
        let (core, batch, report) = Core::recover(setup(m.clone()), rec, T0);
        assert_eq!(
            db.commit(std::slice::from_ref(&batch)).unwrap(),
            vec![Applied::Done]
        );
        core.start(&batch);
        (core, report)
    }

    fn sent_to(stan: &str) -> SentTo {
        SentTo {
            acquirer: "cb2a".into(),
            terminal_id: "ACQ00001".into(),
            acceptor_id: "MERCHANT0000001".into(),
            acquirer_id: "00000000001".into(),
            merchant_category_code: "5999".into(),
            stan: stan.into(),
            rrn: "000000000001".into(),
            sent_ms: T0,
        }
    }

    #[test]
    fn an_order_is_journaled_before_it_leaves_and_answered_after() {
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let p = core.prepare(T0, &m, order("R1", 1000), card()).unwrap();
        let (id, _) = core.claim(&p).unwrap();
        let batch = core.sent(&p, id, sent_to("000001"));
        assert_eq!(db.commit(&[batch]).unwrap(), vec![Applied::Done]);
        let rec = db.tx(id).unwrap().clone();
        assert_eq!(rec.state, TxState::Sent);
        assert_eq!(rec.masked_pan, "489537******3478");
        let (pan, _) = core.open_tx_card(&rec).unwrap();
        assert_eq!(pan.reveal(), "4895370012003478");
        // A retry while in flight: 94.
        let p2 = core.prepare(T0 + 1, &m, order("R1", 1000), card()).unwrap();
        assert!(matches!(
            core.claim(&p2),
            Err(ClaimError::Held(RefEntry {
                status: RefStatus::InFlight,
                ..
            }))
        ));
        let outcome = Outcome::Answered {
            response_code: Some("00".into()),
            authorisation_id: Some("A1".into()),
        };
        let Concluded {
            state, batch, told, ..
        } = core.conclude(&p, id, &sent_to("000001"), &outcome, T0 + 5);
        assert_eq!(state, TxState::Approved);
        assert_eq!(told.response_code, ResponseCode::Approved);
        db.commit(&[batch]).unwrap();
        core.concluded(&p, id, state);
        // A retry with the same content: the same answer, from the journal.
        let Err(ClaimError::Held(e)) = core.claim(&p2) else {
            panic!("held")
        };
        assert_eq!(e.status, RefStatus::Final);
        let again = core.retry_answer(&p2, db.tx(e.tx_id).unwrap()).unwrap();
        assert_eq!(again, told);
        // Different content: 94.
        let p3 = core.prepare(T0 + 2, &m, order("R1", 2000), card()).unwrap();
        assert_eq!(
            core.retry_answer(&p3, db.tx(e.tx_id).unwrap())
                .unwrap_err()
                .code,
            ResponseCode::Duplicate
        );
    }

    #[test]
    fn not_sent_releases_the_reference() {
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let p = core.prepare(T0, &m, order("R2", 1000), card()).unwrap();
        let (id, _) = core.claim(&p).unwrap();
        db.commit(&[core.sent(&p, id, sent_to("000002"))]).unwrap();
        let Concluded {
            state, batch, told, ..
        } = core.conclude(
            &p,
            id,
            &sent_to("000002"),
            &Outcome::NotSent(ResponseCode::TechnicalProblem),
            T0 + 1,
        );
        assert_eq!(
            (state, told.response_code),
            (TxState::NotSent, ResponseCode::TechnicalProblem)
        );
        db.commit(&[batch]).unwrap();
        core.concluded(&p, id, state);
        let (id2, _) = core.claim(&p).unwrap();
        assert_eq!(
            db.commit(&[core.sent(&p, id2, sent_to("000003"))]).unwrap(),
            vec![Applied::Done],
            "the journal released it too"
        );
    }

    #[test]
    fn a_restart_marks_open_transactions_unknown_and_keeps_the_windows() {
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let p = core.prepare(T0, &m, order("R3", 1000), card()).unwrap();
        let (id, _) = core.claim(&p).unwrap();
        db.commit(&[core.sent(&p, id, sent_to("000004"))]).unwrap();
        let stan_pos = core.stans("cb2a").unwrap().allocator.position();
        drop(core);
        // The restart.
        let (core, report) = started(&mut db, &m);
        assert_eq!(report.unknown.len(), 1);
        assert_eq!(db.tx(id).unwrap().state, TxState::Unknown);
        let p = core
            .prepare(T0 + 10, &m, order("R3", 1000), card())
            .unwrap();
        let Err(ClaimError::Held(e)) = core.claim(&p) else {
            panic!("the reference survived the restart")
        };
        assert_eq!(e.tx_id, id);
        let told = core.retry_answer(&p, db.tx(id).unwrap()).unwrap();
        assert_eq!(told.response_code, ResponseCode::TechnicalProblem);
        // Numbers resume past everything handed out before.
        let (id2, _) = core.next_id().unwrap();
        assert!(id2 > id);
        let book = core.stans("cb2a").unwrap();
        let lease = book.allocator.allocate().unwrap();
        assert!(book.allocator.position() > stan_pos);
        assert_ne!(lease.stan().get(), 1, "STANs do not start again at 000001");
    }

    #[test]
    fn refusals_name_the_field() {
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let mut o = order("R4", 1000);
        o.expiry = Expiry::new(2020, 1);
        assert_eq!(
            core.prepare(T0, &m, o, card()).unwrap_err(),
            Refusal::invalid("cardExpiryDate")
        );
        let mut o = order("R4", 1000);
        o.expiry = None;
        assert_eq!(
            core.prepare(T0, &m, o, card()).unwrap_err(),
            Refusal::format("cardExpiryDate")
        );
        let mut o = order("R4", 1000);
        o.authentication = None;
        o.pan_entry_mode = Some(PanEntryMode::OemPay);
        assert_eq!(
            core.prepare(T0, &m, o, card()).unwrap_err().field,
            Some("authenticationResult")
        );
    }

    #[test]
    fn vault_cards_open_for_their_merchant_until_they_expire() {
        let m = merchant();
        let mut db = MemoryBackend::new();
        let (core, _) = started(&mut db, &m);
        let pan = Pan::new("5413330089020011").unwrap();
        let exp = Expiry::new(2030, 12).unwrap();
        let (v, _) = core
            .vault_entry("m1", &pan, exp, T0, &mut rand::thread_rng())
            .unwrap();
        assert!(v.reference.starts_with("vlt_") && v.reference.len() == 36);
        assert_eq!(core.open_vault(&v, "m1", T0).unwrap(), (pan, exp));
        assert!(core.open_vault(&v, "m2", T0).is_none());
        assert!(core.open_vault(&v, "m1", T0 + 900_000).is_none());
    }
}
