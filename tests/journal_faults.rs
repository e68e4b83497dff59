//! The journal under faults, on real processes: `acqswitch sim` and
//! `acqswitch serve` each in their own process on loopback; SIGKILL under
//! load and a restart on the same journal; a crash between the journal
//! write and the socket write (a fault hook, not a sleep); SIGTERM with
//! requests in flight; the retry rule, case by case; and the journal file
//! scanned for card data in clear.

mod procs;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use procs::{
    dpan_order, journal_rows, token, vault_order, Client, Serve, Sim, CARD_ORDER, CAVV, CHECK,
    DPAN, FPAN, TAVV,
};
use serde_json::{json, Value};

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        procs::now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PAN_ONLY token checked: its vault reference.
async fn vault_reference(c: &mut Client) -> String {
    let v = c
        .call(
            CHECK,
            json!({"paymentMeanDataProvider": "GOOGLEPAY",
                   "paymentData": token(true, FPAN, &unique("vault"))}),
        )
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    v["paymentToken"].as_str().unwrap().to_owned()
}

/// What one load worker saw: (reference, amount, answer if any).
type Seen = Vec<(String, u64, Option<Value>)>;

/// `workers` connections sending cardOrders (approved and refused
/// amounts) until the switch goes away or `limit` passes.
async fn load(addr: std::net::SocketAddr, workers: usize, limit: Duration) -> Seen {
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            tokio::spawn(async move {
                let mut seen = Seen::new();
                let Some(mut c) = Client::try_connect(addr).await else {
                    return seen;
                };
                let until = Instant::now() + limit;
                let mut i = 0u64;
                while Instant::now() < until {
                    let reference = unique(&format!("L{w}n"));
                    let amount = if i % 5 == 4 { 1005 } else { 1000 };
                    i += 1;
                    let answer = c.call(CARD_ORDER, dpan_order(&reference, amount)).await;
                    let gone = answer.is_none();
                    seen.push((reference, amount, answer));
                    if gone {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Seen::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_restart_on_the_same_journal() {
    let dir = tempfile::tempdir().unwrap();
    // Answers take a few ms, so many requests are in flight at the kill.
    let sim = Sim::start(None, &["--latency", "2ms..20ms"]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let mut c = Client::connect(serve.addr).await;
    // Before the kill: a vault reference, and a Google Pay token used once.
    let vault = vault_reference(&mut c).await;
    let used_token = token(false, DPAN, &unique("used"));
    let v = c
        .call(
            CHECK,
            json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": used_token}),
        )
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");

    let addr = serve.addr;
    let loader = tokio::spawn(load(addr, 32, Duration::from_secs(20)));
    // Kill once the load is well under way.
    let until = Instant::now() + Duration::from_secs(20);
    while sim.ledger().await.len() < 300 {
        assert!(Instant::now() < until, "load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill9();
    let seen = loader.await.unwrap();
    let unanswered: Vec<&(String, u64, Option<Value>)> =
        seen.iter().filter(|(_, _, a)| a.is_none()).collect();
    assert!(
        !unanswered.is_empty(),
        "the kill caught no request in flight"
    );
    let before_restart = sim.ledger().await;

    // The restart, on the same journal.
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let rows = journal_rows(&dir.path().join("journal.db"));
    let by_stan: HashMap<(String, String), (String, String)> = rows
        .iter()
        .map(|(t, s, r, st)| ((t.clone(), s.clone()), (r.clone(), st.clone())))
        .collect();
    // Every authorization the acquirer received is in the journal, with a
    // state; none is left without one.
    for e in &before_restart {
        let key = (
            e["terminal"].as_str().unwrap().to_owned(),
            e["stan"].as_str().unwrap().to_owned(),
        );
        let (_, state) = by_stan
            .get(&key)
            .unwrap_or_else(|| panic!("the acquirer has {key:?}, the journal does not"));
        assert!(
            ["approved", "refused", "failed", "unknown", "timed_out"].contains(&state.as_str()),
            "{key:?}: {state}"
        );
    }
    assert!(
        rows.iter().all(|(_, _, _, st)| st != "sent"),
        "an open transaction survived recovery"
    );
    let unknown = rows.iter().filter(|(_, _, _, st)| st == "unknown").count();
    eprintln!(
        "sent {}, unanswered at the kill {}, acquirer had {}, journal rows {}, unknown {}",
        seen.len(),
        unanswered.len(),
        before_restart.len(),
        rows.len(),
        unknown
    );
    assert!(
        serve
            .out
            .lines()
            .iter()
            .any(|l| l.contains("marked unknown"))
            || unknown == 0,
        "{:?}",
        serve.out.lines()
    );

    // Every reference again, same content: answered ones get their answer
    // back; no reference is authorized twice.
    let mut c = Client::connect(serve.addr).await;
    for (reference, amount, answer) in &seen {
        let again = c
            .call(CARD_ORDER, dpan_order(reference, *amount))
            .await
            .unwrap();
        if let Some(first) = answer {
            assert_eq!(
                &again, first,
                "a retry after the restart is answered the same"
            );
        }
    }
    let after = sim.ledger().await;
    let mut approved_per_reference: HashMap<String, usize> = HashMap::new();
    let rows = journal_rows(&dir.path().join("journal.db"));
    let reference_of: HashMap<(String, String), String> = rows
        .iter()
        .map(|(t, s, r, _)| ((t.clone(), s.clone()), r.clone()))
        .collect();
    for e in after.iter().filter(|e| e["response_code"] == "00") {
        let key = (
            e["terminal"].as_str().unwrap().to_owned(),
            e["stan"].as_str().unwrap().to_owned(),
        );
        let reference = reference_of.get(&key).expect("every approval is journaled");
        *approved_per_reference.entry(reference.clone()).or_default() += 1;
    }
    assert!(
        approved_per_reference.values().all(|n| *n == 1),
        "a reference was authorized twice"
    );
    // No STAN was given twice: the acquirer's entries (keyed by terminal
    // and STAN) are as many as the authorizations it counted.
    let counts = sim.counts().await;
    let authorizations = counts["approved"].as_u64().unwrap()
        + counts["refused"].as_u64().unwrap()
        + counts["failed"].as_u64().unwrap();
    assert_eq!(after.len() as u64, authorizations, "a STAN was reused");
    let stans: HashSet<_> = after.iter().map(|e| e["stan"].clone()).collect();
    assert_eq!(stans.len(), after.len());

    // The token seen before the kill is refused after it.
    let v = c
        .call(
            CHECK,
            json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": used_token}),
        )
        .await
        .unwrap();
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("12"), Some("paymentData"))
    );
    // The vault reference handed out before the kill still works.
    let v = c
        .call(CARD_ORDER, vault_order(&unique("V"), &vault, 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_journal_and_the_socket_leaves_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let mut serve = Serve::start(
        &config,
        &[("ACQSWITCH_FAULT", "crash-after-journal-before-send")],
    );
    serve.wait_ready().await;
    let reference = unique("F");
    let mut c = Client::connect(serve.addr).await;
    // The process aborts after the sent record is durable: no answer.
    assert!(c
        .call(CARD_ORDER, dpan_order(&reference, 1000))
        .await
        .is_none());
    let status = serve.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(serve
        .out
        .lines()
        .iter()
        .any(|l| l.contains("aborting after the journal write")));
    // Nothing reached the acquirer...
    assert!(sim.ledger().await.is_empty());
    // ... and the journal has the record.
    let rows = journal_rows(&dir.path().join("journal.db"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, reference);
    assert_eq!(rows[0].3, "sent");
    // After a restart it is unknown, and a retry is told so (99), never
    // sent again.
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    assert_eq!(journal_rows(&dir.path().join("journal.db"))[0].3, "unknown");
    let mut c = Client::connect(serve.addr).await;
    let v = c
        .call(CARD_ORDER, dpan_order(&reference, 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "99", "{v}");
    assert!(sim.ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &["--latency", "400ms"]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let addr = serve.addr;
    let calls: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                c.call(CARD_ORDER, dpan_order(&unique("T"), 1000)).await
            })
        })
        .collect();
    // Every request is at the acquirer (answers take 400 ms).
    let until = Instant::now() + Duration::from_secs(10);
    while sim.ledger().await.len() < 40 {
        assert!(
            Instant::now() < until,
            "requests never reached the acquirer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = serve.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}: {:?}", serve.out.lines());
    for c in calls {
        let v = c.await.unwrap().expect("answered before the exit");
        assert_eq!(v["responseCode"], "00", "{v}");
    }
    let rows = journal_rows(&dir.path().join("journal.db"));
    assert_eq!(rows.iter().filter(|r| r.3 == "approved").count(), 40);
    // The links signed off... and SIGHUP does not kill: checked on a new
    // process.
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &serve_pid(&serve)])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = Client::connect(serve.addr).await;
    let v = c
        .call(CARD_ORDER, dpan_order(&unique("H"), 1000))
        .await
        .expect("still serving after SIGHUP");
    assert_eq!(v["responseCode"], "00");
    assert!(serve.terminate(Duration::from_secs(15)).success());
}

fn serve_pid(s: &Serve) -> String {
    s.pid().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_rule_case_by_case() {
    let dir = tempfile::tempdir().unwrap();
    // The acquirer's port, reserved; nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let acquirer = port.local_addr().unwrap();
    drop(port);
    let config = procs::write_config(dir.path(), acquirer, "");
    let serve = Serve::start(&config, &[]);
    let mut c = Client::connect(serve.addr).await;

    // Never sent (no link up): 99, and the reference is free again.
    let never = unique("N");
    let v = c.call(CARD_ORDER, dpan_order(&never, 1000)).await.unwrap();
    assert_eq!(v["responseCode"], "99", "{v}");
    let sim = Sim::start(Some(acquirer), &["--latency", "300ms"]);
    serve.wait_ready().await;
    let v = c.call(CARD_ORDER, dpan_order(&never, 1000)).await.unwrap();
    assert_eq!(v["responseCode"], "00", "the retry went through: {v}");
    assert_eq!(sim.ledger().await.len(), 1);

    // After the answer, the same content: the same answer, not sent again.
    let again = c.call(CARD_ORDER, dpan_order(&never, 1000)).await.unwrap();
    assert_eq!(again, v);
    // Other content on the same reference: 94.
    let other = c.call(CARD_ORDER, dpan_order(&never, 2000)).await.unwrap();
    assert_eq!(other["responseCode"], "94", "{other}");
    // While the first is in flight: 94, whatever the content.
    let busy = unique("B");
    let addr = serve.addr;
    let first = {
        let busy = busy.clone();
        tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.call(CARD_ORDER, dpan_order(&busy, 1000)).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v = c.call(CARD_ORDER, dpan_order(&busy, 1000)).await.unwrap();
    assert_eq!(v["responseCode"], "94", "in flight: {v}");
    assert_eq!(first.await.unwrap()["responseCode"], "00");
    // A refusal is an answer like any other: replayed.
    let refused = unique("R");
    let r1 = c
        .call(CARD_ORDER, dpan_order(&refused, 1005))
        .await
        .unwrap();
    assert_eq!(r1["responseCode"], "05");
    let r2 = c
        .call(CARD_ORDER, dpan_order(&refused, 1005))
        .await
        .unwrap();
    assert_eq!(r1, r2);
    // Only the first of each reached the acquirer.
    assert_eq!(sim.ledger().await.len(), 3);
}

/// Reads every file of the journal (database, WAL) as bytes.
fn journal_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("journal.db") {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_holds_no_card_number_or_cryptogram_in_clear() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let mut c = Client::connect(serve.addr).await;
    for amount in [1000, 1005, 1099] {
        let v = c
            .call(CARD_ORDER, dpan_order(&unique("P"), amount))
            .await
            .unwrap();
        assert!(v["responseCode"].is_string());
        let vault = vault_reference(&mut c).await;
        c.call(CARD_ORDER, vault_order(&unique("Q"), &vault, amount))
            .await
            .unwrap();
    }
    // Looked at while running (WAL not yet checkpointed) and after a stop.
    let mut snapshots = vec![journal_bytes(dir.path())];
    assert!(serve.terminate(Duration::from_secs(15)).success());
    snapshots.push(journal_bytes(dir.path()));
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets: Vec<Vec<u8>> = vec![DPAN.into(), FPAN.into(), TAVV.into(), CAVV.into()];
    for c in [TAVV, CAVV] {
        let raw = b64.decode(c).unwrap();
        secrets.push(hex::encode(&raw).into_bytes());
        secrets.push(hex::encode_upper(&raw).into_bytes());
        secrets.push(raw);
    }
    for bytes in &snapshots {
        assert!(bytes.len() > 4096, "the journal has content");
        for s in &secrets {
            assert!(!contains(bytes, s), "card data in clear in the journal");
        }
        // The masked PAN is there (first 6 / last 4 only).
        assert!(contains(bytes, b"489537******3478"));
    }
}
