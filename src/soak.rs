//! The chaos run behind `acqswitch soak`: the switch (`acqswitch serve`)
//! as a child process against the acquirer simulator in another, mixed
//! cardOrders (approved, refused, technical-failure amounts), acquirer
//! faults (latency past the timeout, no response, dropped connections,
//! duplicate answers, garbage frames), and a SIGKILL of the switch every
//! few seconds with a restart on the same journal. At the end the faults
//! stop, every request the client got no answer to is retried with the
//! same content (a merchant learning the fate of its order), the
//! store-and-forward queue drains, and what the client was told is
//! reconciled with the simulator's ledger:
//!
//! ```text
//! {"requests":N,"approved_told":N,"approved_at_acquirer":N,"reversed":N,
//!  "lost":0,"wrongly_reversed":0,"double_reversed":0,"kills":N,"peak_rss_mb":X}
//! ```
//! `lost`: approvals at the acquirer neither told nor reversed;
//! `wrongly_reversed`: approvals told and reversed anyway;
//! `double_reversed`: approvals with more than one reversal applied.
//!
//! Only loopback addresses; bounded in time and count.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::card::Secret;
use crate::load_api::{seal_request, ApiClient, LOAD_CRYPTOGRAM, LOAD_DPAN};

const MERCHANT: &str = "011223344550000";
const SECRET: &str = "soak-secret";
const CARD_ORDER: &str = "/rs-services/v2/checkout/cardOrder";

/// How to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long orders are sent.
    pub duration: Duration,
    /// A SIGKILL about this often (uniformly 0.5x to 1.5x).
    pub kill_every: Duration,
    /// Clients sending at once.
    pub concurrency: usize,
    /// The switch's request timeout (the simulator's latency goes past it
    /// now and then).
    pub request_timeout: Duration,
    pub seed: u64,
    /// The `acqswitch` binary to run (default: this one).
    pub binary: PathBuf,
    /// Where the journal and configuration go (default: a fresh folder
    /// under the system's temporary folder, removed at the end).
    pub dir: Option<PathBuf>,
}

/// The one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SoakReport {
    pub requests: u64,
    pub approved_told: u64,
    pub approved_at_acquirer: u64,
    pub reversed: u64,
    pub lost: u64,
    pub wrongly_reversed: u64,
    pub double_reversed: u64,
    pub kills: u64,
    pub peak_rss_mb: f64,
}

/// Why the run could not be made (not a finding: findings are in the
/// report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoakError {
    #[error("{0}")]
    Setup(String),
    #[error("{what} did not start: {lines}")]
    Start { what: &'static str, lines: String },
}

/// A child process whose output lines are gathered.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(binary: &Path, args: &[&str]) -> Result<Proc, SoakError> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SoakError::Setup(format!("{}: {e}", binary.display())))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut v = lines.lock().unwrap_or_else(|p| p.into_inner());
                    // Keep the start-up lines and a bounded tail.
                    if v.len() < 4000 {
                        v.push(l);
                    }
                }
            });
        }
        Ok(Proc { child, lines })
    }

    async fn wait_line(&self, prefix: &str, what: &'static str) -> Result<String, SoakError> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let v = self.lines.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(rest) = v.iter().find_map(|l| l.strip_prefix(prefix)) {
                    return Ok(rest.trim().to_owned());
                }
            }
            if Instant::now() > until {
                let lines = self
                    .lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .join(" | ");
                return Err(SoakError::Start { what, lines });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Peak resident memory so far, MiB (Linux: `VmHWM`).
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        status
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config_text(sim: SocketAddr, request_timeout: Duration) -> String {
    format!(
        r#"# Written by acqswitch soak.
[server]
listen = "127.0.0.1:0"

[journal]
path = "journal.db"
key = "{key}"

[store_and_forward]
retry_initial = "200ms"
retry_max = "1s"

[[acquirers]]
name = "acquirer"
dialect = "cb2a"
mapping = "cb2a"
[acquirers.pool]
primary = "{sim}"
links = 2
request_timeout = "{timeout}ms"
connect_timeout = "300ms"
max_in_flight_per_link = 4096
[acquirers.pool.backoff]
initial = "50ms"
max = "500ms"

[[merchants]]
id = "{MERCHANT}"
keys = [{{ version = 1, secret = "{SECRET}" }}]
[[merchants.contracts]]
acquirer = "acquirer"
terminal_id = "SOAK0001"
acceptor_id = "SOAKMERCHANT001"
"#,
        key = "5a".repeat(32),
        timeout = request_timeout.as_millis()
    )
}

fn order(reference: &str, amount: u64) -> Value {
    seal_request(
        json!({
            "merchantId": MERCHANT,
            "interfaceVersion": "IR_WS_2.55",
            "transactionReference": reference,
            "amount": amount,
            "currencyCode": "978",
            "orderChannel": "INTERNET",
            "paymentMeanDataProvider": "GOOGLEPAY",
            "cardNumber": LOAD_DPAN,
            "cardExpiryDate": "203012",
            "authenticationResult": {"holderAuthentProgram": "GOOGLEPAY",
                "googlePay": {"eci": "05", "cavv": LOAD_CRYPTOGRAM}},
        }),
        1,
        &Secret::new(SECRET),
    )
}

/// One order and what the client was told.
#[derive(Debug, Clone)]
struct Sent {
    reference: String,
    amount: u64,
    answer: Option<Value>,
}

/// The switch's address as the client sees it (changes at each restart).
#[derive(Default)]
struct Target(Mutex<Option<SocketAddr>>);

impl Target {
    fn get(&self) -> Option<SocketAddr> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, a: Option<SocketAddr>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = a;
    }
}

