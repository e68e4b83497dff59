//! The switch: the business of authorizing, without HTTP.
//!
//! [`Switch`] owns the merchants, routing, the acquirers (this shard's
//! pools), the journal, the STAN/RRN numbering and the windows (duplicate
//! references, Google Pay token replays, the PAN_ONLY vault). Its typed
//! operations ([`Switch::check_token`], [`Switch::card_order`]) take `now`
//! and return a typed answer or a [`Refusal`] with a [`ResponseCode`]; the
//! HTTP layer only turns JSON into these and back.
//!
//! The write-ahead rule, for every authorization:
//! 1. the `sent` record (acquirer, terminal, STAN, RRN, transmission time,
//!    the card sealed) is durable before the 0100 is written;
//! 2. the outcome is durable before the front-end gets its answer.
//!
//! # Layout
//! - [`core`]: the decisions, without I/O (what is claimed, journaled,
//!   answered; recovery from the journal).
//! - [`operation`]: the typed requests and answers.
//! - [`windows`]: duplicate-reference, token-replay and vault maps
//!   (`dashmap`, shared by the shards).
//! - [`sequence`]: numbers reserved in blocks in the journal (ids, RRNs,
//!   STANs), never reused across restarts.
//! - [`domain`]: the typed authorization request (masking, validating types).
//! - [`mapping`]: domain <-> ISO 8583 per dialect, from `specs/*.mapping.toml` (pure).
//! - [`codes`]: [`ResponseCode`], and the acquirer DE 39 -> `responseCode` table.
//! - [`routing`]: merchant contracts, card brand and BIN ranges -> acquirer (pure).

pub mod cash;
pub mod codes;
pub mod core;
pub mod currency;
pub mod cutoff;
pub mod domain;
pub mod export;
pub mod lifecycle;
pub mod mapping;
pub mod operation;
pub mod routing;
pub mod saf;
pub mod sequence;
pub mod windows;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, Notify};

pub use self::core::{Core, CoreSetup, Fault, Limits, Outcome, RecoveryReport};
pub use codes::{ResponseCode, ResponseCodeTable};
pub use domain::AuthorizationRequest;
pub use mapping::Mapping;
pub use operation::{
    Capture, CardInput, CardOrder, CashRequest, HistoryLine, OperationAnswer, OrderAnswer, Refusal,
    TokenCheck, TokenMode, TransactionData,
};
pub use routing::{Contract, Route};

use self::core::{ClaimError, Prepared};
use crate::card::Secret;
use crate::card::{Expiry, Pan};
use crate::civil::unix_ms;
use crate::iso8583::{Message, Spec, ValueError};
use crate::journal::writer::ShardCommits;
use crate::journal::{Applied, Change, Conflict, Journal, SafKind, SafRecord, SentTo, TxState};
use crate::net::{Pool, PoolConfig, Stan, StanLease, UnmatchedHandler};
use crate::seal::SealAlgorithm;
use crate::telemetry;
use crate::tls::LinkTls;
use crate::wallet::googlepay::{AuthMethod, GooglePayRecipient};
use domain::CardBrand;
use domain::ReversalReason;
use mapping::RequestContext;
use saf::{Attempt, Saf, SafCounts, Step};

/// A merchant as the switch knows it.
#[derive(Clone)]
pub struct Merchant {
    pub id: String,
    /// Seal secrets by key version.
    pub keys: Vec<(u32, Secret)>,
    pub seal_algorithm: SealAlgorithm,
    pub googlepay: Option<Arc<GooglePayRecipient>>,
    /// Contracts in routing order.
    pub routes: Vec<Route>,
}

impl Merchant {
    pub fn key(&self, version: u32) -> Option<&Secret> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
    }

    /// The newest key, for sealing responses when the request named none.
    pub fn current_key(&self) -> Option<(u32, &Secret)> {
        self.keys
            .iter()
            .max_by_key(|(v, _)| *v)
            .map(|(v, k)| (*v, k))
    }
}

impl fmt::Debug for Merchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merchant")
            .field("id", &self.id)
            .field(
                "key_versions",
                &self.keys.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            )
            .field("googlepay", &self.googlepay.is_some())
            .field("routes", &self.routes.len())
            .finish()
    }
}

/// How to reach one acquirer (the same for every shard).
#[derive(Clone)]
pub struct AcquirerSetup {
    pub name: String,
    pub spec: Arc<Spec>,
    pub mapping: Arc<Mapping>,
    pub pool: PoolConfig,
    /// The TLS material of `pool.tls`, loaded once (see
    /// [`crate::tls::LinkTls::load`]); every shard's pool shares it.
    pub tls: Option<LinkTls>,
    pub unmatched: UnmatchedHandler,
}

impl fmt::Debug for AcquirerSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquirerSetup")
            .field("name", &self.name)
            .field("dialect", &self.spec.name)
            .field("primary", &self.pool.primary)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// One acquirer as a shard sees it: its dialect, mapping and this shard's
/// pool.
#[derive(Debug, Clone)]
pub struct Acquirer {
    pub name: String,
    pub spec: Arc<Spec>,
    pub mapping: Arc<Mapping>,
    pub pool: Pool,
    /// Whether this shard started the pool (with fewer links than shards,
    /// a shard sends on links another shard runs, and does not close them).
    owned: bool,
    metrics: Arc<AcquirerMetrics>,
}

/// An acquirer's metric handles, this shard's: registered once, not
/// looked up (and their labels allocated) per order.
#[derive(Debug)]
struct AcquirerMetrics {
    latency: metrics::Histogram,
    by_code: Mutex<HashMap<ResponseCode, metrics::Counter>>,
}

impl AcquirerMetrics {
    fn new(acquirer: &str) -> AcquirerMetrics {
        AcquirerMetrics {
            latency: metrics::histogram!(telemetry::ACQUIRER_SECONDS, "acquirer" => acquirer.to_owned()),
            by_code: Mutex::new(HashMap::new()),
        }
    }

    fn authorization(&self, acquirer: &str, code: ResponseCode) {
        let counter = self
            .by_code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_insert_with(|| {
                metrics::counter!(
                    telemetry::AUTHORIZATIONS,
                    "acquirer" => acquirer.to_owned(),
                    "response_code" => code.as_str().to_owned()
                )
            })
            .clone();
        counter.increment(1);
    }
}

/// Why the switch could not start its links.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError {
    #[error("acquirer {acquirer}: {reason}")]
    Acquirer { acquirer: String, reason: String },
}

