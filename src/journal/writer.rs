//! Group commit: one writer thread owns the backend; every shard hands it
//! batches and awaits them.
//!
//! ```text
//!  shard 1 ──commit(batch)──┐                       ┌─► oneshot: Applied
//!  shard 2 ──commit(batch)──┼─► channel ─► writer ──┤   (after the fsync)
//!  shard n ──lookups────────┘   drains all   one transaction, one fsync
//! ```
//! The writer takes one request, then everything already queued (up to
//! [`MAX_GROUP`] batches), applies the batches in one backend transaction
//! and answers them all. While it waits on the disk the next group
//! gathers, so the number of fsyncs per second stays about the disk's
//! rate whatever the load, and the group size grows with the load.
//! Lookups are served in order with the writes (a lookup sees every batch
//! submitted before it).
//!
//! A shard's own commits go through its [`ShardCommits`]: what its tasks
//! submit while the shard is busy travels to the writer as one request,
//! and the answers come back with one wake-up of the shard. Handing each
//! batch over and back on its own costs a wake-up of the other thread each
//! way (a futex or an eventfd write, often a context switch): twice the
//! context switches per order, and twice the simulator's CPU, whose 0100s
//! then arrive one by one instead of in bursts (BENCHMARKS.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::telemetry;

use serde::Serialize;
use tokio::sync::oneshot;

use super::{
    Applied, Backend, Batch, JournalError, OperationRecord, Recovered, RecoverySpan, SafRecord,
    TxRecord, VaultRecord,
};

/// Most batches in one group commit.
pub const MAX_GROUP: usize = 4096;

/// Group sizes are counted in these buckets (upper bounds, inclusive).
pub const GROUP_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, u64::MAX];

/// A read run on the writer's thread.
type ReadJob = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// How the writer answers one batch.
type Answer = Result<Applied, JournalError>;

enum Request {
    Commit {
        batch: Batch,
        done: oneshot::Sender<Answer>,
    },
    /// A shard's batches, answered together (in order).
    Group {
        batches: Vec<Batch>,
        done: oneshot::Sender<Vec<Answer>>,
    },
    Transaction {
        merchant_id: String,
        reference: String,
        done: oneshot::Sender<Result<Option<TxRecord>, JournalError>>,
    },
    Vault {
        reference: String,
        done: oneshot::Sender<Result<Option<VaultRecord>, JournalError>>,
    },
    ById {
        id: u64,
        done: oneshot::Sender<Result<Option<TxRecord>, JournalError>>,
    },
    Saf {
        done: oneshot::Sender<Result<Vec<SafRecord>, JournalError>>,
    },
    Between {
        from_ms: u64,
        to_ms: u64,
        done: oneshot::Sender<Result<Vec<TxRecord>, JournalError>>,
    },
    /// Any other read, run on the writer's thread (it sends its own
    /// answer).
    Read(ReadJob),
    Stop,
}

/// Who waits for batches of a group commit.
enum Waiter {
    One(oneshot::Sender<Answer>),
    Group(usize, oneshot::Sender<Vec<Answer>>),
}

/// Counters of the writer.
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    batches: AtomicU64,
    failures: AtomicU64,
    commit_ns: AtomicU64,
    max_commit_ns: AtomicU64,
    max_group: AtomicU64,
    groups: [AtomicU64; GROUP_BUCKETS.len()],
}

/// A copy of the writer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JournalStats {
    /// Durable transactions (one fsync each).
    pub commits: u64,
    /// Batches in them.
    pub batches: u64,
    /// Commits that failed.
    pub failures: u64,
    /// Time in the backend's commit, summed.
    pub commit_ns: u64,
    pub max_commit_ns: u64,
    pub max_group: u64,
    /// Commits by group size, per [`GROUP_BUCKETS`].
    pub groups: Vec<u64>,
}

impl JournalStats {
    /// Batches per commit, on average.
    pub fn mean_group(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.batches as f64 / self.commits as f64
        }
    }
}

/// The journal: a handle to the writer thread. Share it behind an `Arc`.
pub struct Journal {
    tx: mpsc::Sender<Request>,
    stats: Arc<Stats>,
    thread: Mutex<Option<JoinHandle<()>>>,
    describe: String,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("backend", &self.describe)
            .finish()
    }
}