async fn serve(binary: &Path, config: &Path) -> Result<(Proc, SocketAddr), SoakError> {
    let p = Proc::spawn(binary, &["serve", "--config", &config.to_string_lossy()])?;
    let addr = p
        .wait_line("acqswitch listening on http://", "the switch")
        .await?
        .parse()
        .map_err(|_| SoakError::Setup("the switch printed no address".into()))?;
    Ok((p, addr))
}

/// One client: orders until `stop`; on a connection failure the order is
/// kept unanswered and the client waits for the switch to come back.
async fn client(
    target: Arc<Target>,
    stop: Arc<AtomicBool>,
    seed: u64,
    n: Arc<AtomicU64>,
) -> Vec<Sent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sent = Vec::new();
    let mut conn: Option<(SocketAddr, ApiClient)> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(addr) = target.get() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if conn.as_ref().is_none_or(|(a, _)| *a != addr) {
            match ApiClient::connect(addr).await {
                Ok(c) => conn = Some((addr, c)),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let Some((_, c)) = conn.as_mut() else {
            continue;
        };
        let i = n.fetch_add(1, Ordering::Relaxed);
        let reference = format!("SOAK{seed:04}N{i}");
        // Mostly approvals; some refusals and technical failures.
        let amount = match rng.gen_range(0..10) {
            0 => 1005,
            1 => 1099,
            _ => 1000,
        };
        let answer = c
            .post_json(CARD_ORDER, &order(&reference, amount))
            .await
            .ok();
        let failed = answer.is_none();
        sent.push(Sent {
            reference,
            amount,
            answer: answer.map(|(_, v)| v),
        });
        if failed {
            conn = None;
        }
    }
    sent
}

