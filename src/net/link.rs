//! The tokio driver of one link to an acquirer: one task owns one TCP
//! connection at a time and drives the I/O-free protocol of
//! [`super::proto`] with it.
//!
//! ```text
//!  callers ──(Queued: encoded request, epoch, oneshot)──► mpsc ──► link task ──► socket
//!     ▲                                                             │   ▲
//!     └───────────── oneshot: Ok(Response) / Err(LinkError) ◄───────┘   └── frames in
//! ```
//!
//! What is here and not in the protocol: connecting (primary first, then
//! the secondary; with TLS, the handshake is part of connecting, so a
//! refused certificate moves on to the next endpoint like a refused TCP
//! connection), backoff with jitter between connections, probing the
//! primary while on the secondary (a connect, with the handshake under
//! TLS; when it succeeds, the connection drains for failback), socket
//! reads and writes (through [`super::io::Transport`]: readiness calls on
//! plain TCP, `AsyncRead`/`AsyncWrite` under TLS), the mapping of
//! protocol events to the callers' oneshots and the unmatched handler,
//! the link state and last error published to the pool, and the metrics
//! counters.
//!
//! Callers encode their message in their own task (spreading the CPU work)
//! and hand the frame over; the task hands every queued frame to the
//! protocol and writes them all with one system call (under load one
//! `write` carries many frames), and stops taking requests while more than
//! [`WRITE_HIGH_WATER`] bytes wait to be written.
//!
//! A request is sent on the connection it was queued for, or not at all:
//! each carries the epoch of the ready connection it saw, and a request
//! from an earlier connection (queued during an outage, a reconnect in
//! between) is answered `NoReadyLink` rather than sent seconds later on
//! the next one. While the link is not connected every request gets
//! `NoReadyLink` at once.
//!
//! The only clock reads are `Instant::now()` handed to the protocol, so
//! tests run on tokio's paused clock.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use super::backoff::{Backoff, BackoffConfig};
use super::error::LinkError;
use super::framing::FrameCodec;
use super::io::{Tls, Transport, Woken};
use super::proto::{
    self, Connection, ConnectionStats, DownReason, DrainReason, EncodedRequest, Event, Failure,
    SubmitError,
};
use super::stan::StanLease;
use crate::iso8583::{Message, Mti};
use crate::tls::{self, LinkTls, Peer};

pub use super::proto::{
    LinkState, Response, UnmatchedKind, NMIC_ECHO, NMIC_SIGN_OFF, NMIC_SIGN_ON,
};

/// Stop taking requests while this much is waiting to be written.
pub const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per wake-up before giving other work a turn.
const READS_PER_TURN: usize = 8;

/// Where and how a link connects.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectConfig {
    /// `host:port` of the primary endpoint.
    pub primary: String,
    /// `host:port` tried when the primary cannot be reached.
    pub secondary: Option<String>,
    pub connect_timeout: Duration,
    /// While on the secondary, how often to probe the primary; `None`:
    /// stay on the secondary until the connection drops.
    pub failback_interval: Option<Duration>,
    pub backoff: BackoffConfig,
    /// Seed for the backoff jitter (tests); random when absent.
    pub seed: Option<u64>,
    /// TLS on every connection (the handshake bounded by `connect_timeout`
    /// too); plain TCP when absent.
    pub tls: Option<LinkTls>,
    /// The acquirer's name, for log lines.
    pub name: String,
}

/// A message no caller was waiting for. The reliability layer uses `Late`
/// ones to send reversals.
#[derive(Clone)]
pub struct Unmatched {
    /// Index of the link in its pool.
    pub link: usize,
    pub kind: UnmatchedKind,
    /// Fixed framing header as received (for example the TPDU).
    pub header: Bytes,
    /// The encoded message.
    pub body: Bytes,
}

