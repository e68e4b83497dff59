//! The composition root: a [`Config`] becomes a running switch here, and
//! only here. `serve`, `demo` and the tests all call [`start`].
//!
//! ```text
//!  Config ─► TLS files (the API's, each acquirer's): read once, shared by every shard
//!         ─► [simulator] (embedded default only, its own thread)
//!         ─► journal: open, recover ─► Core (windows, sequences) ─► startup batch durable
//!         ─► shard 0: Switch (pools) + Api + accept loop      (this runtime)
//!         ─► shard i: Switch::shard (pools) + Api + shard loop (a thread each)
//! ```
//! Shutdown runs the other way: stop accepting, let every shard answer
//! what it has in flight (bounded by the request timeout), close the links
//! (in-flight requests finish, then sign-off), flush and close the journal,
//! stop the simulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;

use crate::civil::unix_ms;
use crate::config::{Config, GooglePayConfig, MerchantConfig, SecretSource, SIMULATOR};
use crate::front::server::{accept_loop, shard_loop, ApiTls, ConnConfig, Handed};
use crate::front::{self, Api};
use crate::iso8583::Spec;
use crate::journal::memory::MemoryBackend;
use crate::journal::sqlite::SqliteBackend;
use crate::journal::{Backend, CardKey, Journal};
use crate::net::link::log_unmatched;
use crate::seal::SealAlgorithm;
use crate::sim::{SimConfig, SimHandle, Simulator};
use crate::switch::cutoff::CutOff;
use crate::switch::saf::SafConfig;
use crate::switch::{
    AcquirerSetup, Core, CoreSetup, Fault, Limits, Mapping, Merchant, RecoveryReport, Route, Switch,
};
use crate::telemetry;
use crate::tls::{self, LinkTls};
use crate::wallet::googlepay::{
    testkeys, GooglePayRecipient, MerchantPrivateKey, ProtocolVersion, RecipientConfig,
    RootSigningKeys,
};

/// The environment variable that injects a fault (tests only).
pub const FAULT_ENV: &str = "ACQSWITCH_FAULT";
/// The environment variable that moves the switch's clock forward by a
/// duration (`48h`): tests of the daily cut-off restart the switch "two
/// days later". Never set in production.
pub const CLOCK_ENV: &str = "ACQSWITCH_CLOCK_OFFSET";

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
    #[error("journal: {0}")]
    Journal(String),
    #[error("listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    /// The API's own settings (its TLS files).
    #[error("server: {0}")]
    Server(String),
    #[error("shard: {0}")]
    Shard(String),
}

/// A running switch.
pub struct Running {
    addr: SocketAddr,
    api: Arc<Api>,
    simulator: Option<SimHandle>,
    shutdown: watch::Sender<bool>,
    /// Shard 0's accept loop and connections.
    serving: Option<tokio::task::JoinHandle<()>>,
    /// Resolve when the other shards have stopped (links closed).
    shards: Vec<oneshot::Receiver<()>>,
    journal: Arc<Journal>,
    journal_location: String,
    recovery: RecoveryReport,
    threads: usize,
    /// The API speaks HTTPS.
    tls: bool,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("threads", &self.threads)
            .field("journal", &self.journal_location)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Where the HTTP API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` with `[server.tls]`, `http://ADDR` without.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Shard 0's switch (the shared state is the same for every shard).
    pub fn switch(&self) -> &Switch {
        &self.api.switch
    }

