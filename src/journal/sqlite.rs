//! The SQLite backend: one file, WAL mode, `synchronous = FULL` (every
//! commit is on disk when it returns: one fsync of the WAL per group
//! commit). Operators can read it with the `sqlite3` shell while the switch
//! runs (WAL readers do not block the writer), and the schema is plain SQL
//! that carries over to PostgreSQL.
//!
//! ```text
//!   tx        one row per authorization (state, acquirer identifiers,
//!             answer; card sealed in `card`, masked PAN in clear)
//!   refs      (merchant_id, reference) -> its latest tx_id: held within
//!             the duplicate window from created_ms (0: not held); also the
//!             index from a reference to its transaction (tx has no index
//!             on it: one random-key index per order, not two)
//!   token_ids (merchant_id, message_id) of decrypted Google Pay tokens
//!   vault     PAN_ONLY cards behind their references (sealed)
//!   counters  sequence reservations (ids, RRNs, STANs per acquirer)
//! ```
//! The schema version is SQLite's `user_version`; [`MIGRATIONS`] brings an
//! older file up to date at open, in one transaction.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::{
    claim_of, Answer, Applied, Backend, Batch, Change, Conflict, JournalError, OperationRecord,
    Recovered, RecoverySpan, ReferenceRecord, ReversalState, SafKind, SafRecord, SafState, SentTo,
    Settlement, TokenIdRecord, TxRecord, TxState, TxUpdate, VaultRecord,
};

/// Schema steps; `user_version` = how many have been applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tx (
    id                     INTEGER PRIMARY KEY,
    merchant_id            TEXT NOT NULL,
    reference              TEXT NOT NULL,
    state                  TEXT NOT NULL,
    created_ms             INTEGER NOT NULL,
    updated_ms             INTEGER NOT NULL,
    amount                 INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    masked_pan             TEXT NOT NULL,
    brand                  TEXT NOT NULL,
    pan_entry_mode         TEXT NOT NULL,
    wallet                 TEXT,
    order_channel          TEXT NOT NULL,
    card                   BLOB NOT NULL,   -- AES-256-GCM(PAN | expiry), see journal::crypto
    content_hash           BLOB NOT NULL,
    acquirer               TEXT,
    terminal_id            TEXT,
    acceptor_id            TEXT,
    acquirer_id            TEXT,
    merchant_category_code TEXT,
    stan                   TEXT,
    rrn                    TEXT,
    sent_ms                INTEGER,
    response_code          TEXT,
    acquirer_response_code TEXT,
    authorisation_id       TEXT,
    answered_ms            INTEGER,
    reversal               TEXT NOT NULL DEFAULT 'none'
);
CREATE INDEX tx_by_reference ON tx (merchant_id, reference);
CREATE INDEX tx_by_created ON tx (created_ms);
CREATE INDEX tx_open ON tx (state) WHERE state = 'sent';
CREATE TABLE refs (
    merchant_id  TEXT NOT NULL,
    reference    TEXT NOT NULL,
    tx_id        INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, reference)
) WITHOUT ROWID;
CREATE INDEX refs_by_created ON refs (created_ms);
CREATE TABLE token_ids (
    merchant_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    seen_ms     INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, message_id)
) WITHOUT ROWID;
CREATE INDEX token_ids_by_seen ON token_ids (seen_ms);
CREATE TABLE vault (
    reference   TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    card        BLOB NOT NULL,   -- AES-256-GCM(PAN | expiry), see journal::crypto
    stored_ms   INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX vault_by_expiry ON vault (expires_ms);
CREATE TABLE counters (
    name     TEXT PRIMARY KEY,
    reserved INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE saf (
    id            INTEGER PRIMARY KEY,
    tx_id         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    acquirer      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    stan          TEXT NOT NULL,
    amount        INTEGER NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    response_code TEXT
);
CREATE INDEX saf_queued ON saf (state) WHERE state = 'queued';
-- One reversal per authorization, whatever triggers it.
CREATE UNIQUE INDEX saf_one_reversal ON saf (tx_id) WHERE kind = 'reversal';
"#,
    r#"
-- After the authorization: capture mode and day, the status and amounts
-- once an operation or a cut-off changed them (NULL before), operations.
ALTER TABLE tx ADD COLUMN capture_mode TEXT NOT NULL DEFAULT 'AUTHOR_CAPTURE';
ALTER TABLE tx ADD COLUMN capture_day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tx ADD COLUMN status TEXT;
ALTER TABLE tx ADD COLUMN remaining INTEGER;
ALTER TABLE tx ADD COLUMN captured INTEGER;
ALTER TABLE tx ADD COLUMN refunded INTEGER;
ALTER TABLE tx ADD COLUMN settle_day INTEGER;
ALTER TABLE tx ADD COLUMN settled_ms INTEGER;
ALTER TABLE saf ADD COLUMN replacement INTEGER;
CREATE TABLE operations (
    id                  INTEGER PRIMARY KEY,
    tx_id               INTEGER NOT NULL,
    kind                TEXT NOT NULL,
    amount              INTEGER NOT NULL,
    operation_reference TEXT,
    response_code       TEXT NOT NULL,
    new_status          TEXT NOT NULL,
    new_amount          INTEGER NOT NULL,
    created_ms          INTEGER NOT NULL,
    saf_id              INTEGER
);
CREATE INDEX operations_by_tx ON operations (tx_id);
"#,
    r#"
-- The daily cut-off reads the open transactions through this index only:
-- approved and not reversed, not settled yet, or settled to capture or to
-- validate; keyed by the business day they are due.
CREATE INDEX tx_due ON tx ((CASE WHEN status IS NULL THEN capture_day ELSE settle_day END))
  WHERE (status IS NULL AND state = 'approved' AND reversal = 'none')
     OR status IN ('TO_CAPTURE', 'TO_VALIDATE');
"#,
    r#"
-- The first schema, as released, indexed tx by reference and by time and
-- refs by time, and deleted the refs row of an order never sent. refs is
-- now the one index from a reference to its latest transaction (one
-- random-key insert per order instead of three): the three indexes go,
-- and every reference without a row gets one to its latest transaction
-- (not held: created_ms 0).
DROP INDEX IF EXISTS tx_by_reference;
DROP INDEX IF EXISTS tx_by_created;
DROP INDEX IF EXISTS refs_by_created;
INSERT INTO refs (merchant_id, reference, tx_id, content_hash, created_ms)
  SELECT merchant_id, reference, max(id), content_hash, 0 FROM tx WHERE true
  GROUP BY merchant_id, reference
  ON CONFLICT (merchant_id, reference) DO NOTHING;
"#,
];

/// The columns of `tx`, in [`tx_of_row`]'s order (a macro, so that the
/// statements of every order are literals: `prepare_cached` hashes its
/// text on each call, better not built on each call too).
macro_rules! tx_columns {
    () => {
        "id, merchant_id, reference, state, created_ms, updated_ms, amount, \
         currency, masked_pan, brand, pan_entry_mode, wallet, order_channel, card, content_hash, \
         acquirer, terminal_id, acceptor_id, acquirer_id, merchant_category_code, stan, rrn, \
         sent_ms, response_code, acquirer_response_code, authorisation_id, answered_ms, reversal, \
         capture_mode, capture_day, status, remaining, captured, refunded, settle_day, settled_ms"
    };
}
const TX_COLUMNS: &str = tx_columns!();

/// The columns of `saf`, in [`saf_of`]'s order.
macro_rules! saf_columns {
    () => {
        "id, tx_id, kind, acquirer, reason, stan, amount, state, attempts, \
         created_ms, updated_ms, expires_ms, response_code, replacement"
    };
}
const SAF_COLUMNS: &str = saf_columns!();

const INSERT_TX: &str = concat!(
    "INSERT INTO tx (",
    tx_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)"
);
const TX_BY_ID: &str = concat!("SELECT ", tx_columns!(), " FROM tx WHERE id = ?1");
const INSERT_SAF: &str = concat!(
    "INSERT INTO saf (",
    saf_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING"
);