/// Links ready per acquirer, summed over the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every acquirer has a ready link in every shard.
    pub ready: bool,
    pub links: Vec<(String, usize)>,
    /// For an acquirer with no ready link: why its last connection, or
    /// attempt at one, failed (endpoint and reason), if one did.
    pub errors: Vec<(String, String)>,
}

struct Shared {
    core: Core,
    journal: Arc<Journal>,
    setups: Vec<AcquirerSetup>,
    /// How many shards will run: an acquirer's links are shared out
    /// among them.
    shard_count: usize,
    /// Every shard's pools (those it started), for readiness and metrics.
    shards: Mutex<Vec<HashMap<String, Pool>>>,
    /// The store-and-forward queue (driven by shard 0).
    saf: Mutex<Saf>,
    /// Wakes the store-and-forward drivers (something queued or done).
    saf_wake: Notify,
    /// One lock per transaction under an operation or a cut-off:
    /// operations on one transaction are serialized (shared by the
    /// shards; an entry lives while someone holds or waits for it).
    tx_locks: DashMap<(String, String), Arc<tokio::sync::Mutex<()>>>,
    /// Added to the system clock (tests move time with it; 0 otherwise).
    clock_offset: Duration,
}

impl Shared {
    fn saf(&self) -> MutexGuard<'_, Saf> {
        // The queue stays consistent across a panic elsewhere (each call
        // is a few map updates).
        self.saf.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    /// Commits a reservation growth (`Change::Reserve`, if that is what
    /// `change` is) and tells the core how it went.
    async fn reserve(&self, change: Option<Change>) {
        let Some(Change::Reserve { name, upto }) = &change else {
            return;
        };
        let (name, upto) = (name.clone(), *upto);
        match self.journal.commit(change.into_iter().collect()).await {
            Ok(_) => self.core.confirm(&name, upto),
            Err(e) => {
                tracing::error!(counter = %name, error = %e, "cannot reserve numbers");
                self.core.growth_failed(&name);
            }
        }
    }

    /// Waits for transaction `(merchant, reference)`'s lock.
    async fn lock_tx(self: &Arc<Self>, merchant: &str, reference: &str) -> TxLock {
        let key = (merchant.to_owned(), reference.to_owned());
        let mutex = Arc::clone(&self.tx_locks.entry(key.clone()).or_default());
        let guard = mutex.lock_owned().await;
        TxLock {
            shared: Arc::clone(self),
            key,
            guard: Some(guard),
        }
    }
}

/// A transaction's operation lock; its map entry goes with the last
/// holder.
struct TxLock {
    shared: Arc<Shared>,
    key: (String, String),
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for TxLock {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.shared
            .tx_locks
            .remove_if(&self.key, |_, m| Arc::strong_count(m) == 1);
    }
}

