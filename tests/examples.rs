//! Every configuration in `examples/` passes `acqswitch config check` and
//! runs: copied with its key files into a temporary folder, its acquirer
//! addresses pointed at `acqswitch sim` processes and its listen address
//! at an ephemeral port, `acqswitch serve` is started on it and takes a
//! sealed cardOrder (and, for a Google Pay merchant, a token made for its
//! own key).

mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;

use acqswitch::card::Secret;
use acqswitch::load_api::{seal_request, ApiClient};
use procs::{dpan_order, Serve, Sim, CARD_ORDER, CHECK};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_acqswitch");

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The `*.toml` files of `examples/`.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// `examples/` copied into `to` (the configurations and their key files).
fn copy_examples(to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap();
            if p.is_dir() {
                if name != "data" {
                    copy(&p, &to.join(name));
                }
            } else if p.extension().is_some_and(|x| x != "rs") {
                std::fs::copy(&p, to.join(name)).unwrap();
            }
        }
    }
    copy(&examples_dir(), to);
}

fn config_check(file: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What each example needs to run: its environment, its merchant and
/// seal secret.
fn merchant_of(
    name: &str,
) -> (
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
) {
    match name {
        "one-acquirer.toml" => (
            vec![("SHOP_SEAL_SECRET", "example-env-secret")],
            "011223344550001",
            "example-env-secret",
        ),
        "googlepay-merchant.toml" => (vec![], "011223344550002", "example-seal-secret-change-me"),
        "two-acquirers-tls.toml" => (
            vec![
                ("SHOP_SEAL_SECRET", "example-env-secret"),
                (
                    "ACQSWITCH_JOURNAL_KEY",
                    "4242424242424242424242424242424242424242424242424242424242424242",
                ),
            ],
            "011223344550003",
            "example-env-secret",
        ),
        other => panic!("examples/{other}: add it to this test"),
    }
}

#[test]
fn every_example_passes_config_check_with_secrets_masked() {
    let files = example_files();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let (env, _, secret) = merchant_of(&name);
        let (ok, stdout, stderr) = config_check(&file, &env);
        assert!(ok, "{name}: {stderr}");
        assert!(stderr.contains(": ok"), "{name}: {stderr}");
        // The effective configuration: defaults filled in, secrets masked.
        assert!(stdout.contains("request_timeout"), "{name}: {stdout}");
        assert!(!stdout.contains(secret), "{name} prints its secret");
        if stdout.contains("secret = ") {
            assert!(stdout.contains("secret = \"****\""), "{name}: {stdout}");
        }
        let printed: toml::Value = toml::from_str(&stdout).unwrap();
        assert!(printed.get("merchants").is_some(), "{name}");
    }
    // A missing environment variable is named.
    let (ok, _, stderr) = config_check(&examples_dir().join("one-acquirer.toml"), &[]);
    assert!(!ok);
    assert!(stderr.contains("SHOP_SEAL_SECRET"), "{stderr}");
}

