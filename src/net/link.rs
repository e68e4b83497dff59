//! One TCP connection to an acquirer, owned by one task.
//!
//! ```text
//!  callers ──(Request: key, encoded frame, oneshot)──► mpsc ──► link task ──► socket
//!     ▲                                                          │   ▲
//!     └──────────── oneshot: Ok(Response) / Err(LinkError) ◄─────┘   └── frames in
//! ```
//!
//! Callers encode their message (in their own task, spreading the CPU work)
//! and hand the frame to the link task, which appends every queued frame to
//! one write buffer and writes it with one system call: under load one
//! `write` carries many frames. Responses are decoded once to build their
//! match key, then handed to the caller as a [`Response`] that shares the
//! read buffer.
//!
//! The task is a loop around I/O-free parts ([`Matcher`], [`Backoff`]); the
//! only clock reads are `Instant::now()` passed into them, so tests run on
//! tokio's paused clock.
//!
//! Life of a link (states visible to the pool through [`LinkState`]):
//!
//! ```text
//!   Connecting ──tcp up──► SigningOn ──0810 DE39=00──► Ready ──shutdown──► Draining
//!       ▲                     │                          │                   │
//!       └──backoff── Down ◄───┴──────────error───────────┴───in flight = 0───┘
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::backoff::Backoff;
use super::error::{CodecError, LinkError};
use super::framing::{Frame, FrameCodec};
use super::key::{KeyHasherBuilder, MatchKey, MatchKeyConfig};
use super::matcher::{InsertError, Match, Matcher, StrayKind};
use super::pool::PoolConfig;
use super::stan::{StanAllocator, StanLease};
use crate::iso8583::{Message, Mti, Spec};

/// DE 70 network management information codes.
pub const NMIC_SIGN_ON: &str = "001";
pub const NMIC_ECHO: &str = "301";

/// Stop taking requests while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per wake-up before giving other work a turn.
const READS_PER_TURN: usize = 8;

/// State of one link, as seen by the pool and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LinkState {
    Connecting = 0,
    SigningOn = 1,
    Ready = 2,
    Draining = 3,
    Down = 4,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Connecting,
            1 => LinkState::SigningOn,
            2 => LinkState::Ready,
            3 => LinkState::Draining,
            _ => LinkState::Down,
        }
    }
}

/// Why a response (or an acquirer request) was handed to the unmatched handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedKind {
    /// Answer to a request that had already timed out.
    Late,
    /// Second answer to a request already answered.
    Duplicate,
    /// Answer to nothing this link remembers.
    Unknown,
    /// A request from the acquirer other than network management.
    UnsolicitedRequest,
    /// A frame whose message does not decode with the dialect.
    Undecodable,
}

impl From<StrayKind> for UnmatchedKind {
    fn from(k: StrayKind) -> Self {
        match k {
            StrayKind::Late => UnmatchedKind::Late,
            StrayKind::Duplicate => UnmatchedKind::Duplicate,
            StrayKind::Unknown => UnmatchedKind::Unknown,
        }
    }
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

/// The default handler: a warning in the log (kind and MTI only). The
/// counters in [`LinkMetrics`] count regardless of the handler.
pub fn log_unmatched() -> UnmatchedHandler {
    Arc::new(|u: Unmatched| {
        let mti = u
            .body
            .get(..4)
            .map(|m| String::from_utf8_lossy(m).into_owned());
        tracing::warn!(link = u.link, kind = ?u.kind, len = u.body.len(), ?mti, "unmatched message");
    })
}

/// A response matched to its request. It shares the link's read buffer;
/// [`message`](Self::message) decodes it without copying.
#[derive(Clone)]
pub struct Response {
    header: Bytes,
    body: Bytes,
    spec: Arc<Spec>,
    /// DE 39 as text, read while the link had the message decoded.
    rc: Option<([u8; 4], u8)>,
}

impl Response {
    /// The decoded message, borrowing this response.
    pub fn message(&self) -> Result<Message<'_>, CodecError> {
        Ok(self.spec.decode(&self.body)?)
    }