impl fmt::Debug for Unmatched {
    // The body may hold card data: show its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmatched")
            .field("link", &self.link)
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Called from the link task for every unmatched message; must not block.
pub type UnmatchedHandler = Arc<dyn Fn(Unmatched) + Send + Sync>;

/// The default handler: a warning in the log (kind and size; the MTI of
/// an ASCII dialect as text, never raw bytes: a BCD MTI or garbage would
/// show as noise). The counters in [`LinkMetrics`] count regardless of
/// the handler.
pub fn log_unmatched() -> UnmatchedHandler {
    Arc::new(|u: Unmatched| {
        let ascii = u
            .body
            .first_chunk::<4>()
            .and_then(|d| Mti::parse(std::str::from_utf8(d).ok()?));
        // A BCD MTI: two bytes, four decimal digits.
        let bcd = || {
            let d = u.body.first_chunk::<2>()?;
            let text = format!("{:02x}{:02x}", d[0], d[1]);
            Mti::parse(&text)
        };
        let mti = ascii.or_else(bcd);
        match mti {
            Some(mti) => {
                tracing::warn!(link = u.link, kind = ?u.kind, len = u.body.len(), %mti, "unmatched message")
            }
            None => {
                tracing::warn!(link = u.link, kind = ?u.kind, len = u.body.len(), "unmatched message")
            }
        }
    })
}

/// How long a repeated warning stays quiet.
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// A warning that repeats: logged the first time (and when its text
/// changes), then at most once per window, saying how many times it
/// happened in between.
#[derive(Debug)]
struct Repeats {
    window: std::time::Duration,
    last: Option<(String, std::time::Instant)>,
    since: u64,
}

impl Repeats {
    fn new(window: std::time::Duration) -> Repeats {
        Repeats {
            window,
            last: None,
            since: 0,
        }
    }

    /// One more occurrence of `what` at `now`: `Some(n)` when it is to be
    /// logged (`n` occurrences were kept quiet since the last line).
    fn note(&mut self, what: &str, now: std::time::Instant) -> Option<u64> {
        match &self.last {
            Some((text, at)) if text == what && now.duration_since(*at) < self.window => {
                self.since += 1;
                None
            }
            _ => {
                let quiet = std::mem::take(&mut self.since);
                self.last = Some((what.to_owned(), now));
                Some(quiet)
            }
        }
    }
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $f:ident,)*) => {
        /// Counters of one link (or, summed, of a pool).
        #[derive(Debug, Default)]
        pub struct LinkMetrics {
            $($(#[$doc])* pub $f: AtomicU64,)*
        }

        /// A plain copy of [`LinkMetrics`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $f: u64,)*
        }

        impl LinkMetrics {
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
        }

        impl std::ops::AddAssign for MetricsSnapshot {
            fn add_assign(&mut self, o: Self) {
                $(self.$f += o.$f;)*
            }
        }
    };
}

metrics! {
    /// TCP connections established.
    connects,
    /// Connections lost or closed.
    disconnects,
    /// Requests written.
    sent,
    /// Responses matched to a caller.
    matched,
    /// Requests that timed out.
    timeouts,
    /// Requests refused because the link was full.
    busy,
    /// Requests refused because their key was in flight.
    duplicate_keys,
    /// Requests failed with `Disconnected` when their link dropped.
    failed_in_flight,
    /// Late responses (their request had timed out).
    unmatched_late,
    /// Second responses to an answered request.
    unmatched_duplicate,
    /// Responses matching nothing remembered.
    unmatched_unknown,
    /// Acquirer requests other than network management.
    unsolicited,
    /// Frames whose message did not decode.
    undecodable,
    /// Corrupt frames (each closed the link).
    framing_errors,
    /// Zero-length frames received.
    keep_alives,
    /// Echo tests sent.
    echoes_sent,
    /// Acquirer 0800s answered.
    network_answered,
    /// Moves back from the secondary endpoint to the primary.
    failbacks,
    /// Successful sign-ons.
    sign_ons,
}

impl LinkMetrics {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn unmatched(&self, kind: UnmatchedKind) {
        Self::inc(match kind {
            UnmatchedKind::Late => &self.unmatched_late,
            UnmatchedKind::Duplicate => &self.unmatched_duplicate,
            UnmatchedKind::Unknown => &self.unmatched_unknown,
            UnmatchedKind::UnsolicitedRequest => &self.unsolicited,
            UnmatchedKind::Undecodable => &self.undecodable,
        });
    }
}

impl MetricsSnapshot {
    /// All unmatched messages, whatever the kind.
    pub fn unmatched_total(&self) -> u64 {
        self.unmatched_late
            + self.unmatched_duplicate
            + self.unmatched_unknown
            + self.unsolicited
            + self.undecodable
    }
}

/// What every link of one acquirer shares.
pub(crate) struct LinkContext {
    pub(crate) proto: Arc<proto::Context>,
    pub(crate) connect: ConnectConfig,
    pub(crate) unmatched: UnmatchedHandler,
    /// Woken on every link state change (pool `wait_ready`).
    pub(crate) state_changed: Notify,
}

