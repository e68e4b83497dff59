//! The durable journal: every authorization written down before it leaves
//! and its outcome before it is answered.
//!
//! # Contract
//! - A [`Batch`] is a list of [`Change`]s from one caller. The writer
//!   ([`writer::Journal`]) gathers the batches of every shard and applies
//!   them in **one** durable transaction (group commit: one fsync for many
//!   batches). A caller's future resolves only once its batch is on disk.
//! - A batch may start with one *claim* ([`Change::ClaimReference`],
//!   [`Change::ClaimTokenId`]). When the claim conflicts with what the
//!   journal already holds, the whole batch is skipped and the caller gets
//!   [`Applied::Conflict`] with what was found: the journal is the authority
//!   on duplicates; the switch's in-memory windows are only its fast path.
//! - [`Backend::recover`] returns what start-up needs: the counters, the
//!   transactions left without an outcome, and the windows (duplicate
//!   references, Google Pay `messageId`s, the PAN_ONLY vault) as they were.
//! - Card data never reaches a backend in clear: PANs, expiry dates and
//!   vaulted cards arrive sealed with AES-256-GCM ([`crypto::CardKey`]); the
//!   only card data in clear is the masked PAN (first 6 / last 4).
//!
//! # Layout
//! - [`crypto`]: the journal key, card sealing (AES-256-GCM), keyed hashes.
//! - [`sqlite`]: the SQLite backend (WAL, `synchronous = FULL`).
//! - [`memory`]: an in-memory backend with the same semantics and a crash
//!   model (what was committed survives, nothing else), for tests and the
//!   deterministic simulation.
//! - [`writer`]: the group-commit writer thread and its async handle.
//!
//! A transaction's life in the journal (`state`):
//!
//! ```text
//!   (nothing) ──durable before the 0100 is written──► sent
//!   sent ──0110 approval──► approved      sent ──0110 refusal──► refused
//!   sent ──0110 technical code──► failed  sent ──no link after all──► not_sent
//!   sent ──timeout / link dropped after write──► timed_out
//!   sent ──found at start-up──► unknown
//! ```
//! `timed_out` and `unknown` are the ones the reversal work picks up.

pub mod crypto;
pub mod memory;
pub mod sqlite;
pub mod writer;

use std::fmt;

pub use crypto::{CardKey, KeyError};
pub use writer::{Journal, JournalStats};

/// A transaction's state in the journal (see the module diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    Sent,
    Approved,
    Refused,
    Failed,
    NotSent,
    TimedOut,
    Unknown,
}

