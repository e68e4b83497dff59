//! The links of one acquirer.
//!
//! - `links` connections, each owned by its own task ([`super::link`]);
//! - a request goes to the ready link with the fewest requests in flight;
//! - links reconnect on their own with exponential backoff and jitter,
//!   trying the primary endpoint first and the secondary when the primary
//!   cannot be reached;
//! - the pool allocates the STAN (DE 11) of every request from one
//!   per-acquirer [`StanAllocator`], or the caller does
//!   ([`Pool::stans`], [`Pool::send_prepared`]), for example to journal a
//!   request with its STAN before it is written;
//! - [`Pool::health`]: up (every link ready), degraded (some), down (none);
//! - [`Pool::shutdown`]: the links stop taking requests, let those in
//!   flight finish, sign off, and close.
//!
//! The pool turns its [`PoolConfig`] (the configuration file's shape) into
//! what a link needs: a [`LinkConfig`] for the protocol and a
//! [`ConnectConfig`] for the driver. With `[tls]` in the configuration the
//! links speak TLS; the material ([`LinkTls`]) is loaded once, by
//! [`Pool::start_with`] from the paths as written, or by the caller, who
//! hands it to [`Pool::start_with_tls`] (the composition root does, with
//! the paths resolved against the configuration's folder), and every
//! shard's pool shares it.
//!
//! `Pool` is a cheap `Clone` (one `Arc`); share it between tasks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::backoff::BackoffConfig;
use super::duration_serde;
use super::error::{CodecError, LinkError};
use super::framing::FramingConfig;
use super::key::MatchKeyConfig;
use super::link::{
    log_unmatched, ConnectConfig, Link, LinkContext, MetricsSnapshot, UnmatchedHandler,
};
use super::proto::{self, LinkConfig, LinkState, Response};
use super::stan::{StanAllocator, StanLease};
use crate::iso8583::{Message, Spec};
use crate::tls::{LinkTls, LinkTlsConfig, TlsError};

/// Configuration of one acquirer's pool.
///
/// ```toml
/// links = 4
/// primary = "10.0.0.1:5000"
/// secondary = "10.0.0.2:5000"
/// failback_interval = "30s"   # probe the primary while on the secondary
/// request_timeout = "5s"
/// max_in_flight_per_link = 256
/// echo_interval = "30s"
/// [framing]
/// style = "two_byte_bcd"
/// [tls]                       # optional: see crate::tls::LinkTlsConfig
/// ca_file = "acquirer-ca.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Number of TCP connections.
    pub links: usize,
    /// `host:port` of the primary endpoint.
    pub primary: String,
    /// `host:port` tried when the primary cannot be reached.
    pub secondary: Option<String>,
    /// While a link is on the secondary, how often it probes the primary
    /// (a TCP connect); once the primary answers, the link stops taking
    /// requests, lets its in-flight ones finish, and reconnects to the
    /// primary. `None`: stay on the secondary until the link drops.
    #[serde(with = "duration_serde::option")]
    pub failback_interval: Option<Duration>,
    #[serde(with = "duration_serde")]
    pub request_timeout: Duration,
    /// Requests in flight per link; beyond it `send` fails with `Busy`.
    pub max_in_flight_per_link: usize,
    /// Echo test (0800, DE 70 = 301) after this long without traffic.
    #[serde(with = "duration_serde::option")]
    pub echo_interval: Option<Duration>,
    /// Sign on (0800, DE 70 = 001) before the link counts as ready.
    pub sign_on: bool,
    /// How long to wait for the answer to a sign-on or echo.
    #[serde(with = "duration_serde")]
    pub network_timeout: Duration,
    #[serde(with = "duration_serde")]
    pub connect_timeout: Duration,
    pub backoff: BackoffConfig,
    pub framing: FramingConfig,
    pub match_key: MatchKeyConfig,
    /// Finished keys remembered per link to tell late and duplicate
    /// responses from unknown ones.
    pub remember_finished: usize,
    /// Seed for the backoff jitter (tests); random when absent.
    pub seed: Option<u64>,
    /// TLS on every link; plain TCP when absent.
    pub tls: Option<LinkTlsConfig>,
    /// The acquirer's name, on every log line of its links (set by the
    /// switch from the acquirer's, not configured here).
    #[serde(skip)]
    pub name: String,
    /// The field that carries the response code of network-management
    /// answers (0810): the acquirer mapping's `response_code` (set by the
    /// switch; 39 otherwise).
    #[serde(skip)]
    pub response_code_field: u16,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            links: 2,
            primary: "127.0.0.1:5000".into(),
            secondary: None,
            failback_interval: Some(Duration::from_secs(30)),
            request_timeout: Duration::from_secs(5),
            max_in_flight_per_link: 256,
            echo_interval: Some(Duration::from_secs(30)),
            sign_on: true,
            network_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            backoff: BackoffConfig::default(),
            framing: FramingConfig::default(),
            match_key: MatchKeyConfig::default(),
            remember_finished: 4096,
            seed: None,
            tls: None,
            name: String::new(),
            response_code_field: 39,
        }
    }
}