/// The columns of `operations`, in [`operation_of`]'s order.
const OPERATION_COLUMNS: &str = "id, tx_id, kind, amount, operation_reference, response_code, \
    new_status, new_amount, created_ms, saf_id";

/// A journal in one SQLite file.
pub struct SqliteBackend {
    conn: Connection,
    path: String,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish()
    }
}

fn storage(e: rusqlite::Error) -> JournalError {
    JournalError::Storage(e.to_string())
}

/// SQLite stores signed 64-bit integers; every value here is far below.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteBackend {
    /// Opens (creating if needed) the journal at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<SqliteBackend, JournalError> {
        let shown = path.display().to_string();
        let open_err = |reason: String| JournalError::Open {
            path: shown.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        Self::setup(conn, shown)
    }

    /// An existing journal, read only (exports and tools, while `serve`
    /// runs: WAL readers never block the writer). Its schema must be this
    /// build's.
    pub fn open_read_only(path: &Path) -> Result<SqliteBackend, JournalError> {
        let shown = path.display().to_string();
        let open_err = |reason: String| JournalError::Open {
            path: shown.clone(),
            reason,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| open_err(e.to_string()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if usize::try_from(version).ok() != Some(MIGRATIONS.len()) {
            return Err(open_err(format!(
                "schema version {version}, this build reads {} (start serve on it once to bring it up to date)",
                MIGRATIONS.len()
            )));
        }
        Ok(SqliteBackend { conn, path: shown })
    }

    /// A journal in memory (tests): same SQL, nothing on disk.
    pub fn in_memory() -> Result<SqliteBackend, JournalError> {
        let conn = Connection::open_in_memory().map_err(storage)?;
        Self::setup(conn, ":memory:".into())
    }

    fn setup(mut conn: Connection, path: String) -> Result<SqliteBackend, JournalError> {
        let open_err = |e: rusqlite::Error| JournalError::Open {
            path: path.clone(),
            reason: e.to_string(),
        };
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // More statements than rusqlite's default cache of 16: none is
        // prepared again on the writer's path.
        conn.set_prepared_statement_cache_capacity(64);
        // WAL: readers (the sqlite3 shell, exports) never block the writer;
        // FULL: the WAL is fsynced at every commit, so a committed batch
        // survives a crash or power loss.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if path != ":memory:" && !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Open {
                path,
                reason: format!("cannot use WAL mode (got {mode})"),
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = OFF;
             PRAGMA temp_store = MEMORY;
",
        )
        .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(JournalError::Open {
                path,
                reason: format!(
                    "schema version {version} is newer than this build knows ({})",
                    MIGRATIONS.len()
                ),
            });
        }
        if version < MIGRATIONS.len() {
            let t = conn.transaction().map_err(open_err)?;
            for m in &MIGRATIONS[version..] {
                t.execute_batch(m).map_err(open_err)?;
            }
            t.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))
                .map_err(open_err)?;
            t.commit().map_err(open_err)?;
        }
        Ok(SqliteBackend { conn, path })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(storage)
    }
}