/// A caller waiting for its response; the STAN lease is held until the
/// request is finished, however it ends.
struct Waiter {
    reply: oneshot::Sender<Result<Response, LinkError>>,
    _lease: Option<StanLease>,
}

impl Waiter {
    fn answer(self, result: Result<Response, LinkError>) {
        // The caller may have given up (dropped its future): nothing to do.
        let _ = self.reply.send(result);
    }
}

/// One request on its way to the link task.
pub(crate) struct Queued {
    req: EncodedRequest,
    /// The ready connection the caller saw (see [`LinkShared::epoch`]).
    epoch: u64,
    waiter: Waiter,
}

/// The state of a link shared between its task and its handles.
pub(crate) struct LinkShared {
    pub(crate) id: usize,
    state: AtomicU8,
    /// Bumped each time a connection becomes ready, before the state says
    /// `Ready`: a request carries the epoch it saw, and a connection takes
    /// only its own epoch's requests.
    epoch: AtomicU64,
    /// Requests submitted and not yet answered (caller side accounting).
    pub(crate) in_flight: AtomicUsize,
    /// Which endpoint the current connection uses: 0 primary, 1 secondary.
    pub(crate) endpoint: AtomicU8,
    pub(crate) metrics: LinkMetrics,
    state_tx: watch::Sender<LinkState>,
    /// Why the last connection, or attempt at one, failed, and when.
    last_error: Mutex<Option<(Instant, String)>>,
}

impl LinkShared {
    fn new(id: usize) -> LinkShared {
        LinkShared {
            id,
            state: AtomicU8::new(LinkState::Connecting as u8),
            epoch: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            endpoint: AtomicU8::new(0),
            metrics: LinkMetrics::default(),
            state_tx: watch::Sender::new(LinkState::Connecting),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn last_error(&self) -> Option<(Instant, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_last_error(&self, why: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), why));
    }
}

/// Handle to one link; cheap to clone.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Queued>,
    pub(crate) shared: Arc<LinkShared>,
    ctx: Arc<LinkContext>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Decrements the in-flight count however the request ends (even if the
/// caller's future is dropped).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Link {
    /// Spawns the task that connects, signs on, runs and reconnects this link.
    pub(crate) fn spawn(
        id: usize,
        ctx: Arc<LinkContext>,
        shutdown: watch::Receiver<bool>,
    ) -> (Link, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(ctx.proto.cfg.max_in_flight.max(1));
        let shared = Arc::new(LinkShared::new(id));
        // Every log line of the task, the protocol's included, names the
        // acquirer, the link and (once connected) the endpoint.
        let span = tracing::info_span!(
            "link",
            acquirer = %ctx.connect.name,
            id,
            endpoint = tracing::field::Empty
        );
        let task = tokio::spawn(
            supervise(Arc::clone(&ctx), Arc::clone(&shared), rx, shutdown).instrument(span),
        );
        (Link { tx, shared, ctx }, task)
    }

    pub fn id(&self) -> usize {
        self.shared.id
    }

    pub fn state(&self) -> LinkState {
        self.shared.state()
    }

    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Whether the current connection goes to the secondary endpoint.
    pub fn on_secondary(&self) -> bool {
        self.shared.endpoint.load(Ordering::Relaxed) == 1
    }

    /// Sends `msg` as it is (DE 11 already set) and waits for its response.
    /// `lease`, if any, is held until the request is finished.
    pub async fn send(
        &self,
        msg: &Message<'_>,
        lease: Option<StanLease>,
    ) -> Result<Response, LinkError> {
        let max = self.ctx.proto.cfg.max_in_flight;
        let counter = &self.shared.in_flight;
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            LinkMetrics::inc(&self.shared.metrics.busy);
            return Err(LinkError::Busy);
        }
        let _guard = InFlight(counter);
        if self.state() != LinkState::Ready {
            return Err(LinkError::NoReadyLink);
        }
        // Read after the state: a ready state implies its epoch is stored.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let req = self.ctx.proto.encode_request(msg)?;
        let (reply, rx) = oneshot::channel();
        let queued = Queued {
            req,
            epoch,
            waiter: Waiter {
                reply,
                _lease: lease,
            },
        };
        match self.tx.try_send(queued) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                LinkMetrics::inc(&self.shared.metrics.busy);
                return Err(LinkError::Busy);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LinkError::Shutdown),
        }
        // The task always answers; a dropped sender means it stopped.
        rx.await.unwrap_or(Err(LinkError::Disconnected))
    }
}