/// A sealed POST over HTTPS with curl, trusting `ca`.
fn curl_https(addr: std::net::SocketAddr, ca: &Path, path: &str, body: &Value) -> Value {
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(ca)
        .args(["-H", "content-type: application/json", "-d"])
        .arg(body.to_string())
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The examples with TLS: the two acquirers behind mutual TLS, the API
/// over HTTPS; Visa to acquirer-b (iso87visa), Mastercard to acquirer-a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_example_routes_by_brand_over_mutual_tls() {
    let name = "two-acquirers-tls.toml";
    let dir = tempfile::tempdir().unwrap();
    copy_examples(dir.path());
    let tls = dir.path().join("tls");
    let file = |f: &str| tls.join(f).to_str().unwrap().to_owned();
    let sim = |spec: &str, who: &str| {
        Sim::start_spec(
            spec,
            None,
            &[
                "--tls-cert",
                &file(&format!("{who}.pem")),
                "--tls-key",
                &file(&format!("{who}.key")),
                "--tls-client-ca",
                &file("ca.pem"),
            ],
            &[],
        )
    };
    let (a, b) = (sim("cb2a", "acquirer-a"), sim("iso87visa", "acquirer-b"));
    let config = dir.path().join(name);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:9100", &a.addr.to_string())
        .replace("127.0.0.1:9200", &b.addr.to_string())
        .replace("127.0.0.1:8443", "127.0.0.1:0");
    std::fs::write(&config, text).unwrap();
    let (env, merchant, secret) = merchant_of(name);
    let serve = Serve::start(&config, &env);
    assert!(
        serve.out.lines().iter().any(|l| l.contains("https://")),
        "{:?}",
        serve.out.lines()
    );
    let ca = tls.join("ca.pem");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let sealed = |mut body: Value| {
        body["merchantId"] = json!(merchant);
        body["interfaceVersion"] = json!("IR_WS_2.55");
        seal_request(body, 1, &Secret::new(secret))
    };
    // Ready once both acquirers have a link up.
    loop {
        let ready = Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(&ca)
            .arg(format!("https://{}/readyz", serve.addr))
            .output()
            .unwrap();
        if ready.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < until, "{:?}", serve.out.lines());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let visa = curl_https(
        serve.addr,
        &ca,
        CARD_ORDER,
        &sealed(dpan_order(&format!("TLSV{}", procs::now_ms()), 1000)),
    );
    assert_eq!(visa["responseCode"], "00", "{visa}");
    let mut mc = dpan_order(&format!("TLSM{}", procs::now_ms()), 1000);
    mc["cardNumber"] = json!(procs::FPAN);
    mc["authenticationResult"]["googlePay"]["eci"] = json!("02");
    let mc = curl_https(serve.addr, &ca, CARD_ORDER, &sealed(mc));
    assert_eq!(mc["responseCode"], "00", "{mc}");
    // Each acquirer got the card of its brand.
    let (la, lb) = (a.ledger().await, b.ledger().await);
    assert_eq!((la.len(), lb.len()), (1, 1), "{la:?} {lb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_starts_serve_and_authorizes() {
    let sim = Sim::start(None, &[]);
    for file in example_files() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "two-acquirers-tls.toml" {
            // Its own test: two acquirers behind TLS.
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        copy_examples(dir.path());
        let config = dir.path().join(&name);
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("127.0.0.1:9100", &sim.addr.to_string())
            .replace("127.0.0.1:8080", "127.0.0.1:0");
        std::fs::write(&config, text).unwrap();
        let (env, merchant, secret) = merchant_of(&name);
        let serve = Serve::start(&config, &env);
        serve.wait_ready().await;
        let mut api = ApiClient::connect(serve.addr).await.unwrap();
        let mut call = async |path: &str, mut body: Value| -> Value {
            body["merchantId"] = json!(merchant);
            body["interfaceVersion"] = json!("IR_WS_2.55");
            let req = seal_request(body, 1, &Secret::new(secret));
            let (status, v) = api.post_json(path, &req).await.unwrap();
            assert_eq!(status, 200, "{name}: {v}");
            v
        };
        let reference = format!("EX{}", procs::now_ms());
        let v = call(CARD_ORDER, dpan_order(&reference, 1000)).await;
        assert_eq!(v["responseCode"], "00", "{name}: {v}");

        if name == "googlepay-merchant.toml" {
            // A token for this merchant's own key (signed with the test
            // root its root_keys_file trusts).
            let out = Command::new(BIN)
                .args(["gpay", "test-token", "--recipient-id"])
                .arg("merchant:12345678901234567890")
                .arg("--merchant-public-key")
                .arg(dir.path().join("keys/merchant_public_key.b64"))
                .output()
                .unwrap();
            assert!(out.status.success());
            let token = String::from_utf8(out.stdout).unwrap();
            let v = call(
                CHECK,
                json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token.trim()}),
            )
            .await;
            assert_eq!(v["responseCode"], "00", "{name}: {v}");
            assert_eq!(v["maskedPan"], "489537******3478", "{v}");
            // The demo merchant's test token is not for this merchant.
            let other = procs::token(false, procs::DPAN, "not-for-this-merchant");
            let v = call(
                CHECK,
                json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": other}),
            )
            .await;
            assert_eq!(v["responseCode"], "12", "{name}: {v}");
        }
        drop(serve);
    }
}