fn tx_of_row(r: &Row<'_>) -> rusqlite::Result<TxRecord> {
    let state: String = r.get(3)?;
    let state = TxState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown state {state:?}").into(),
        )
    })?;
    let hash: Vec<u8> = r.get(14)?;
    let content_hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            14,
            rusqlite::types::Type::Blob,
            "content hash is not 32 bytes".into(),
        )
    })?;
    let acquirer: Option<String> = r.get(15)?;
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let sent_to = match acquirer {
        Some(acquirer) => Some(SentTo {
            acquirer,
            terminal_id: text(16)?,
            acceptor_id: text(17)?,
            acquirer_id: text(18)?,
            merchant_category_code: text(19)?,
            stan: text(20)?,
            rrn: text(21)?,
            sent_ms: u(r.get::<_, Option<i64>>(22)?.unwrap_or(0)),
        }),
        None => None,
    };
    let response_code: Option<String> = r.get(23)?;
    let answer = match response_code {
        Some(response_code) => Some(Answer {
            response_code,
            acquirer_response_code: r.get(24)?,
            authorisation_id: r.get(25)?,
            answered_ms: u(r.get::<_, Option<i64>>(26)?.unwrap_or(0)),
        }),
        None => None,
    };
    let reversal: String = r.get(27)?;
    let reversal = ReversalState::parse(&reversal).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            27,
            rusqlite::types::Type::Text,
            format!("unknown reversal state {reversal:?}").into(),
        )
    })?;
    let status: Option<String> = r.get(30)?;
    let settlement = match status {
        Some(status) => Some(Settlement {
            status,
            remaining: u(r.get::<_, Option<i64>>(31)?.unwrap_or(0)),
            captured: u(r.get::<_, Option<i64>>(32)?.unwrap_or(0)),
            refunded: u(r.get::<_, Option<i64>>(33)?.unwrap_or(0)),
            capture_day: r.get::<_, Option<i32>>(34)?.unwrap_or(0),
            updated_ms: u(r.get::<_, Option<i64>>(35)?.unwrap_or(0)),
        }),
        None => None,
    };
    Ok(TxRecord {
        id: u(r.get(0)?),
        merchant_id: r.get(1)?,
        reference: r.get(2)?,
        state,
        created_ms: u(r.get(4)?),
        updated_ms: u(r.get(5)?),
        amount: u(r.get(6)?),
        currency: r.get(7)?,
        masked_pan: r.get(8)?,
        brand: r.get(9)?,
        pan_entry_mode: r.get(10)?,
        wallet: r.get(11)?,
        order_channel: r.get(12)?,
        card: r.get(13)?,
        content_hash,
        sent_to,
        answer,
        reversal,
        capture_mode: r.get(28)?,
        capture_day: r.get(29)?,
        settlement,
    })
}

fn operation_of(r: &Row<'_>) -> rusqlite::Result<OperationRecord> {
    Ok(OperationRecord {
        id: u(r.get(0)?),
        tx_id: u(r.get(1)?),
        kind: r.get(2)?,
        amount: u(r.get(3)?),
        operation_reference: r.get(4)?,
        response_code: r.get(5)?,
        new_status: r.get(6)?,
        new_amount: u(r.get(7)?),
        created_ms: u(r.get(8)?),
        saf_id: r.get::<_, Option<i64>>(9)?.map(u),
    })
}

fn saf_of(r: &Row<'_>) -> rusqlite::Result<SafRecord> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
    };
    let kind: String = r.get(2)?;
    let state: String = r.get(7)?;
    Ok(SafRecord {
        id: u(r.get(0)?),
        tx_id: u(r.get(1)?),
        kind: SafKind::parse(&kind).ok_or_else(|| bad(2, format!("unknown kind {kind:?}")))?,
        acquirer: r.get(3)?,
        reason: r.get(4)?,
        stan: r.get(5)?,
        amount: u(r.get(6)?),
        state: SafState::parse(&state).ok_or_else(|| bad(7, format!("unknown state {state:?}")))?,
        attempts: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
        created_ms: u(r.get(9)?),
        updated_ms: u(r.get(10)?),
        expires_ms: u(r.get(11)?),
        response_code: r.get(12)?,
        replacement: r.get::<_, Option<i64>>(13)?.map(u),
    })
}