impl PoolConfig {
    /// The defaults, connecting to `primary`.
    pub fn new(primary: impl Into<String>) -> Self {
        PoolConfig {
            primary: primary.into(),
            ..Self::default()
        }
    }

    /// What the protocol of each link needs.
    pub fn link_config(&self) -> LinkConfig {
        LinkConfig {
            request_timeout: self.request_timeout,
            network_timeout: self.network_timeout,
            echo_interval: self.echo_interval,
            sign_on: self.sign_on,
            max_in_flight: self.max_in_flight_per_link,
            remember_finished: self.remember_finished,
            match_key: self.match_key.clone(),
            response_code_field: self.response_code_field,
        }
    }

    /// Where and how each link connects, with the TLS material loaded
    /// from [`tls`](Self::tls) (or built otherwise).
    pub fn connect_config(&self, tls: Option<LinkTls>) -> ConnectConfig {
        ConnectConfig {
            primary: self.primary.clone(),
            secondary: self.secondary.clone(),
            connect_timeout: self.connect_timeout,
            failback_interval: self.failback_interval,
            backoff: self.backoff.clone(),
            seed: self.seed,
            tls,
            name: self.name.clone(),
        }
    }
}

/// Health of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every link is ready.
    Up,
    /// Some links are ready.
    Degraded,
    /// No link is ready.
    Down,
}

/// A configuration the pool cannot start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    #[error("framing: {0}")]
    Framing(#[from] super::error::FramingError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Config(&'static str),
}

struct PoolInner {
    links: Vec<Link>,
    cfg: PoolConfig,
    ctx: Arc<LinkContext>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The links of one acquirer. See the module documentation.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("primary", &self.inner.cfg.primary)
            .field("links", &self.inner.links)
            .finish()
    }
}

impl Pool {
    /// Starts the links (connecting in the background). Must be called
    /// inside a tokio runtime. Unmatched messages are logged.
    pub fn start(cfg: PoolConfig, spec: Arc<Spec>) -> Result<Pool, PoolError> {
        Self::start_with_handler(cfg, spec, log_unmatched())
    }

    /// Like [`start`](Self::start) with an explicit handler for unmatched
    /// messages (late, duplicate and unknown responses, acquirer requests).
    pub fn start_with_handler(
        cfg: PoolConfig,
        spec: Arc<Spec>,
        unmatched: UnmatchedHandler,
    ) -> Result<Pool, PoolError> {
        Self::start_with(cfg, spec, unmatched, StanAllocator::new())
    }

    /// Like [`start_with_handler`](Self::start_with_handler), numbering
    /// requests from `stans` (an allocator resumed from a journal). The
    /// TLS files of `cfg.tls`, if any, are read here, paths as written.
    pub fn start_with(
        cfg: PoolConfig,
        spec: Arc<Spec>,
        unmatched: UnmatchedHandler,
        stans: Arc<StanAllocator>,
    ) -> Result<Pool, PoolError> {
        let tls = cfg.tls.as_ref().map(LinkTls::load).transpose()?;
        Self::start_with_tls(cfg, spec, unmatched, stans, tls)
    }