/// Why a connection, or an attempt at one, ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("connect failed: {0}")]
    Connect(ConnectFailed),
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// The TLS stream failed after the handshake (under TLS 1.3 the
    /// acquirer checks our client certificate after we consider the
    /// handshake done: its refusal arrives here).
    #[error("TLS to {endpoint}: {reason}")]
    Tls { endpoint: String, reason: String },
    #[error("{0}")]
    Proto(DownReason),
}

/// Why one endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
enum EndpointError {
    #[error("{endpoint}: {error}")]
    Tcp {
        endpoint: String,
        error: std::io::Error,
    },
    #[error("{endpoint}: no connection within the connect timeout")]
    Timeout { endpoint: String },
    #[error("TLS to {endpoint}: {reason}")]
    Tls { endpoint: String, reason: String },
}

/// Every endpoint tried, and why each failed.
#[derive(Debug)]
struct ConnectFailed(Vec<EndpointError>);

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no endpoint configured");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A connection, before the driver takes it.
enum Connected {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

fn set_state(ctx: &LinkContext, shared: &LinkShared, s: LinkState) {
    let old = shared.state.swap(s as u8, Ordering::AcqRel);
    if old != s as u8 {
        shared.state_tx.send_replace(s);
        ctx.state_changed.notify_waiters();
        tracing::debug!(link = shared.id, state = ?s, "link state");
    }
}

fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Runs `fut` while answering every request that arrives `NoReadyLink`.
async fn refusing<F: Future>(fut: F, rx: &mut mpsc::Receiver<Queued>) -> F::Output {
    tokio::pin!(fut);
    let mut open = true;
    loop {
        tokio::select! {
            out = &mut fut => return out,
            req = rx.recv(), if open => match req {
                Some(q) => q.waiter.answer(Err(LinkError::NoReadyLink)),
                None => open = false,
            },
        }
    }
}

/// Connect, run, and reconnect with backoff until shut down.
async fn supervise(
    ctx: Arc<LinkContext>,
    shared: Arc<LinkShared>,
    mut rx: mpsc::Receiver<Queued>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = &ctx.connect;
    let mut backoff = Backoff::new(cfg.backoff.clone());
    let mut rng = match cfg.seed {
        Some(seed) => StdRng::seed_from_u64(seed.wrapping_add(shared.id as u64)),
        None => StdRng::from_entropy(),
    };
    let mut down_warnings = Repeats::new(REPEAT_WINDOW);
    loop {
        if is_shutdown(&shutdown) {
            break;
        }
        set_state(&ctx, &shared, LinkState::Connecting);
        let mut was_ready = false;
        let ended = match refusing(connect(cfg, &shared), &mut rx).await {
            Ok(conn) => {
                LinkMetrics::inc(&shared.metrics.connects);
                let mut driver = Driver::new(&ctx, &shared);
                // One driver per transport, each compiled for its own:
                // the plain one makes the same calls it made before TLS.
                let ended = match conn {
                    Connected::Plain(mut stream) => {
                        driver
                            .run(&mut stream, &mut rx, &mut shutdown, &mut backoff)
                            .await
                    }
                    Connected::Tls(stream) => {
                        driver
                            .run(&mut Tls(stream), &mut rx, &mut shutdown, &mut backoff)
                            .await
                    }
                };
                LinkMetrics::inc(&shared.metrics.disconnects);
                was_ready = driver.epoch != 0;
                ended
            }
            Err(e) => Ended::Connect(e),
        };
        set_state(&ctx, &shared, LinkState::Down);
        // Whatever is queued was meant for the connection that just ended
        // and never reached it.
        while let Ok(q) = rx.try_recv() {
            q.waiter.answer(Err(LinkError::NoReadyLink));
        }
        if is_shutdown(&shutdown) {
            // However the draining connection ended (an echo unanswered
            // meanwhile), it is not to be replaced.
            break;
        }
        match &ended {
            Ended::Proto(DownReason::Shutdown) => break,
            Ended::Proto(DownReason::Failback) => {
                LinkMetrics::inc(&shared.metrics.failbacks);
                tracing::info!(link = shared.id, "moving back to the primary endpoint");
                continue;
            }
            Ended::Proto(DownReason::CorruptFrame(_)) => {
                LinkMetrics::inc(&shared.metrics.framing_errors)
            }
            _ => {}
        }
        let early = matches!(
            ended,
            Ended::PeerClosed
                | Ended::Proto(DownReason::SignOnTimeout | DownReason::CorruptFrame(_))
        );
        let reason = if early && !was_ready {
            // What a framing or dialect mismatch looks like from here.
            format!(
                "{ended} before the link was ready (check that the framing and the dialect \
                 are the acquirer's)"
            )
        } else {
            ended.to_string()
        };
        shared.set_last_error(reason.clone());
        let delay = backoff.next_delay(&mut rng);
        // Once per reason and minute, with how often it happened meanwhile
        // (a dead endpoint retried every few seconds is one line a minute).
        if let Some(repeated) = down_warnings.note(&reason, std::time::Instant::now()) {
            tracing::warn!(link = shared.id, %reason, ?delay, repeated, "link down, reconnecting");
        }
        // Wait out the backoff; whatever is queued meanwhile gets an answer now.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                req = rx.recv() => match req {
                    Some(q) => q.waiter.answer(Err(LinkError::NoReadyLink)),
                    None => return,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
        }
    }
    set_state(&ctx, &shared, LinkState::Down);
    rx.close();
    while let Ok(q) = rx.try_recv() {
        q.waiter.answer(Err(LinkError::Shutdown));
    }
}