fn tx_by_id(t: &Transaction<'_>, id: i64) -> rusqlite::Result<Option<TxRecord>> {
    t.prepare_cached(TX_BY_ID)?
        .query_row([id], tx_of_row)
        .optional()
}

/// Applies a claim; `Some(conflict)` when it is refused.
fn claim(t: &Transaction<'_>, c: &Change) -> rusqlite::Result<Option<Conflict>> {
    match c {
        Change::ClaimReference {
            merchant_id,
            reference,
            tx_id,
            content_hash,
            now_ms,
            window_start_ms,
        } => {
            // Insert, or take over a claim whose window is over.
            let n = t
                .prepare_cached(
                    "INSERT INTO refs (merchant_id, reference, tx_id, content_hash, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (merchant_id, reference) DO UPDATE SET
                        tx_id = excluded.tx_id, content_hash = excluded.content_hash,
                        created_ms = excluded.created_ms
                     WHERE refs.created_ms < ?6",
                )?
                .execute(params![
                    merchant_id,
                    reference,
                    i(*tx_id),
                    &content_hash[..],
                    i(*now_ms),
                    i(*window_start_ms)
                ])?;
            if n == 1 {
                return Ok(None);
            }
            let holder: i64 = t
                .prepare_cached("SELECT tx_id FROM refs WHERE merchant_id = ?1 AND reference = ?2")?
                .query_row(params![merchant_id, reference], |r| r.get(0))?;
            let tx = tx_by_id(t, holder)?.map(Box::new);
            Ok(Some(Conflict::Reference(tx)))
        }
        Change::ClaimTokenId {
            merchant_id,
            message_id,
            now_ms,
            window_start_ms,
        } => {
            let n = t
                .prepare_cached(
                    "INSERT INTO token_ids (merchant_id, message_id, seen_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (merchant_id, message_id) DO UPDATE SET seen_ms = excluded.seen_ms
                     WHERE token_ids.seen_ms < ?4",
                )?
                .execute(params![
                    merchant_id,
                    message_id,
                    i(*now_ms),
                    i(*window_start_ms)
                ])?;
            Ok((n == 0).then_some(Conflict::TokenId))
        }
        _ => Ok(None),
    }
}

fn insert_tx(t: &Transaction<'_>, r: &TxRecord) -> rusqlite::Result<()> {
    let s = r.sent_to.as_ref();
    let a = r.answer.as_ref();
    t.prepare_cached(INSERT_TX)?.execute(params![
        i(r.id),
        r.merchant_id,
        r.reference,
        r.state.as_str(),
        i(r.created_ms),
        i(r.updated_ms),
        i(r.amount),
        r.currency,
        r.masked_pan,
        r.brand,
        r.pan_entry_mode,
        r.wallet,
        r.order_channel,
        r.card,
        &r.content_hash[..],
        s.map(|s| &s.acquirer),
        s.map(|s| &s.terminal_id),
        s.map(|s| &s.acceptor_id),
        s.map(|s| &s.acquirer_id),
        s.map(|s| &s.merchant_category_code),
        s.map(|s| &s.stan),
        s.map(|s| &s.rrn),
        s.map(|s| i(s.sent_ms)),
        a.map(|a| &a.response_code),
        a.and_then(|a| a.acquirer_response_code.as_ref()),
        a.and_then(|a| a.authorisation_id.as_ref()),
        a.map(|a| i(a.answered_ms)),
        r.reversal.as_str(),
        r.capture_mode,
        r.capture_day,
        r.settlement.as_ref().map(|s| &s.status),
        r.settlement.as_ref().map(|s| i(s.remaining)),
        r.settlement.as_ref().map(|s| i(s.captured)),
        r.settlement.as_ref().map(|s| i(s.refunded)),
        r.settlement.as_ref().map(|s| s.capture_day),
        r.settlement.as_ref().map(|s| i(s.updated_ms)),
    ])?;
    Ok(())
}

fn update_tx(t: &Transaction<'_>, u: &TxUpdate) -> rusqlite::Result<()> {
    match &u.answer {
        Some(a) => t
            .prepare_cached(
                "UPDATE tx SET state = ?2, updated_ms = ?3, response_code = ?4,
                    acquirer_response_code = ?5, authorisation_id = ?6, answered_ms = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                i(u.id),
                u.state.as_str(),
                i(u.updated_ms),
                a.response_code,
                a.acquirer_response_code,
                a.authorisation_id,
                i(a.answered_ms)
            ])?,
        None => t
            .prepare_cached("UPDATE tx SET state = ?2, updated_ms = ?3 WHERE id = ?1")?
            .execute(params![i(u.id), u.state.as_str(), i(u.updated_ms)])?,
    };
    Ok(())
}

