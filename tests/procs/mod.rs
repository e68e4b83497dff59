//! Real processes for the fault tests: the `acqswitch sim` and `acqswitch
//! serve` binaries on loopback, their output captured, killed with
//! SIGKILL or stopped with SIGTERM; a sealed API client; Google Pay test
//! tokens. Only 127.0.0.1, every wait bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use acqswitch::card::Secret;
use acqswitch::load_api::{seal_request, ApiClient};
use acqswitch::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};
use serde_json::{json, Value};

pub const MERCHANT: &str = "011223344550000";
pub const SECRET: &str = "fault-test-secret";
pub const DPAN: &str = "4895370012003478";
pub const FPAN: &str = "5413330089020011";
pub const TAVV: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";
pub const CAVV: &str = "AAABBEg0VhI0VniQEjRWAAAAAAA=";
pub const CARD_ORDER: &str = "/rs-services/v2/checkout/cardOrder";
pub const CHECK: &str = "/rs-services/v2/checkout/paymentDataProviderCheck";

const BIN: &str = env!("CARGO_BIN_EXE_acqswitch");

/// Lines a child printed (stdout and stderr), gathered by threads.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn drain(&self, r: impl Read + Send + 'static) {
        let lines = Arc::clone(&self.0);
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    pub fn wait_for(&self, prefix: &str, limit: Duration) -> Option<String> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(l) = self.lines().iter().find_map(|l| l.strip_prefix(prefix)) {
                return Some(l.trim().to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, Output) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the acqswitch binary starts");
    let out = Output::default();
    out.drain(child.stdout.take().expect("stdout piped"));
    out.drain(child.stderr.take().expect("stderr piped"));
    (child, out)
}