/// Primary first; the secondary when the primary cannot be reached (or,
/// under TLS, refuses the handshake).
async fn connect(cfg: &ConnectConfig, shared: &LinkShared) -> Result<Connected, ConnectFailed> {
    let endpoints = std::iter::once(&cfg.primary).chain(cfg.secondary.as_ref());
    let mut failed = Vec::new();
    for (i, ep) in endpoints.enumerate() {
        match connect_to(cfg, ep).await {
            Ok(conn) => {
                shared.endpoint.store(i as u8, Ordering::Relaxed);
                tracing::Span::current().record("endpoint", ep.as_str());
                if i > 0 {
                    tracing::warn!(link = shared.id, endpoint = %ep, "connected to secondary endpoint");
                }
                return Ok(conn);
            }
            Err(e) => {
                tracing::debug!(link = shared.id, error = %e, "connect failed");
                failed.push(e);
            }
        }
    }
    Err(ConnectFailed(failed))
}

/// A TCP connection to `endpoint`, and the TLS handshake when configured
/// (each bounded by the connect timeout).
async fn connect_to(cfg: &ConnectConfig, endpoint: &str) -> Result<Connected, EndpointError> {
    let tcp_error = |error| EndpointError::Tcp {
        endpoint: endpoint.to_owned(),
        error,
    };
    let stream = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(endpoint)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(tcp_error(e)),
        Err(_) => {
            return Err(EndpointError::Timeout {
                endpoint: endpoint.to_owned(),
            })
        }
    };
    stream.set_nodelay(true).map_err(tcp_error)?;
    let Some(link_tls) = &cfg.tls else {
        return Ok(Connected::Plain(stream));
    };
    let tls_error = |reason| EndpointError::Tls {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let name = link_tls.server_name(endpoint).map_err(tls_error)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(link_tls.config()));
    match tokio::time::timeout(cfg.connect_timeout, connector.connect(name.clone(), stream)).await {
        Ok(Ok(s)) => Ok(Connected::Tls(Box::new(s))),
        Ok(Err(e)) => Err(tls_error(tls::describe_io(&e, Peer::Acquirer, Some(&name)))),
        Err(_) => Err(tls_error(format!(
            "no handshake within the connect timeout ({:?})",
            cfg.connect_timeout
        ))),
    }
}

/// One live TCP connection: the socket, its buffers, and the protocol.
struct Driver<'a> {
    ctx: &'a LinkContext,
    shared: &'a LinkShared,
    conn: Connection<Waiter>,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The epoch of this connection once ready (0 before).
    epoch: u64,
    /// The protocol's counters as last added to the metrics.
    stats: ConnectionStats,
    /// Set by the protocol's last event.
    down: Option<DownReason>,
    /// Timeouts, logged once per window with their count.
    timeouts: Repeats,
}

impl<'a> Driver<'a> {
    fn new(ctx: &'a LinkContext, shared: &'a LinkShared) -> Self {
        let now = Instant::now().into_std();
        Driver {
            ctx,
            shared,
            conn: Connection::new(Arc::clone(&ctx.proto), now, SystemTime::now()),
            codec: ctx.proto.codec.clone(),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            epoch: 0,
            stats: ConnectionStats::default(),
            down: None,
            timeouts: Repeats::new(REPEAT_WINDOW),
        }
    }

