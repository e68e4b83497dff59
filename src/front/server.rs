//! Starting the switch from a [`Config`]: the optional in-process
//! simulator, one pool per acquirer, the merchants, and the HTTP server.
//!
//! The server is a plain accept loop over hyper's HTTP/1 connection
//! builder (rather than `axum::serve`) for the slow-client defences axum
//! does not expose: a header read timeout per request, TCP_NODELAY, and a
//! cap on connections served at once. Body size and body read time are
//! bounded in the handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::AppState;
use crate::config::{Config, GooglePayConfig, MerchantConfig, SIMULATOR};
use crate::iso8583::Spec;
use crate::net::Pool;
use crate::seal::{SealAlgorithm, SealSecret};
use crate::sim::{SimConfig, SimHandle, Simulator};
use crate::switch::store::{ReferenceWindow, TokenVault};
use crate::switch::{Acquirer, AuthorizationService, Mapping, Merchant, Route};
use crate::wallet::googlepay::{
    testkeys, GooglePayRecipient, MerchantPrivateKey, ProtocolVersion, RecipientConfig,
    RootSigningKeys,
};

/// Why the switch could not start. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("acquirer {acquirer}: {reason}")]
    Acquirer { acquirer: String, reason: String },
    #[error("merchant {merchant}: {reason}")]
    Merchant { merchant: String, reason: String },
    #[error("simulator: {0}")]
    Simulator(String),
    #[error("listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("shard: {0}")]
    Shard(String),
}

/// A running switch.
pub struct Running {
    addr: SocketAddr,
    state: Arc<AppState>,
    simulator: Option<SimHandle>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    server: crate::config::ServerConfig,
    /// Where the accept loop hands connections to further shards.
    handoffs: Handoffs,
    /// Resolve when the further shards (see [`Running::start_shards`]) have
    /// stopped; their states are in the shards' shared registry.
    shards: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Running {
    /// Where the HTTP API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The in-process simulator, when the configuration has one.
    pub fn simulator(&self) -> Option<&SimHandle> {
        self.simulator.as_ref()
    }

    /// Waits until every acquirer has a ready link in every shard (bound
    /// it with a timeout).
    pub async fn wait_ready(&self) {
        for st in self.state.all_shards() {
            for a in st.service.acquirers() {
                a.pool.wait_ready(1).await;
            }
        }
    }

    /// Starts `n` more shards, each a single-threaded runtime on a thread
    /// of its own with its own acquirer pools (each shard opens the
    /// configured links to every acquirer); merchants, duplicate windows
    /// and the vault are shared. The accept loop deals connections to the
    /// shards in turn; from then on a request stays on its shard from
    /// read to answer, so no task ever wakes another thread. At shutdown a
    /// shard finishes its connections (5 s at most) before closing its
    /// links.
    pub async fn start_shards(&mut self, n: usize) -> Result<(), StartError> {
        for i in 1..=n {
            let base = Arc::clone(&self.state);
            let (handoff, incoming) = tokio::sync::mpsc::unbounded_channel();
            let server = self.server.clone();
            let rx = self.shutdown.subscribe();
            let (started_tx, started) = tokio::sync::oneshot::channel();
            let done = crate::runtime::spawn_runtime_thread(
                format!("acqswitch-shard-{i}"),
                move || async move {
                    let state = Arc::new(base.shard());
                    state.register();
                    let _ = started_tx.send(());
                    let connections = TaskTracker::new();
                    let router = super::router(Arc::clone(&state));
                    shard_loop(incoming, router, server, rx, &connections).await;
                    connections.close();
                    connections.wait().await;
                    for a in state.service.acquirers() {
                        a.pool.shutdown().await;
                    }
                },
            )
            .map_err(|e| StartError::Shard(e.to_string()))?;
            started
                .await
                .map_err(|_| StartError::Shard("the shard thread ended at start".into()))?;
            self.shards.push(done);
            self.handoffs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handoff);
        }
        Ok(())
    }

    /// Serves until `shutdown` is called (for `serve`).
    pub async fn wait(&mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Stops accepting, closes the pools and the simulator.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        for a in self.state.service.acquirers() {
            a.pool.shutdown().await;
        }
        for done in self.shards.drain(..) {
            let _ = done.await;
        }
        if let Some(sim) = self.simulator.take() {
            sim.shutdown().await;
        }
    }
}