fn apply(t: &Transaction<'_>, c: &Change) -> rusqlite::Result<()> {
    match c {
        Change::ClaimReference { .. } | Change::ClaimTokenId { .. } => {}
        Change::ReleaseReference {
            merchant_id,
            reference,
            tx_id,
        } => {
            // Free to claim (a claim takes over rows older than its window),
            // still leading to the transaction.
            t.prepare_cached(
                "UPDATE refs SET created_ms = 0
                 WHERE merchant_id = ?1 AND reference = ?2 AND tx_id = ?3",
            )?
            .execute(params![merchant_id, reference, i(*tx_id)])?;
        }
        Change::NoteReference {
            merchant_id,
            reference,
            tx_id,
            content_hash,
            window_start_ms,
        } => {
            t.prepare_cached(
                "INSERT INTO refs (merchant_id, reference, tx_id, content_hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4, 0)
                 ON CONFLICT (merchant_id, reference) DO UPDATE SET
                    tx_id = excluded.tx_id, content_hash = excluded.content_hash, created_ms = 0
                 WHERE refs.created_ms < ?5",
            )?
            .execute(params![
                merchant_id,
                reference,
                i(*tx_id),
                &content_hash[..],
                i(*window_start_ms)
            ])?;
        }
        Change::InsertTx(r) => insert_tx(t, r)?,
        Change::UpdateTx(u) => update_tx(t, u)?,
        Change::QueueSaf(q) => {
            // Idempotent: a message written again (its first write's
            // outcome unknown) must not fail the group it lands in.
            let inserted = t.prepare_cached(INSERT_SAF)?.execute(params![
                i(q.id),
                i(q.tx_id),
                q.kind.as_str(),
                q.acquirer,
                q.reason,
                q.stan,
                i(q.amount),
                q.state.as_str(),
                i64::from(q.attempts),
                i(q.created_ms),
                i(q.updated_ms),
                i(q.expires_ms),
                q.response_code,
                q.replacement.map(i),
            ])?;
            if inserted == 1 && q.kind == SafKind::Reversal {
                t.prepare_cached("UPDATE tx SET reversal = 'queued' WHERE id = ?1")?
                    .execute([i(q.tx_id)])?;
            }
        }
        Change::UpdateSaf(u) => {
            t.prepare_cached(
                "UPDATE saf SET state = ?2, attempts = ?3, updated_ms = ?4,
                    response_code = coalesce(?5, response_code), stan = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                i(u.id),
                u.state.as_str(),
                i64::from(u.attempts),
                i(u.updated_ms),
                u.response_code,
                u.stan
            ])?;
            let reversal = match u.state {
                SafState::Queued => None,
                SafState::Acknowledged => Some(ReversalState::Acknowledged),
                SafState::Expired => Some(ReversalState::Expired),
            };
            if let Some(r) = reversal {
                t.prepare_cached(
                    "UPDATE tx SET reversal = ?2 WHERE id = ?1
                     AND EXISTS (SELECT 1 FROM saf WHERE id = ?3 AND kind = 'reversal')",
                )?
                .execute(params![i(u.tx_id), r.as_str(), i(u.id)])?;
            }
        }
        Change::Settle { tx_id, settlement } => {
            t.prepare_cached(
                "UPDATE tx SET status = ?2, remaining = ?3, captured = ?4, refunded = ?5,
                    settle_day = ?6, settled_ms = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                i(*tx_id),
                settlement.status,
                i(settlement.remaining),
                i(settlement.captured),
                i(settlement.refunded),
                settlement.capture_day,
                i(settlement.updated_ms)
            ])?;
        }
        Change::InsertOperation(o) => {
            t.prepare_cached(&format!(
                "INSERT INTO operations ({OPERATION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?
            .execute(params![
                i(o.id),
                i(o.tx_id),
                o.kind,
                i(o.amount),
                o.operation_reference,
                o.response_code,
                o.new_status,
                i(o.new_amount),
                i(o.created_ms),
                o.saf_id.map(i),
            ])?;
        }
        Change::PutVault(v) => {
            t.prepare_cached(
                "INSERT OR REPLACE INTO vault (reference, merchant_id, card, stored_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                v.reference,
                v.merchant_id,
                v.card,
                i(v.stored_ms),
                i(v.expires_ms)
            ])?;
        }
        Change::Reserve { name, upto } => {
            t.prepare_cached(
                "INSERT INTO counters (name, reserved) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET reserved = max(reserved, excluded.reserved)",
            )?
            .execute(params![name, i(*upto)])?;
        }
        Change::Prune {
            token_ids_before_ms,
            vault_before_ms,
        } => {
            t.prepare_cached("DELETE FROM token_ids WHERE seen_ms < ?1")?
                .execute([i(*token_ids_before_ms)])?;
            t.prepare_cached("DELETE FROM vault WHERE expires_ms < ?1")?
                .execute([i(*vault_before_ms)])?;
        }
    }
    Ok(())
}

fn vault_of_row(r: &Row<'_>) -> rusqlite::Result<VaultRecord> {
    Ok(VaultRecord {
        reference: r.get(0)?,
        merchant_id: r.get(1)?,
        card: r.get(2)?,
        stored_ms: u(r.get(3)?),
        expires_ms: u(r.get(4)?),
    })
}