/// Shard 0's store-and-forward drivers.
struct SafDrivers {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The switch, as one shard runs it; see the module documentation.
/// [`Switch::shard`] makes another shard's view (pools of its own, all the
/// rest shared).
pub struct Switch {
    shared: Arc<Shared>,
    acquirers: HashMap<String, Acquirer>,
    /// This shard's way to the journal writer.
    commits: ShardCommits,
    /// On shard 0 only.
    drivers: Mutex<Option<SafDrivers>>,
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("core", &self.shared.core)
            .field("acquirers", &self.acquirers.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn refusal(code: ResponseCode) -> Refusal {
    Refusal::code(code)
}

impl Switch {
    /// The first of `shard_count` shards: starts its pools on the current
    /// runtime, and the store-and-forward drivers with the messages
    /// `queued` (from the journal's recovery). `core` must have been
    /// recovered and started from `journal`. Each acquirer's `links` are
    /// shared out among the shards (shard `i` gets `links / shard_count`,
    /// one more if `i < links % shard_count`); a shard left without links
    /// sends on those of shard `i % links`.
    pub fn new(
        core: Core,
        journal: Arc<Journal>,
        setups: Vec<AcquirerSetup>,
        queued: Vec<SafRecord>,
        shard_count: usize,
        clock_offset: Duration,
    ) -> Result<Switch, SwitchError> {
        let mut saf = Saf::new(*core.saf_config());
        for q in queued {
            saf.push(q);
        }
        let shared = Arc::new(Shared {
            core,
            journal,
            setups,
            shard_count: shard_count.max(1),
            shards: Mutex::new(Vec::new()),
            saf: Mutex::new(saf),
            saf_wake: Notify::new(),
            tx_locks: DashMap::new(),
            clock_offset,
        });
        let switch = Switch::start_shard(shared)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks: Vec<_> = switch
            .acquirers
            .values()
            .map(|a| {
                tokio::spawn(drive_saf(
                    Arc::clone(&switch.shared),
                    a.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        tasks.push(tokio::spawn(cut_offs(
            Arc::clone(&switch.shared),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(prune(Arc::clone(&switch.shared), stop_rx)));
        *switch.drivers.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(SafDrivers { stop, tasks });
        Ok(switch)
    }

    /// Another shard on the current runtime: pools of its own, the same
    /// core and journal.
    pub fn shard(&self) -> Result<Switch, SwitchError> {
        Switch::start_shard(Arc::clone(&self.shared))
    }

    fn start_shard(shared: Arc<Shared>) -> Result<Switch, SwitchError> {
        let mut registry = shared.shards.lock().unwrap_or_else(|p| p.into_inner());
        let index = registry.len();
        let mut acquirers = HashMap::new();
        for s in &shared.setups {
            let bad = |reason: String| SwitchError::Acquirer {
                acquirer: s.name.clone(),
                reason,
            };
            let share = links_of_shard(s.pool.links, shared.shard_count, index);
            let (pool, owned) = if share == 0 && s.pool.links > 0 {
                let owner = index % s.pool.links;
                let pool = registry
                    .get(owner)
                    .and_then(|pools| pools.get(&s.name))
                    .cloned()
                    .ok_or_else(|| bad(format!("shard {owner} has no links to lend")))?;
                (pool, false)
            } else {
                let stans = shared
                    .core
                    .stans(&s.name)
                    .ok_or_else(|| bad("no STAN sequence (not recovered)".into()))?;
                let mut cfg = s.pool.clone();
                cfg.links = share;
                cfg.response_code_field = s.mapping.response_code_field();
                let pool = Pool::start_with_tls(
                    cfg,
                    Arc::clone(&s.spec),
                    Arc::clone(&s.unmatched),
                    Arc::clone(&stans.allocator),
                    s.tls.clone(),
                )
                .map_err(|e| bad(e.to_string()))?;
                (pool, true)
            };
            acquirers.insert(
                s.name.clone(),
                Acquirer {
                    name: s.name.clone(),
                    spec: Arc::clone(&s.spec),
                    mapping: Arc::clone(&s.mapping),
                    pool,
                    owned,
                    metrics: Arc::new(AcquirerMetrics::new(&s.name)),
                },
            );
        }
        registry.push(
            acquirers
                .iter()
                .filter(|(_, a)| a.owned)
                .map(|(k, a)| (k.clone(), a.pool.clone()))
                .collect(),
        );
        drop(registry);
        let commits = shared.journal.shard_commits();
        Ok(Switch {
            shared,
            acquirers,
            commits,
            drivers: Mutex::new(None),
        })
    }

    pub fn core(&self) -> &Core {
        &self.shared.core
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.shared.journal
    }

    pub fn merchant(&self, id: &str) -> Option<&Arc<Merchant>> {
        self.shared.core.merchant(id)
    }

    /// This shard's acquirers.
    pub fn acquirers(&self) -> impl Iterator<Item = &Acquirer> {
        self.acquirers.values()
    }

    pub fn acquirer(&self, name: &str) -> Option<&Acquirer> {
        self.acquirers.get(name)
    }

    /// Ready links per acquirer over every shard.
    pub fn readiness(&self) -> Readiness {
        let shards = self.shared.shards.lock().unwrap_or_else(|p| p.into_inner());
        let mut links: Vec<(String, usize)> = self
            .shared
            .setups
            .iter()
            .map(|s| {
                let n = shards
                    .iter()
                    .filter_map(|sh| sh.get(&s.name))
                    .map(Pool::ready_links)
                    .sum();
                (s.name.clone(), n)
            })
            .collect();
        links.sort();
        let ready = shards
            .iter()
            .all(|sh| sh.values().all(|p| p.ready_links() > 0));
        // In the order of `links` (sorted).
        let errors = links
            .iter()
            .filter(|(_, n)| *n == 0)
            .filter_map(|(name, _)| {
                let why = shards
                    .iter()
                    .filter_map(|sh| sh.get(name))
                    .find_map(Pool::last_error)?;
                Some((name.clone(), why))
            })
            .collect();
        Readiness {
            ready,
            links,
            errors,
        }
    }

    /// Waits until this shard has a ready link to every acquirer (bound
    /// it with a timeout).
    pub async fn wait_ready(&self) {
        for a in self.acquirers.values() {
            a.pool.wait_ready(1).await;
        }
    }

    /// Closes this shard's links: requests in flight finish first.
    /// Closes this shard: on shard 0 the store-and-forward drivers stop
    /// first (reversals in flight finish; the queue stays in the journal),
    /// then the links (requests in flight finish, then sign-off).
    pub async fn shutdown(&self) {
        let drivers = self
            .drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(d) = drivers {
            d.stop.send_replace(true);
            self.shared.saf_wake.notify_waiters();
            for t in d.tasks {
                let _ = t.await;
            }
        }
        for a in self.acquirers.values().filter(|a| a.owned) {
            a.pool.shutdown().await;
        }
    }

    /// Store-and-forward messages waiting, all acquirers.
    pub fn saf_depth(&self) -> usize {
        self.shared.saf().depth()
    }

    /// The store-and-forward counters.
    pub fn saf_counts(&self) -> SafCounts {
        self.shared.saf().counts()
    }

    /// Brings the gauges and counters kept by the links and the
    /// store-and-forward queue into the metrics registry (call before
    /// rendering it): per link its state, labelled by acquirer, endpoint
    /// and `shard.link`; per acquirer the links' counters summed over the
    /// shards.
    pub fn export_metrics(&self) {
        let shards = self.shared.shards.lock().unwrap_or_else(|p| p.into_inner());
        for s in &self.shared.setups {
            let mut total = crate::net::MetricsSnapshot::default();
            for (shard, pools) in shards.iter().enumerate() {
                let Some(pool) = pools.get(&s.name) else {
                    continue;
                };
                let cfg = pool.config();
                for link in pool.links() {
                    let endpoint = match (&cfg.secondary, link.on_secondary()) {
                        (Some(secondary), true) => secondary.clone(),
                        _ => cfg.primary.clone(),
                    };
                    let ready = link.state() == crate::net::LinkState::Ready;
                    metrics::gauge!(
                        telemetry::LINK_READY,
                        "acquirer" => s.name.clone(),
                        "endpoint" => endpoint,
                        "link" => format!("{shard}.{}", link.id())
                    )
                    .set(if ready { 1.0 } else { 0.0 });
                    total += link.metrics();
                }
            }
            let acquirer = || ("acquirer", s.name.clone());
            metrics::counter!(telemetry::LINK_CONNECTS, &[acquirer()]).absolute(total.connects);
            metrics::counter!(telemetry::LINK_TIMEOUTS, &[acquirer()]).absolute(total.timeouts);
            for (kind, n) in [
                ("late", total.unmatched_late),
                ("duplicate", total.unmatched_duplicate),
                ("unknown", total.unmatched_unknown),
            ] {
                metrics::counter!(
                    telemetry::LINK_UNMATCHED,
                    &[acquirer(), ("kind", kind.to_owned())]
                )
                .absolute(n);
            }
        }
        drop(shards);
        let saf = self.shared.saf();
        let counts = SafKind::ALL.map(|k| (k, saf.counts_of(k)));
        metrics::gauge!(telemetry::SAF_DEPTH).set(saf.depth() as f64);
        drop(saf);
        for (kind, c) in counts {
            let kind = kind.as_str();
            metrics::counter!(telemetry::REVERSALS_QUEUED, "kind" => kind).absolute(c.queued);
            metrics::counter!(telemetry::REVERSALS_SENT, "kind" => kind).absolute(c.sent);
            metrics::counter!(telemetry::REVERSALS_ACKNOWLEDGED, "kind" => kind)
                .absolute(c.acknowledged);
            metrics::counter!(telemetry::REVERSALS_EXPIRED, "kind" => kind).absolute(c.expired);
        }
    }

    /// Commits a reservation growth on its own, in the background.
    fn grow(&self, change: Option<Change>) {
        if change.is_some() {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move { shared.reserve(change).await });
        }
    }

    /// paymentDataProviderCheck: decrypts a Google Pay token for
    /// `merchant`. CRYPTOGRAM_3DS gives the DPAN and cryptogram back;
    /// PAN_ONLY keeps the card in the vault and gives a reference. A token
    /// is good for one use (its `messageId`, durable before the answer).
    pub async fn check_token(
        &self,
        now: SystemTime,
        merchant: &Arc<Merchant>,
        payment_data: &str,
    ) -> Result<TokenCheck, Refusal> {
        let core = &self.shared.core;
        let now_ms = unix_ms(now);
        let recipient = merchant
            .googlepay
            .as_ref()
            .ok_or(refusal(ResponseCode::InvalidMerchant))?;
        let payment = recipient.unseal(payment_data, now_ms).map_err(|e| {
            metrics::counter!(telemetry::TOKEN_FAILURES, "reason" => e.kind()).increment(1);
            tracing::info!(merchant = %merchant.id, error = %e, "token refused");
            Refusal {
                code: ResponseCode::parse(e.response_code())
                    .unwrap_or(ResponseCode::InvalidTransaction),
                field: Some("paymentData"),
            }
        })?;
        let replayed = || {
            metrics::counter!(telemetry::TOKEN_FAILURES, "reason" => "replayed").increment(1);
            tracing::info!(merchant = %merchant.id, "token replayed");
            Refusal::invalid("paymentData")
        };
        if !payment.details.pan.luhn_valid() {
            // Google checks its cards; a token whose card fails the check
            // is refused all the same.
            metrics::counter!(telemetry::TOKEN_FAILURES, "reason" => "luhn").increment(1);
            tracing::info!(merchant = %merchant.id, "token refused: card number fails the Luhn check");
            return Err(Refusal::invalid("paymentData"));
        }
        // Checked after the signatures: only Google's own ids get here.
        if !core
            .tokens
            .first_use(&merchant.id, &payment.message_id, now_ms)
        {
            return Err(replayed());
        }
        let d = &payment.details;
        let expiry = Expiry::new(d.expiration_year, d.expiration_month)
            .ok_or(Refusal::invalid("paymentData"))?;
        let mut batch = vec![Change::ClaimTokenId {
            merchant_id: merchant.id.clone(),
            message_id: payment.message_id.clone(),
            now_ms,
            window_start_ms: now_ms.saturating_sub(core.tokens.window_ms()),
        }];
        let mode = match d.auth_method {
            AuthMethod::Cryptogram3ds => TokenMode::Cryptogram3ds {
                dpan: d.pan.clone(),
                cryptogram: d.cryptogram.clone(),
                eci: d.eci_indicator.clone(),
            },
            AuthMethod::PanOnly => {
                let (record, grow) = core
                    .vault_entry(
                        &merchant.id,
                        &d.pan,
                        expiry,
                        now_ms,
                        &mut rand::thread_rng(),
                    )
                    .map_err(|_| refusal(ResponseCode::TemporarilyUnavailable))?;
                self.grow(grow);
                let reference = record.reference.clone();
                batch.push(Change::PutVault(record));
                TokenMode::PanOnly { reference }
            }
        };
        let vaulted = match &batch.last() {
            Some(Change::PutVault(v)) => Some(v.clone()),
            _ => None,
        };
        match self.commits.commit(batch).await {
            Ok(Applied::Done) => {}
            Ok(Applied::Conflict(_)) => return Err(replayed()),
            Err(e) => {
                tracing::error!(error = %e, "journal: token use not recorded");
                core.tokens
                    .forget(&merchant.id, &payment.message_id, now_ms);
                return Err(refusal(ResponseCode::TechnicalProblem));
            }
        }
        if let Some(v) = vaulted {
            core.vault.put(v, now_ms);
        }
        Ok(TokenCheck {
            masked_pan: d.pan.masked(),
            brand: CardBrand::of_pan(&d.pan),
            expiry,
            mode,
        })
    }

    /// The card of an order: its digits, or the vaulted card behind a
    /// reference (this merchant's, still kept).
    async fn resolve_card(
        &self,
        merchant: &Merchant,
        order: &CardOrder,
        now_ms: u64,
    ) -> Result<(Pan, Option<Expiry>, bool), Refusal> {
        let reference = match &order.card {
            CardInput::Number(pan) => return Ok((pan.clone(), None, false)),
            CardInput::Vault(r) => r,
        };
        let core = &self.shared.core;
        // Unknown, another merchant's or expired: 14 on the card field.
        let unknown = Refusal {
            code: ResponseCode::InvalidCard,
            field: Some(order.card_field),
        };
        let record = match core.vault.get(reference) {
            Some(r) => r,
            None => {
                // Memory may have rotated it out: the journal keeps it.
                let r = self
                    .shared
                    .journal
                    .vault(reference)
                    .await
                    .map_err(|_| refusal(ResponseCode::TechnicalProblem))?
                    .ok_or(unknown)?;
                core.vault.put(r.clone(), now_ms);
                Arc::new(r)
            }
        };
        let (pan, expiry) = core
            .open_vault(&record, &merchant.id, now_ms)
            .ok_or(unknown)?;
        Ok((pan, Some(expiry), true))
    }

    /// cardOrder: authorizes `order` for `merchant` with the acquirer its
    /// contracts route to. See the module documentation for what is
    /// journaled when; a retry of an answered reference with the same
    /// content gets the journal's answer again, anything else on a held
    /// reference gets 94.
    pub async fn card_order(
        &self,
        now: SystemTime,
        merchant: &Arc<Merchant>,
        order: CardOrder,
    ) -> Result<OrderAnswer, Refusal> {
        let started = Instant::now();
        let now_ms = unix_ms(now);
        let core = &self.shared.core;
        let at =
            |started: Instant| now_ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
        let card = self.resolve_card(merchant, &order, now_ms).await?;
        let p = core.prepare(now_ms, merchant, order, card)?;
        let acq = self
            .acquirers
            .get(&p.route().contract.acquirer)
            .ok_or(refusal(ResponseCode::TechnicalProblem))?;
        let tx_id = match core.claim(&p) {
            Ok((id, grow)) => {
                self.grow(grow);
                id
            }
            Err(ClaimError::Held(held)) => return self.held(&p, held.tx_id).await,
            Err(ClaimError::Exhausted) => {
                return Err(refusal(ResponseCode::TemporarilyUnavailable))
            }
        };
        if acq.pool.ready_links() == 0 {
            // Nothing can be sent: record it, give the reference back.
            core.release(&p, tx_id);
            let (batch, told) = core.unsent(&p, tx_id, core.codes().unreachable, at(started));
            if let Err(e) = self.commits.commit(batch).await {
                tracing::error!(error = %e, "journal: unsent order not recorded");
            }
            authorized(acq, &p, None, &told, started);
            return Ok(told);
        }
        let Some(book) = core.stans(&acq.name) else {
            core.release(&p, tx_id);
            return Err(refusal(ResponseCode::TechnicalProblem));
        };
        let Some(lease) = book.allocator.allocate() else {
            core.release(&p, tx_id);
            self.grow(book.check());
            return Err(refusal(core.codes().busy));
        };
        self.grow(book.check());
        let (rrn, grow) = match core.next_rrn() {
            Ok(r) => r,
            Err(_) => {
                core.release(&p, tx_id);
                return Err(refusal(ResponseCode::TemporarilyUnavailable));
            }
        };
        self.grow(grow);
        let stan = lease.stan().to_string();
        let (msg, sent_to) =
            match order_message(&acq.name, &acq.spec, &acq.mapping, &p, stan, rrn, now) {
                Ok(m) => m,
                Err(e) => {
                    // The value error names the field, never its content.
                    tracing::warn!(acquirer = %acq.name, error = %e, "cannot build the request");
                    core.release(&p, tx_id);
                    return Err(Refusal::code(ResponseCode::InvalidTransaction));
                }
            };
        match self
            .commits
            .commit(core.sent(&p, tx_id, sent_to.clone()))
            .await
        {
            Ok(Applied::Done) => {}
            Ok(Applied::Conflict(Conflict::Reference(held))) => {
                // The journal knew the reference; memory had forgotten it.
                return match held {
                    Some(t) => {
                        core.learn_holder(&p, tx_id, &t);
                        core.retry_answer(&p, &t)
                    }
                    None => {
                        core.release(&p, tx_id);
                        Err(refusal(ResponseCode::Duplicate))
                    }
                };
            }
            Ok(Applied::Conflict(Conflict::TokenId)) | Err(_) => {
                // Not durable: nothing may be sent.
                tracing::error!(merchant = %merchant.id, "journal: order not recorded, not sent");
                core.release(&p, tx_id);
                return Err(refusal(ResponseCode::TechnicalProblem));
            }
        }
        if core.fault() == Some(Fault::CrashAfterJournalBeforeSend) {
            eprintln!("ACQSWITCH_FAULT: aborting after the journal write, before the send");
            std::process::abort();
        }
        let sending = Instant::now();
        let result = acq.pool.send_prepared(&msg, Some(lease)).await;
        if result.is_ok() {
            acq.metrics.latency.record(sending.elapsed());
        }
        let outcome = match result {
            Ok(resp) => {
                let a = acq.mapping.read_response(&acq.spec, resp.message());
                Outcome::Answered {
                    response_code: a.response_code,
                    authorisation_id: a.authorisation_id,
                }
            }
            Err(e) => {
                if e.maybe_delivered() {
                    tracing::warn!(acquirer = %acq.name, error = %e, reference = %p.request.transaction_reference, "no answer: reversal queued");
                }
                Outcome::of_link_error(core.codes(), &e)
            }
        };
        let self::core::Concluded {
            state,
            batch,
            told,
            queued,
        } = core.conclude(&p, tx_id, &sent_to, &outcome, at(started));
        // A timed-out order's batch carries its reversal: kept to be
        // written again if this write fails.
        let timed_out = (state == TxState::TimedOut).then(|| batch.clone());
        let committed =
            if state == TxState::Approved && core.fault_fires(Fault::FirstApprovalNotRecorded) {
                Err(crate::journal::JournalError::Storage(
                    "injected fault: first approval not recorded".into(),
                ))
            } else {
                self.commits.commit(batch).await
            };
        match committed {
            Ok(_) => {
                core.concluded(&p, tx_id, state);
                if let Some(q) = queued {
                    self.shared.saf().push(q);
                    self.shared.saf_wake.notify_waiters();
                }
            }
            Err(e) => {
                // The outcome is not durable: never answer an approval
                // that a restart would not know. The merchant is told 99.
                // What may be approved at the acquirer (an approval, a
                // timeout) is recorded as told with its reversal queued,
                // written again until the journal takes it (a restart
                // before that finds it open and reverses it).
                tracing::error!(error = %e, tx = tx_id, "journal: outcome not recorded");
                let to_reverse = match (timed_out, queued) {
                    (Some(batch), Some(queued)) => Some((state, batch, queued)),
                    _ if state == TxState::Approved => {
                        let unrecorded = Outcome::MaybeDelivered(
                            ResponseCode::TechnicalProblem,
                            ReversalReason::NotRecorded,
                        );
                        let c = core.conclude(&p, tx_id, &sent_to, &unrecorded, at(started));
                        c.queued.map(|q| (c.state, c.batch, q))
                    }
                    _ => None,
                };
                if let Some((state, batch, queued)) = to_reverse {
                    tokio::spawn(record_unrecorded(
                        Arc::clone(&self.shared),
                        p,
                        tx_id,
                        state,
                        batch,
                        queued,
                    ));
                }
                return Err(refusal(ResponseCode::TechnicalProblem));
            }
        }
        authorized(acq, &p, Some(&sent_to), &told, started);
        Ok(told)
    }

    /// A retry, or a reuse, of a held reference.
    async fn held(&self, p: &Prepared, tx_id: u64) -> Result<OrderAnswer, Refusal> {
        let core = &self.shared.core;
        let record = self
            .shared
            .journal
            .transaction(&p.merchant.id, &p.request.transaction_reference)
            .await
            .ok()
            .flatten();
        match record {
            Some(t) if t.id == tx_id && t.state.is_final() => core.retry_answer(p, &t),
            _ => Err(refusal(ResponseCode::Duplicate)),
        }
    }

    /// The switch's clock: the system's, moved by the configured offset
    /// (tests only). Operations take it as `now`.
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }

    /// cancel, validate, refund: applies `req` to `merchant`'s transaction
    /// if its status allows it (see [`lifecycle`]); the new status, the
    /// operation and the acquirer's message (a reversal, full or partial,
    /// or a refund) are durable in one write before the answer, and the
    /// message goes through the store-and-forward queue. Operations on one
    /// transaction run one at a time; a retry with the same
    /// `operationReference` gets the recorded answer.
    pub async fn operate(
        &self,
        now: SystemTime,
        merchant: &Arc<Merchant>,
        req: CashRequest,
    ) -> Result<OperationAnswer, Refusal> {
        let result = self.operate_inner(now, merchant, &req).await;
        let code = match &result {
            Ok(a) => a.response_code,
            Err(r) => r.code,
        };
        metrics::counter!(telemetry::OPERATIONS, "kind" => req.kind.as_str(), "response_code" => code.as_str().to_owned()).increment(1);
        tracing::info!(
            merchant = %merchant.id,
            reference = %req.transaction_reference,
            kind = req.kind.as_str(),
            amount = req.amount,
            response_code = %code,
            new_status = %result.as_ref().map_or("", |a| a.new_status.as_str()),
            "operation"
        );
        result
    }

    async fn operate_inner(
        &self,
        now: SystemTime,
        merchant: &Arc<Merchant>,
        req: &CashRequest,
    ) -> Result<OperationAnswer, Refusal> {
        let now_ms = unix_ms(now);
        let core = &self.shared.core;
        let journal = &self.shared.journal;
        let technical = |e: crate::journal::JournalError| {
            tracing::error!(error = %e, "journal: operation not read or recorded");
            refusal(ResponseCode::TechnicalProblem)
        };
        let _lock = self
            .shared
            .lock_tx(&merchant.id, &req.transaction_reference)
            .await;
        let (t, ops) = journal
            .transaction_with_operations(&merchant.id, &req.transaction_reference)
            .await
            .map_err(technical)?
            .ok_or(refusal(ResponseCode::UnknownTransaction))?;
        let today = core.cut_off().business_day(now_ms);
        let (next, notice) = match cash::decide(&t, &ops, req, today)? {
            cash::Decision::Repeat(a) => return Ok(a),
            cash::Decision::Apply { next, notice } => (next, notice),
        };
        if let lifecycle::AcquirerNotice::Refund { .. } = notice {
            let acquirer = t.sent_to.as_ref().map(|s| s.acquirer.as_str());
            let takes_refunds = acquirer
                .and_then(|a| self.acquirers.get(a))
                .is_some_and(|a| a.mapping.has_refund());
            if !takes_refunds {
                return Err(refusal(ResponseCode::NotSupported));
            }
        }
        let new_id = || {
            let (id, grow) = core.next_id().ok()?;
            self.grow(grow);
            Some(id)
        };
        let (batch, message, answer) = cash::record(
            &t,
            req,
            &next,
            notice,
            now_ms,
            core.saf_config().expiry_ms,
            new_id,
        )
        .ok_or(refusal(ResponseCode::TemporarilyUnavailable))?;
        self.commits.commit(batch).await.map_err(technical)?;
        if let Some(m) = message {
            self.shared.saf().push(m);
            self.shared.saf_wake.notify_waiters();
        }
        Ok(answer)
    }

    /// getTransactionData: `merchant`'s transaction `reference`, its
    /// status, amounts and history (25 when there is none).
    pub async fn transaction_data(
        &self,
        now: SystemTime,
        merchant: &Arc<Merchant>,
        reference: &str,
    ) -> Result<TransactionData, Refusal> {
        let core = &self.shared.core;
        let journal = &self.shared.journal;
        let technical = |e: crate::journal::JournalError| {
            tracing::error!(error = %e, "journal: transaction not read");
            refusal(ResponseCode::TechnicalProblem)
        };
        let (t, ops) = journal
            .transaction_with_operations(&merchant.id, reference)
            .await
            .map_err(technical)?
            .ok_or(refusal(ResponseCode::UnknownTransaction))?;
        let last_closed = core.cut_off().last_closed(unix_ms(now));
        Ok(cash::transaction_data(
            &t,
            &ops,
            core.answer_of(&t),
            core.capture_of(&t),
            last_closed,
        ))
    }

    /// Runs the cut-off of the last business day closed at `now` (and of
    /// any before it that did not run): captures what is due, expires what
    /// was not validated. Idempotent. The count of each.
    pub async fn run_cut_off(
        &self,
        now: SystemTime,
    ) -> Result<CutOffRun, crate::journal::JournalError> {
        cut_off_run(&self.shared, now).await
    }

    /// The answer recorded for `(merchant, reference)`, for tests and
    /// tools.
    pub async fn recorded_state(&self, merchant: &str, reference: &str) -> Option<TxState> {
        self.shared
            .journal
            .transaction(merchant, reference)
            .await
            .ok()
            .flatten()
            .map(|t| t.state)
    }
}

/// An order that may be approved at the acquirer (approved, or timed out)
/// whose outcome the journal did not take: records it as the merchant
/// was told it (99) with its reversal queued, written again every second
/// until the journal takes it, then hands the reversal to the
/// store-and-forward queue.
async fn record_unrecorded(
    shared: Arc<Shared>,
    p: Prepared,
    tx_id: u64,
    state: TxState,
    batch: crate::journal::Batch,
    queued: SafRecord,
) {
    loop {
        match shared.journal.commit(batch.clone()).await {
            Ok(_) => break,
            Err(crate::journal::JournalError::Stopped) => return,
            Err(e) => {
                tracing::error!(error = %e, tx = tx_id, "journal: an unrecorded approval's reversal not recorded yet, trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    shared.core.concluded(&p, tx_id, state);
    tracing::warn!(tx = tx_id, reference = %p.request.transaction_reference, "an outcome the journal did not take is recorded, its reversal queued");
    shared.saf().push(queued);
    shared.saf_wake.notify_waiters();
}

/// The links shard `index` of `shards` runs out of an acquirer's `links`.
fn links_of_shard(links: usize, shards: usize, index: usize) -> usize {
    let shards = shards.max(1);
    links / shards + usize::from(index < links % shards)
}

/// Counts an authorization decided with `acquirer` and writes its log line
/// (identifiers and codes; never card data).
fn authorized(
    acq: &Acquirer,
    p: &Prepared,
    sent: Option<&SentTo>,
    told: &OrderAnswer,
    started: Instant,
) {
    let code = told.response_code;
    let acquirer = acq.name.as_str();
    acq.metrics.authorization(acquirer, code);
    tracing::info!(
        merchant = %p.merchant.id,
        reference = %p.request.transaction_reference,
        %acquirer,
        stan = %sent.map_or("", |s| s.stan.as_str()),
        rrn = %sent.map_or("", |s| s.rrn.as_str()),
        response_code = %code,
        acquirer_response_code = %told.acquirer_response_code.as_deref().unwrap_or(""),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "authorization"
    );
}

/// The 0100 of a prepared order with STAN `stan` and RRN `rrn`, built at
/// `now` with the acquirer's mapping, and where it goes (the `sent`
/// record's identifiers).
pub fn order_message(
    acquirer: &str,
    spec: &Spec,
    mapping: &Mapping,
    p: &Prepared,
    stan: String,
    rrn: String,
    now: SystemTime,
) -> Result<(Message<'static>, SentTo), ValueError> {
    let c = &p.route().contract;
    let ctx = RequestContext {
        terminal_id: &c.terminal_id,
        acceptor_id: &c.acceptor_id,
        merchant_category_code: &c.merchant_category_code,
        acquirer_id: &c.acquirer_id,
        rrn: &rrn,
        now,
    };
    let mut msg = mapping.build_request(spec, &p.request, &ctx)?;
    spec.set_text(&mut msg, 11, &stan)?;
    let sent_to = SentTo {
        acquirer: acquirer.into(),
        terminal_id: c.terminal_id.clone(),
        acceptor_id: c.acceptor_id.clone(),
        acquirer_id: c.acquirer_id.clone(),
        merchant_category_code: c.merchant_category_code.clone(),
        stan,
        rrn,
        sent_ms: unix_ms(now),
    };
    Ok((msg, sent_to))
}

/// Why a store-and-forward message could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReversalBuildError {
    #[error("the card does not open with the journal key")]
    Card,
    #[error("the acquirer's mapping has no [refund] message")]
    NoRefund,
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// The message of a store-and-forward attempt, from the journal's record
/// of its transaction, with its own STAN: a reversal (0400, a repeat
/// 0401), full or (a partial cancellation) with the amount that stays
/// authorized; or a refund of the record's amount (the mapping's
/// `[refund]`, 0220/0221).
pub fn reversal_message(
    core: &Core,
    spec: &Spec,
    mapping: &Mapping,
    tx: &crate::journal::TxRecord,
    a: &Attempt,
    now: SystemTime,
) -> Result<Message<'static>, ReversalBuildError> {
    let reason = ReversalReason::parse(&a.record.reason).unwrap_or(ReversalReason::Timeout);
    let mut rev = core
        .reversal_request(tx, reason)
        .ok_or(ReversalBuildError::Card)?;
    let mut msg = match a.record.kind {
        SafKind::Reversal => mapping.build_reversal(spec, &rev, now, a.repeat)?,
        SafKind::Cancel => {
            rev.replacement = a.record.replacement.filter(|&r| r > 0);
            mapping.build_reversal(spec, &rev, now, a.repeat)?
        }
        SafKind::Refund => {
            rev.amount = a.record.amount;
            mapping
                .build_refund(spec, &rev, now, a.repeat)
                .ok_or(ReversalBuildError::NoRefund)??
        }
    };
    spec.set_text(&mut msg, 11, &a.record.stan)?;
    Ok(msg)
}

/// What a cut-off did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutOffRun {
    /// The business day closed (days since 1970-01-01).
    pub day: i32,
    pub captured: usize,
    pub expired: usize,
}

/// Transactions per journal read and write at a cut-off.
const CUT_OFF_CHUNK: usize = 256;

/// See [`Switch::run_cut_off`]. Page by page through the journal's index
/// of open transactions: each page's transactions are locked against
/// operations and read again under the lock before they change; a settled
/// one leaves the index, so the next page is the next ones.
async fn cut_off_run(
    shared: &Arc<Shared>,
    now: SystemTime,
) -> Result<CutOffRun, crate::journal::JournalError> {
    let now_ms = unix_ms(now);
    let day = shared.core.cut_off().last_closed(now_ms);
    let mut run = CutOffRun {
        day,
        ..CutOffRun::default()
    };
    loop {
        let due = shared.journal.due_for_cut_off(day, CUT_OFF_CHUNK).await?;
        if due.is_empty() {
            break;
        }
        let mut locks = Vec::with_capacity(due.len());
        for t in &due {
            locks.push(shared.lock_tx(&t.merchant_id, &t.reference).await);
        }
        let fresh = shared
            .journal
            .transactions_by_ids(due.iter().map(|t| t.id).collect())
            .await?;
        let mut batch = Vec::new();
        let mut messages = Vec::new();
        let mut changed = 0;
        let expiry_ms = shared.core.saf_config().expiry_ms;
        for t in &fresh {
            let mut grows = Vec::new();
            let new_id = || {
                let (id, g) = shared.core.next_id().ok()?;
                grows.push(g);
                Some(id)
            };
            let Some((status, changes, message)) = cash::cut_off(t, day, now_ms, expiry_ms, new_id)
            else {
                continue;
            };
            for g in grows {
                shared.reserve(g).await;
            }
            messages.extend(message);
            if status == lifecycle::Status::Captured {
                run.captured += 1;
            } else {
                run.expired += 1;
            }
            changed += 1;
            batch.extend(changes);
        }
        if !batch.is_empty() {
            shared.journal.commit(batch).await?;
        }
        if !messages.is_empty() {
            // Durable: the expired authorizations' reversals may go.
            let mut saf = shared.saf();
            for m in messages {
                saf.push(m);
            }
            drop(saf);
            shared.saf_wake.notify_waiters();
        }
        drop(locks);
        if changed == 0 {
            // What the index calls due the lifecycle does not: never
            // loop on it.
            tracing::error!(
                day = %cutoff::date_text(day),
                count = due.len(),
                "cut-off: transactions due that cannot be captured or expired"
            );
            break;
        }
    }
    metrics::counter!(telemetry::CUT_OFF, "result" => "captured").increment(run.captured as u64);
    metrics::counter!(telemetry::CUT_OFF, "result" => "expired").increment(run.expired as u64);
    if run.captured + run.expired > 0 {
        tracing::info!(
            day = %cutoff::date_text(day),
            captured = run.captured,
            expired = run.expired,
            "cut-off"
        );
    }
    Ok(run)
}

/// The daily cut-off (on shard 0): once at start for any day closed
/// while the switch was down, then at each day's closing time.
async fn cut_offs(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = shared.now();
        if let Err(e) = cut_off_run(&shared, now).await {
            tracing::error!(error = %e, "cut-off failed, tried again in a minute");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                _ = stop.changed() => return,
            }
        }
        let now_ms = unix_ms(shared.now());
        let cut = shared.core.cut_off();
        let next = cut.closes_at(cut.business_day(now_ms));
        let wait = Duration::from_millis(next.saturating_sub(now_ms).max(1) + 1000);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often the journal forgets what is past its window.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Forgets Google Pay `messageId`s past the replay window and vaulted
/// cards past their time, now and then (transactions are kept).
async fn prune(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
        let now_ms = unix_ms(shared.now());
        let change = Change::Prune {
            token_ids_before_ms: now_ms.saturating_sub(shared.core.tokens.window_ms()),
            vault_before_ms: now_ms,
        };
        if let Err(e) = shared.journal.commit(vec![change]).await {
            tracing::warn!(error = %e, "journal: prune failed");
        }
    }
}

/// Sends one acquirer's store-and-forward messages (on shard 0's runtime,
/// with shard 0's pool) until stopped: oldest first, bounded in flight,
/// only while a link is ready; each attempt durable before it is written.
async fn drive_saf(shared: Arc<Shared>, acq: Acquirer, mut stop: watch::Receiver<bool>) {
    let mut in_flight = FuturesUnordered::new();
    // Each queued message's STAN, held from its first attempt until it is
    // acknowledged or expires: no new request takes it meanwhile, however
    // long the retries last (a recovered message leases its STAN again).
    let mut leases: HashMap<u64, StanLease> = HashMap::new();
    let allocator = shared
        .core
        .stans(&acq.name)
        .map(|b| Arc::clone(&b.allocator));
    loop {
        let stopping = *stop.borrow();
        if stopping && in_flight.is_empty() {
            return;
        }
        let mut wake: Option<u64> = None;
        if !stopping && acq.pool.ready_links() > 0 {
            loop {
                let now_ms = unix_ms(shared.now());
                let mut fresh: Option<StanLease> = None;
                let step = {
                    // A first attempt's STAN (its reservation is grown in
                    // send_one); the journal keeps it the message's.
                    let mut stan = || {
                        let lease = allocator.as_ref()?.allocate()?;
                        let text = lease.stan().to_string();
                        fresh = Some(lease);
                        Some(text)
                    };
                    shared.saf().poll(&acq.name, now_ms, &mut stan)
                };
                match step {
                    Step::Send(a) => {
                        let id = a.record.id;
                        // A recovered message leases its own STAN again; if a
                        // request has that STAN in flight now, the message
                        // waits: two messages never share a STAN.
                        let mut busy = false;
                        match fresh.take() {
                            Some(l) => {
                                leases.insert(id, l);
                            }
                            None if !leases.contains_key(&id) => {
                                let own = a.record.stan.parse().ok().and_then(Stan::new);
                                if let Some((s, alloc)) = own.zip(allocator.as_ref()) {
                                    match alloc.lease(s) {
                                        Some(l) => {
                                            leases.insert(id, l);
                                        }
                                        None => busy = true,
                                    }
                                }
                            }
                            None => {}
                        }
                        if busy {
                            tracing::warn!(acquirer = %acq.name, tx = a.record.tx_id, stan = %a.record.stan, "store-and-forward: the message's STAN is in flight for a request, retried later");
                            shared.saf().failed(&acq.name, id, now_ms);
                            continue;
                        }
                        in_flight.push(send_one(Arc::clone(&shared), acq.clone(), a));
                    }
                    Step::Expire(r, u) => {
                        leases.remove(&r.id);
                        tracing::error!(
                            acquirer = %acq.name,
                            tx = r.tx_id,
                            kind = r.kind.as_str(),
                            reason = %r.reason,
                            attempts = r.attempts,
                            "store-and-forward message given up after its expiry: an operator must send it to the acquirer by hand"
                        );
                        if let Err(e) = shared.journal.commit(vec![Change::UpdateSaf(u)]).await {
                            tracing::error!(error = %e, "journal: expiry not recorded");
                        }
                    }
                    Step::Idle(at) => {
                        wake = at;
                        break;
                    }
                }
            }
        }
        // While no link is ready, look again now and then.
        let now_ms = unix_ms(shared.now());
        let until = wake.map_or(Duration::from_millis(250), |at| {
            Duration::from_millis(at.saturating_sub(now_ms).clamp(1, 250))
        });
        let notified = shared.saf_wake.notified();
        tokio::select! {
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(id) = done {
                    leases.remove(&id);
                }
            }
            _ = notified => {}
            _ = tokio::time::sleep(until) => {}
            _ = stop.changed(), if !stopping => {}
        }
    }
}

/// One attempt: durable, then built from the journal's record and sent;
/// the answer acknowledges it (its id returned: done), anything else
/// schedules a retry.
async fn send_one(shared: Arc<Shared>, acq: Acquirer, a: Attempt) -> Option<u64> {
    let id = a.record.id;
    let failed = |shared: &Shared| -> Option<u64> {
        shared.saf().failed(&acq.name, id, unix_ms(shared.now()));
        shared.saf_wake.notify_waiters();
        None
    };
    if let Some(book) = shared.core.stans(&acq.name) {
        shared.reserve(book.check()).await;
    }
    if let Err(e) = shared
        .journal
        .commit(vec![Change::UpdateSaf(a.update.clone())])
        .await
    {
        tracing::error!(error = %e, tx = a.record.tx_id, "journal: reversal attempt not recorded, not sent");
        return failed(&shared);
    }
    let tx = match shared.journal.transaction_by_id(a.record.tx_id).await {
        Ok(Some(t)) => t,
        other => {
            tracing::error!(tx = a.record.tx_id, found = ?other.map(|t| t.is_some()), "reversal: the transaction does not read back");
            return failed(&shared);
        }
    };
    let msg = match reversal_message(&shared.core, &acq.spec, &acq.mapping, &tx, &a, shared.now()) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(tx = tx.id, error = %e, "reversal: cannot build the message");
            return failed(&shared);
        }
    };
    match acq.pool.send_prepared(&msg, None).await {
        Ok(resp) => {
            let code = acq
                .mapping
                .read_response(&acq.spec, resp.message())
                .response_code;
            tracing::info!(
                acquirer = %acq.name,
                tx = tx.id,
                reference = %tx.reference,
                stan = %a.record.stan,
                kind = %a.record.kind.as_str(),
                repeat = a.repeat,
                response_code = %code.as_deref().unwrap_or(""),
                "acquirer acknowledged"
            );
            let update = shared
                .saf()
                .acknowledged(&acq.name, id, code, unix_ms(shared.now()));
            if let Some(u) = update {
                if let Err(e) = shared.journal.commit(vec![Change::UpdateSaf(u)]).await {
                    // Sent again after a restart, as a repeat: harmless.
                    tracing::error!(error = %e, tx = tx.id, "journal: acknowledgement not recorded");
                }
            }
            shared.saf_wake.notify_waiters();
            Some(id)
        }
        Err(e) => {
            tracing::warn!(acquirer = %acq.name, tx = tx.id, error = %e, "reversal not acknowledged, will retry");
            failed(&shared)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::links_of_shard;

    #[test]
    fn links_are_shared_out_among_the_shards() {
        let shares = |links, shards| -> Vec<usize> {
            (0..shards)
                .map(|i| links_of_shard(links, shards, i))
                .collect()
        };
        assert_eq!(shares(2, 1), [2]);
        assert_eq!(shares(2, 2), [1, 1]);
        assert_eq!(shares(5, 2), [3, 2]);
        assert_eq!(shares(1, 3), [1, 0, 0]);
        assert_eq!(shares(4, 32).iter().sum::<usize>(), 4);
        assert_eq!(shares(64, 32), [2; 32]);
    }
}