    async fn run<T: Transport>(
        &mut self,
        io: &mut T,
        rx: &mut mpsc::Receiver<Queued>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Ended {
        let now = Instant::now();
        self.conn.handle_connected(now.into_std());
        let sleep = tokio::time::sleep_until(now + Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut shutdown_seen = false;
        let mut rx_open = true;
        // On the secondary: probe the primary now and then; a probe that
        // connects says so on `primary_back`.
        let failback = match self.ctx.connect.failback_interval {
            Some(iv) if self.shared.endpoint.load(Ordering::Relaxed) == 1 => Some(iv),
            _ => None,
        };
        // Links of a pool probe at staggered times, so they do not all
        // drain at once.
        let interval = failback.unwrap_or(Duration::from_secs(86_400));
        let stagger = interval / 4 * (self.shared.id % 4) as u32;
        let mut probe_timer = tokio::time::interval_at(now + interval + stagger, interval);
        probe_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (probe_tx, mut primary_back) = mpsc::channel::<()>(1);
        loop {
            self.events(backoff);
            self.conn.poll_transmit(&mut self.wbuf);
            if let Some(reason) = self.down.take() {
                // Draining ends with nothing in flight; write what is left
                // (an answer to the acquirer, the sign-off's last bytes).
                if matches!(reason, DownReason::Shutdown | DownReason::Failback) {
                    io.close(&mut self.wbuf).await;
                }
                return Ended::Proto(reason);
            }
            // Write whatever is queued: one system call for many frames.
            if let Err(e) = io.write_now(&mut self.wbuf) {
                let why = self.io_error(e);
                return self.lost(why, backoff);
            }
            let next = self.conn.poll_timeout().map(Instant::from_std);
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                armed = next;
            }
            // A ready connection takes requests while it has room; in any
            // other state requests are read to be refused at once.
            let accepting = rx_open
                && (self.conn.state() != LinkState::Ready
                    || (self.conn.can_submit() && self.wbuf.len() < WRITE_HIGH_WATER));
            let ready_now = self.conn.state() == LinkState::Ready;
            tokio::select! {
                biased;
                woken = io.wait(&mut self.rbuf, &mut self.wbuf) => {
                    match woken {
                        Ok(Woken::Readable) => {
                            if let Err(e) = self.read(io, backoff) {
                                return self.lost(e, backoff);
                            }
                        }
                        Ok(Woken::Read(0)) => return self.lost(Ended::PeerClosed, backoff),
                        Ok(Woken::Read(_)) => {
                            self.frames(Instant::now().into_std(), backoff);
                        }
                        Ok(Woken::Writable) => {}
                        Err(e) => {
                            let why = self.io_error(e);
                            return self.lost(why, backoff);
                        }
                    }
                }
                req = rx.recv(), if accepting => {
                    let now = Instant::now().into_std();
                    match req {
                        Some(q) => self.submit(q, now),
                        None => {
                            // Every handle is gone: nobody will send again.
                            rx_open = false;
                            self.conn.begin_drain(now, DrainReason::Shutdown);
                            continue;
                        }
                    }
                    // Take everything already queued: one write for the batch.
                    while self.conn.can_submit()
                        && self.wbuf.len() + self.conn.queued_bytes() < WRITE_HIGH_WATER
                    {
                        match rx.try_recv() {
                            Ok(q) => self.submit(q, now),
                            Err(_) => break,
                        }
                    }
                }
                _ = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.conn.handle_timeout(Instant::now().into_std());
                }
                changed = shutdown.changed(), if !shutdown_seen => {
                    if changed.is_err() || *shutdown.borrow() {
                        shutdown_seen = true;
                        self.conn.begin_drain(Instant::now().into_std(), DrainReason::Shutdown);
                    }
                }
                _ = probe_timer.tick(), if failback.is_some() && ready_now => {
                    let cfg = self.ctx.connect.clone();
                    let tx = probe_tx.clone();
                    tokio::spawn(async move {
                        // Under TLS the probe shakes hands too: a primary
                        // that answers TCP but refuses our certificate is
                        // not back.
                        if connect_to(&cfg, &cfg.primary).await.is_ok() {
                            let _ = tx.try_send(());
                        }
                    });
                }
                Some(()) = primary_back.recv(), if ready_now => {
                    // Stop taking requests; those in flight finish here.
                    tracing::info!(link = self.shared.id, "primary endpoint answers again: draining");
                    self.conn.begin_drain(Instant::now().into_std(), DrainReason::Failback);
                }
            }
        }
    }