    /// Like [`start_with`](Self::start_with) with the TLS material already
    /// loaded (`cfg.tls` is then not read again): the composition root
    /// loads it once at start-up and every shard's pool shares it. `tls`
    /// may come without `cfg.tls` (a configuration built in code); the
    /// reverse is refused, so a pool configured for TLS never connects in
    /// the clear.
    pub fn start_with_tls(
        cfg: PoolConfig,
        spec: Arc<Spec>,
        unmatched: UnmatchedHandler,
        stans: Arc<StanAllocator>,
        tls: Option<LinkTls>,
    ) -> Result<Pool, PoolError> {
        if cfg.tls.is_some() && tls.is_none() {
            return Err(PoolError::Config(
                "tls is configured but its certificates were not loaded",
            ));
        }
        if cfg.links == 0 {
            return Err(PoolError::Config("links must be at least 1"));
        }
        if cfg.max_in_flight_per_link == 0 {
            return Err(PoolError::Config(
                "max_in_flight_per_link must be at least 1",
            ));
        }
        let codec = cfg.framing.codec()?;
        let ctx = LinkContext {
            proto: Arc::new(proto::Context {
                cfg: cfg.link_config(),
                spec,
                codec,
                stans,
            }),
            connect: cfg.connect_config(tls),
            unmatched,
            state_changed: Notify::new(),
        };
        Ok(Self::spawn(cfg, ctx))
    }

    /// Another pool to the same acquirer, its links on the current runtime
    /// (one shard of a `serve` with several runtime threads), sharing this
    /// pool's STAN allocator so no two requests in flight on either get the
    /// same STAN.
    pub fn shard(&self) -> Pool {
        let c = &self.inner.ctx;
        let ctx = LinkContext {
            proto: Arc::clone(&c.proto),
            connect: c.connect.clone(),
            unmatched: Arc::clone(&c.unmatched),
            state_changed: Notify::new(),
        };
        Self::spawn(self.inner.cfg.clone(), ctx)
    }

    fn spawn(cfg: PoolConfig, ctx: LinkContext) -> Pool {
        let ctx = Arc::new(ctx);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut links = Vec::new();
        let mut tasks = Vec::new();
        for id in 0..cfg.links {
            let (link, task) = Link::spawn(id, Arc::clone(&ctx), shutdown_rx.clone());
            links.push(link);
            tasks.push(task);
        }
        Pool {
            inner: Arc::new(PoolInner {
                links,
                cfg,
                ctx,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        }
    }

    /// Sends an authorization (or any request): allocates a STAN, sets it
    /// in DE 11, sends on the least busy ready link and waits for the
    /// response, a timeout or a link failure.
    pub async fn send(&self, mut request: Message<'_>) -> Result<Response, LinkError> {
        let link = self.pick()?;
        let proto = &self.inner.ctx.proto;
        let lease = proto.stans.allocate().ok_or(LinkError::StanExhausted)?;
        let digits = lease.stan().digits();
        let stan = std::str::from_utf8(&digits).unwrap_or("000000");
        proto
            .spec
            .set_text(&mut request, 11, stan)
            .map_err(CodecError::from)?;
        link.send(&request, Some(lease)).await
    }

    /// Sends `request` as it is, with the DE 11 the caller set: a STAN the
    /// caller allocated from [`stans`](Self::stans) (and, say, journaled
    /// before sending), whose `lease` is then held until the request is
    /// finished, or a STAN the caller must keep unique itself (a reversal
    /// that must carry a given one), with no lease. A clash with a request
    /// in flight is `DuplicateKey`. With no ready link it is `NoReadyLink`
    /// and nothing is written.
    pub async fn send_prepared(
        &self,
        request: &Message<'_>,
        lease: Option<StanLease>,
    ) -> Result<Response, LinkError> {
        self.pick()?.send(request, lease).await
    }

    /// The STAN allocator this pool (and its shards) number requests from.
    pub fn stans(&self) -> &Arc<StanAllocator> {
        &self.inner.ctx.proto.stans
    }

    /// The ready link with the fewest requests in flight.
    fn pick(&self) -> Result<&Link, LinkError> {
        let mut best: Option<(&Link, usize)> = None;
        for link in &self.inner.links {
            if link.state() != LinkState::Ready {
                continue;
            }
            let n = link.in_flight();
            if best.is_none_or(|(_, b)| n < b) {
                best = Some((link, n));
            }
        }
        match best {
            Some((link, _)) => Ok(link),
            None => Err(LinkError::NoReadyLink),
        }
    }

    pub fn health(&self) -> Health {
        let ready = self.ready_links();
        if ready == self.inner.links.len() {
            Health::Up
        } else if ready > 0 {
            Health::Degraded
        } else {
            Health::Down
        }
    }

    pub fn ready_links(&self) -> usize {
        self.inner
            .links
            .iter()
            .filter(|l| l.state() == LinkState::Ready)
            .count()
    }

    pub fn link_states(&self) -> Vec<LinkState> {
        self.inner.links.iter().map(Link::state).collect()
    }

    /// The most recent failure of any link (a refused connection, a TLS
    /// handshake refused and why, a dropped link), kept after recovery.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .links
            .iter()
            .filter_map(|l| l.shared.last_error())
            .max_by_key(|(at, _)| *at)
            .map(|(_, why)| why)
    }

    /// The links, for metrics and tests.
    pub fn links(&self) -> &[Link] {
        &self.inner.links
    }

    /// Counters summed over the links.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut total = MetricsSnapshot::default();
        for l in &self.inner.links {
            total += l.metrics();
        }
        total
    }

