//! The thin tokio server around [`respond`]: accepts connections, decodes
//! frames, applies the actions, batches writes. With TLS
//! ([`SimConfig::tls`]) each connection shakes hands in its own task
//! first (bounded by [`HANDSHAKE_TIMEOUT`]); a refused client is logged
//! with its address and the reason, and the acquirer's rules never see it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::rules::{respond, Action, Faults, LedgerEntry, SimCounts, SimState};
use crate::civil::transmission_datetime;
use crate::iso8583::{Message, Mti, Spec};
use crate::net::framing::{Frame, FrameCodec, FramingConfig};
use crate::net::io::{Tls, Transport, Woken};
use crate::net::FramingError;
use crate::tls::{self, Peer};

/// A client must finish its TLS handshake within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of the garbage frame body: not an MTI in any dialect.
const GARBAGE: &[u8] = b"\xFF\xFFgarbage\x00";

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub spec: Arc<Spec>,
    /// `127.0.0.1:0` by default (an ephemeral port; see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    pub framing: FramingConfig,
    pub faults: Faults,
    /// How many decoded messages to keep for [`SimHandle::records`].
    pub record: usize,
    /// How many ledger entries to keep.
    pub ledger_capacity: usize,
    pub seed: u64,
    /// TLS on every connection: the simulator's certificate, and client
    /// authentication if the configuration asks for it (see
    /// `crate::tls::server_config`). Plain TCP when absent.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl SimConfig {
    pub fn new(spec: Arc<Spec>) -> Self {
        SimConfig {
            spec,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            framing: FramingConfig::default(),
            faults: Faults::default(),
            record: 256,
            ledger_capacity: 100_000,
            seed: 1,
            tls: None,
        }
    }
}

struct Shared {
    spec: Arc<Spec>,
    codec: FrameCodec,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Mutex<SimState>,
    /// Woken after each batch of messages is processed.
    progress: Notify,
    conns: Mutex<Vec<mpsc::UnboundedSender<Command>>>,
    accepted: AtomicU64,
    next_stan: AtomicU64,
    /// While false the acquirer is "down": connections are closed as
    /// soon as they are accepted.
    up: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SimState> {
        // A panic elsewhere cannot leave the counters half-updated in a way
        // that matters to a test double: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Command {
    Send(Bytes),
    Close,
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// Resolves when the serving task (or thread) has closed everything.
    done: Option<futures::future::BoxFuture<'static, ()>>,
}

/// Entry point; see [`Simulator::start`].
pub struct Simulator;

impl Simulator {
    /// Binds `cfg.listen` and serves in the background on the current
    /// runtime.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let (mut handle, listener, rx) = Self::bind(cfg)?;
        let listener = TcpListener::from_std(listener)?;
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&handle.shared), rx));
        handle.done = Some(Box::pin(async move {
            let _ = task.await;
        }));
        Ok(handle)
    }

    /// Binds `cfg.listen` and serves on a thread of its own with its own
    /// single-threaded runtime, as a separate acquirer host would: the
    /// caller's runtime then spends nothing on the acquirer's side (the
    /// embedded default of `serve` and `demo`). Needs no runtime.
    pub fn start_on_own_thread(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let (mut handle, listener, rx) = Self::bind(cfg)?;
        let shared = Arc::clone(&handle.shared);
        let done =
            crate::runtime::spawn_runtime_thread("acqswitch-sim".into(), move || async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, shared, rx).await,
                    Err(e) => tracing::warn!(error = %e, "simulator listener"),
                }
            })?;
        handle.done = Some(Box::pin(async move {
            let _ = done.await;
        }));
        Ok(handle)
    }

    /// The listening socket (non-blocking, for any runtime) and a handle
    /// without its serving task.
    fn bind(
        cfg: SimConfig,
    ) -> Result<(SimHandle, std::net::TcpListener, watch::Receiver<bool>), SimError> {
        let codec = cfg.framing.codec()?;
        let listener =
            std::net::TcpListener::bind(cfg.listen).map_err(|source| SimError::Listen {
                addr: cfg.listen,
                source,
            })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            spec: cfg.spec,
            codec,
            tls: cfg.tls.map(tokio_rustls::TlsAcceptor::from),
            state: Mutex::new(SimState::new(
                cfg.faults,
                cfg.record,
                cfg.ledger_capacity,
                cfg.seed,
            )),
            progress: Notify::new(),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            next_stan: AtomicU64::new(900_000),
            up: std::sync::atomic::AtomicBool::new(true),
        });
        let (shutdown, rx) = watch::channel(false);
        let handle = SimHandle {
            addr,
            shared,
            shutdown,
            done: None,
        };
        Ok((handle, listener, rx))
    }
}

