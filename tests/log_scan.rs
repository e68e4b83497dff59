//! No card data and no key material in anything the switch writes for
//! people: `acqswitch sim` and `acqswitch serve` run with `RUST_LOG=trace`
//! in each log format through an end-to-end API run (tokens of both kinds,
//! approvals, refusals, a vaulted card, bad input, a timeout and its
//! reversal), and the CLI tools run on the same data; every line they
//! print is scanned for
//! - a Luhn-valid run of 13 to 19 digits (Unix millisecond timestamps of
//!   2020-2100, which the tools print, excepted),
//! - the card numbers used, anywhere in a line (inside hex too),
//! - the test cryptograms (base64 and hex),
//! - key material: the journal key, the merchant's seal secret, the Google
//!   Pay merchant private key (base64 and PEM).
//!
//! The demo merchant's seal secret is public (printed by `serve` on its
//! embedded default, on purpose) and is not looked for.

mod procs;

use std::process::Command;

use acqswitch::card::luhn;
use acqswitch::card::Secret;
use acqswitch::load_api::{seal_request, ApiClient};
use acqswitch::wallet::googlepay::testkeys;
use procs::{
    dpan_order, token, vault_order, Client, Serve, Sim, CARD_ORDER, CAVV, CHECK, DPAN, FPAN,
    MERCHANT, SECRET, TAVV,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_acqswitch");
const TRACE: (&str, &str) = ("RUST_LOG", "trace");
/// The load tool's card.
const LOAD_PAN: &str = "4761739001010119";

/// Maximal digit runs of 13 to 19 digits that pass the Luhn check and are
/// not a millisecond timestamp of 2020-2100.
fn luhn_runs(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for run in line.split(|c: char| !c.is_ascii_digit()) {
        if !(13..=19).contains(&run.len()) || !luhn(run) {
            continue;
        }
        let timestamp = run.len() == 13
            && run
                .parse::<u64>()
                .is_ok_and(|ms| (1_577_836_800_000..4_102_444_800_000).contains(&ms));
        if !timestamp {
            found.push(run.to_owned());
        }
    }
    found
}

fn hex_of_b64(b64: &str) -> String {
    use base64::Engine;
    hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

/// What must never be printed, with a name for the failure message.
fn forbidden() -> Vec<(String, String)> {
    let key = testkeys::merchant_private_key().unwrap();
    let b64 = key.to_pkcs8_base64().unwrap().to_string();
    let pem = key.to_pkcs8_pem().unwrap().to_string();
    let mut out = vec![
        ("DPAN".into(), DPAN.into()),
        ("FPAN".into(), FPAN.into()),
        ("load PAN".into(), LOAD_PAN.into()),
        ("TAVV".into(), TAVV.into()),
        ("TAVV hex".into(), hex_of_b64(TAVV)),
        ("TAVV hex upper".into(), hex_of_b64(TAVV).to_uppercase()),
        ("CAVV".into(), CAVV.into()),
        ("CAVV hex".into(), hex_of_b64(CAVV)),
        ("CAVV hex upper".into(), hex_of_b64(CAVV).to_uppercase()),
        ("journal key".into(), "42".repeat(32)),
        ("seal secret".into(), SECRET.into()),
        ("merchant private key".into(), b64[..40].to_owned()),
    ];
    // Every line of the PEM body.
    for line in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
    {
        out.push(("merchant private key PEM".into(), line.to_owned()));
    }
    out
}

fn scan(source: &str, lines: &[String], forbidden: &[(String, String)]) {
    for line in lines {
        let runs = luhn_runs(line);
        assert!(
            runs.is_empty(),
            "{source}: Luhn-valid digit run {runs:?} in {line:?}"
        );
        for (name, text) in forbidden {
            assert!(
                !line.contains(text.as_str()),
                "{source}: {name} in {line:?}"
            );
        }
    }
}

fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> Vec<String> {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.extend(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_owned),
    );
    assert!(!lines.is_empty(), "{args:?} printed nothing");
    lines
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}x{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The end-to-end run against `serve` (and its acquirer `sim`).
async fn exercise(serve: &Serve, sim: &Sim) {
    let mut c = Client::connect(serve.addr).await;
    let check = |t: String| json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": t});
    let v = c
        .call(CHECK, check(token(false, DPAN, &unique("m"))))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    let v = c
        .call(CHECK, check(token(true, FPAN, &unique("m"))))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    let vault = v["paymentToken"].as_str().unwrap().to_owned();
    let v = c.call(CHECK, check("{bad".into())).await.unwrap();
    assert_eq!(v["responseCode"], "30");
    let v = c
        .call(CHECK, check(token(true, "4111111111111112", &unique("m"))))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "12");

    for amount in [1000, 1005, 1099] {
        let v = c
            .call(CARD_ORDER, dpan_order(&unique("LOGS"), amount))
            .await
            .unwrap();
        assert!(v["responseCode"].is_string(), "{v}");
    }
    let v = c
        .call(CARD_ORDER, vault_order(&unique("LOGS"), &vault, 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    // A card number typed in (FPAN), one failing Luhn, a reused reference.
    let mut o = dpan_order(&unique("LOGS"), 1000);
    o["cardNumber"] = json!(FPAN);
    o.as_object_mut().unwrap().remove("authenticationResult");
    o["panEntryMode"] = json!("WALLET");
    let v = c.call(CARD_ORDER, o).await.unwrap();
    assert!(v["responseCode"].is_string(), "{v}");
    let mut o = dpan_order(&unique("LOGS"), 1000);
    o["cardNumber"] = json!("4895370012003479");
    assert_eq!(c.call(CARD_ORDER, o).await.unwrap()["responseCode"], "12");
    let reference = unique("LOGS");
    c.call(CARD_ORDER, dpan_order(&reference, 1000))
        .await
        .unwrap();
    let v = c
        .call(CARD_ORDER, dpan_order(&reference, 2000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "94");
    // A bad seal.
    let mut raw = ApiClient::connect(serve.addr).await.unwrap();
    let mut body = dpan_order(&unique("LOGS"), 1000);
    body["merchantId"] = json!(MERCHANT);
    body["interfaceVersion"] = json!("IR_WS_2.55");
    let (_, v) = raw
        .post_json(CARD_ORDER, &seal_request(body, 1, &Secret::new("wrong")))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "34");
    // No answer: 99, then the reversal once the acquirer answers again.
    sim.admin("/faults", json!({"no_response_every": 1})).await;
    let v = c
        .call(CARD_ORDER, dpan_order(&unique("LOGS"), 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "99", "{v}");
    sim.admin("/faults", json!({})).await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let acknowledged = async || {
        let mut c = ApiClient::connect(serve.addr).await.unwrap();
        let (_, body) = c
            .call("GET", "/metrics", bytes::Bytes::new())
            .await
            .unwrap();
        String::from_utf8_lossy(&body)
            .contains(r#"acqswitch_reversals_acknowledged_total{kind="reversal"} 1"#)
    };
    while !acknowledged().await {
        assert!(std::time::Instant::now() < until, "no reversal");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The load tool through the API, a few requests.
    let url = format!("http://{}", serve.addr);
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), SECRET).unwrap();
    let lines = run_cli(
        &[
            "load",
            "--api",
            &url,
            "--merchant-id",
            MERCHANT,
            "--key-version",
            "1",
            "--secret-file",
            secret_file.path().to_str().unwrap(),
            "--requests",
            "20",
            "--concurrency",
            "2",
            "--quiet",
        ],
        None,
    );
    scan("load --api", &lines, &forbidden());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_in_both_formats_hold_no_card_data_or_keys() {
    let forbidden = forbidden();
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start_env(None, &["--log-format", format], &[TRACE]);
        let config = procs::write_config_with(dir.path(), sim.addr, "300ms", "");
        let config_text = config.to_str().unwrap().to_owned();
        let serve = Serve::start_args(
            &["--log-format", format, "serve", "--config", &config_text],
            &[TRACE],
        );
        serve.wait_ready().await;
        exercise(&serve, &sim).await;
        // Let the last lines (the reversal's) be written.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let serve_lines = serve.out.lines();
        let sim_lines = sim.out.lines();
        // Trace level did run, in the format asked for.
        let debug = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| match format {
                    "json" => {
                        l.starts_with('{')
                            && (l.contains(r#""level":"DEBUG""#)
                                || l.contains(r#""level":"TRACE""#))
                    }
                    _ => l.contains(" DEBUG ") || l.contains(" TRACE "),
                })
                .count()
        };
        assert!(debug(&serve_lines) > 0, "{serve_lines:?}");
        assert!(debug(&sim_lines) > 0, "{sim_lines:?}");
        let authorizations = serve_lines
            .iter()
            .filter(|l| l.contains("authorization") && l.contains("reference"))
            .count();
        assert!(authorizations >= 27, "{serve_lines:?}");
        scan(&format!("serve ({format})"), &serve_lines, &forbidden);
        scan(&format!("sim ({format})"), &sim_lines, &forbidden);
        // The CLI on the same data.
        let lines = run_cli(&["config", "check", &config_text], None);
        scan("config check", &lines, &forbidden);
    }
}

#[test]
fn cli_outputs_hold_no_card_data_or_keys() {
    let forbidden = forbidden();
    // An ISO 8583 0100 with the DPAN, decoded (masked) and encoded.
    let encoded = run_cli(
        &["iso", "encode", "--spec", "cb2a", "--hex"],
        Some(
            json!({"t": "0100", "2": DPAN, "3": "000000", "4": "000000001000",
                   "11": "000001", "41": "ACQ00001", "49": "978"})
            .to_string()
            .as_bytes(),
        ),
    );
    let hex = encoded[0].clone();
    let decoded = run_cli(
        &["iso", "decode", "--spec", "cb2a", "--hex"],
        Some(hex.as_bytes()),
    );
    assert!(decoded.iter().any(|l| l.contains("489537")), "{decoded:?}");
    scan("iso decode", &decoded, &forbidden);
    // Google Pay: a token made and decrypted (masked), the keys written.
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path().to_str().unwrap();
    scan(
        "gpay test-keys",
        &run_cli(&["gpay", "test-keys", "--dir", dir], None),
        &forbidden,
    );
    let token = run_cli(&["gpay", "test-token", "--pan", DPAN], None);
    scan("gpay test-token", &token, &forbidden);
    let decrypted = run_cli(
        &[
            "gpay",
            "decrypt",
            "--recipient-id",
            testkeys::RECIPIENT_ID,
            "--private-key",
            &format!("{dir}/merchant_private_key.pem"),
            "--root-keys",
            &format!("{dir}/root_keys.json"),
        ],
        Some(token[0].as_bytes()),
    );
    assert!(decrypted[0].contains("489537******3478"), "{decrypted:?}");
    scan("gpay decrypt", &decrypted, &forbidden);
    // Keys of a merchant's own: the private key file is for its owner.
    let own = tempfile::tempdir().unwrap();
    let lines = run_cli(
        &["gpay", "keygen", "--dir", own.path().to_str().unwrap()],
        None,
    );
    scan("gpay keygen", &lines, &forbidden);
    let pem = std::fs::read_to_string(own.path().join("merchant_private_key.pem")).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !lines.iter().any(|l| l.contains(line)),
            "keygen printed its key"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(own.path().join("merchant_private_key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keygen's private key: {mode:o}");
        for f in ["merchant_private_key.pem", "merchant_private_key.b64"] {
            let mode = std::fs::metadata(keys.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
    }
    // A sealed request: the seal, never the secret.
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), SECRET).unwrap();
    let sealed = run_cli(
        &[
            "seal",
            "request",
            "--secret-file",
            secret_file.path().to_str().unwrap(),
        ],
        Some(br#"{"merchantId":"011223344550000","amount":1000}"#),
    );
    assert!(sealed[0].contains("\"seal\""), "{sealed:?}");
    scan("seal request", &sealed, &forbidden);
    // The demo (switch, simulator, tokens and orders end to end).
    scan("demo", &run_cli(&["demo"], None), &forbidden);
}

#[test]
fn the_scan_finds_what_it_looks_for() {
    assert_eq!(luhn_runs(&format!("pan={DPAN} x")), [DPAN]);
    assert_eq!(luhn_runs(&format!("a{FPAN}b")), [FPAN]);
    assert!(luhn_runs("4895370012003479").is_empty(), "not Luhn-valid");
    assert!(luhn_runs("1796018770123").is_empty() || !luhn("1796018770123"));
    assert!(luhn_runs("489537******3478").is_empty());
    assert!(luhn_runs("12345678901234567890").is_empty(), "20 digits");
}