/// `kill -TERM pid`.
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM failed");
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(Instant::now() < until, "process did not exit in {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `acqswitch sim` in its own process, with its admin listener.
pub struct Sim {
    child: Child,
    pub out: Output,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Sim {
    /// On an ephemeral port, or on `listen`.
    pub fn start(listen: Option<SocketAddr>, extra: &[&str]) -> Sim {
        Sim::start_env(listen, extra, &[])
    }

    /// The same with environment variables set.
    pub fn start_env(listen: Option<SocketAddr>, extra: &[&str], env: &[(&str, &str)]) -> Sim {
        Sim::start_spec("cb2a", listen, extra, env)
    }

    /// A simulator of dialect `spec`.
    pub fn start_spec(
        spec: &str,
        listen: Option<SocketAddr>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Sim {
        let listen = listen.map_or("127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut args = vec![
            "sim",
            "--listen",
            &listen,
            "--admin",
            "127.0.0.1:0",
            "--spec",
            spec,
        ];
        args.extend_from_slice(extra);
        let (child, out) = spawn(&args, env);
        let t = Duration::from_secs(20);
        let addr = out
            .wait_for("acquirer simulator listening on ", t)
            .expect("the simulator starts")
            .parse()
            .unwrap();
        let admin = out
            .wait_for("simulator admin on http://", t)
            .expect("the admin listener starts")
            .parse()
            .unwrap();
        Sim {
            child,
            out,
            addr,
            admin,
        }
    }

    /// Every authorization the simulator received (`GET /ledger`).
    pub async fn ledger(&self) -> Vec<Value> {
        let mut c = ApiClient::connect(self.admin).await.unwrap();
        let (status, v) = c.get_json("/ledger").await.unwrap();
        assert_eq!(status, 200);
        v["entries"].as_array().cloned().unwrap_or_default()
    }

    /// `POST path` on the admin API (`/faults`, `/down`, `/up`).
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let mut c = ApiClient::connect(self.admin).await.unwrap();
        let (status, v) = c.post_json(path, &body).await.unwrap();
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    pub async fn counts(&self) -> Value {
        let mut c = ApiClient::connect(self.admin).await.unwrap();
        c.get_json("/counts").await.unwrap().1
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration for `serve`: one cb2a acquirer at `acquirer`, the test
/// merchant (Google Pay test keys), the journal in `dir`.
pub fn write_config(dir: &Path, acquirer: SocketAddr, extra_pool: &str) -> PathBuf {
    write_config_with(dir, acquirer, "2s", extra_pool)
}

/// The same with the request timeout given, and store and forward retrying
/// fast (100 ms, up to 500 ms).
pub fn write_config_with(
    dir: &Path,
    acquirer: SocketAddr,
    request_timeout: &str,
    extra_pool: &str,
) -> PathBuf {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
threads = 2

[journal]
path = "journal.db"
key = "{key}"

[store_and_forward]
retry_initial = "100ms"
retry_max = "500ms"

[[acquirers]]
name = "main"
dialect = "cb2a"
mapping = "cb2a"
[acquirers.pool]
primary = "{acquirer}"
links = 2
request_timeout = "{request_timeout}"
connect_timeout = "200ms"
max_in_flight_per_link = 4096
{extra_pool}
[acquirers.pool.backoff]
initial = "50ms"
max = "200ms"

[[merchants]]
id = "{MERCHANT}"
keys = [{{ version = 1, secret = "{SECRET}" }}]
[merchants.googlepay]
test_keys = true
[[merchants.contracts]]
acquirer = "main"
terminal_id = "ACQ00001"
acceptor_id = "MERCHANT0000001"
"#,
        key = "42".repeat(32)
    );
    let path = dir.join("acqswitch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `acqswitch serve --config FILE` in its own process.
pub struct Serve {
    child: Child,
    pub out: Output,
    pub addr: SocketAddr,
}

impl Serve {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Serve {
        Serve::start_args(&["serve", "--config", config.to_str().unwrap()], env)
    }

    /// `acqswitch ARGS` (a `serve` command line).
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let (child, out) = spawn(args, env);
        let url = out
            .wait_for("acqswitch listening on ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("serve did not start: {:?}", out.lines()));
        let addr = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or(&url)
            .parse()
            .unwrap();
        Serve { child, out, addr }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = ApiClient::connect(self.addr).await {
                if let Ok((200, _)) = c.get_json("/readyz").await {
                    return;
                }
            }
            assert!(Instant::now() < until, "not ready: {:?}", self.out.lines());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; the exit status (bounded wait).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        sigterm(&self.child);
        wait_exit(&mut self.child, limit)
    }

    /// Waits for the process to end by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reference no other test run uses: `prefix`, the time, a counter.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}x{}", now_ms(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A Google Pay test token (ECv2, the crate's test keys).
pub fn token(pan_only: bool, pan: &str, message_id: &str) -> String {
    let pan = Pan::new(pan).unwrap();
    let details = if pan_only {
        PaymentMethodDetails::pan_only(pan, 12, 2030)
    } else {
        PaymentMethodDetails::cryptogram_3ds(
            pan,
            12,
            2030,
            Cryptogram::from_base64(TAVV).expect("test cryptogram"),
            Some("05".into()),
        )
    };
    let payment = DecryptedPayment::card(message_id.into(), now_ms() + 600_000, details);
    testkeys::sender(ProtocolVersion::EcV2)
        .unwrap()
        .seal_payment(&payment, &mut rand::thread_rng())
        .unwrap()
}

/// A CRYPTOGRAM_3DS cardOrder body (unsealed).
pub fn dpan_order(reference: &str, amount: u64) -> Value {
    json!({
        "transactionReference": reference,
        "amount": amount,
        "currencyCode": "978",
        "orderChannel": "INTERNET",
        "paymentMeanDataProvider": "GOOGLEPAY",
        "cardNumber": DPAN,
        "cardExpiryDate": "203012",
        "authenticationResult": {"holderAuthentProgram": "GOOGLEPAY",
            "googlePay": {"eci": "05", "cavv": TAVV}},
    })
}

/// A cardOrder on a PAN_ONLY vault reference, with 3-D Secure data.
pub fn vault_order(reference: &str, vault: &str, amount: u64) -> Value {
    json!({
        "transactionReference": reference,
        "amount": amount,
        "currencyCode": "978",
        "orderChannel": "INTERNET",
        "paymentMeanDataProvider": "GOOGLEPAY",
        "paymentToken": vault,
        "authenticationResult": {"holderAuthentProgram": "3DS",
            "threeDS": {"eci": "02", "cavv": CAVV}},
    })
}

/// A sealed client for the test merchant.
pub struct Client {
    api: ApiClient,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            api: ApiClient::connect(addr).await.unwrap(),
        }
    }

    pub async fn try_connect(addr: SocketAddr) -> Option<Client> {
        ApiClient::connect(addr)
            .await
            .ok()
            .map(|api| Client { api })
    }

    /// Posts `body` sealed; `None` when the connection failed (a killed
    /// switch).
    pub async fn call(&mut self, path: &str, body: Value) -> Option<Value> {
        let mut body = body;
        body["merchantId"] = json!(MERCHANT);
        body["interfaceVersion"] = json!("IR_WS_2.55");
        let req = seal_request(body, 1, &Secret::new(SECRET));
        match self.api.post_json(path, &req).await {
            Ok((200, v)) => Some(v),
            Ok((status, v)) => panic!("HTTP {status}: {v}"),
            Err(_) => None,
        }
    }
}

/// The journal's reversals: (tx id, state, attempts, STAN).
pub fn journal_saf(db: &Path) -> Vec<(i64, String, i64, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut st = conn
        .prepare("SELECT tx_id, state, attempts, stan FROM saf ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The journal's transactions: (terminal, STAN, reference, state).
pub fn journal_rows(db: &Path) -> Vec<(String, String, String, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut st = conn
        .prepare("SELECT coalesce(terminal_id, ''), coalesce(stan, ''), reference, state FROM tx ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
