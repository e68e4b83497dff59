//! After the authorization, end to end: `acqswitch sim` and `acqswitch
//! serve` each in their own process, the sealed HTTP API on loopback.
//! Cancellations (partial, full, refused after capture), validation in
//! VALIDATION mode, the daily cut-off (the switch restarted with its clock
//! moved three days on: it catches up the cut-offs it missed), refunds
//! partial and above the original, captureDay 9 applied as 6, the
//! PAN_ONLY 3-D Secure path approved and refused, getTransactionData after
//! each step, and the simulator's ledger balanced with the journal.

mod procs;

use procs::unique;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use procs::{dpan_order, journal_rows, token, Client, Serve, Sim, CARD_ORDER, CAVV, CHECK, FPAN};
use serde_json::{json, Value};

const CANCEL: &str = "/rs-services/v2/cashManagement/cancel";
const VALIDATE: &str = "/rs-services/v2/cashManagement/validate";
const REFUND: &str = "/rs-services/v2/cashManagement/refund";
const DATA: &str = "/rs-services/v2/diagnostic/getTransactionData";
const VALIDATE_AND_ORDER: &str = "/rs-services/v2/checkout/cardValidateAuthenticationAndOrder";

/// The simulator in its own process, and a configuration for `serve`
/// against it in a temporary folder (the journal there too).
fn started() -> (tempfile::TempDir, Sim, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    (dir, sim, config)
}

async fn call(addr: std::net::SocketAddr, path: &str, body: Value) -> Value {
    let mut c = Client::connect(addr).await;
    c.call(path, body).await.expect("an answer")
}

async fn order(addr: std::net::SocketAddr, amount: u64, capture: Value) -> String {
    let reference = unique("T");
    let mut body = dpan_order(&reference, amount);
    if let (Some(b), Some(c)) = (body.as_object_mut(), capture.as_object()) {
        b.extend(c.clone());
    }
    let v = call(addr, CARD_ORDER, body).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    reference
}

async fn op(addr: std::net::SocketAddr, path: &str, reference: &str, amount: u64) -> Value {
    call(
        addr,
        path,
        json!({"transactionReference": reference, "operationAmount": amount, "currencyCode": "978"}),
    )
    .await
}

async fn data(addr: std::net::SocketAddr, reference: &str) -> Value {
    let v = call(addr, DATA, json!({"transactionReference": reference})).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    v
}

fn status(v: &Value) -> (&str, u64) {
    (
        v["transactionStatus"]
            .as_str()
            .or(v["newStatus"].as_str())
            .unwrap_or(""),
        v["currentAmount"]
            .as_u64()
            .or(v["newAmount"].as_u64())
            .unwrap_or(u64::MAX),
    )
}