/// Fault injection as the admin API takes it (`POST /faults`): every
/// field optional, absent means off.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsRequest {
    pub latency_ms: Option<u64>,
    pub no_response_every: Option<u64>,
    pub duplicate_every: Option<u64>,
    pub drop_after: Option<u64>,
    pub garbage_every: Option<u64>,
}

impl FaultsRequest {
    fn into_faults(self) -> Faults {
        Faults {
            latency: self.latency_ms.map_or(super::rules::Latency::None, |ms| {
                super::rules::Latency::Fixed(Duration::from_millis(ms))
            }),
            no_response_every: self.no_response_every,
            duplicate_every: self.duplicate_every,
            drop_after: self.drop_after,
            garbage_every: self.garbage_every,
            ..Faults::default()
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    #[error("encode: {0}")]
    Encode(#[from] crate::iso8583::EncodeError),
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Approved authorizations (reversed or not), oldest first.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.shared.state().ledger.entries()
    }

    /// Every authorization received, whatever its answer, oldest first
    /// (what `GET /ledger` on the admin listener shows).
    pub fn authorizations(&self) -> Vec<LedgerEntry> {
        self.shared.state().ledger.authorizations()
    }

    /// Serves the admin API on `addr` (loopback only), on the current
    /// runtime, until the simulator shuts down:
    /// `GET /ledger` -> `{"entries": [every authorization]}`,
    /// `GET /counts` -> the counters.
    pub async fn serve_admin(&self, addr: SocketAddr) -> Result<SocketAddr, SimError> {
        use axum::routing::get;
        if !addr.ip().is_loopback() {
            return Err(SimError::Io(std::io::Error::other(format!(
                "admin address {addr} is not a loopback address"
            ))));
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            SimError::Io(std::io::Error::new(
                e.kind(),
                format!("admin listen on {addr}: {e}"),
            ))
        })?;
        let bound = listener.local_addr()?;
        use axum::routing::post;
        let ledger_state = Arc::clone(&self.shared);
        let counts_state = Arc::clone(&self.shared);
        let faults_state = Arc::clone(&self.shared);
        let down_state = Arc::clone(&self.shared);
        let up_state = Arc::clone(&self.shared);
        let router = axum::Router::new()
            .route(
                "/faults",
                post(move |axum::Json(f): axum::Json<FaultsRequest>| {
                    faults_state.state().faults = f.into_faults();
                    async move { axum::Json(serde_json::json!({"ok": true})) }
                }),
            )
            .route(
                "/down",
                post(move || {
                    down_state.up.store(false, Ordering::Release);
                    let mut conns = down_state.conns.lock().unwrap_or_else(|p| p.into_inner());
                    conns.retain(|c| !c.is_closed());
                    let closed = conns
                        .iter()
                        .filter(|c| c.send(Command::Close).is_ok())
                        .count();
                    async move { axum::Json(serde_json::json!({"closed": closed})) }
                }),
            )
            .route(
                "/up",
                post(move || {
                    up_state.up.store(true, Ordering::Release);
                    async move { axum::Json(serde_json::json!({"ok": true})) }
                }),
            )
            .route(
                "/ledger",
                get(move || {
                    let entries = ledger_state.state().ledger.authorizations();
                    async move { axum::Json(serde_json::json!({ "entries": entries })) }
                }),
            )
            .route(
                "/counts",
                get(move || {
                    let counts = counts_state.state().counts;
                    async move { axum::Json(counts) }
                }),
            );
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator admin server");
            }
        });
        Ok(bound)
    }

    /// The ledger entry of (terminal id, STAN).
    pub fn ledger_entry(&self, terminal: &str, stan: &str) -> Option<LedgerEntry> {
        self.shared.state().ledger.get(terminal, stan).cloned()
    }

    /// The last decoded messages received, oldest first.
    pub fn records(&self) -> Vec<Message<'static>> {
        self.shared.state().records().cloned().collect()
    }

    pub fn counts(&self) -> SimCounts {
        self.shared.state().counts
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Changes fault injection for the messages that follow.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().faults = faults;
    }

    /// Reads the state under the lock (for assertions).
    pub fn with_state<R>(&self, f: impl FnOnce(&SimState) -> R) -> R {
        f(&self.shared.state())
    }

    /// Waits until `pred` holds on the state; re-checked after every batch
    /// of messages. Bound it with `tokio::time::timeout`.
    pub async fn wait_until(&self, pred: impl Fn(&SimState) -> bool) {
        loop {
            let notified = self.shared.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.shared.state()) {
                return;
            }
            notified.await;
        }
    }

    /// Sends an 0800 with DE 70 = `code` on every open connection (the
    /// acquirer's own network management); returns how many got it.
    pub fn send_network(&self, code: &str) -> usize {
        let spec = &self.shared.spec;
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        let stan = self.shared.next_stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1;
        let built = (|| {
            if spec.field(7).is_some() {
                spec.set_text(&mut m, 7, &transmission_datetime(SystemTime::now()))?;
            }
            spec.set_text(&mut m, 11, &format!("{stan:06}"))?;
            spec.set_text(&mut m, 70, code)
        })();
        let mut frame = BytesMut::new();
        let start = self.shared.codec.begin(&mut frame);
        if built.is_err() || spec.encode(&m, &mut frame).is_err() {
            return 0;
        }
        if self.shared.codec.finish(&mut frame, start).is_err() {
            return 0;
        }
        self.broadcast(|| Command::Send(frame.clone().freeze()))
    }

    /// Closes every open connection now.
    pub fn drop_connections(&self) -> usize {
        self.broadcast(|| Command::Close)
    }

    /// Takes the acquirer down (every connection closed, new ones closed
    /// as soon as accepted) or back up. The ledger is kept.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::Release);
        if !up {
            self.drop_connections();
        }
    }

    fn broadcast(&self, cmd: impl Fn() -> Command) -> usize {
        let mut conns = self.shared.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.is_closed());
        conns.iter().filter(|c| c.send(cmd()).is_ok()).count()
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(done) = self.done.take() {
            done.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = Vec::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if !shared.up.load(Ordering::Acquire) {
                        // Down: the connection is closed at once.
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, "sim: connection accepted");
                    let (tx, rx) = mpsc::unbounded_channel();
                    shared.conns.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    conns.push(tokio::spawn(async move {
                        let served = match &shared.tls {
                            None => serve(stream, &shared, rx, shutdown).await,
                            Some(acceptor) => {
                                let handshake = acceptor.accept(stream);
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                    Ok(Ok(s)) => serve(Tls(s), &shared, rx, shutdown).await,
                                    Ok(Err(e)) => {
                                        let reason = tls::describe_io(&e, Peer::Client, None);
                                        tracing::warn!(%peer, %reason, "sim: TLS handshake refused");
                                        Ok(())
                                    }
                                    Err(_) => {
                                        tracing::warn!(%peer, "sim: TLS handshake not finished in time");
                                        Ok(())
                                    }
                                }
                            }
                        };
                        match served {
                            Ok(()) => tracing::info!(%peer, "sim: connection closed"),
                            // A framing mismatch shows here first: say so.
                            Err(SimError::Framing(e)) => tracing::warn!(
                                %peer,
                                error = %e,
                                "sim: connection closed on a frame that does not read (is the \
                                 switch's framing the simulator's?)"
                            ),
                            Err(e) => tracing::warn!(%peer, error = %e, "sim: connection ended"),
                        }
                        shared.progress.notify_waiters();
                    }));
                    conns.retain(|c: &tokio::task::JoinHandle<()>| !c.is_finished());
                }
                Err(e) => tracing::warn!(error = %e, "sim accept failed"),
            },
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
        }
    }
    drop(listener);
    for c in conns {
        let _ = c.await;
    }
}