impl TxState {
    pub const ALL: [TxState; 7] = [
        TxState::Sent,
        TxState::Approved,
        TxState::Refused,
        TxState::Failed,
        TxState::NotSent,
        TxState::TimedOut,
        TxState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Sent => "sent",
            TxState::Approved => "approved",
            TxState::Refused => "refused",
            TxState::Failed => "failed",
            TxState::NotSent => "not_sent",
            TxState::TimedOut => "timed_out",
            TxState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<TxState> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the authorization has its final answer (the merchant was,
    /// or will on a retry be, told this outcome).
    pub fn is_final(self) -> bool {
        !matches!(self, TxState::Sent)
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an authorization went: what identifies it at the acquirer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTo {
    pub acquirer: String,
    pub terminal_id: String,
    pub acceptor_id: String,
    /// DE 32 and DE 18 of the contract (a reversal repeats them).
    pub acquirer_id: String,
    pub merchant_category_code: String,
    /// DE 11, six digits.
    pub stan: String,
    /// DE 37, twelve characters.
    pub rrn: String,
    /// The clock the 0100 was built with (DE 7, 12, 13), Unix milliseconds.
    pub sent_ms: u64,
}

/// The answer given to the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The front-end `responseCode`.
    pub response_code: String,
    pub acquirer_response_code: Option<String>,
    pub authorisation_id: Option<String>,
    pub answered_ms: u64,
}

/// One authorization as the journal keeps it. `card` is sealed
/// ([`crypto::CardKey::seal_card`]); nothing here is card data in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct TxRecord {
    pub id: u64,
    pub merchant_id: String,
    pub reference: String,
    pub state: TxState,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 numeric.
    pub currency: String,
    pub masked_pan: String,
    pub brand: String,
    pub pan_entry_mode: String,
    pub wallet: Option<String>,
    pub order_channel: String,
    /// PAN and expiry, sealed with the journal key.
    pub card: Vec<u8>,
    /// Keyed hash of the request's content, to tell a retry from a
    /// different request reusing the reference.
    pub content_hash: [u8; 32],
    pub sent_to: Option<SentTo>,
    pub answer: Option<Answer>,
    /// Whether the authorization was reversed.
    pub reversal: ReversalState,
    /// `captureMode` (`AUTHOR_CAPTURE`, `VALIDATION`).
    pub capture_mode: String,
    /// The business day (days since 1970-01-01 in the cut-off's time
    /// zone) whose cut-off captures it, or expires it unvalidated.
    pub capture_day: i32,
    /// Where it stands after its authorization, once an operation or a
    /// cut-off changed it (`None`: as its authorization left it).
    pub settlement: Option<Settlement>,
}

/// A transaction's status and amounts after an operation or a cut-off
/// (the switch's `lifecycle` names; the journal keeps them as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub status: String,
    /// Left to capture (authorized less cancelled, or validated).
    pub remaining: u64,
    pub captured: u64,
    pub refunded: u64,
    pub capture_day: i32,
    pub updated_ms: u64,
}

/// One cash-management operation (or a cut-off's capture or expiry) on a
/// transaction, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    pub id: u64,
    pub tx_id: u64,
    /// `cancel`, `validate`, `refund`, `capture`, `expire`.
    pub kind: String,
    pub amount: u64,
    /// The merchant's id for the operation: a retry with the same one gets
    /// the recorded answer.
    pub operation_reference: Option<String>,
    pub response_code: String,
    pub new_status: String,
    pub new_amount: u64,
    pub created_ms: u64,
    /// The message it queued for the acquirer, if any.
    pub saf_id: Option<u64>,
}

/// A transaction's reversal, as the journal keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReversalState {
    /// Not reversed (none needed, or none yet).
    None,
    /// In the store-and-forward queue.
    Queued,
    /// The acquirer acknowledged it (0410).
    Acknowledged,
    /// Given up after the queue's expiry (an operator must act).
    Expired,
}