impl Journal {
    /// Reads back what start-up needs, then starts the writer thread on
    /// `backend`.
    pub fn start(
        mut backend: Box<dyn Backend>,
        span: &RecoverySpan,
        describe: String,
    ) -> Result<(Journal, Recovered), JournalError> {
        let recovered = backend.recover(span)?;
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("acqswitch-journal".into())
            .spawn(move || write_loop(backend, rx, &thread_stats))
            .map_err(|e| JournalError::Storage(format!("cannot start the writer: {e}")))?;
        Ok((
            Journal {
                tx,
                stats,
                thread: Mutex::new(Some(thread)),
                describe,
            },
            recovered,
        ))
    }

    /// What the journal is (for logs): backend and path.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Makes `batch` durable; resolves once it is on disk (or refused by
    /// its claim).
    pub async fn commit(&self, batch: Batch) -> Result<Applied, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Commit { batch, done })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// Like [`commit`](Self::commit), blocking the calling thread (start-up
    /// and tools, never on a runtime thread).
    pub fn commit_blocking(&self, batch: Batch) -> Result<Applied, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Commit { batch, done })
            .map_err(|_| JournalError::Stopped)?;
        rx.blocking_recv().unwrap_or(Err(JournalError::Stopped))
    }

    /// The commits of the shard whose runtime this is called on: starts
    /// its gatherer task there (see the module documentation).
    pub fn shard_commits(&self) -> ShardCommits {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(gather(self.tx.clone(), rx));
        ShardCommits { tx }
    }

    /// The newest transaction of `(merchant, reference)`.
    pub async fn transaction(
        &self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<TxRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Transaction {
                merchant_id: merchant_id.into(),
                reference: reference.into(),
                done,
            })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// A vaulted card, if kept.
    pub async fn vault(&self, reference: &str) -> Result<Option<VaultRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Vault {
                reference: reference.into(),
                done,
            })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// A transaction by id.
    pub async fn transaction_by_id(&self, id: u64) -> Result<Option<TxRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::ById { id, done })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// Every store-and-forward message, oldest first.
    pub async fn saf_all(&self) -> Result<Vec<SafRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Saf { done })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// Transactions created in `[from_ms, to_ms)`.
    pub async fn transactions_between(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<TxRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Between {
                from_ms,
                to_ms,
                done,
            })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    /// The newest transaction of `(merchant, reference)` and its
    /// operations, oldest first: one trip to the writer.
    pub async fn transaction_with_operations(
        &self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<(TxRecord, Vec<OperationRecord>)>, JournalError> {
        let (merchant_id, reference) = (merchant_id.to_owned(), reference.to_owned());
        self.read(move |b| match b.transaction(&merchant_id, &reference)? {
            Some(t) => {
                let ops = b.operations(t.id)?;
                Ok(Some((t, ops)))
            }
            None => Ok(None),
        })
        .await
    }

    /// What a cut-off closing business day `day` must capture or expire
    /// (see [`Backend::due_for_cut_off`]).
    pub async fn due_for_cut_off(
        &self,
        day: i32,
        limit: usize,
    ) -> Result<Vec<TxRecord>, JournalError> {
        self.read(move |b| b.due_for_cut_off(day, limit)).await
    }

    /// The transactions of `ids` that exist, in that order.
    pub async fn transactions_by_ids(&self, ids: Vec<u64>) -> Result<Vec<TxRecord>, JournalError> {
        self.read(move |b| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(t) = b.transaction_by_id(id)? {
                    out.push(t);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Runs `f` on the backend, on the writer's thread, after the commits
    /// queued before it.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (done, rx) = oneshot::channel();
        let job = move |b: &mut dyn Backend| {
            let _ = done.send(f(b));
        };
        self.tx
            .send(Request::Read(Box::new(job)))
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }

    pub fn stats(&self) -> JournalStats {
        let s = &self.stats;
        JournalStats {
            commits: s.commits.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            commit_ns: s.commit_ns.load(Ordering::Relaxed),
            max_commit_ns: s.max_commit_ns.load(Ordering::Relaxed),
            max_group: s.max_group.load(Ordering::Relaxed),
            groups: s.groups.iter().map(|g| g.load(Ordering::Relaxed)).collect(),
        }
    }

    /// Commits what is queued and stops the writer; later calls fail with
    /// [`JournalError::Stopped`]. Blocks until the thread has ended.
    pub fn close(&self) {
        let _ = self.tx.send(Request::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// A batch on its way from a shard's task to its gatherer.
type Pending = (Batch, oneshot::Sender<Answer>);

/// One shard's way to the writer. A clone belongs on the same shard (the
/// answers wake its gatherer's runtime).
#[derive(Clone, Debug)]
pub struct ShardCommits {
    tx: tokio::sync::mpsc::UnboundedSender<Pending>,
}

impl ShardCommits {
    /// Like [`Journal::commit`], sharing the trip to the writer with the
    /// shard's other tasks.
    pub async fn commit(&self, batch: Batch) -> Result<Applied, JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((batch, done))
            .map_err(|_| JournalError::Stopped)?;
        rx.await.unwrap_or(Err(JournalError::Stopped))
    }
}

/// A shard's gatherer. Once woken it runs after the tasks already queued
/// on its runtime, so it finds the batches they submitted meanwhile, and
/// hands them to the writer as one request; a task of its own spreads the
/// answers (one wake-up of this runtime for the lot).
async fn gather(
    writer: mpsc::Sender<Request>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Pending>,
) {
    let mut pending = Vec::new();
    while rx.recv_many(&mut pending, MAX_GROUP).await > 0 {
        let (batches, waiters): (Vec<Batch>, Vec<oneshot::Sender<Answer>>) =
            pending.drain(..).unzip();
        let (done, answers) = oneshot::channel();
        if writer.send(Request::Group { batches, done }).is_err() {
            for w in waiters {
                let _ = w.send(Err(JournalError::Stopped));
            }
            continue;
        }
        tokio::spawn(async move {
            let mut answers = answers.await.unwrap_or_default().into_iter();
            for w in waiters {
                let _ = w.send(answers.next().unwrap_or(Err(JournalError::Stopped)));
            }
        });
    }
}

/// The group commit being gathered: its batches, and who waits for them.
#[derive(Default)]
struct Gathered {
    batches: Vec<Batch>,
    waiters: Vec<Waiter>,
}

impl Gathered {
    /// Takes `req` in when it is a commit; gives any other request back.
    fn take(&mut self, req: Request) -> Option<Request> {
        match req {
            Request::Commit { batch, done } => {
                self.batches.push(batch);
                self.waiters.push(Waiter::One(done));
                None
            }
            Request::Group { batches, done } => {
                self.waiters.push(Waiter::Group(batches.len(), done));
                self.batches.extend(batches);
                None
            }
            other => Some(other),
        }
    }
}

fn write_loop(mut backend: Box<dyn Backend>, rx: mpsc::Receiver<Request>, stats: &Stats) {
    let mut group = Gathered::default();
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        // Gather: every commit already queued joins this group; a lookup
        // or a stop ends it (served after the group is durable).
        let mut after = group.take(first);
        while after.is_none() && group.batches.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(req) => after = group.take(req),
                Err(_) => break,
            }
        }
        if !group.batches.is_empty() {
            commit_group(backend.as_mut(), &mut group, stats);
        }
        match after {
            None | Some(Request::Commit { .. } | Request::Group { .. }) => {}
            Some(Request::Stop) => stop = true,
            Some(Request::Transaction {
                merchant_id,
                reference,
                done,
            }) => {
                let _ = done.send(backend.transaction(&merchant_id, &reference));
            }
            Some(Request::Vault { reference, done }) => {
                let _ = done.send(backend.vault(&reference));
            }
            Some(Request::ById { id, done }) => {
                let _ = done.send(backend.transaction_by_id(id));
            }
            Some(Request::Saf { done }) => {
                let _ = done.send(backend.saf_all());
            }
            Some(Request::Between {
                from_ms,
                to_ms,
                done,
            }) => {
                let _ = done.send(backend.transactions_between(from_ms, to_ms));
            }
            Some(Request::Read(job)) => job(backend.as_mut()),
        }
    }
    // Stopped: whatever is still queued is committed first, so a shutdown
    // loses nothing that was handed over.
    while let Ok(req) = rx.try_recv() {
        let _ = group.take(req);
    }
    if !group.batches.is_empty() {
        commit_group(backend.as_mut(), &mut group, stats);
    }
}

fn commit_group(backend: &mut dyn Backend, group: &mut Gathered, stats: &Stats) {
    let Gathered { batches, waiters } = group;
    let started = Instant::now();
    let result = backend.commit(batches);
    let took = started.elapsed();
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    let n = batches.len() as u64;
    metrics::histogram!(telemetry::JOURNAL_SECONDS).record(took);
    stats.commit_ns.fetch_add(ns, Ordering::Relaxed);
    stats.max_commit_ns.fetch_max(ns, Ordering::Relaxed);
    match result {
        Ok(applied) => {
            metrics::histogram!(telemetry::JOURNAL_BATCHES).record(n as f64);
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.batches.fetch_add(n, Ordering::Relaxed);
            stats.max_group.fetch_max(n, Ordering::Relaxed);
            if let Some(i) = GROUP_BUCKETS.iter().position(|b| n <= *b) {
                stats.groups[i].fetch_add(1, Ordering::Relaxed);
            }
            let mut applied = applied.into_iter();
            for w in waiters.drain(..) {
                match w {
                    Waiter::One(done) => {
                        let _ = done.send(applied.next().ok_or(JournalError::Stopped));
                    }
                    Waiter::Group(n, done) => {
                        let _ = done.send(applied.by_ref().take(n).map(Ok).collect());
                    }
                }
            }
        }
        Err(e) => {
            metrics::counter!(telemetry::JOURNAL_FAILURES).increment(1);
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, batches = n, "journal commit failed");
            let failed = || Err(JournalError::Storage(e.to_string()));
            for w in waiters.drain(..) {
                match w {
                    Waiter::One(done) => {
                        let _ = done.send(failed());
                    }
                    Waiter::Group(n, done) => {
                        let _ = done.send((0..n).map(|_| failed()).collect());
                    }
                }
            }
        }
    }
    batches.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::memory::MemoryBackend;
    use crate::journal::Change;

    fn span() -> RecoverySpan {
        RecoverySpan {
            references_since_ms: 0,
            references_max: 10,
            token_ids_since_ms: 0,
            token_ids_max: 10,
            vault_valid_at_ms: 0,
            vault_max: 10,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_share_commits_and_all_land() {
        let (j, _) =
            Journal::start(Box::new(MemoryBackend::new()), &span(), "memory".into()).unwrap();
        let j = Arc::new(j);
        let tasks: Vec<_> = (0..200u64)
            .map(|id| {
                let j = Arc::clone(&j);
                tokio::spawn(async move {
                    let r = crate::journal::tests::record(id, "m", &format!("r{id}"), 1);
                    j.commit(vec![Change::InsertTx(Box::new(r))]).await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Applied::Done);
        }
        let s = j.stats();
        assert_eq!(s.batches, 200);
        assert!(s.commits <= 200 && s.commits >= 1);
        assert_eq!(s.groups.iter().sum::<u64>(), s.commits);
        // A lookup sees every batch submitted before it.
        assert_eq!(j.transaction_by_id(199).await.unwrap().unwrap().id, 199);
        assert_eq!(j.transactions_between(0, 10).await.unwrap().len(), 200);
        j.close();
        assert!(matches!(
            j.commit(Vec::new()).await,
            Err(JournalError::Stopped)
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_shards_commits_travel_to_the_writer_together() {
        let (j, _) =
            Journal::start(Box::new(MemoryBackend::new()), &span(), "memory".into()).unwrap();
        let shard = j.shard_commits();
        // 100 tasks submit in the same turn of the runtime: the gatherer,
        // woken by the first, runs after them and finds all 100.
        let tasks: Vec<_> = (0..100u64)
            .map(|id| {
                let shard = shard.clone();
                tokio::spawn(async move {
                    let r = crate::journal::tests::record(id, "m", &format!("r{id}"), 1);
                    let claim = Change::ClaimReference {
                        merchant_id: "m".into(),
                        reference: if id == 99 {
                            "r0".into()
                        } else {
                            format!("r{id}")
                        },
                        tx_id: id,
                        content_hash: [0; 32],
                        now_ms: 1,
                        window_start_ms: 0,
                    };
                    shard
                        .commit(vec![claim, Change::InsertTx(Box::new(r))])
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().unwrap());
        }
        // Each task got its own batch's answer: the last one's claim
        // conflicts with the first's.
        assert!(answers[..99].iter().all(|a| *a == Applied::Done));
        assert!(matches!(answers[99], Applied::Conflict(_)));
        let s = j.stats();
        assert_eq!((s.commits, s.batches, s.max_group), (1, 100, 100));
        j.close();
        assert!(matches!(
            shard.commit(Vec::new()).await,
            Err(JournalError::Stopped)
        ));
    }
}