/// A response waiting for its injected latency.
struct Delayed {
    at: Instant,
    seq: u64,
    frame: Bytes,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

async fn serve<T: Transport>(
    mut io: T,
    shared: &Shared,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SimError> {
    let mut codec = shared.codec.clone();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut delayed: BinaryHeap<Reverse<Delayed>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut closing = false;
    let sleep = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(sleep);
    loop {
        io.write_now(&mut wbuf)?;
        if closing {
            // What was answered before the close goes out first.
            io.close(&mut wbuf).await;
            return Ok(());
        }
        let next = delayed.peek().map(|Reverse(d)| d.at);
        if let Some(at) = next {
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
        }
        tokio::select! {
            r = io.wait(&mut rbuf, &mut wbuf) => {
                // Plain TCP: readable, read below; TLS: already read.
                let mut have_bytes = match r? {
                    Woken::Readable => false,
                    Woken::Read(0) => return Ok(()),
                    Woken::Read(_) => true,
                    Woken::Writable => continue,
                };
                for _ in 0..8 {
                    if !have_bytes {
                        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
                            rbuf.reserve(64 * 1024);
                        }
                        match io.read_now(&mut rbuf) {
                            Ok(0) => return Ok(()),
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(SimError::Io(e)),
                        }
                    }
                    have_bytes = false;
                    let now = Instant::now();
                    let mut state = shared.state();
                    loop {
                        let (header, body) = match codec.decode(&mut rbuf)? {
                            None => break,
                            Some(Frame::KeepAlive) => continue,
                            Some(Frame::Message { header, body }) => (header, body),
                        };
                        let msg = match shared.spec.decode(&body) {
                            Ok(m) => m,
                            Err(e) => {
                                state.counts.undecodable += 1;
                                tracing::warn!(error = %e, "sim: undecodable request");
                                continue;
                            }
                        };
                        tracing::debug!(
                            mti = %msg.mti(),
                            stan = %shared.spec.text(&msg, 11).unwrap_or_default(),
                            "sim: request"
                        );
                        for action in respond(&shared.spec, &msg, &mut state) {
                            let (frame, delay) = match action {
                                Action::Reply { msg, delay } if delay.is_zero() => {
                                    let start = codec.begin_with_header(&mut wbuf, &header);
                                    shared.spec.encode(&msg, &mut wbuf)?;
                                    codec.finish(&mut wbuf, start)?;
                                    continue;
                                }
                                Action::Reply { msg, delay } => {
                                    let mut f = BytesMut::new();
                                    let start = codec.begin_with_header(&mut f, &header);
                                    shared.spec.encode(&msg, &mut f)?;
                                    codec.finish(&mut f, start)?;
                                    (f.freeze(), delay)
                                }
                                Action::Garbage { delay } => {
                                    let mut f = BytesMut::new();
                                    let start = codec.begin_with_header(&mut f, &header);
                                    f.extend_from_slice(GARBAGE);
                                    codec.finish(&mut f, start)?;
                                    (f.freeze(), delay)
                                }
                                Action::Close => {
                                    closing = true;
                                    break;
                                }
                            };
                            if delay.is_zero() {
                                wbuf.extend_from_slice(&frame);
                            } else {
                                seq += 1;
                                delayed.push(Reverse(Delayed { at: now + delay, seq, frame }));
                            }
                        }
                        if closing {
                            break;
                        }
                    }
                    drop(state);
                    shared.progress.notify_waiters();
                    if closing {
                        delayed.clear();
                        break;
                    }
                }
            }
            _ = &mut sleep, if next.is_some() => {
                let now = Instant::now();
                while delayed.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    if let Some(Reverse(d)) = delayed.pop() {
                        wbuf.extend_from_slice(&d.frame);
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Send(frame)) => wbuf.extend_from_slice(&frame),
                Some(Command::Close) | None => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