/// Runs the chaos run; the report says what it found.
pub async fn run(cfg: &SoakConfig) -> Result<SoakReport, SoakError> {
    let (dir, _cleanup) = match &cfg.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| SoakError::Setup(format!("{}: {e}", d.display())))?;
            (d.clone(), None)
        }
        None => {
            let d = std::env::temp_dir().join(format!(
                "acqswitch-soak-{}-{}",
                std::process::id(),
                cfg.seed
            ));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)
                .map_err(|e| SoakError::Setup(format!("{}: {e}", d.display())))?;
            (d.clone(), Some(RemoveOnDrop(d)))
        }
    };
    let sim = Proc::spawn(
        &cfg.binary,
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--spec",
            "cb2a",
            "--ledger",
            "1000000",
        ],
    )?;
    let sim_addr: SocketAddr = sim
        .wait_line("acquirer simulator listening on ", "the simulator")
        .await?
        .parse()
        .map_err(|_| SoakError::Setup("the simulator printed no address".into()))?;
    let admin: SocketAddr = sim
        .wait_line("simulator admin on http://", "the simulator admin")
        .await?
        .parse()
        .map_err(|_| SoakError::Setup("the simulator printed no admin address".into()))?;
    let mut admin_client = ApiClient::connect(admin)
        .await
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    // Faults, the timeout's own: latency that sometimes passes the
    // request timeout, no answers, dropped connections, duplicates,
    // garbage.
    let timeout_ms = u64::try_from(cfg.request_timeout.as_millis()).unwrap_or(1000);
    let faults = json!({
        "latency_ms": null,
        "no_response_every": 97,
        "duplicate_every": 89,
        "drop_after": 700,
        "garbage_every": 151,
    });
    set_faults(&mut admin_client, &faults)
        .await
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    let config = dir.join("acqswitch.toml");
    std::fs::write(&config, config_text(sim_addr, cfg.request_timeout))
        .map_err(|e| SoakError::Setup(format!("{}: {e}", config.display())))?;

    let target = Arc::new(Target::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let (mut current, addr) = serve(&cfg.binary, &config).await?;
    target.set(Some(addr));
    let clients: Vec<_> = (0..cfg.concurrency.max(1))
        .map(|i| {
            tokio::spawn(client(
                Arc::clone(&target),
                Arc::clone(&stop),
                cfg.seed.wrapping_mul(1000).wrapping_add(i as u64),
                Arc::clone(&counter),
            ))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut report = SoakReport::default();
    let started = Instant::now();
    let mut slow = false;
    while started.elapsed() < cfg.duration {
        let kill_ms = u64::try_from(cfg.kill_every.as_millis())
            .unwrap_or(10_000)
            .max(2);
        let wait = Duration::from_millis(rng.gen_range(kill_ms / 2..=kill_ms * 3 / 2));
        let remaining = cfg.duration.saturating_sub(started.elapsed());
        // Latency past the timeout for a while, now and then.
        slow = !slow && rng.gen_bool(0.5);
        let mut f = faults.clone();
        if slow {
            f["latency_ms"] = json!(timeout_ms + timeout_ms / 2);
        }
        let _ = set_faults(&mut admin_client, &f).await;
        tokio::time::sleep(wait.min(remaining)).await;
        if started.elapsed() >= cfg.duration {
            break;
        }
        report.peak_rss_mb = report.peak_rss_mb.max(current.peak_rss_mb());
        target.set(None);
        current.kill();
        report.kills += 1;
        let (next, addr) = serve(&cfg.binary, &config).await?;
        current = next;
        target.set(Some(addr));
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for c in clients {
        sent.extend(c.await.unwrap_or_default());
    }
    // The end: no more faults; every order without an answer is retried
    // with the same content until it has one.
    let _ = set_faults(&mut admin_client, &json!({})).await;
    let addr = target
        .get()
        .ok_or_else(|| SoakError::Setup("no switch at the end".into()))?;
    let mut c = ApiClient::connect(addr)
        .await
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    for s in sent.iter_mut().filter(|s| s.answer.is_none()) {
        let until = Instant::now() + Duration::from_secs(30);
        while s.answer.is_none() && Instant::now() < until {
            match c
                .post_json(CARD_ORDER, &order(&s.reference, s.amount))
                .await
            {
                Ok((_, v)) => s.answer = Some(v),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(n) = ApiClient::connect(addr).await {
                        c = n;
                    }
                }
            }
        }
    }
    // The store-and-forward queue drains.
    let db = dir.join("journal.db");
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let queued = queued_reversals(&db).unwrap_or(u64::MAX);
        if queued == 0 {
            break;
        }
        if Instant::now() > until {
            return Err(SoakError::Setup(format!(
                "{queued} reversals still queued after 120 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.peak_rss_mb = (report.peak_rss_mb.max(current.peak_rss_mb()) * 10.0).round() / 10.0;
    // Reconciliation.
    let (status, ledger) = admin_client
        .get_json("/ledger")
        .await
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    if status != 200 {
        return Err(SoakError::Setup(format!("GET /ledger: HTTP {status}")));
    }
    let told: std::collections::HashSet<String> = sent
        .iter()
        .filter_map(|s| s.answer.as_ref())
        .filter(|v| v["responseCode"] == "00")
        .filter_map(|v| v["authorisationId"].as_str().map(str::to_owned))
        .collect();
    report.requests = sent.len() as u64;
    report.approved_told = sent
        .iter()
        .filter_map(|s| s.answer.as_ref())
        .filter(|v| v["responseCode"] == "00")
        .count() as u64;
    for e in ledger["entries"].as_array().into_iter().flatten() {
        if e["response_code"] != "00" {
            continue;
        }
        report.approved_at_acquirer += 1;
        let reversed = e["reversed"] == true;
        let was_told = e["authorization_id"]
            .as_str()
            .is_some_and(|id| told.contains(id));
        report.reversed += u64::from(reversed);
        report.lost += u64::from(!was_told && !reversed);
        report.wrongly_reversed += u64::from(was_told && reversed);
        report.double_reversed += u64::from(e["reversals_applied"].as_u64().unwrap_or(0) > 1);
    }
    drop(current);
    drop(sim);
    Ok(report)
}

async fn set_faults(c: &mut ApiClient, v: &Value) -> Result<(), crate::load_api::ApiError> {
    c.post_json("/faults", v).await.map(|_| ())
}

/// Reversals still queued in the journal (read-only, beside the switch).
fn queued_reversals(db: &Path) -> Option<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    conn.query_row("SELECT count(*) FROM saf WHERE state = 'queued'", [], |r| {
        r.get::<_, i64>(0)
    })
    .ok()
    .and_then(|n| u64::try_from(n).ok())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