    /// An I/O error in words: a TLS failure (an alert from the acquirer)
    /// named as such, with the endpoint.
    fn io_error(&self, e: std::io::Error) -> Ended {
        if tls::rustls_error(&e).is_none() {
            return Ended::Io(e);
        }
        let c = &self.ctx.connect;
        let endpoint = match (self.shared.endpoint.load(Ordering::Relaxed), &c.secondary) {
            (1, Some(s)) => s.clone(),
            _ => c.primary.clone(),
        };
        Ended::Tls {
            endpoint,
            reason: tls::describe_io(&e, Peer::Acquirer, None),
        }
    }

    /// The socket failed: everything in flight fails now (maybe
    /// delivered), and `why` is the reason given.
    fn lost(&mut self, why: Ended, backoff: &mut Backoff) -> Ended {
        self.conn.handle_closed(Instant::now().into_std());
        self.events(backoff);
        self.down = None;
        why
    }

    /// Hands a caller's request to the protocol, or answers it at once.
    fn submit(&mut self, q: Queued, now: std::time::Instant) {
        if q.epoch != self.epoch {
            // Queued for an earlier connection: never sent on this one.
            q.waiter.answer(Err(LinkError::NoReadyLink));
            return;
        }
        let m = &self.shared.metrics;
        match self.conn.submit(now, q.req, q.waiter) {
            Ok(()) => LinkMetrics::inc(&m.sent),
            Err(e) => {
                match e {
                    SubmitError::Busy(_) => LinkMetrics::inc(&m.busy),
                    SubmitError::DuplicateKey(_) => LinkMetrics::inc(&m.duplicate_keys),
                    SubmitError::NotReady(_) => {}
                }
                let err = e.link_error();
                e.into_token().answer(Err(err));
            }
        }
    }