impl Backend for SqliteBackend {
    fn commit(&mut self, batches: &[Batch]) -> Result<Vec<Applied>, JournalError> {
        for b in batches {
            claim_of(b)?;
        }
        let t = self.conn.transaction().map_err(storage)?;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let conflict = match batch.first() {
                Some(first) => claim(&t, first).map_err(storage)?,
                None => None,
            };
            if let Some(c) = conflict {
                out.push(Applied::Conflict(c));
                continue;
            }
            for c in batch {
                apply(&t, c).map_err(storage)?;
            }
            out.push(Applied::Done);
        }
        t.commit().map_err(storage)?;
        Ok(out)
    }

    fn recover(&mut self, span: &RecoverySpan) -> Result<Recovered, JournalError> {
        let t = self.conn.transaction().map_err(storage)?;
        let mut rec = Recovered::default();
        {
            let mut st = t
                .prepare("SELECT name, reserved FROM counters ORDER BY name")
                .map_err(storage)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, u(r.get(1)?))))
                .map_err(storage)?;
            for r in rows {
                rec.counters.push(r.map_err(storage)?);
            }
            let mut st = t
                .prepare(&format!(
                    "SELECT {TX_COLUMNS} FROM tx WHERE state = 'sent' ORDER BY id"
                ))
                .map_err(storage)?;
            for r in st.query_map([], tx_of_row).map_err(storage)? {
                rec.open
                    .push(r.map_err(|e| JournalError::Corrupt(e.to_string()))?);
            }
            // Ids grow with time: the window's transactions are the ids
            // from the first one created in it (no index on the time).
            // Ids and times can disagree by a little (an id taken before
            // the clock is read): look from a little before the window.
            let first = first_id_since(&t, span.references_since_ms.saturating_sub(CLOCK_SKEW_MS))
                .map_err(storage)?;
            let mut st = t
                .prepare(
                    "SELECT merchant_id, reference, id, content_hash, created_ms FROM tx
                     WHERE id >= ?1 AND state <> 'not_sent' ORDER BY id DESC LIMIT ?2",
                )
                .map_err(storage)?;
            let rows = st
                .query_map(params![i(first), span.references_max as i64], |r| {
                    let hash: Vec<u8> = r.get(3)?;
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        hash,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(storage)?;
            for r in rows {
                let (merchant_id, reference, id, hash, created) =
                    r.map_err(|e| JournalError::Corrupt(e.to_string()))?;
                let corrupt =
                    || JournalError::Corrupt(format!("transaction {id}: bad id, time or hash"));
                let created_ms = u64::try_from(created).map_err(|_| corrupt())?;
                if created_ms >= span.references_since_ms {
                    rec.references.push(ReferenceRecord {
                        merchant_id,
                        reference,
                        tx_id: u64::try_from(id).map_err(|_| corrupt())?,
                        content_hash: hash.try_into().map_err(|_| corrupt())?,
                        created_ms,
                    });
                }
            }
            rec.references.reverse();
            let mut st = t
                .prepare(
                    "SELECT merchant_id, message_id, seen_ms FROM token_ids
                     WHERE seen_ms >= ?1 ORDER BY seen_ms DESC LIMIT ?2",
                )
                .map_err(storage)?;
            let rows = st
                .query_map(
                    params![i(span.token_ids_since_ms), span.token_ids_max as i64],
                    |r| {
                        Ok(TokenIdRecord {
                            merchant_id: r.get(0)?,
                            message_id: r.get(1)?,
                            seen_ms: u(r.get(2)?),
                        })
                    },
                )
                .map_err(storage)?;
            for r in rows {
                rec.token_ids.push(r.map_err(storage)?);
            }
            rec.token_ids.reverse();
            let mut st = t
                .prepare(
                    "SELECT reference, merchant_id, card, stored_ms, expires_ms FROM vault
                     WHERE expires_ms > ?1 ORDER BY stored_ms DESC LIMIT ?2",
                )
                .map_err(storage)?;
            let rows = st
                .query_map(
                    params![i(span.vault_valid_at_ms), span.vault_max as i64],
                    vault_of_row,
                )
                .map_err(storage)?;
            for r in rows {
                rec.vault.push(r.map_err(storage)?);
            }
            rec.vault.reverse();
            let mut st = t
                .prepare(&format!(
                    "SELECT {SAF_COLUMNS} FROM saf WHERE state = 'queued' ORDER BY id"
                ))
                .map_err(storage)?;
            for r in st.query_map([], saf_of).map_err(storage)? {
                rec.saf
                    .push(r.map_err(|e| JournalError::Corrupt(e.to_string()))?);
            }
        }
        t.commit().map_err(storage)?;
        Ok(rec)
    }

    fn transaction(
        &mut self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<TxRecord>, JournalError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TX_COLUMNS} FROM tx
                 WHERE id = (SELECT tx_id FROM refs WHERE merchant_id = ?1 AND reference = ?2)"
            ))
            .map_err(storage)?
            .query_row(params![merchant_id, reference], tx_of_row)
            .optional()
            .map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    fn vault(&mut self, reference: &str) -> Result<Option<VaultRecord>, JournalError> {
        self.conn
            .prepare_cached(
                "SELECT reference, merchant_id, card, stored_ms, expires_ms FROM vault
                 WHERE reference = ?1",
            )
            .map_err(storage)?
            .query_row([reference], vault_of_row)
            .optional()
            .map_err(storage)
    }

    fn transaction_by_id(&mut self, id: u64) -> Result<Option<TxRecord>, JournalError> {
        self.conn
            .prepare_cached(TX_BY_ID)
            .map_err(storage)?
            .query_row([i(id)], tx_of_row)
            .optional()
            .map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    fn saf_all(&mut self) -> Result<Vec<SafRecord>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {SAF_COLUMNS} FROM saf ORDER BY id"))
            .map_err(storage)?;
        let rows = st.query_map([], saf_of).map_err(storage)?;
        rows.map(|r| r.map_err(|e| JournalError::Corrupt(e.to_string())))
            .collect()
    }

    fn transactions_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<TxRecord>, JournalError> {
        // Ids grow with time, give or take the clocks of concurrent
        // requests: scan the ids from a little before to a little after.
        let lo =
            first_id_since(&self.conn, from_ms.saturating_sub(CLOCK_SKEW_MS)).map_err(storage)?;
        let hi =
            first_id_since(&self.conn, to_ms.saturating_add(CLOCK_SKEW_MS)).map_err(storage)?;
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TX_COLUMNS} FROM tx WHERE id >= ?1 AND id < ?2 AND created_ms >= ?3
                 AND created_ms < ?4 ORDER BY id"
            ))
            .map_err(storage)?;
        let rows = st
            .query_map(params![i(lo), i(hi), i(from_ms), i(to_ms)], tx_of_row)
            .map_err(storage)?;
        let mut out: Vec<TxRecord> = rows
            .map(|r| r.map_err(|e| JournalError::Corrupt(e.to_string())))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|t| (t.created_ms, t.id));
        Ok(out)
    }

    fn operations(&mut self, tx_id: u64) -> Result<Vec<OperationRecord>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {OPERATION_COLUMNS} FROM operations WHERE tx_id = ?1 ORDER BY id"
            ))
            .map_err(storage)?;
        let rows = st.query_map([i(tx_id)], operation_of).map_err(storage)?;
        rows.map(|r| r.map_err(|e| JournalError::Corrupt(e.to_string())))
            .collect()
    }

    fn operations_between(
        &mut self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<OperationRecord>, JournalError> {
        // Few rows next to authorizations: a scan is fine for an export.
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {OPERATION_COLUMNS} FROM operations
                 WHERE created_ms >= ?1 AND created_ms < ?2 ORDER BY created_ms, id"
            ))
            .map_err(storage)?;
        let rows = st
            .query_map(params![i(from_ms), i(to_ms)], operation_of)
            .map_err(storage)?;
        rows.map(|r| r.map_err(|e| JournalError::Corrupt(e.to_string())))
            .collect()
    }

    fn due_for_cut_off(&mut self, day: i32, limit: usize) -> Result<Vec<TxRecord>, JournalError> {
        // The partial index tx_due holds the open ones only; this WHERE
        // repeats its terms so that SQLite uses it (no ORDER BY: the
        // index's order, or SQLite would rather scan the rowids).
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TX_COLUMNS} FROM tx WHERE {DUE_OPEN} AND {DUE_DAY} <= ?1 LIMIT ?2"
            ))
            .map_err(storage)?;
        let rows = st
            .query_map(params![day, i(limit as u64)], tx_of_row)
            .map_err(storage)?;
        rows.map(|r| r.map_err(|e| JournalError::Corrupt(e.to_string())))
            .collect()
    }
}