impl ReversalState {
    pub const ALL: [ReversalState; 4] = [
        ReversalState::None,
        ReversalState::Queued,
        ReversalState::Acknowledged,
        ReversalState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReversalState::None => "none",
            ReversalState::Queued => "queued",
            ReversalState::Acknowledged => "acknowledged",
            ReversalState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What a store-and-forward message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafKind {
    /// A full reversal of an authorization that was not answered (at most
    /// one per transaction).
    Reversal,
    /// A merchant's cancellation: a reversal, full or partial (what stays
    /// authorized in `replacement`).
    Cancel,
    /// A refund of `amount`.
    Refund,
}

impl SafKind {
    /// In discriminant order (the queue counts kinds by it).
    pub const ALL: [SafKind; 3] = [SafKind::Reversal, SafKind::Cancel, SafKind::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            SafKind::Reversal => "reversal",
            SafKind::Cancel => "cancel",
            SafKind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a store-and-forward message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafState {
    Queued,
    Acknowledged,
    Expired,
}

impl SafState {
    pub fn as_str(self) -> &'static str {
        match self {
            SafState::Queued => "queued",
            SafState::Acknowledged => "acknowledged",
            SafState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [SafState::Queued, SafState::Acknowledged, SafState::Expired]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A message the acquirer must get (a reversal), kept until it is
/// acknowledged or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafRecord {
    pub id: u64,
    pub tx_id: u64,
    pub kind: SafKind,
    pub acquirer: String,
    /// Why (a `ReversalReason` name).
    pub reason: String,
    /// The message's own DE 11, given at the first attempt (durable with
    /// it) and the same for every later one: a retransmission is a repeat
    /// of the same message, not a new one. Empty before the first.
    pub stan: String,
    /// Minor units.
    pub amount: u64,
    pub state: SafState,
    /// Sends started: each is durable before its message is written, so
    /// after a restart the next one goes as a repeat.
    pub attempts: u32,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub expires_ms: u64,
    /// The acquirer's answer to it.
    pub response_code: Option<String>,
    /// A cancellation's replacement amount: what stays authorized (0 for
    /// a full one). `None` for the other kinds.
    pub replacement: Option<u64>,
}

impl SafRecord {
    /// A message queued at `now_ms`, before its first attempt (no STAN
    /// yet), given up at `expires_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn queued(
        id: u64,
        tx_id: u64,
        kind: SafKind,
        acquirer: String,
        reason: &str,
        amount: u64,
        replacement: Option<u64>,
        now_ms: u64,
        expires_ms: u64,
    ) -> SafRecord {
        SafRecord {
            id,
            tx_id,
            kind,
            acquirer,
            reason: reason.into(),
            stan: String::new(),
            amount,
            state: SafState::Queued,
            attempts: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
            expires_ms,
            response_code: None,
            replacement,
        }
    }
}

/// A change of a store-and-forward message (and of its transaction's
/// reversal state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafUpdate {
    pub id: u64,
    pub tx_id: u64,
    pub state: SafState,
    pub stan: String,
    pub attempts: u32,
    pub updated_ms: u64,
    pub response_code: Option<String>,
}

impl fmt::Debug for TxRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxRecord")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("reference", &self.reference)
            .field("state", &self.state)
            .field("amount", &self.amount)
            .field("masked_pan", &self.masked_pan)
            .field("sent_to", &self.sent_to)
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

/// A change of state of a recorded transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxUpdate {
    pub id: u64,
    pub state: TxState,
    pub updated_ms: u64,
    /// Set when the merchant is answered.
    pub answer: Option<Answer>,
}

/// A vaulted PAN_ONLY card.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultRecord {
    pub reference: String,
    pub merchant_id: String,
    /// PAN and expiry, sealed with the journal key (the reference is the
    /// associated data: a sealed card cannot be moved to another entry).
    pub card: Vec<u8>,
    pub stored_ms: u64,
    pub expires_ms: u64,
}

impl fmt::Debug for VaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultRecord")
            .field("merchant_id", &self.merchant_id)
            .field("stored_ms", &self.stored_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// One change to the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Takes `(merchant, reference)` for transaction `tx_id`. Conflicts
    /// when another transaction holds it and its claim is not older than
    /// `window_start_ms` (an older claim is replaced: the window is over).
    ClaimReference {
        merchant_id: String,
        reference: String,
        tx_id: u64,
        content_hash: [u8; 32],
        now_ms: u64,
        window_start_ms: u64,
    },
    /// Gives the reference back (nothing was sent), if `tx_id` holds it:
    /// free to claim again, still leading to `tx_id` until it is.
    ReleaseReference {
        merchant_id: String,
        reference: String,
        tx_id: u64,
    },
    /// Records that `(merchant, reference)` leads to `tx_id` without
    /// holding it (an order never sent), unless another transaction holds
    /// it since `window_start_ms`.
    NoteReference {
        merchant_id: String,
        reference: String,
        tx_id: u64,
        content_hash: [u8; 32],
        window_start_ms: u64,
    },
    /// Records a Google Pay `messageId`; conflicts when it was seen after
    /// `window_start_ms`.
    ClaimTokenId {
        merchant_id: String,
        message_id: String,
        now_ms: u64,
        window_start_ms: u64,
    },
    InsertTx(Box<TxRecord>),
    UpdateTx(TxUpdate),
    /// Queues a message (its transaction's reversal state becomes
    /// `queued`).
    QueueSaf(Box<SafRecord>),
    /// A message's progress (acknowledged or expired: its transaction's
    /// reversal state follows).
    UpdateSaf(SafUpdate),
    PutVault(VaultRecord),
    /// A transaction's new status and amounts.
    Settle {
        tx_id: u64,
        settlement: Settlement,
    },
    /// Records an operation.
    InsertOperation(Box<OperationRecord>),
    /// Raises counter `name`'s reservation to `upto` (never lowers it).
    Reserve {
        name: String,
        upto: u64,
    },
    /// Forgets Google Pay `messageId`s seen before `token_ids_before_ms`
    /// and vault cards expired before `vault_before_ms` (transactions and
    /// references are kept: `refs` is also the index from a reference to
    /// its latest transaction).
    Prune {
        token_ids_before_ms: u64,
        vault_before_ms: u64,
    },
}

/// The changes of one caller, applied together.
pub type Batch = Vec<Change>;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The batch's claim conflicted; nothing of the batch was applied.
    Conflict(Conflict),
}