    /// Acts on every protocol event; the last one (`Down`) is kept in
    /// `self.down`.
    fn events(&mut self, backoff: &mut Backoff) {
        let m = &self.shared.metrics;
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Answered { token, response } => {
                    LinkMetrics::inc(&m.matched);
                    token.answer(Ok(response));
                }
                Event::Failed { token, failure } => {
                    match failure {
                        Failure::Timeout => {
                            LinkMetrics::inc(&m.timeouts);
                            let now = std::time::Instant::now();
                            if let Some(repeated) = self.timeouts.note("timeout", now) {
                                tracing::warn!(
                                    link = self.shared.id,
                                    repeated,
                                    "request timed out (no answer within the request timeout)"
                                );
                            }
                        }
                        Failure::Disconnected => LinkMetrics::inc(&m.failed_in_flight),
                        Failure::NotSent => {}
                    }
                    token.answer(Err(failure.into()));
                }
                Event::Stray(s) => {
                    m.unmatched(s.kind);
                    (self.ctx.unmatched)(Unmatched {
                        link: self.shared.id,
                        kind: s.kind,
                        header: s.header,
                        body: s.body,
                    });
                }
                Event::StateChanged(s) => {
                    if s == LinkState::Ready {
                        backoff.reset();
                        self.epoch = self.shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
                    }
                    set_state(self.ctx, self.shared, s);
                }
                Event::Down(reason) => self.down = Some(reason),
            }
        }
        let now = self.conn.stats();
        if now != self.stats {
            let add = |c: &AtomicU64, new: u64, old: u64| {
                c.fetch_add(new - old, Ordering::Relaxed);
            };
            let old = self.stats;
            add(&m.keep_alives, now.keep_alives, old.keep_alives);
            add(&m.echoes_sent, now.echoes_sent, old.echoes_sent);
            add(
                &m.network_answered,
                now.network_answered,
                old.network_answered,
            );
            add(&m.sign_ons, now.sign_ons, old.sign_ons);
            self.stats = now;
        }
    }

    /// Reads what the socket has and hands every complete frame to the
    /// protocol, acting on its events frame by frame (so a burst of
    /// responses reaches the callers without queueing up).
    fn read<T: Transport>(&mut self, io: &mut T, backoff: &mut Backoff) -> Result<(), Ended> {
        for _ in 0..READS_PER_TURN {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match io.read_now(&mut self.rbuf) {
                Ok(0) => return Err(Ended::PeerClosed),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Ended::Io(e)),
            }
            if self.frames(Instant::now().into_std(), backoff) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Hands every complete frame in the read buffer to the protocol;
    /// true when the connection is going down (stop reading).
    #[inline]
    fn frames(&mut self, now: std::time::Instant, backoff: &mut Backoff) -> bool {
        loop {
            match self.codec.decode_frame(&mut self.rbuf) {
                Ok(Some(frame)) => {
                    self.conn.handle_frame(now, frame);
                    self.events(backoff);
                    if self.down.is_some() {
                        return true;
                    }
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::error!(link = self.shared.id, error = %e, "corrupt frame, closing link");
                    self.conn.handle_corrupt(now, e);
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_warnings_once_per_window_with_their_count() {
        let t0 = std::time::Instant::now();
        let s = std::time::Duration::from_secs;
        let mut r = Repeats::new(s(60));
        assert_eq!(r.note("refused", t0), Some(0), "the first is logged");
        assert_eq!(r.note("refused", t0 + s(5)), None);
        assert_eq!(r.note("refused", t0 + s(10)), None);
        assert_eq!(
            r.note("refused", t0 + s(61)),
            Some(2),
            "then with the count"
        );
        assert_eq!(
            r.note("timed out", t0 + s(62)),
            Some(0),
            "a new text at once"
        );
        assert_eq!(r.note("timed out", t0 + s(63)), None);
    }
    use crate::iso8583::Spec;
    use crate::net::framing::FramingConfig;
    use crate::net::proto::LinkConfig;
    use crate::net::stan::StanAllocator;

    fn ctx() -> LinkContext {
        LinkContext {
            proto: Arc::new(proto::Context {
                cfg: LinkConfig {
                    sign_on: false,
                    ..LinkConfig::default()
                },
                spec: Arc::new(Spec::builtin("cb2a").unwrap()),
                codec: FramingConfig::default().codec().unwrap(),
                stans: StanAllocator::new(),
            }),
            connect: ConnectConfig {
                primary: "127.0.0.1:9".into(),
                secondary: None,
                connect_timeout: Duration::from_secs(1),
                failback_interval: None,
                backoff: BackoffConfig::default(),
                seed: Some(1),
                tls: None,
                name: "test".into(),
            },
            unmatched: log_unmatched(),
            state_changed: Notify::new(),
        }
    }

    fn shared() -> LinkShared {
        LinkShared::new(0)
    }

    fn queued(
        ctx: &LinkContext,
        epoch: u64,
    ) -> (Queued, oneshot::Receiver<Result<Response, LinkError>>) {
        let spec = &ctx.proto.spec;
        let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
        spec.set_text(&mut m, 11, "000042").unwrap();
        let req = ctx.proto.encode_request(&m).unwrap();
        let (reply, rx) = oneshot::channel();
        let waiter = Waiter {
            reply,
            _lease: None,
        };
        (Queued { req, epoch, waiter }, rx)
    }

    /// A request queued for one connection (say, just before it dropped)
    /// is answered `NoReadyLink` by the next one, never written on it.
    #[test]
    fn a_request_for_an_earlier_connection_is_never_sent() {
        let (ctx, shared) = (ctx(), shared());
        shared.epoch.store(1, Ordering::Release);
        let mut driver = Driver::new(&ctx, &shared);
        let mut backoff = Backoff::new(BackoffConfig::default());
        driver.conn.handle_connected(std::time::Instant::now());
        driver.events(&mut backoff);
        // Ready: this connection is epoch 2.
        assert_eq!(shared.state(), LinkState::Ready);
        assert_eq!(driver.epoch, 2);
        let (stale, mut stale_rx) = queued(&ctx, 1);
        driver.submit(stale, std::time::Instant::now());
        assert!(matches!(
            stale_rx.try_recv(),
            Ok(Err(LinkError::NoReadyLink))
        ));
        assert_eq!(driver.conn.queued_bytes(), 0);
        let (current, mut current_rx) = queued(&ctx, 2);
        driver.submit(current, std::time::Instant::now());
        assert!(current_rx.try_recv().is_err(), "waiting for its answer");
        assert!(driver.conn.queued_bytes() > 0);
        assert_eq!(shared.metrics.snapshot().sent, 1);
    }
}