/// The terms of the `tx_due` index, repeated in its query.
const DUE_OPEN: &str = "((status IS NULL AND state = 'approved' AND reversal = 'none') \
     OR status IN ('TO_CAPTURE', 'TO_VALIDATE'))";
const DUE_DAY: &str = "(CASE WHEN status IS NULL THEN capture_day ELSE settle_day END)";

/// How far the creation times of transactions with neighbouring ids may
/// disagree (concurrent requests take their id and their time apart).
const CLOCK_SKEW_MS: u64 = 60_000;

/// The smallest transaction id created at or after `since_ms` (ids grow
/// with time): a binary search over the ids, a handful of point reads;
/// one past the largest id when there is none.
fn first_id_since(conn: &Connection, since_ms: u64) -> rusqlite::Result<u64> {
    let bounds: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(id), max(id) FROM tx", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(min), Some(max)) = bounds else {
        return Ok(0);
    };
    // The first row at or after an id, and its time.
    let at = |id: i64| -> rusqlite::Result<Option<(i64, u64)>> {
        conn.prepare_cached("SELECT id, created_ms FROM tx WHERE id >= ?1 ORDER BY id LIMIT 1")?
            .query_row([id], |r| Ok((r.get(0)?, u(r.get(1)?))))
            .optional()
    };
    // The smallest x whose first row at or after it is in time (the rows
    // after max: none, so "in time").
    let (mut lo, mut hi) = (min, max + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid)? {
            Some((_, created)) if created < since_ms => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(u(at(lo)?.map_or(max + 1, |(id, _)| id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_backend_contract() {
        let mut b = SqliteBackend::in_memory().unwrap();
        crate::journal::tests::backend_contract(&mut b);
    }

    #[test]
    fn time_ranges_are_found_by_id_without_an_index() {
        let mut b = SqliteBackend::in_memory().unwrap();
        assert_eq!(first_id_since(&b.conn, 0).unwrap(), 0, "empty");
        // Sparse ids (reserved in blocks), times growing with them.
        let ids = [1u64, 2, 7, 100_000, 100_001, 250_000, 250_003];
        let batch: Vec<Change> = ids
            .iter()
            .enumerate()
            .map(|(k, &id)| {
                Change::InsertTx(Box::new(crate::journal::tests::record(
                    id,
                    "m",
                    &format!("r{id}"),
                    1_000 + 10 * k as u64,
                )))
            })
            .collect();
        b.commit(&[batch]).unwrap();
        for (since, want) in [
            (0, 1),
            (1_000, 1),
            (1_001, 2),
            (1_015, 7),
            (1_025, 100_000),
            (1_060, 250_003),
            (1_061, 250_004),
        ] {
            assert_eq!(
                first_id_since(&b.conn, since).unwrap(),
                want,
                "since {since}"
            );
        }
        let got: Vec<u64> = b
            .transactions_between(1_010, 1_040)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(got, vec![2, 7, 100_000]);
    }

    #[test]
    fn a_first_version_file_is_brought_up_to_date_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            // A journal as the first schema wrote it, with one transaction.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch("PRAGMA user_version = 1").unwrap();
            c.execute(
                "INSERT INTO tx (id, merchant_id, reference, state, created_ms, updated_ms, amount,
                    currency, masked_pan, brand, pan_entry_mode, order_channel, card, content_hash)
                 VALUES (1, 'm', 'r', 'approved', 5, 5, 1000, '978', '489537******3478', 'VISA',
                    'OEMPAY', 'INTERNET', x'01', ?1)",
                [&[7u8; 32][..]],
            )
            .unwrap();
            c.execute(
                "INSERT INTO refs (merchant_id, reference, tx_id, content_hash, created_ms)
                 VALUES ('m', 'r', 1, x'00', 5)",
                [],
            )
            .unwrap();
            // An order never sent: the first schema deleted its refs row.
            c.execute(
                "INSERT INTO tx (id, merchant_id, reference, state, created_ms, updated_ms, amount,
                    currency, masked_pan, brand, pan_entry_mode, order_channel, card, content_hash)
                 VALUES (2, 'm', 'unsent', 'not_sent', 6, 6, 1000, '978', '489537******3478',
                    'VISA', 'OEMPAY', 'INTERNET', x'01', ?1)",
                [&[8u8; 32][..]],
            )
            .unwrap();
        }
        let mut b = SqliteBackend::open(&path).unwrap();
        assert_eq!(b.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let unsent = b.transaction("m", "unsent").unwrap().unwrap();
        assert_eq!((unsent.id, unsent.state), (2, TxState::NotSent));
        let indexes: Vec<String> = b
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for gone in ["tx_by_reference", "tx_by_created", "refs_by_created"] {
            assert!(!indexes.iter().any(|i| i == gone), "{gone}: {indexes:?}");
        }
        let t = b.transaction("m", "r").unwrap().unwrap();
        assert_eq!(
            (t.capture_mode.as_str(), t.capture_day),
            ("AUTHOR_CAPTURE", 0)
        );
        assert_eq!(t.settlement, None);
        assert!(b.operations(1).unwrap().is_empty());
    }

    /// The cut-off reads through the partial index of open transactions,
    /// never a scan of the history.
    #[test]
    fn the_cut_off_query_uses_the_index_of_open_transactions() {
        let b = SqliteBackend::in_memory().unwrap();
        let plan: Vec<String> = b
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {TX_COLUMNS} FROM tx WHERE {DUE_OPEN} AND {DUE_DAY} <= ?1 LIMIT ?2"
            ))
            .unwrap()
            .query_map(params![20_000, 256], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|p| p.contains("USING INDEX tx_due")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_file_survives_reopening_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("journal.db");
        let t0 = 1_700_000_000_000;
        {
            let mut b = SqliteBackend::open(&path).unwrap();
            b.commit(&[vec![
                Change::ClaimReference {
                    merchant_id: "m".into(),
                    reference: "r".into(),
                    tx_id: 1,
                    content_hash: [7; 32],
                    now_ms: t0,
                    window_start_ms: 0,
                },
                Change::InsertTx(Box::new(crate::journal::tests::record(1, "m", "r", t0))),
            ]])
            .unwrap();
        }
        let mut b = SqliteBackend::open(&path).unwrap();
        assert_eq!(b.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(b.transaction("m", "r").unwrap().unwrap().id, 1);
        b.conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(b);
        let e = SqliteBackend::open(&path).unwrap_err().to_string();
        assert!(e.contains("newer") && e.contains("journal.db"), "{e}");
    }
}