    /// The decoded message, owning its data.
    pub fn into_message(self) -> Result<Message<'static>, CodecError> {
        Ok(self.spec.decode(&self.body)?.into_owned())
    }

    /// The logical value of DE 39 (up to 4 characters), if present.
    pub fn response_code(&self) -> Option<&str> {
        let (buf, len) = self.rc.as_ref()?;
        std::str::from_utf8(&buf[..usize::from(*len)]).ok()
    }

    /// The encoded message (no framing).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The fixed framing header received with it.
    pub fn framing_header(&self) -> &Bytes {
        &self.header
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Ok(m) => write!(f, "Response({})", self.spec.display(&m)),
            Err(_) => write!(f, "Response({} bytes)", self.body.len()),
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
    pub(crate) cfg: PoolConfig,
    pub(crate) spec: Arc<Spec>,
    pub(crate) codec: FrameCodec,
    pub(crate) key: MatchKeyConfig,
    pub(crate) stans: Arc<StanAllocator>,
    pub(crate) unmatched: UnmatchedHandler,
    /// Woken on every link state change (pool `wait_ready`).
    pub(crate) state_changed: Notify,
}

/// One request on its way to the link task.
pub(crate) struct Request {
    key: MatchKey,
    frame: Bytes,
    reply: oneshot::Sender<Result<Response, LinkError>>,
    lease: Option<StanLease>,
}

/// The state of a link shared between its task and its handles.
pub(crate) struct LinkShared {
    pub(crate) id: usize,
    state: AtomicU8,
    /// Requests submitted and not yet answered (caller side accounting).
    pub(crate) in_flight: AtomicUsize,
    /// Which endpoint the current connection uses: 0 primary, 1 secondary.
    pub(crate) endpoint: AtomicU8,
    pub(crate) metrics: LinkMetrics,
    state_tx: watch::Sender<LinkState>,
}

impl LinkShared {
    pub(crate) fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }
}