/// Starts everything `cfg` describes. Must run inside a tokio runtime.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    cfg.response_codes
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let simulator = match &cfg.simulator {
        Some(s) => {
            let spec = Spec::load(&s.dialect).map_err(|e| StartError::Simulator(e.to_string()))?;
            let mut sc = SimConfig::new(Arc::new(spec));
            sc.listen = s
                .listen
                .parse()
                .map_err(|_| StartError::Simulator(format!("bad listen address {}", s.listen)))?;
            if !sc.listen.ip().is_loopback() {
                return Err(StartError::Simulator(
                    "the simulator listens on loopback only".into(),
                ));
            }
            sc.framing = s.framing.clone();
            sc.record = s.record;
            sc.ledger_capacity = s.ledger_capacity;
            // Its own thread: the acquirer's work stays off the switch's.
            Some(
                Simulator::start_on_own_thread(sc)
                    .map_err(|e| StartError::Simulator(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut acquirers = Vec::new();
    for (i, a) in cfg.acquirers.iter().enumerate() {
        let bad = |reason: String| StartError::Acquirer {
            acquirer: a.name.clone(),
            reason,
        };
        // Routes name acquirers: a second one of the same name would hide
        // the first (and leave its pool running unused).
        if cfg.acquirers[..i].iter().any(|p| p.name == a.name) {
            return Err(bad("defined twice".into()));
        }
        let spec = Arc::new(Spec::load(&a.dialect).map_err(|e| bad(e.to_string()))?);
        let mapping = Mapping::load(&a.mapping, &spec).map_err(|e| bad(e.to_string()))?;
        let mut pool_cfg = a.pool.clone();
        if pool_cfg.primary == SIMULATOR {
            let sim = simulator
                .as_ref()
                .ok_or_else(|| bad("primary = \"simulator\" needs a [simulator] section".into()))?;
            pool_cfg.primary = sim.addr().to_string();
        }
        let pool = Pool::start(pool_cfg, Arc::clone(&spec)).map_err(|e| bad(e.to_string()))?;
        acquirers.push(Acquirer {
            name: a.name.clone(),
            spec,
            mapping,
            pool,
        });
    }
    let mut merchants = HashMap::new();
    for m in &cfg.merchants {
        let merchant = merchant(m, &cfg)?;
        if merchants.insert(m.id.clone(), merchant).is_some() {
            return Err(StartError::Merchant {
                merchant: m.id.clone(),
                reason: "defined twice".into(),
            });
        }
    }
    let state = Arc::new(AppState {
        service: AuthorizationService::new(acquirers, cfg.response_codes.clone()),
        merchants: Arc::new(merchants),
        references: Arc::new(Mutex::new(ReferenceWindow::new(
            cfg.limits.duplicate_capacity,
            cfg.limits.duplicate_window,
        ))),
        token_ids: Arc::new(Mutex::new(ReferenceWindow::new(
            cfg.limits.token_replay_capacity,
            cfg.limits.token_replay_window,
        ))),
        vault: Arc::new(Mutex::new(TokenVault::new(
            cfg.limits.vault_capacity,
            cfg.limits.vault_ttl,
        ))),
        body_limit: cfg.server.body_limit,
        body_read_timeout: cfg.server.body_read_timeout,
        shards: Arc::default(),
    });
    state.register();
    let listen_error = |e: std::io::Error| StartError::Listen {
        addr: cfg.server.listen.clone(),
        reason: e.to_string(),
    };
    let listener = TcpListener::bind(&cfg.server.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let handoffs = Handoffs::default();
    let (shutdown, rx) = watch::channel(false);
    let router = super::router(Arc::clone(&state));
    let server = cfg.server.clone();
    let deal = Arc::clone(&handoffs);
    // Done when accepting has stopped and this shard's connections are
    // finished (shutdown then closes the links).
    let task = tokio::spawn(async move {
        let connections = TaskTracker::new();
        accept_loop(listener, router, server, rx, deal, &connections).await;
        connections.close();
        connections.wait().await;
    });
    Ok(Running {
        addr,
        state,
        simulator,
        shutdown,
        task: Some(task),
        server: cfg.server.clone(),
        handoffs,
        shards: Vec::new(),
    })
}

fn merchant(m: &MerchantConfig, cfg: &Config) -> Result<Merchant, StartError> {
    let bad = |reason: String| StartError::Merchant {
        merchant: m.id.clone(),
        reason,
    };
    if m.keys.is_empty() {
        return Err(bad("no seal key".into()));
    }
    let seal_algorithm = match &m.seal_algorithm {
        None => SealAlgorithm::HmacSha256,
        Some(name) => SealAlgorithm::from_wire(name)
            .ok_or_else(|| bad(format!("unknown seal_algorithm {name:?}")))?,
    };
    let mut routes = Vec::new();
    for c in &m.contracts {
        if !cfg.acquirers.iter().any(|a| a.name == c.acquirer) {
            return Err(bad(format!(
                "contract with unknown acquirer {:?}",
                c.acquirer
            )));
        }
        routes.push(Route::new(c.clone()).map_err(|e| bad(e.to_string()))?);
    }
    let googlepay = m
        .googlepay
        .as_ref()
        .map(|g| recipient(g).map(Arc::new))
        .transpose()
        .map_err(bad)?;
    Ok(Merchant {
        id: m.id.clone(),
        keys: m
            .keys
            .iter()
            .map(|k| (k.version, SealSecret::new(k.secret.reveal())))
            .collect(),
        seal_algorithm,
        googlepay,
        routes,
    })
}

fn recipient(g: &GooglePayConfig) -> Result<GooglePayRecipient, String> {
    let version = match g.protocol_version.as_deref() {
        None | Some("ECv2") => ProtocolVersion::EcV2,
        Some("ECv1") => ProtocolVersion::EcV1,
        Some(v) => return Err(format!("unknown Google Pay protocol_version {v:?}")),
    };
    if g.test_keys {
        return testkeys::recipient(version).map_err(|e| e.to_string());
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut private_keys = Vec::new();
    for k in &g.private_keys {
        private_keys.push(MerchantPrivateKey::parse(k.reveal()).map_err(|e| e.to_string())?);
    }
    for p in &g.private_key_files {
        private_keys
            .push(MerchantPrivateKey::from_file(p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    let root_json = match (&g.root_keys, &g.root_keys_file) {
        (Some(j), None) => j.clone(),
        (None, Some(p)) => read(p)?,
        _ => return Err("give one of googlepay.root_keys and root_keys_file".into()),
    };
    let config = RecipientConfig {
        recipient_id: g
            .recipient_id
            .clone()
            .ok_or("googlepay.recipient_id is required")?,
        protocol_version: version,
        private_keys,
        root_keys: RootSigningKeys::from_google_json(&root_json).map_err(|e| e.to_string())?,
    };
    GooglePayRecipient::new(config).map_err(|e| e.to_string())
}

/// Accepted connections on their way to another shard (the stream
/// deregistered from the accepting runtime, and its connection permit).
type Handoff = tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, OwnedSemaphorePermit)>;

/// The shards' hand-off queues, filled as shards start.
type Handoffs = Arc<std::sync::Mutex<Vec<Handoff>>>;

/// Accepts connections (at most `max_connections` at once, over all
/// shards) and deals them round-robin: one served here, the next handed to
/// the next shard, so every shard gets its share of the connections.
async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    cfg: crate::config::ServerConfig,
    mut shutdown: watch::Receiver<bool>,
    handoffs: Handoffs,
    connections: &TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut turn = 0usize;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let handoff = {
            let h = handoffs.lock().unwrap_or_else(|p| p.into_inner());
            turn = (turn + 1) % (h.len() + 1);
            turn.checked_sub(1).and_then(|i| h.get(i).cloned())
        };
        let Some(handoff) = handoff else {
            serve_connection(stream, &router, &cfg, permit, &shutdown, connections);
            continue;
        };
        match stream.into_std() {
            Ok(std_stream) => {
                if let Err(back) = handoff.send((std_stream, permit)) {
                    // That shard has stopped: serve it here.
                    let (std_stream, permit) = back.0;
                    if let Ok(stream) = TcpStream::from_std(std_stream) {
                        serve_connection(stream, &router, &cfg, permit, &shutdown, connections);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot hand a connection over"),
        }
    }
}

/// A shard's connections: those the accepting shard hands over.
async fn shard_loop(
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, OwnedSemaphorePermit)>,
    router: axum::Router,
    cfg: crate::config::ServerConfig,
    mut shutdown: watch::Receiver<bool>,
    connections: &TaskTracker,
) {
    loop {
        let (std_stream, permit) = tokio::select! {
            c = incoming.recv() => match c {
                Some(c) => c,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        match TcpStream::from_std(std_stream) {
            Ok(stream) => serve_connection(stream, &router, &cfg, permit, &shutdown, connections),
            Err(e) => tracing::warn!(error = %e, "cannot take a connection over"),
        }
    }
}

/// Serves one HTTP/1.1 connection on the current runtime until it ends,
/// or gracefully (5 s at most) once `shutdown` changes.
fn serve_connection(
    stream: TcpStream,
    router: &axum::Router,
    cfg: &crate::config::ServerConfig,
    permit: OwnedSemaphorePermit,
    shutdown: &watch::Receiver<bool>,
    connections: &TaskTracker,
) {
    let service = TowerToHyperService::new(router.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut stop = shutdown.clone();
    connections.spawn(async move {
        let _permit = permit;
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
            }
        }
    });
}