/// What a claim ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The reference is held by this transaction (`None`: its record is
    /// gone, which a pruned journal may show).
    Reference(Option<Box<TxRecord>>),
    /// The Google Pay `messageId` was seen already.
    TokenId,
}

/// A transaction reference held within the window, as start-up needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRecord {
    pub merchant_id: String,
    pub reference: String,
    pub tx_id: u64,
    pub content_hash: [u8; 32],
    pub created_ms: u64,
}

/// A Google Pay `messageId` seen within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdRecord {
    pub merchant_id: String,
    pub message_id: String,
    pub seen_ms: u64,
}

/// How far back start-up looks for each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverySpan {
    pub references_since_ms: u64,
    pub references_max: usize,
    pub token_ids_since_ms: u64,
    pub token_ids_max: usize,
    pub vault_valid_at_ms: u64,
    pub vault_max: usize,
}

/// What start-up reads back.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Counter reservations by name.
    pub counters: Vec<(String, u64)>,
    /// Transactions still `sent`: their outcome is unknown.
    pub open: Vec<TxRecord>,
    /// The references of the transactions created within the duplicate
    /// window that hold them (every state but `not_sent`), newest last:
    /// only what the window needs, not the whole records (a busy hour is
    /// hundreds of thousands of them).
    pub references: Vec<ReferenceRecord>,
    pub token_ids: Vec<TokenIdRecord>,
    pub vault: Vec<VaultRecord>,
    /// Store-and-forward messages still queued, oldest first.
    pub saf: Vec<SafRecord>,
}

/// Why the journal failed. Never carries card data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error("journal {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("journal: {0}")]
    Storage(String),
    #[error("journal: a record does not read back: {0}")]
    Corrupt(String),
    #[error("journal: a batch has more than one claim")]
    TwoClaims,
    #[error("journal writer has stopped")]
    Stopped,
}

/// A storage engine behind the journal. One thread owns it (the writer);
/// every method may block on the disk.
pub trait Backend: Send {
    /// Applies `batches` in one durable transaction, in order; one result
    /// per batch. An `Err` means nothing of any batch is known to be
    /// durable.
    fn commit(&mut self, batches: &[Batch]) -> Result<Vec<Applied>, JournalError>;

    /// What start-up needs (see [`Recovered`]).
    fn recover(&mut self, span: &RecoverySpan) -> Result<Recovered, JournalError>;