    /// STANs currently in flight (allocated and not finished), across this
    /// pool and its shards: they share one allocator (see `Pool::shard`).
    pub fn stans_in_flight(&self) -> usize {
        self.inner.ctx.proto.stans.in_flight()
    }

    pub fn spec(&self) -> &Arc<Spec> {
        &self.inner.ctx.proto.spec
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Waits until at least `n` links are ready. Bound it with
    /// `tokio::time::timeout`.
    pub async fn wait_ready(&self, n: usize) {
        loop {
            let notified = self.inner.ctx.state_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ready_links() >= n.min(self.inner.links.len()) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until `pred(states)` holds. Bound it with `tokio::time::timeout`.
    pub async fn wait_until(&self, pred: impl Fn(&[LinkState]) -> bool) {
        loop {
            let notified = self.inner.ctx.state_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.link_states()) {
                return;
            }
            notified.await;
        }
    }

    /// Stops taking requests, lets those in flight finish (bounded by the
    /// request timeout), signs each link off (0800 with DE 70 = 002, when
    /// the links sign on; bounded by the network timeout), closes the
    /// links and waits for their tasks.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let tasks = match self.inner.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let cfg: PoolConfig = toml::from_str(
            r#"
            links = 4
            primary = "127.0.0.1:5000"
            secondary = "127.0.0.1:5001"
            request_timeout = "2s"
            echo_interval = 30000
            [framing]
            style = "four_byte_ascii"
            [backoff]
            initial = "50ms"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.links, 4);
        assert_eq!(cfg.request_timeout, Duration::from_secs(2));
        assert_eq!(cfg.echo_interval, Some(Duration::from_secs(30)));
        assert_eq!(cfg.backoff.initial, Duration::from_millis(50));
        assert_eq!(cfg.match_key.fields, vec![11, 41]);
    }

    #[tokio::test]
    async fn ready_counting_and_no_ready_link() {
        // Nothing listens on a closed port: every link stays down.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let pool = Pool::start(
            PoolConfig::new(addr.to_string()),
            Arc::new(Spec::builtin("cb2a").unwrap()),
        )
        .unwrap();
        assert_eq!(pool.health(), Health::Down);
        let msg = Message::new(crate::iso8583::Mti::AUTHORIZATION_REQUEST);
        assert!(matches!(pool.send(msg).await, Err(LinkError::NoReadyLink)));
        pool.shutdown().await;
    }
}