/// The simulator's ledger entry of each reference (through the journal's
/// terminal and STAN), once `done` holds for all of them (the
/// store-and-forward queue drains in the background).
async fn ledger_of(
    sim: &Sim,
    db: &Path,
    references: &[&str],
    done: impl Fn(&HashMap<String, Value>) -> bool,
) -> HashMap<String, Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let key_of: HashMap<String, (String, String)> = journal_rows(db)
            .into_iter()
            .map(|(t, s, r, _)| (r, (t, s)))
            .collect();
        let ledger = sim.ledger().await;
        let mut out = HashMap::new();
        for r in references {
            let (t, s) = &key_of[*r];
            if let Some(e) = ledger
                .iter()
                .find(|e| e["terminal"] == *t && e["stan"] == *s)
            {
                out.insert((*r).to_owned(), e.clone());
            }
        }
        if out.len() == references.len() && done(&out) {
            return out;
        }
        assert!(Instant::now() < until, "ledger not as expected: {out:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn amount(e: &Value, k: &str) -> u64 {
    e[k].as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The acquirer's view balances with the switch's: what stays authorized
/// is what the journal says is left (or was captured), and refunds add up.
fn balanced(journal: &Value, ledger: &Value) {
    let left = match journal["transactionStatus"].as_str() {
        Some("CAPTURED" | "CREDITED") => journal["capturedAmount"].as_u64().unwrap(),
        // Cancelled or expired: reversed, nothing left authorized.
        Some("CANCELLED" | "EXPIRED") => 0,
        _ => journal["currentAmount"].as_u64().unwrap(),
    };
    assert_eq!(
        amount(ledger, "authorized_amount"),
        left,
        "{journal} {ledger}"
    );
    assert_eq!(
        amount(ledger, "refunded_amount"),
        journal["refundedAmount"].as_u64().unwrap(),
        "{journal} {ledger}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_partial_then_full_and_nothing_after() {
    let (dir, sim, config) = started();
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let a = serve.addr;

    let r = order(a, 1000, json!({"captureDay": 3})).await;
    let d = data(a, &r).await;
    assert_eq!(status(&d), ("TO_CAPTURE", 1000));
    assert_eq!(
        (d["captureMode"].as_str(), d["captureDay"].as_u64()),
        (Some("AUTHOR_CAPTURE"), Some(3))
    );
    assert_eq!(d["paymentMeanDataProvider"], "GOOGLEPAY");
    assert_eq!(d["maskedPan"], "489537******3478");
    assert_eq!(d["authorisationResponseCode"], "00");
    assert!(d["authorisationId"].is_string());

    // Partial, with an operation reference: a retry answers the same.
    let body =
        json!({"transactionReference": r, "operationAmount": 300, "operationReference": "C1"});
    let first = call(a, CANCEL, body.clone()).await;
    assert_eq!(first["responseCode"], "00", "{first}");
    assert_eq!(status(&first), ("TO_CAPTURE", 700));
    let again = call(a, CANCEL, body).await;
    assert_eq!(again, first);
    let d = data(a, &r).await;
    assert_eq!(status(&d), ("TO_CAPTURE", 700));
    assert_eq!(d["operations"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["operations"][0]["operationType"], "cancel");

    // Above what is left, a wrong currency, an unknown reference.
    let v = op(a, CANCEL, &r, 701).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("12"), Some("operationAmount"))
    );
    let v = call(
        a,
        CANCEL,
        json!({"transactionReference": r, "operationAmount": 1, "currencyCode": "840"}),
    )
    .await;
    assert_eq!(v["errorFieldName"], "currencyCode");
    let v = op(a, CANCEL, "NoSuchReference", 1).await;
    assert_eq!(v["responseCode"], "25");
    // Validate is for VALIDATION mode; refund is after capture.
    assert_eq!(op(a, VALIDATE, &r, 100).await["responseCode"], "24");
    assert_eq!(op(a, REFUND, &r, 100).await["responseCode"], "24");

    // The rest: cancelled, and nothing is allowed any more.
    let v = op(a, CANCEL, &r, 700).await;
    assert_eq!(status(&v), ("CANCELLED", 0));
    let d = data(a, &r).await;
    assert_eq!(status(&d), ("CANCELLED", 0));
    assert_eq!(d["operations"].as_array().unwrap().len(), 2);
    for path in [CANCEL, VALIDATE, REFUND] {
        assert_eq!(op(a, path, &r, 1).await["responseCode"], "24", "{path}");
    }

    // The acquirer got a partial reversal (DE 95: 700 stays) and a full one.
    let db = dir.path().join("journal.db");
    let l = ledger_of(&sim, &db, &[&r], |l| {
        l.values().all(|e| e["reversed"] == true)
    })
    .await;
    let e = &l[&r];
    assert_eq!(e["reversals_applied"], 2, "{e}");
    balanced(&d, e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_cut_off_capture_expiry_and_refunds() {
    let (dir, sim, config) = started();
    let db = dir.path().join("journal.db");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let a = serve.addr;

    let auto = order(a, 1000, json!({})).await;
    let validated = order(
        a,
        2000,
        json!({"captureMode": "VALIDATION", "captureDay": 1}),
    )
    .await;
    let unvalidated = order(
        a,
        3000,
        json!({"captureMode": "VALIDATION", "captureDay": 1}),
    )
    .await;
    // captureDay 9: applied as 6, and the answer says so.
    let reference = unique("T");
    let mut body = dpan_order(&reference, 4000);
    body["captureDay"] = json!(9);
    let v = call(a, CARD_ORDER, body).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["captureDay"].as_u64()),
        (Some("00"), Some(6))
    );
    let late = reference;
    assert_eq!(data(a, &late).await["captureDay"], 6);

    assert_eq!(status(&data(a, &validated).await), ("TO_VALIDATE", 2000));
    // Validate part of it: the rest is released at the acquirer.
    let v = op(a, VALIDATE, &validated, 1500).await;
    assert_eq!(status(&v), ("TO_CAPTURE", 1500), "{v}");
    assert_eq!(
        op(a, VALIDATE, &validated, 1500).await["responseCode"],
        "24"
    );
    assert_eq!(op(a, VALIDATE, &auto, 1000).await["responseCode"], "24");
    assert_eq!(op(a, REFUND, &auto, 10).await["responseCode"], "24");

    // Three days later: the cut-offs missed while it was down run at start.
    assert!(serve.terminate(Duration::from_secs(20)).success());
    let serve = Serve::start(&config, &[("ACQSWITCH_CLOCK_OFFSET", "72h")]);
    serve.wait_ready().await;
    let a = serve.addr;
    let d = data(a, &auto).await;
    assert_eq!(status(&d), ("CAPTURED", 1000), "{d}");
    assert_eq!(d["operations"][0]["operationType"], "capture");
    assert_eq!(status(&data(a, &validated).await), ("CAPTURED", 1500));
    let d = data(a, &unvalidated).await;
    assert_eq!(d["transactionStatus"], "EXPIRED", "{d}");
    assert_eq!(
        op(a, VALIDATE, &unvalidated, 3000).await["responseCode"],
        "24"
    );
    assert_eq!(status(&data(a, &late).await), ("TO_CAPTURE", 4000));

    // Captured: no cancel; refunds, partial then above the original.
    assert_eq!(op(a, CANCEL, &auto, 100).await["responseCode"], "24");
    let v = op(a, REFUND, &auto, 400).await;
    assert_eq!(status(&v), ("CREDITED", 600), "{v}");
    let v = op(a, REFUND, &auto, 2000).await;
    assert_eq!(status(&v), ("CREDITED", 0), "{v}");
    let d = data(a, &auto).await;
    assert_eq!(
        (d["capturedAmount"].as_u64(), d["refundedAmount"].as_u64()),
        (Some(1000), Some(2400))
    );
    assert_eq!(d["operations"].as_array().unwrap().len(), 3, "{d}");

    // The acquirer's ledger balances with the journal, transaction by
    // transaction.
    let refs = [
        auto.as_str(),
        validated.as_str(),
        unvalidated.as_str(),
        late.as_str(),
    ];
    let l = ledger_of(&sim, &db, &refs, |l| {
        l[&auto]["refund_messages"].as_u64() >= Some(2)
            && l[&validated]["reversals_applied"].as_u64() >= Some(1)
            && l[&unvalidated]["reversals_applied"].as_u64() >= Some(1)
    })
    .await;
    for r in [&auto, &validated, &unvalidated, &late] {
        balanced(&data(a, r).await, &l[r.as_str()]);
    }
    // The expired authorization was reversed at the cut-off: the
    // cardholder's funds are not held until the issuer lets it lapse.
    assert_eq!(amount(&l[&unvalidated], "authorized_amount"), 0);

    // The merchant's logs, from the journal while the switch runs.
    let day = |offset_days: u64| {
        acqswitch::civil::iso8601(procs::now_ms() / 1000 + offset_days * 86_400)[..10].to_owned()
    };
    let export = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_acqswitch"))
            .args(["journal", "export", "--config", config.to_str().unwrap()])
            .args(["--from", &day(0), "--to", &day(4), "--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&export("json")).unwrap();
    let txs = json["transactions"].as_array().unwrap();
    let line = |r: &str| {
        txs.iter()
            .find(|t| t["transactionReference"] == r)
            .unwrap()
            .clone()
    };
    assert_eq!(line(&auto)["transactionStatus"], "CREDITED");
    assert_eq!(line(&auto)["refundedAmount"], 2400);
    assert_eq!(line(&auto)["paymentMeanDataProvider"], "GOOGLEPAY");
    assert_eq!(line(&unvalidated)["transactionStatus"], "EXPIRED");
    assert_eq!(line(&late)["transactionStatus"], "TO_CAPTURE");
    let ops = json["operations"].as_array().unwrap();
    let kinds = |r: &str| -> Vec<String> {
        ops.iter()
            .filter(|o| o["transactionReference"] == r)
            .map(|o| o["operationType"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kinds(&auto), ["capture", "refund", "refund"]);
    assert_eq!(kinds(&validated), ["validate", "capture"]);
    assert_eq!(kinds(&unvalidated), ["expire"]);
    let csv = export("csv");
    assert!(csv.starts_with("merchantId,transactionReference,transactionDateTime,amount,"));
    assert!(csv.contains("\n\nmerchantId,transactionReference,operationDateTime,operationType,"));
    assert!(csv.contains(&format!("{auto},")) && csv.contains("489537******3478"));
    assert!(!csv.contains(procs::DPAN) && !export("json").contains(procs::DPAN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pan_only_with_3ds_approved_and_refused() {
    let (_dir, sim, config) = started();
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let a = serve.addr;

    let check = |id: &str| json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(true, FPAN, id)});
    let v = call(a, CHECK, check(&unique("msg"))).await;
    let vault = v["paymentToken"].as_str().unwrap().to_owned();
    assert!(vault.starts_with("vlt_"), "{v}");

    let body = |reference: &str, card: &str, status: &str| {
        json!({
            "transactionReference": reference,
            "amount": 1500,
            "currencyCode": "978",
            "orderChannel": "INTERNET",
            "cardNumber": card,
            "panType": "TOKEN_PAN",
            "walletType": "GOOGLE_WALLET",
            "panEntryMode": "WALLET",
            "cardExpiryDate": "203012",
            "captureMode": "VALIDATION",
            "captureDay": 2,
            "authenticationResult": {
                "cavv": CAVV, "eci": "02", "threeDSVersion": "2.2.0",
                "dsTransactionId": "f25084f0-5b16-4c0a-ae5d-b24808a95e4b",
                "authenticationStatus": status,
            },
        })
    };
    let before = sim.ledger().await.len();

    // Not authenticated: refused here, nothing sent.
    let refused = unique("P");
    let v = call(a, VALIDATE_AND_ORDER, body(&refused, &vault, "N")).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("05"), Some("threeDSStatus")),
        "{v}"
    );
    // An unknown reference: 14.
    let v = call(
        a,
        VALIDATE_AND_ORDER,
        body(&unique("P"), "vlt_00000000000000000000000000000000", "Y"),
    )
    .await;
    assert_eq!(v["responseCode"], "14", "{v}");
    // A card number that is not a reference.
    let v = call(a, VALIDATE_AND_ORDER, body(&unique("P"), FPAN, "Y")).await;
    assert_eq!(v["errorFieldName"], "cardNumber", "{v}");
    // Without the status.
    let mut b = body(&unique("P"), &vault, "Y");
    b["authenticationResult"]
        .as_object_mut()
        .unwrap()
        .remove("authenticationStatus");
    let v = call(a, VALIDATE_AND_ORDER, b).await;
    assert_eq!(
        v["errorFieldName"], "authenticationResult.authenticationStatus",
        "{v}"
    );
    assert_eq!(sim.ledger().await.len(), before, "nothing was sent");

    // Authenticated: approved.
    let ok = unique("P");
    let v = call(a, VALIDATE_AND_ORDER, body(&ok, &vault, "Y")).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    assert_eq!(v["walletType"], "GOOGLE_WALLET");
    assert_eq!(v["panEntryMode"], "WALLET");
    assert_eq!(v["maskedPan"], "541333******0011");
    assert_eq!(sim.ledger().await.len(), before + 1);
    let d = data(a, &ok).await;
    assert_eq!(status(&d), ("TO_VALIDATE", 1500));
    assert_eq!(d["walletType"], "GOOGLE_WALLET");
    assert!(d.get("paymentMeanDataProvider").is_none(), "{d}");
    // The refused one left no transaction.
    let v = call(a, DATA, json!({"transactionReference": refused})).await;
    assert_eq!(v["responseCode"], "25");
    // Attempted (A) goes on too.
    let v = call(a, VALIDATE_AND_ORDER, body(&unique("P"), &vault, "A")).await;
    assert_eq!(v["responseCode"], "00", "{v}");
}

/// Operations on one transaction are serialized: twenty cancellations of
/// 100 at once on an authorization of 1000 (from clients on both shards)
/// leave exactly ten accepted, each seeing a different amount left (the
/// other ten find it cancelled), and
/// the acquirer gets the ten reversals in order (what stays going down to
/// 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operations_on_one_transaction_are_serialized() {
    let (dir, sim, config) = started();
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let a = serve.addr;
    let r = order(a, 1000, json!({})).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { op(a, CANCEL, &r, 100).await })
        })
        .collect();
    let mut left = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let v = t.await.unwrap();
        match v["responseCode"].as_str() {
            Some("00") => left.push(v["newAmount"].as_u64().unwrap()),
            // Nothing left: cancelled, no operation allowed.
            Some("24") => refused += 1,
            other => panic!("{other:?}: {v}"),
        }
    }
    left.sort_unstable();
    assert_eq!(left, (0..10).map(|i| i * 100).collect::<Vec<_>>());
    assert_eq!(refused, 10);
    let d = data(a, &r).await;
    assert_eq!(status(&d), ("CANCELLED", 0));
    let db = dir.path().join("journal.db");
    let l = ledger_of(&sim, &db, &[&r], |l| l[&r]["reversals_applied"] == 10).await;
    balanced(&d, &l[&r]);
}