    /// The newest transaction of `(merchant, reference)`.
    fn transaction(
        &mut self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<TxRecord>, JournalError>;

    /// A vaulted card, if still kept.
    fn vault(&mut self, reference: &str) -> Result<Option<VaultRecord>, JournalError>;

    /// A transaction by id.
    fn transaction_by_id(&mut self, id: u64) -> Result<Option<TxRecord>, JournalError>;

    /// Store-and-forward messages, every state, oldest first (tools and
    /// tests).
    fn saf_all(&mut self) -> Result<Vec<SafRecord>, JournalError>;

    /// Transactions created in `[from_ms, to_ms)`, oldest first.
    fn transactions_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<TxRecord>, JournalError>;

    /// The operations of transaction `tx_id`, oldest first.
    fn operations(&mut self, tx_id: u64) -> Result<Vec<OperationRecord>, JournalError>;

    /// Operations recorded in `[from_ms, to_ms)`, oldest first.
    fn operations_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<OperationRecord>, JournalError>;

    /// At most `limit` transactions that a cut-off closing business day
    /// `day` must capture or expire ([`due_at`]): approved and not
    /// reversed, due by `day` (`capture_day`, or their settlement's), and
    /// still `TO_CAPTURE` or `TO_VALIDATE` (no settlement yet counts as
    /// such). Once settled they are no longer due: the next call gives the
    /// next ones. Read through an index of the open ones only, so the
    /// daily cut-off never scans the transaction history.
    fn due_for_cut_off(&mut self, day: i32, limit: usize) -> Result<Vec<TxRecord>, JournalError>;
}

/// Whether a transaction is due at the cut-off closing `day` (see
/// [`Backend::due_for_cut_off`]).
pub fn due_at(t: &TxRecord, day: i32) -> bool {
    match &t.settlement {
        Some(s) => s.capture_day <= day && (s.status == "TO_CAPTURE" || s.status == "TO_VALIDATE"),
        None => {
            t.state == TxState::Approved
                && t.reversal == ReversalState::None
                && t.capture_day <= day
        }
    }
}

/// The claim of a batch, if any (at most one, and first).
fn claim_of(batch: &[Change]) -> Result<Option<&Change>, JournalError> {
    let is_claim = |c: &Change| {
        matches!(
            c,
            Change::ClaimReference { .. } | Change::ClaimTokenId { .. }
        )
    };
    match batch.iter().filter(|c| is_claim(c)).count() {
        0 => Ok(None),
        1 if batch.first().is_some_and(is_claim) => Ok(batch.first()),
        _ => Err(JournalError::TwoClaims),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! One behaviour test suite, run against every backend.
    use super::*;

    pub fn record(id: u64, merchant: &str, reference: &str, created_ms: u64) -> TxRecord {
        TxRecord {
            id,
            merchant_id: merchant.into(),
            reference: reference.into(),
            state: TxState::Sent,
            created_ms,
            updated_ms: created_ms,
            amount: 1000,
            currency: "978".into(),
            masked_pan: "489537******3478".into(),
            brand: "VISA".into(),
            pan_entry_mode: "OEMPAY".into(),
            wallet: Some("GOOGLEPAY".into()),
            order_channel: "INTERNET".into(),
            card: vec![1, 2, 3, 4],
            content_hash: [7; 32],
            sent_to: Some(SentTo {
                acquirer: "cb2a".into(),
                terminal_id: "ACQ00001".into(),
                acceptor_id: "MERCHANT0000001".into(),
                acquirer_id: "00000000001".into(),
                merchant_category_code: "5999".into(),
                stan: format!("{:06}", id % 1_000_000),
                rrn: format!("{id:012}"),
                sent_ms: created_ms,
            }),
            answer: None,
            reversal: ReversalState::None,
            capture_mode: "AUTHOR_CAPTURE".into(),
            capture_day: 19_675,
            settlement: None,
        }
    }

    fn claim(merchant: &str, reference: &str, tx_id: u64, now_ms: u64) -> Change {
        Change::ClaimReference {
            merchant_id: merchant.into(),
            reference: reference.into(),
            tx_id,
            content_hash: [7; 32],
            now_ms,
            window_start_ms: now_ms.saturating_sub(60_000),
        }
    }

    fn span(now_ms: u64) -> RecoverySpan {
        RecoverySpan {
            references_since_ms: now_ms.saturating_sub(60_000),
            references_max: 100,
            token_ids_since_ms: now_ms.saturating_sub(60_000),
            token_ids_max: 100,
            vault_valid_at_ms: now_ms,
            vault_max: 100,
        }
    }

    /// The behaviour every backend must have.
    pub fn backend_contract(b: &mut dyn Backend) {
        let t0 = 1_700_000_000_000u64;
        // Two batches in one commit; the second claims the same reference.
        let first = vec![
            claim("m1", "r1", 1, t0),
            Change::InsertTx(Box::new(record(1, "m1", "r1", t0))),
        ];
        let second = vec![
            claim("m1", "r1", 2, t0),
            Change::InsertTx(Box::new(record(2, "m1", "r1", t0))),
        ];
        let other = vec![
            claim("m2", "r1", 3, t0),
            Change::InsertTx(Box::new(record(3, "m2", "r1", t0))),
            Change::Reserve {
                name: "stan:cb2a".into(),
                upto: 10_000,
            },
        ];
        let r = b.commit(&[first, second, other]).unwrap();
        assert_eq!(r[0], Applied::Done);
        match &r[1] {
            Applied::Conflict(Conflict::Reference(Some(tx))) => assert_eq!(tx.id, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(r[2], Applied::Done);
        assert_eq!(b.transaction("m1", "r1").unwrap().unwrap().id, 1);
        assert!(b.transaction("m1", "r9").unwrap().is_none());

        // Outcome, and a counter that only goes up.
        let answer = Answer {
            response_code: "00".into(),
            acquirer_response_code: Some("00".into()),
            authorisation_id: Some("A1".into()),
            answered_ms: t0 + 5,
        };
        let r = b
            .commit(&[vec![
                Change::UpdateTx(TxUpdate {
                    id: 1,
                    state: TxState::Approved,
                    updated_ms: t0 + 5,
                    answer: Some(answer.clone()),
                }),
                Change::Reserve {
                    name: "stan:cb2a".into(),
                    upto: 5,
                },
            ]])
            .unwrap();
        assert_eq!(r, vec![Applied::Done]);
        let tx = b.transaction("m1", "r1").unwrap().unwrap();
        assert_eq!(tx.state, TxState::Approved);
        assert_eq!(tx.answer.as_ref(), Some(&answer));
        assert_eq!(tx.sent_to, record(1, "m1", "r1", t0).sent_to);

        // Release: only by the holder; then the reference is free.
        b.commit(&[vec![Change::ReleaseReference {
            merchant_id: "m2".into(),
            reference: "r1".into(),
            tx_id: 99,
        }]])
        .unwrap();
        let again = vec![claim("m2", "r1", 4, t0 + 1)];
        assert!(matches!(
            b.commit(std::slice::from_ref(&again)).unwrap()[0],
            Applied::Conflict(_)
        ));
        b.commit(&[vec![Change::ReleaseReference {
            merchant_id: "m2".into(),
            reference: "r1".into(),
            tx_id: 3,
        }]])
        .unwrap();
        assert_eq!(
            b.transaction("m2", "r1").unwrap().unwrap().id,
            3,
            "still found"
        );
        assert_eq!(b.commit(&[again]).unwrap()[0], Applied::Done);
        // A noted reference leads to its transaction and holds nothing; it
        // does not displace a holder.
        let note = |tx_id: u64, reference: &str| Change::NoteReference {
            merchant_id: "m3".into(),
            reference: reference.into(),
            tx_id,
            content_hash: [7; 32],
            window_start_ms: t0.saturating_sub(60_000),
        };
        b.commit(&[vec![
            Change::InsertTx(Box::new(TxRecord {
                state: TxState::NotSent,
                ..record(20, "m3", "n1", t0)
            })),
            note(20, "n1"),
        ]])
        .unwrap();
        assert_eq!(b.transaction("m3", "n1").unwrap().unwrap().id, 20);
        assert_eq!(
            b.commit(&[vec![claim("m3", "n1", 21, t0)]]).unwrap()[0],
            Applied::Done,
            "a noted reference is free"
        );
        b.commit(&[vec![note(22, "n1")]]).unwrap();
        assert!(
            matches!(
                b.commit(&[vec![claim("m3", "n1", 23, t0)]]).unwrap()[0],
                Applied::Conflict(_)
            ),
            "a note does not take a held reference"
        );

        // After the window a reference may be used again.
        let late = t0 + 61_000;
        assert_eq!(
            b.commit(&[vec![claim("m1", "r1", 5, late)]]).unwrap()[0],
            Applied::Done
        );

        // Token ids.
        let token = |now_ms: u64| {
            vec![Change::ClaimTokenId {
                merchant_id: "m1".into(),
                message_id: "msg-1".into(),
                now_ms,
                window_start_ms: now_ms.saturating_sub(60_000),
            }]
        };
        assert_eq!(b.commit(&[token(t0)]).unwrap()[0], Applied::Done);
        assert_eq!(
            b.commit(&[token(t0 + 10)]).unwrap()[0],
            Applied::Conflict(Conflict::TokenId)
        );

        // Vault.
        let v = VaultRecord {
            reference: "vlt_1".into(),
            merchant_id: "m1".into(),
            card: vec![9; 40],
            stored_ms: t0,
            expires_ms: t0 + 900_000,
        };
        b.commit(&[vec![Change::PutVault(v.clone())]]).unwrap();
        assert_eq!(b.vault("vlt_1").unwrap(), Some(v.clone()));
        assert_eq!(b.vault("vlt_2").unwrap(), None);

        // Two claims in one batch are refused.
        assert!(matches!(
            b.commit(&[vec![claim("m9", "a", 10, t0), claim("m9", "b", 11, t0)]]),
            Err(JournalError::TwoClaims)
        ));

        // Recovery: counters, the open transaction (3, never answered),
        // the windows.
        let rec = b.recover(&span(t0 + 100)).unwrap();
        assert_eq!(rec.counters, vec![("stan:cb2a".to_owned(), 10_000)]);
        let open: Vec<u64> = rec.open.iter().map(|t| t.id).collect();
        assert_eq!(open, vec![3]);
        // The transactions holding references within the window (1 and 3:
        // 2 conflicted, 4 and 5 were claims without a record).
        let held: Vec<u64> = rec.references.iter().map(|t| t.tx_id).collect();
        assert_eq!(held, vec![1, 3]);
        assert_eq!(rec.token_ids.len(), 1);
        assert_eq!(rec.vault, vec![v]);

        // Store and forward: queued with the transaction's reversal state,
        // in the recovery while queued, its progress kept.
        let saf = SafRecord {
            id: 100,
            tx_id: 3,
            kind: SafKind::Reversal,
            acquirer: "cb2a".into(),
            reason: "TIMEOUT".into(),
            stan: "000777".into(),
            amount: 1000,
            state: SafState::Queued,
            attempts: 0,
            created_ms: t0 + 50,
            updated_ms: t0 + 50,
            expires_ms: t0 + 86_400_000,
            response_code: None,
            replacement: None,
        };
        b.commit(&[vec![Change::QueueSaf(Box::new(saf.clone()))]])
            .unwrap();
        assert_eq!(
            b.transaction_by_id(3).unwrap().unwrap().reversal,
            ReversalState::Queued
        );
        let rec = b.recover(&span(t0 + 100)).unwrap();
        assert_eq!(rec.saf, vec![saf.clone()]);
        let sent_once = SafUpdate {
            id: 100,
            tx_id: 3,
            state: SafState::Queued,
            stan: "000778".into(),
            attempts: 1,
            updated_ms: t0 + 60,
            response_code: None,
        };
        b.commit(&[vec![Change::UpdateSaf(sent_once)]]).unwrap();
        let queued = &b.recover(&span(t0 + 100)).unwrap().saf[0];
        assert_eq!((queued.attempts, queued.stan.as_str()), (1, "000778"));
        b.commit(&[vec![Change::UpdateSaf(SafUpdate {
            id: 100,
            tx_id: 3,
            state: SafState::Acknowledged,
            stan: "000778".into(),
            attempts: 1,
            updated_ms: t0 + 70,
            response_code: Some("00".into()),
        })]])
        .unwrap();
        assert!(b.recover(&span(t0 + 100)).unwrap().saf.is_empty());
        assert_eq!(
            b.transaction_by_id(3).unwrap().unwrap().reversal,
            ReversalState::Acknowledged
        );
        let all = b.saf_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].state, SafState::Acknowledged);
        assert_eq!(all[0].response_code.as_deref(), Some("00"));
        assert!(b.transaction_by_id(999).unwrap().is_none());

        // Listing by creation time.
        let all = b.transactions_between(t0, t0 + 1).unwrap();
        assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 3, 20]);

        // Settlement and operations: a cancel queued for the acquirer does
        // not touch the automatic reversal state.
        let cancel = SafRecord {
            id: 101,
            tx_id: 1,
            kind: SafKind::Cancel,
            replacement: Some(600),
            ..saf.clone()
        };
        let op = OperationRecord {
            id: 500,
            tx_id: 1,
            kind: "cancel".into(),
            amount: 400,
            operation_reference: Some("op-1".into()),
            response_code: "00".into(),
            new_status: "TO_CAPTURE".into(),
            new_amount: 600,
            created_ms: t0 + 80,
            saf_id: Some(101),
        };
        let settled = Settlement {
            status: "TO_CAPTURE".into(),
            remaining: 600,
            captured: 0,
            refunded: 0,
            capture_day: 19_675,
            updated_ms: t0 + 80,
        };
        let tx1 = b.transaction_by_id(1).unwrap().unwrap();
        assert!(due_at(&tx1, 19_675) && !due_at(&tx1, 19_674));
        b.commit(&[vec![
            Change::Settle {
                tx_id: 1,
                settlement: settled.clone(),
            },
            Change::InsertOperation(Box::new(op.clone())),
            Change::QueueSaf(Box::new(cancel.clone())),
        ]])
        .unwrap();
        // Written again (its first write's outcome unknown): nothing
        // changes and the group it lands in is not failed.
        let again = b
            .commit(&[
                vec![Change::QueueSaf(Box::new(cancel.clone()))],
                vec![Change::Reserve {
                    name: "again".into(),
                    upto: 7,
                }],
            ])
            .unwrap();
        assert_eq!(again, vec![Applied::Done, Applied::Done]);
        assert_eq!(
            b.saf_all().unwrap().iter().filter(|q| q.id == 101).count(),
            1
        );
        let tx1 = b.transaction_by_id(1).unwrap().unwrap();
        assert_eq!(tx1.settlement.as_ref(), Some(&settled));
        assert_eq!(tx1.reversal, ReversalState::None);
        assert_eq!(b.operations(1).unwrap(), vec![op.clone()]);
        assert!(b.operations(3).unwrap().is_empty());
        assert_eq!(b.operations_between(t0, t0 + 81).unwrap(), vec![op.clone()]);
        assert!(b.operations_between(t0 + 81, t0 + 90).unwrap().is_empty());
        b.commit(&[vec![Change::UpdateSaf(SafUpdate {
            id: 101,
            tx_id: 1,
            state: SafState::Acknowledged,
            stan: "000779".into(),
            attempts: 1,
            updated_ms: t0 + 90,
            response_code: Some("00".into()),
        })]])
        .unwrap();
        assert_eq!(
            b.transaction_by_id(1).unwrap().unwrap().reversal,
            ReversalState::None
        );
        assert_eq!(b.saf_all().unwrap()[1].replacement, Some(600));
        // Due at the cut-off: 1 (settled TO_CAPTURE, due), not 3 (never
        // approved) nor 20 (not sent).
        let due: Vec<u64> = b
            .due_for_cut_off(19_675, 100)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(due, vec![1]);
        assert!(b.due_for_cut_off(19_674, 100).unwrap().is_empty());
        b.commit(&[vec![Change::Settle {
            tx_id: 1,
            settlement: Settlement {
                status: "CAPTURED".into(),
                captured: 600,
                ..settled.clone()
            },
        }]])
        .unwrap();
        assert!(b.due_for_cut_off(19_700, 100).unwrap().is_empty());

        // Prune forgets token ids and vault, keeps transactions.
        b.commit(&[vec![Change::Prune {
            token_ids_before_ms: t0 + 11,
            vault_before_ms: t0 + 900_001,
        }]])
        .unwrap();
        let rec = b.recover(&span(t0 + 100)).unwrap();
        assert!(rec.token_ids.is_empty() && rec.vault.is_empty());
        assert_eq!(rec.references.len(), 2);
        assert!(b.transaction_by_id(1).unwrap().is_some());
        // Outside the window, nothing is held.
        let rec = b.recover(&span(t0 + 200_000)).unwrap();
        assert!(rec.references.is_empty());
    }
}