    /// The in-process simulator, when the configuration has one.
    pub fn simulator(&self) -> Option<&SimHandle> {
        self.simulator.as_ref()
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The journal's backend and path, for the start-up banner.
    pub fn journal_location(&self) -> &str {
        &self.journal_location
    }

    /// What start-up found in the journal.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Shards serving the API.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Waits until every acquirer has a ready link in every shard (bound
    /// it with a timeout).
    pub async fn wait_ready(&self) {
        loop {
            if self.api.switch.readiness().ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves until the accept loop stops (for `serve`).
    pub async fn wait(&mut self) {
        if let Some(t) = self.serving.as_mut() {
            let _ = t.await;
            self.serving = None;
        }
    }

    /// Stops accepting; every shard answers what it has in flight, then
    /// closes its links (sign-off); the journal is flushed and closed; the
    /// simulator stops.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(t) = self.serving.take() {
            let _ = t.await;
        }
        self.api.switch.shutdown().await;
        for done in self.shards.drain(..) {
            let _ = done.await;
        }
        let journal = Arc::clone(&self.journal);
        // Closing joins the writer thread: off the runtime.
        let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        if let Some(sim) = self.simulator.take() {
            sim.shutdown().await;
        }
    }
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
    let keys = m
        .keys
        .iter()
        .map(|k| k.secret(cfg).map(|s| (k.version, s)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let googlepay = m
        .googlepay
        .as_ref()
        .map(|g| recipient(g, cfg).map(Arc::new))
        .transpose()
        .map_err(bad)?;
    Ok(Merchant {
        id: m.id.clone(),
        keys,
        seal_algorithm,
        googlepay,
        routes,
    })
}

fn recipient(g: &GooglePayConfig, cfg: &Config) -> Result<GooglePayRecipient, String> {
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
        let p = cfg.resolve(p);
        private_keys
            .push(MerchantPrivateKey::from_file(&p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    let root_json = match (&g.root_keys, &g.root_keys_file) {
        (Some(j), None) => j.clone(),
        (None, Some(p)) => read(&cfg.resolve(p))?,
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

/// The journal's key, from configuration, the environment, a file, or
/// (none given) `journal.key` beside the journal, created when missing.
fn journal_key(cfg: &Config, journal_path: &Path) -> Result<CardKey, StartError> {
    let j = &cfg.journal;
    let err = |e: crate::journal::KeyError| StartError::Journal(e.to_string());
    let source = SecretSource::of(j.key.as_ref(), j.key_file.as_ref(), j.key_env.as_ref());
    match source {
        SecretSource::Inline(k) => CardKey::from_text(k.reveal()).map_err(err),
        SecretSource::File(f) => CardKey::from_file(&cfg.resolve(f)).map_err(err),
        SecretSource::Env(var) => CardKey::from_env(var).map_err(err),
        SecretSource::Nowhere => {
            let dir = journal_path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::Journal(format!("{}: {e}", dir.display())))?;
            let file = dir.join("journal.key");
            if file.exists() {
                CardKey::from_file(&file).map_err(err)
            } else {
                tracing::warn!(
                    path = %file.display(),
                    "no journal key configured: created one beside the journal \
                     (set journal.key_file or journal.key_env to keep it elsewhere)"
                );
                CardKey::generate_file(&file).map_err(err)
            }
        }
        SecretSource::Several => Err(StartError::Journal(
            "give at most one of journal.key, journal.key_file and journal.key_env".into(),
        )),
    }
}

fn limits(cfg: &Config) -> Limits {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let l = &cfg.limits;
    Limits {
        duplicate_window_ms: ms(l.duplicate_window),
        duplicate_capacity: l.duplicate_capacity,
        token_replay_window_ms: ms(l.token_replay_window),
        token_replay_capacity: l.token_replay_capacity,
        vault_ttl_ms: ms(l.vault_ttl),
        vault_capacity: l.vault_capacity,
    }
}

fn start_simulator(cfg: &Config) -> Result<Option<SimHandle>, StartError> {
    let Some(s) = &cfg.simulator else {
        return Ok(None);
    };
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
    Simulator::start_on_own_thread(sc)
        .map(Some)
        .map_err(|e| StartError::Simulator(e.to_string()))
}

/// The acquirers of `cfg`, their dialects and mappings loaded; a pool on
/// the in-process simulator goes to `simulator` (its address).
fn acquirer_setups(
    cfg: &Config,
    simulator: Option<String>,
) -> Result<Vec<AcquirerSetup>, StartError> {
    let mut setups = Vec::new();
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
        let spec =
            Arc::new(Spec::load(&cfg.resolve_name(&a.dialect)).map_err(|e| bad(e.to_string()))?);
        let mapping =
            Mapping::load(&cfg.resolve_name(&a.mapping), &spec).map_err(|e| bad(e.to_string()))?;
        let mut pool = a.pool.clone();
        pool.name = a.name.clone();
        if pool.links == 0 {
            return Err(bad("pool.links must be at least 1".into()));
        }
        if pool.max_in_flight_per_link == 0 {
            return Err(bad("pool.max_in_flight_per_link must be at least 1".into()));
        }
        pool.framing
            .codec()
            .map_err(|e| bad(format!("pool.framing: {e}")))?;
        if pool.primary == SIMULATOR {
            if cfg.simulator.is_none() {
                return Err(bad(
                    "primary = \"simulator\" needs a [simulator] section".into()
                ));
            }
            if let Some(addr) = &simulator {
                pool.primary = addr.clone();
            }
        }
        // Read once, here: a bad file stops the start naming the acquirer,
        // the key and the file; every shard's pool shares what is loaded.
        pool.tls = pool.tls.map(|t| t.resolved(|p| cfg.resolve(p)));
        let tls = pool
            .tls
            .as_ref()
            .map(LinkTls::load)
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        setups.push(AcquirerSetup {
            name: a.name.clone(),
            spec,
            mapping: Arc::new(mapping),
            pool,
            tls,
            unmatched: log_unmatched(),
        });
    }
    Ok(setups)
}

/// The merchants of `cfg`, their keys read.
fn merchants(cfg: &Config) -> Result<HashMap<String, Arc<Merchant>>, StartError> {
    let mut merchants = HashMap::new();
    for m in &cfg.merchants {
        let merchant = merchant(m, cfg)?;
        if merchants.insert(m.id.clone(), Arc::new(merchant)).is_some() {
            return Err(StartError::Merchant {
                merchant: m.id.clone(),
                reason: "defined twice".into(),
            });
        }
    }
    Ok(merchants)
}

/// The daily cut-off of `[capture]`.
fn cut_off(cfg: &Config) -> Result<CutOff, StartError> {
    CutOff::new(&cfg.capture.time_zone, &cfg.capture.cut_off)
        .map_err(|e| StartError::Config(format!("capture: {e}")))
}

/// Checks everything `serve` would check of `cfg` without starting
/// anything (no listener, no link, no journal opened): dialects and
/// mappings load, merchants' secrets and Google Pay keys read, contracts
/// name known acquirers, the listen address parses, the journal key (when
/// one is configured) reads. Gives back notes for the operator.
pub fn check(cfg: &Config) -> Result<Vec<String>, StartError> {
    let mut notes = Vec::new();
    cfg.response_codes
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    cfg.server
        .listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| StartError::Listen {
            addr: cfg.server.listen.clone(),
            reason: "not an IP address and port".into(),
        })?;
    api_tls(cfg)?;
    cut_off(cfg)?;
    acquirer_setups(cfg, None)?;
    let merchants = merchants(cfg)?;
    for (id, m) in &merchants {
        if m.routes.is_empty() {
            notes.push(format!(
                "merchant {id}: no contract, every cardOrder is refused (03)"
            ));
        }
        if m.googlepay.is_none() {
            notes.push(format!(
                "merchant {id}: no [merchants.googlepay], paymentDataProviderCheck is refused (03)"
            ));
        }
    }
    for m in cfg
        .merchants
        .iter()
        .filter(|m| m.googlepay.as_ref().is_some_and(|g| g.test_keys))
    {
        notes.push(format!(
            "merchant {}: googlepay.test_keys: the public test keys, never for real traffic",
            m.id
        ));
    }
    match cfg.journal.backend.as_str() {
        "sqlite" => {
            let j = &cfg.journal;
            let path = cfg.resolve(&j.path);
            if j.key.is_none() && j.key_file.is_none() && j.key_env.is_none() {
                let beside = path
                    .parent()
                    .map_or_else(|| PathBuf::from("journal.key"), |d| d.join("journal.key"));
                notes.push(format!(
                    "journal: no key configured; serve uses {} (created when missing)",
                    beside.display()
                ));
            } else {
                journal_key(cfg, &path)?;
            }
        }
        "memory" => notes
            .push("journal: memory, nothing survives the process (tests and demos only)".into()),
        other => {
            return Err(StartError::Config(format!(
                "journal.backend: unknown backend {other:?} (sqlite, memory)"
            )))
        }
    }
    Ok(notes)
}

/// Starts everything `cfg` describes. Must run inside a tokio runtime
/// (shard 0 runs on it; `server.threads - 1` more shards get a thread and a
/// runtime each).
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    // The process's metrics registry, before anything records.
    let _ = telemetry::metrics_handle();
    cfg.response_codes
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let fault = match std::env::var(FAULT_ENV) {
        Ok(v) => {
            let f = Fault::parse(&v)
                .ok_or_else(|| StartError::Config(format!("{FAULT_ENV}: unknown fault {v:?}")))?;
            tracing::warn!(fault = %v, "fault injection is on");
            Some(f)
        }
        Err(_) => None,
    };
    let clock_offset = match std::env::var(CLOCK_ENV) {
        Ok(v) => {
            let d = crate::net::duration_serde::parse(&v)
                .map_err(|e| StartError::Config(format!("{CLOCK_ENV}: {e}")))?;
            tracing::warn!(offset = %v, "the clock is moved forward: for tests only");
            d
        }
        Err(_) => Duration::ZERO,
    };
    // Files first: a bad one stops the start before anything runs.
    let api_tls = api_tls(&cfg)?;
    let simulator = start_simulator(&cfg)?;
    let setups = acquirer_setups(&cfg, simulator.as_ref().map(|s| s.addr().to_string()))?;
    let merchants = merchants(&cfg)?;

    // The journal, and the state it gives back.
    let limits = limits(&cfg);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let now_ms = unix_ms(SystemTime::now() + clock_offset);
    let (backend, location, key): (Box<dyn Backend>, String, CardKey) =
        match cfg.journal.backend.as_str() {
            "sqlite" => {
                let path = cfg.resolve(&cfg.journal.path);
                let key = journal_key(&cfg, &path)?;
                let b =
                    SqliteBackend::open(&path).map_err(|e| StartError::Journal(e.to_string()))?;
                (Box::new(b), format!("sqlite {}", path.display()), key)
            }
            "memory" => {
                let key = match (
                    &cfg.journal.key,
                    &cfg.journal.key_file,
                    &cfg.journal.key_env,
                ) {
                    (None, None, None) => {
                        let mut k = [0u8; 32];
                        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
                        CardKey::new(&k)
                    }
                    _ => journal_key(&cfg, &cfg.resolve(&cfg.journal.path))?,
                };
                (
                    Box::new(MemoryBackend::new()),
                    "memory (nothing survives the process)".into(),
                    key,
                )
            }
            other => {
                return Err(StartError::Config(format!(
                    "journal.backend: unknown backend {other:?} (sqlite, memory)"
                )))
            }
        };
    let (journal, recovered) =
        Journal::start(backend, &limits.recovery_span(now_ms), location.clone())
            .map_err(|e| StartError::Journal(e.to_string()))?;
    let journal = Arc::new(journal);
    let (core, startup, recovery) = Core::recover(
        CoreSetup {
            cut_off: cut_off(&cfg)?,
            merchants,
            codes: cfg.response_codes.clone(),
            key,
            limits,
            acquirers: setups.iter().map(|s| s.name.clone()).collect(),
            saf: SafConfig {
                max_in_flight: cfg.store_and_forward.max_in_flight.max(1),
                retry_initial_ms: ms(cfg.store_and_forward.retry_initial),
                retry_max_ms: ms(cfg.store_and_forward.retry_max),
                expiry_ms: ms(cfg.store_and_forward.expiry),
            },
            fault,
        },
        recovered,
        now_ms,
    );
    journal
        .commit(startup.clone())
        .await
        .map_err(|e| StartError::Journal(e.to_string()))?;
    core.start(&startup);
    if !recovery.unknown.is_empty() {
        tracing::warn!(
            count = recovery.unknown.len(),
            "transactions found without an outcome at start-up, now unknown"
        );
    }
    tracing::info!(
        journal = %location,
        references = recovery.references,
        token_ids = recovery.token_ids,
        vault = recovery.vault,
        "journal recovered"
    );

    // Shard 0, on this runtime.
    if !recovery.saf.is_empty() {
        tracing::warn!(
            count = recovery.saf.len(),
            "reversals waiting in the store-and-forward queue"
        );
    }
    let threads = match cfg.server.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let switch = Switch::new(
        core,
        Arc::clone(&journal),
        setups,
        recovery.saf.clone(),
        threads,
        clock_offset,
    )
    .map_err(|e| match e {
        crate::switch::SwitchError::Acquirer { acquirer, reason } => {
            StartError::Acquirer { acquirer, reason }
        }
    })?;
    let api = Arc::new(Api {
        switch,
        body_limit: cfg.server.body_limit,
        body_read_timeout: cfg.server.body_read_timeout,
    });
    let listen_error = |e: std::io::Error| StartError::Listen {
        addr: cfg.server.listen.clone(),
        reason: e.to_string(),
    };
    let listener = TcpListener::bind(&cfg.server.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let grace = cfg
        .acquirers
        .iter()
        .map(|a| a.pool.request_timeout)
        .max()
        .unwrap_or(Duration::from_secs(5))
        + Duration::from_secs(2);
    let conn = ConnConfig {
        header_read_timeout: cfg.server.header_read_timeout,
        max_connections: cfg.server.max_connections,
        grace,
        tls: api_tls,
    };
    let https = conn.tls.is_some();
    let (shutdown, shutdown_rx) = watch::channel(false);

    // Shards 1..threads, each on a thread of its own.
    let mut handoffs = Vec::new();
    let mut shards = Vec::new();
    for i in 1..threads {
        let (handoff, incoming) = mpsc::unbounded_channel::<Handed>();
        let base = Arc::clone(&api);
        let conn = conn.clone();
        let rx = shutdown_rx.clone();
        let (started_tx, started) = oneshot::channel::<Result<(), String>>();
        let done = crate::runtime::spawn_runtime_thread(
            format!("acqswitch-shard-{i}"),
            move || async move {
                let switch = match base.switch.shard() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = started_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let api = Arc::new(Api {
                    switch,
                    body_limit: base.body_limit,
                    body_read_timeout: base.body_read_timeout,
                });
                drop(base);
                let _ = started_tx.send(Ok(()));
                let connections = TaskTracker::new();
                let router = front::router(Arc::clone(&api));
                shard_loop(incoming, router, conn, rx, &connections).await;
                connections.close();
                connections.wait().await;
                api.switch.shutdown().await;
            },
        )
        .map_err(|e| StartError::Shard(e.to_string()))?;
        match started.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Shard(e)),
            Err(_) => return Err(StartError::Shard("the shard thread ended at start".into())),
        }
        shards.push(done);
        handoffs.push(handoff);
    }

    let router = front::router(Arc::clone(&api));
    let serving = tokio::spawn(async move {
        let connections = TaskTracker::new();
        accept_loop(listener, router, conn, shutdown_rx, handoffs, &connections).await;
        connections.close();
        connections.wait().await;
    });
    Ok(Running {
        addr,
        api,
        simulator,
        shutdown,
        serving: Some(serving),
        shards,
        journal,
        journal_location: location,
        recovery,
        threads,
        tls: https,
    })
}

/// `[server.tls]`, loaded once: the files read here, the configuration
/// shared by every shard.
fn api_tls(cfg: &Config) -> Result<Option<ApiTls>, StartError> {
    let Some(t) = &cfg.server.tls else {
        return Ok(None);
    };
    let t = t.resolved(|p| cfg.resolve(p));
    let mut server = tls::server_config(&t).map_err(|e| StartError::Server(e.to_string()))?;
    // hyper serves HTTP/1.1 only: say so to clients that ask.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(ApiTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        handshake_timeout: t.handshake_timeout,
    }))
}