/// A cancellation's reversal is durable with the cancel: queued while the
/// acquirer is down, the switch killed (SIGKILL) and restarted, it reaches
/// the acquirer once it is back, as the partial reversal it was (DE 95).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_survives_a_kill_while_the_acquirer_is_down() {
    let (dir, sim, config) = started();
    let db = dir.path().join("journal.db");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let r = order(serve.addr, 1000, json!({"captureDay": 2})).await;
    sim.admin("/down", json!({})).await;
    let v = op(serve.addr, CANCEL, &r, 400).await;
    assert_eq!(status(&v), ("TO_CAPTURE", 600), "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l = ledger_of(&sim, &db, &[&r], |_| true).await;
    assert_eq!(l[&r]["reversal_messages"], 0, "the acquirer is down");
    serve.kill9();

    sim.admin("/up", json!({})).await;
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let l = ledger_of(&sim, &db, &[&r], |l| l[&r]["reversals_applied"] == 1).await;
    assert_eq!(amount(&l[&r], "authorized_amount"), 600, "{}", l[&r]);
    assert_eq!(l[&r]["reversed"], false, "a partial reversal");
    balanced(&data(serve.addr, &r).await, &l[&r]);
}

/// A refused authorization and one that got no answer (99, reversed at the
/// acquirer) are REFUSED: no operation is allowed on them, and
/// getTransactionData tells the merchant the fate of the 99. A cancel on
/// a transaction to validate leaves it to validate, for less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_the_fate_of_a_99() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config_with(dir.path(), sim.addr, "300ms", "");
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let a = serve.addr;

    let refused = unique("T");
    let v = call(a, CARD_ORDER, dpan_order(&refused, 1005)).await;
    assert_eq!(v["responseCode"], "05", "{v}");
    sim.admin("/faults", json!({"no_response_every": 1})).await;
    let lost = unique("T");
    let v = call(a, CARD_ORDER, dpan_order(&lost, 1000)).await;
    assert_eq!(v["responseCode"], "99", "{v}");
    sim.admin("/faults", json!({})).await;
    for r in [&refused, &lost] {
        for path in [CANCEL, VALIDATE, REFUND] {
            assert_eq!(op(a, path, r, 100).await["responseCode"], "24", "{path}");
        }
    }
    let d = data(a, &refused).await;
    assert_eq!(
        (
            d["transactionStatus"].as_str(),
            d["authorisationResponseCode"].as_str()
        ),
        (Some("REFUSED"), Some("05"))
    );
    assert_eq!(d["reversalStatus"], "none");
    // The 99: approved at the acquirer, reversed there once it answers.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let d = data(a, &lost).await;
        assert_eq!(d["transactionStatus"], "REFUSED", "{d}");
        assert_eq!(d["authorisationResponseCode"], "99", "{d}");
        if d["reversalStatus"] == "acknowledged" {
            assert_eq!(d["currentAmount"], 0);
            break;
        }
        assert_eq!(d["reversalStatus"], "queued", "{d}");
        assert!(Instant::now() < until, "not reversed: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let v = order(
        a,
        2000,
        json!({"captureMode": "VALIDATION", "captureDay": 3}),
    )
    .await;
    let c = op(a, CANCEL, &v, 500).await;
    assert_eq!(status(&c), ("TO_VALIDATE", 1500), "{c}");
    let c = op(a, VALIDATE, &v, 1501).await;
    assert_eq!(c["errorFieldName"], "operationAmount", "{c}");
    assert_eq!(
        status(&op(a, VALIDATE, &v, 1500).await),
        ("TO_CAPTURE", 1500)
    );
}