/// Handle to one link; cheap to clone.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Request>,
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
        let (tx, rx) = mpsc::channel(ctx.cfg.max_in_flight_per_link.max(1));
        let shared = Arc::new(LinkShared {
            id,
            state: AtomicU8::new(LinkState::Connecting as u8),
            in_flight: AtomicUsize::new(0),
            endpoint: AtomicU8::new(0),
            metrics: LinkMetrics::default(),
            state_tx: watch::Sender::new(LinkState::Connecting),
        });
        let task = tokio::spawn(supervise(
            Arc::clone(&ctx),
            Arc::clone(&shared),
            rx,
            shutdown,
        ));
        (Link { tx, shared, ctx }, task)
    }

    pub fn id(&self) -> usize {
        self.shared.id
    }

    pub fn state(&self) -> LinkState {
        self.shared.state()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.shared.state_tx.subscribe()
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
    pub async fn send(
        &self,
        msg: &Message<'_>,
        lease: Option<StanLease>,
    ) -> Result<Response, LinkError> {
        let max = self.ctx.cfg.max_in_flight_per_link;
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
        let key = self.ctx.key.request_key(msg).map_err(CodecError::from)?;
        let mut buf = BytesMut::with_capacity(256);
        let start = self.ctx.codec.begin(&mut buf);
        self.ctx
            .spec
            .encode(msg, &mut buf)
            .map_err(CodecError::from)?;
        self.ctx
            .codec
            .finish(&mut buf, start)
            .map_err(CodecError::from)?;
        let (reply, rx) = oneshot::channel();
        let req = Request {
            key,
            frame: buf.freeze(),
            reply,
            lease,
        };
        match self.tx.try_send(req) {
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

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum DownReason {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt frame: {0}")]
    Framing(super::error::FramingError),
    #[error("sign-on refused with response code {0:?}")]
    SignOnRefused(Option<String>),
    #[error("no answer to sign-on")]
    SignOnTimeout,
    #[error("no answer to echo test")]
    EchoTimeout,
    #[error("cannot build network management message: {0}")]
    Network(CodecError),
    #[error("no free STAN for network management")]
    StanExhausted,
    #[error("shut down")]
    Shutdown,
    #[error("primary endpoint reachable again: moving back to it")]
    Failback,
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

/// Connect, run, and reconnect with backoff until shut down.
async fn supervise(
    ctx: Arc<LinkContext>,
    shared: Arc<LinkShared>,
    mut rx: mpsc::Receiver<Request>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = &ctx.cfg;
    let mut backoff = Backoff::new(cfg.backoff.clone());
    let mut rng = match cfg.seed {
        Some(seed) => StdRng::seed_from_u64(seed.wrapping_add(shared.id as u64)),
        None => StdRng::from_entropy(),
    };
    loop {
        if is_shutdown(&shutdown) {
            break;
        }
        set_state(&ctx, &shared, LinkState::Connecting);
        let reason = match connect(cfg, &shared).await {
            Ok(stream) => {
                LinkMetrics::inc(&shared.metrics.connects);
                let mut conn = Connection::new(&ctx, &shared);
                let reason = conn.run(stream, &mut rx, &mut shutdown, &mut backoff).await;
                LinkMetrics::inc(&shared.metrics.disconnects);
                reason
            }
            Err(e) => DownReason::Connect(e),
        };
        set_state(&ctx, &shared, LinkState::Down);
        if matches!(reason, DownReason::Shutdown) {
            break;
        }
        if matches!(reason, DownReason::Failback) {
            LinkMetrics::inc(&shared.metrics.failbacks);
            tracing::info!(link = shared.id, "moving back to the primary endpoint");
            continue;
        }
        let delay = backoff.next_delay(&mut rng);
        tracing::warn!(link = shared.id, %reason, ?delay, "link down, reconnecting");
        if let DownReason::Framing(_) = reason {
            LinkMetrics::inc(&shared.metrics.framing_errors);
        }
        // Wait out the backoff; whatever is queued meanwhile gets an answer now.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                req = rx.recv() => match req {
                    Some(req) => { let _ = req.reply.send(Err(LinkError::NoReadyLink)); }
                    None => return,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
        }
    }
    set_state(&ctx, &shared, LinkState::Down);
    rx.close();
    while let Ok(req) = rx.try_recv() {
        let _ = req.reply.send(Err(LinkError::Shutdown));
    }
}

/// Primary first; the secondary when the primary cannot be reached.
async fn connect(cfg: &PoolConfig, shared: &LinkShared) -> std::io::Result<TcpStream> {
    let endpoints = std::iter::once(&cfg.primary).chain(cfg.secondary.as_ref());
    let mut last = std::io::Error::other("no endpoint configured");
    for (i, ep) in endpoints.enumerate() {
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(ep.as_str())).await {
            Ok(Ok(s)) => {
                s.set_nodelay(true)?;
                shared.endpoint.store(i as u8, Ordering::Relaxed);
                if i > 0 {
                    tracing::warn!(link = shared.id, endpoint = %ep, "connected to secondary endpoint");
                }
                return Ok(s);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"),
        }
        tracing::debug!(link = shared.id, endpoint = %ep, error = %last, "connect failed");
    }
    Err(last)
}

/// What the link waits for per pending key.
enum Pending {
    Caller {
        reply: oneshot::Sender<Result<Response, LinkError>>,
        _lease: Option<StanLease>,
    },
    SignOn(#[allow(dead_code)] StanLease),
    Echo(#[allow(dead_code)] StanLease),
}

/// One live TCP connection: the loop body of the link task.
struct Connection<'a> {
    ctx: &'a LinkContext,
    shared: &'a LinkShared,
    codec: FrameCodec,
    matcher: Matcher<MatchKey, Pending, KeyHasherBuilder>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    state: LinkState,
    last_rx: Instant,
    echo_pending: bool,
    /// Draining to move back to the primary (not to shut down).
    failing_back: bool,
}

impl<'a> Connection<'a> {
    fn new(ctx: &'a LinkContext, shared: &'a LinkShared) -> Self {
        Connection {
            ctx,
            shared,
            codec: ctx.codec.clone(),
            matcher: Matcher::new(
                ctx.cfg.max_in_flight_per_link + 2,
                ctx.cfg.remember_finished,
            ),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            state: LinkState::SigningOn,
            last_rx: Instant::now(),
            echo_pending: false,
            failing_back: false,
        }
    }

    fn set_state(&mut self, s: LinkState) {
        self.state = s;
        set_state(self.ctx, self.shared, s);
    }

    async fn run(
        &mut self,
        stream: TcpStream,
        rx: &mut mpsc::Receiver<Request>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> DownReason {
        let reason = self.run_inner(&stream, rx, shutdown, backoff).await;
        // Whatever was written and not answered gets a definite outcome now.
        self.set_state(LinkState::Down);
        for (_, p) in self.matcher.drain() {
            if let Pending::Caller { reply, .. } = p {
                LinkMetrics::inc(&self.shared.metrics.failed_in_flight);
                let _ = reply.send(Err(LinkError::Disconnected));
            }
        }
        reason
    }

    async fn run_inner(
        &mut self,
        stream: &TcpStream,
        rx: &mut mpsc::Receiver<Request>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> DownReason {
        let cfg = &self.ctx.cfg;
        let now = Instant::now();
        self.last_rx = now;
        if cfg.sign_on {
            self.set_state(LinkState::SigningOn);
            if let Err(e) = self.send_network(NMIC_SIGN_ON, now) {
                return e;
            }
        } else {
            backoff.reset();
            self.set_state(LinkState::Ready);
        }
        let sleep = tokio::time::sleep_until(now + Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut shutdown_seen = false;
        // On the secondary: probe the primary now and then; a probe that
        // connects says so on `primary_back`.
        let failback = match cfg.failback_interval {
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
            // Write whatever is queued: one system call for many frames.
            if !self.wbuf.is_empty() {
                match stream.try_write(&self.wbuf) {
                    Ok(n) => self.wbuf.advance(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return DownReason::Io(e),
                }
            }
            if self.state == LinkState::Draining && self.matcher.is_empty() && self.wbuf.is_empty()
            {
                return if self.failing_back && !shutdown_seen {
                    DownReason::Failback
                } else {
                    DownReason::Shutdown
                };
            }
            let next = self.next_wakeup();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                armed = next;
            }
            let interest = if self.wbuf.is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let accepting = self.state == LinkState::Ready
                && !self.matcher.is_full()
                && self.wbuf.len() < WRITE_HIGH_WATER;
            tokio::select! {
                biased;
                ready = stream.ready(interest) => {
                    match ready {
                        Ok(r) if r.is_readable() || r.is_read_closed() => {
                            if let Err(e) = self.read(stream, backoff) {
                                return e;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => return DownReason::Io(e),
                    }
                }
                req = rx.recv(), if accepting => {
                    let Some(req) = req else { return DownReason::Shutdown };
                    let now = Instant::now();
                    self.accept(req, now);
                    // Take everything already queued: one write for the batch.
                    while !self.matcher.is_full() && self.wbuf.len() < WRITE_HIGH_WATER {
                        match rx.try_recv() {
                            Ok(req) => self.accept(req, now),
                            Err(_) => break,
                        }
                    }
                }
                _ = &mut sleep, if armed.is_some() => {
                    armed = None;
                    if let Err(e) = self.on_timer(Instant::now()) {
                        return e;
                    }
                }
                changed = shutdown.changed(), if !shutdown_seen => {
                    if changed.is_err() || *shutdown.borrow() {
                        shutdown_seen = true;
                        self.set_state(LinkState::Draining);
                    }
                }
                _ = probe_timer.tick(), if failback.is_some() && self.state == LinkState::Ready => {
                    let primary = cfg.primary.clone();
                    let connect_timeout = cfg.connect_timeout;
                    let tx = probe_tx.clone();
                    tokio::spawn(async move {
                        let probe = TcpStream::connect(primary.as_str());
                        if let Ok(Ok(_)) = tokio::time::timeout(connect_timeout, probe).await {
                            let _ = tx.try_send(());
                        }
                    });
                }
                Some(()) = primary_back.recv(), if self.state == LinkState::Ready => {
                    // Stop taking requests; those in flight finish here.
                    tracing::info!(link = self.shared.id, "primary endpoint answers again: draining");
                    self.failing_back = true;
                    self.set_state(LinkState::Draining);
                }
            }
        }
    }

    fn next_wakeup(&mut self) -> Option<Instant> {
        let deadline = self.matcher.next_deadline().map(Instant::from_std);
        let echo = match self.ctx.cfg.echo_interval {
            Some(iv) if self.state == LinkState::Ready && !self.echo_pending => {
                Some(self.last_rx + iv)
            }
            _ => None,
        };
        match (deadline, echo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept(&mut self, req: Request, now: Instant) {
        let deadline = (now + self.ctx.cfg.request_timeout).into_std();
        let pending = Pending::Caller {
            reply: req.reply,
            _lease: req.lease,
        };
        match self.matcher.insert(req.key, pending, deadline) {
            Ok(()) => {
                self.wbuf.extend_from_slice(&req.frame);
                LinkMetrics::inc(&self.shared.metrics.sent);
            }
            Err(InsertError::Duplicate(Pending::Caller { reply, .. })) => {
                LinkMetrics::inc(&self.shared.metrics.duplicate_keys);
                let _ = reply.send(Err(LinkError::DuplicateKey));
            }
            Err(InsertError::Full(Pending::Caller { reply, .. })) => {
                LinkMetrics::inc(&self.shared.metrics.busy);
                let _ = reply.send(Err(LinkError::Busy));
            }
            Err(_) => {}
        }
    }

    /// Reads what the socket has and handles every complete frame.
    fn read(&mut self, stream: &TcpStream, backoff: &mut Backoff) -> Result<(), DownReason> {
        for _ in 0..READS_PER_TURN {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => return Err(DownReason::PeerClosed),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(DownReason::Io(e)),
            }
            self.last_rx = Instant::now();
            loop {
                match self.codec.decode(&mut self.rbuf) {
                    Ok(Some(frame)) => self.on_frame(frame, backoff)?,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(link = self.shared.id, error = %e, "corrupt frame, closing link");
                        return Err(DownReason::Framing(e));
                    }
                }
            }
        }
        Ok(())
    }

    fn unmatched(&self, kind: UnmatchedKind, header: Bytes, body: Bytes) {
        self.shared.metrics.unmatched(kind);
        (self.ctx.unmatched)(Unmatched {
            link: self.shared.id,
            kind,
            header,
            body,
        });
    }

    fn on_frame(&mut self, frame: Frame, backoff: &mut Backoff) -> Result<(), DownReason> {
        let (header, body) = match frame {
            Frame::KeepAlive => {
                LinkMetrics::inc(&self.shared.metrics.keep_alives);
                return Ok(());
            }
            Frame::Message { header, body } => (header, body),
        };
        let spec = &*self.ctx.spec;
        let msg = match spec.decode(&body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(link = self.shared.id, error = %e, "undecodable message");
                self.unmatched(UnmatchedKind::Undecodable, header, body);
                return Ok(());
            }
        };
        let mti = msg.mti();
        if mti.is_request() {
            if mti.digits()[1] == b'8' {
                self.answer_network(&msg, &header);
            } else {
                self.unmatched(UnmatchedKind::UnsolicitedRequest, header, body);
            }
            return Ok(());
        }
        let outcome = match self.ctx.key.response_key(&msg) {
            Ok(key) => self.matcher.on_response(&key),
            Err(_) => Match::Stray(StrayKind::Unknown),
        };
        match outcome {
            Match::Matched(Pending::Caller { reply, .. }) => {
                LinkMetrics::inc(&self.shared.metrics.matched);
                let rc = spec.text(&msg, 39).and_then(|c| {
                    let b = c.as_bytes();
                    let mut buf = [0u8; 4];
                    buf.get_mut(..b.len())?.copy_from_slice(b);
                    Some((buf, b.len() as u8))
                });
                let _ = reply.send(Ok(Response {
                    header,
                    body,
                    spec: Arc::clone(&self.ctx.spec),
                    rc,
                }));
            }
            Match::Matched(Pending::SignOn(_)) => {
                let code = spec.text(&msg, 39).map(|c| c.into_owned());
                if code.as_deref() != Some("00") {
                    return Err(DownReason::SignOnRefused(code));
                }
                LinkMetrics::inc(&self.shared.metrics.sign_ons);
                backoff.reset();
                self.set_state(LinkState::Ready);
            }
            Match::Matched(Pending::Echo(_)) => self.echo_pending = false,
            Match::Stray(kind) => self.unmatched(kind.into(), header, body),
        }
        Ok(())
    }

    /// Answers the acquirer's own 0800 (echo, sign-on...) with an 0810
    /// echoing its fields and DE 39 = 00.
    fn answer_network(&mut self, req: &Message<'_>, header: &[u8]) {
        let spec = &*self.ctx.spec;
        let mut resp = req.clone();
        resp.set_mti(req.mti().response().unwrap_or(Mti::NETWORK_RESPONSE));
        let result = spec
            .set_text(&mut resp, 39, "00")
            .map_err(CodecError::from)
            .and_then(|()| {
                let start = self.codec.begin_with_header(&mut self.wbuf, header);
                spec.encode(&resp, &mut self.wbuf)?;
                Ok(self.codec.finish(&mut self.wbuf, start)?)
            });
        match result {
            Ok(()) => LinkMetrics::inc(&self.shared.metrics.network_answered),
            Err(e) => {
                tracing::warn!(link = self.shared.id, error = %e, "cannot answer network message")
            }
        }
    }

    /// Queues an 0800 with DE 70 = `code`, expecting its 0810.
    fn send_network(&mut self, code: &str, now: Instant) -> Result<(), DownReason> {
        let lease = self.ctx.stans.allocate().ok_or(DownReason::StanExhausted)?;
        let build = |wbuf: &mut BytesMut| -> Result<MatchKey, CodecError> {
            let spec = &*self.ctx.spec;
            let mut m = Message::new(Mti::NETWORK_REQUEST);
            if spec.field(7).is_some() {
                spec.set_text(&mut m, 7, &transmission_datetime(SystemTime::now()))?;
            }
            let stan = lease.stan().digits();
            spec.set_text(&mut m, 11, std::str::from_utf8(&stan).unwrap_or("000001"))?;
            spec.set_text(&mut m, 70, code)?;
            let key = self.ctx.key.request_key(&m)?;
            let start = self.codec.begin(wbuf);
            spec.encode(&m, wbuf)?;
            self.codec.finish(wbuf, start)?;
            Ok(key)
        };
        let key = build(&mut self.wbuf).map_err(DownReason::Network)?;
        let deadline = (now + self.ctx.cfg.network_timeout).into_std();
        let pending = if code == NMIC_SIGN_ON {
            Pending::SignOn(lease)
        } else {
            LinkMetrics::inc(&self.shared.metrics.echoes_sent);
            self.echo_pending = true;
            Pending::Echo(lease)
        };
        // The matcher has two spare slots for network management.
        let _ = self.matcher.insert(key, pending, deadline);
        Ok(())
    }

    fn on_timer(&mut self, now: Instant) -> Result<(), DownReason> {
        while let Some((_, p)) = self.matcher.poll_timeout(now.into_std()) {
            match p {
                Pending::Caller { reply, .. } => {
                    LinkMetrics::inc(&self.shared.metrics.timeouts);
                    let _ = reply.send(Err(LinkError::Timeout));
                }
                Pending::SignOn(_) => return Err(DownReason::SignOnTimeout),
                Pending::Echo(_) => return Err(DownReason::EchoTimeout),
            }
        }
        if let Some(iv) = self.ctx.cfg.echo_interval {
            if self.state == LinkState::Ready && !self.echo_pending && now >= self.last_rx + iv {
                self.send_network(NMIC_ECHO, now)?;
            }
        }
        Ok(())
    }
}

/// DE 7 transmission date and time, `MMDDhhmmss` in UTC.
pub fn transmission_datetime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let c = crate::civil::CivilTime::from_unix(secs);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn de7_format() {
        // 2024-02-29T13:45:07Z
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        assert_eq!(transmission_datetime(t), "0229134507");
        assert_eq!(transmission_datetime(UNIX_EPOCH), "0101000000");
    }
}
