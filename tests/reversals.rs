//! Every 0100 written ends in its answer reaching the front-end or in one
//! acknowledged reversal, never both, never neither: `acqswitch sim` and
//! `acqswitch serve` each in their own process, one fault at a time, and
//! each test ends with the acquirer's ledger (`GET /ledger`) reconciled
//! with what the client was told.

mod procs;

use procs::unique;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use procs::{dpan_order, journal_rows, journal_saf, Client, Serve, Sim, CARD_ORDER};
use serde_json::{json, Value};

/// What the front-end was told, by reference.
type Told = HashMap<String, Value>;

/// `n` cardOrders of `amount` at once; what each was told (`None`: no
/// answer at all).
async fn orders(addr: std::net::SocketAddr, n: usize, amount: u64) -> Vec<(String, Option<Value>)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let reference = unique("R");
                let mut c = Client::connect(addr).await;
                let v = c.call(CARD_ORDER, dpan_order(&reference, amount)).await;
                (reference, v)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn told(seen: &[(String, Option<Value>)]) -> Told {
    seen.iter()
        .filter_map(|(r, v)| v.clone().map(|v| (r.clone(), v)))
        .collect()
}

/// The reconciliation, once the store-and-forward queue has drained:
/// every approval at the acquirer that the front-end was not told as
/// approved is reversed exactly once; none it was told is reversed.
/// Returns (approved at the acquirer, reversed).
async fn reconcile(sim: &Sim, db: &Path, told: &Told) -> (usize, usize) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = journal_rows(db);
        let reference_of: HashMap<(String, String), String> = rows
            .iter()
            .map(|(t, s, r, _)| ((t.clone(), s.clone()), r.clone()))
            .collect();
        let ledger = sim.ledger().await;
        let mut pending = Vec::new();
        let (mut approved, mut reversed) = (0, 0);
        for e in ledger.iter().filter(|e| e["response_code"] == "00") {
            approved += 1;
            let key = (
                e["terminal"].as_str().unwrap().to_owned(),
                e["stan"].as_str().unwrap().to_owned(),
            );
            let reference = reference_of
                .get(&key)
                .unwrap_or_else(|| panic!("approval {key:?} is not in the journal"));
            let told_approved = told
                .get(reference)
                .is_some_and(|v| v["responseCode"] == "00");
            let applied = e["reversals_applied"].as_u64().unwrap();
            if told_approved {
                assert_eq!(applied, 0, "{reference}: told approved, and reversed: {e}");
            } else {
                assert!(applied <= 1, "{reference}: reversed twice: {e}");
                if applied == 0 {
                    pending.push(reference.clone());
                } else {
                    reversed += 1;
                }
            }
        }
        if pending.is_empty() {
            return (approved, reversed);
        }
        assert!(
            Instant::now() < until,
            "approvals never told and not reversed: {pending:?}; queue: {:?}",
            journal_saf(db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    sim: Sim,
    serve: Serve,
}

async fn setup(sim_args: &[&str], timeout: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, sim_args);
    let config = procs::write_config_with(dir.path(), sim.addr, timeout, "");
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    Setup {
        db: dir.path().join("journal.db"),
        _dir: dir,
        sim,
        serve,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_then_late_approval_is_reversed_once() {
    // The acquirer approves, and answers after the switch gave up.
    let s = setup(&["--latency", "700ms"], "250ms").await;
    let seen = orders(s.serve.addr, 6, 1000).await;
    for (_, v) in &seen {
        assert_eq!(v.as_ref().unwrap()["responseCode"], "99");
    }
    // The acquirer is fast again (its answers to the reversals, too,
    // came after the timeout until now: they were repeated, 0401).
    s.sim.admin("/faults", json!({})).await;
    let (approved, reversed) = reconcile(&s.sim, &s.db, &told(&seen)).await;
    assert_eq!((approved, reversed), (6, 6));
    // The journal says so: timed out, reversal acknowledged (recorded
    // just after the acquirer's answer).
    let until = Instant::now() + Duration::from_secs(10);
    while journal_saf(&s.db).iter().any(|q| q.1 != "acknowledged") {
        assert!(Instant::now() < until, "{:?}", journal_saf(&s.db));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (tx, state, attempts, stan) in journal_saf(&s.db) {
        assert_eq!(state, "acknowledged", "tx {tx}");
        assert!(attempts >= 1 && stan.len() == 6);
    }
    let rows = journal_rows(&s.db);
    assert!(rows.iter().all(|r| r.3 == "timed_out"));
    // The late 0110s were logged as late, not lost.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        s.serve
            .out
            .lines()
            .iter()
            .any(|l| l.to_lowercase().contains("late")),
        "{:?}",
        s.serve.out.lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dropped_after_the_write_is_reversed() {
    let s = setup(&["--drop-after", "4", "--latency", "30ms"], "2s").await;
    let seen = orders(s.serve.addr, 24, 1000).await;
    let t = told(&seen);
    assert!(
        t.values().any(|v| v["responseCode"] == "99"),
        "no request caught by a drop"
    );
    let (approved, _) = reconcile(&s.sim, &s.db, &t).await;
    assert!(approved > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_duplicates_and_garbage_each_end_cleanly() {
    for fault in [
        ["--no-response-every", "3"],
        ["--duplicate-every", "2"],
        ["--garbage-every", "3"],
    ] {
        let s = setup(&fault, "300ms").await;
        let seen = orders(s.serve.addr, 12, 1000).await;
        let t = told(&seen);
        assert_eq!(t.len(), 12, "{fault:?}: every request answered");
        let (approved, _) = reconcile(&s.sim, &s.db, &t).await;
        let told_approved = t.values().filter(|v| v["responseCode"] == "00").count();
        assert!(approved >= told_approved, "{fault:?}");
        if fault[0] != "--duplicate-every" {
            // The requests without an answer were reversed (the acquirer
            // never approved them: its reversal finds no original).
            let saf = journal_saf(&s.db);
            assert!(!saf.is_empty(), "{fault:?}: nothing reversed");
            let until = Instant::now() + Duration::from_secs(20);
            while journal_saf(&s.db).iter().any(|q| q.1 != "acknowledged") {
                assert!(Instant::now() < until, "{fault:?}: queue never drained");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            assert!(
                journal_saf(&s.db).is_empty(),
                "a duplicate answer reversed something"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversals_wait_while_the_acquirer_is_down_then_drain() {
    let s = setup(&["--latency", "400ms"], "2s").await;
    let addr = s.serve.addr;
    let pending = tokio::spawn(orders(addr, 10, 1000));
    // Every order approved at the acquirer, answers still on their way...
    let until = Instant::now() + Duration::from_secs(10);
    while s.sim.ledger().await.len() < 10 {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... when the acquirer goes down.
    s.sim.admin("/down", json!({})).await;
    let seen = pending.await.unwrap();
    assert!(seen
        .iter()
        .all(|(_, v)| v.as_ref().unwrap()["responseCode"] == "99"));
    // While it is down the reversals wait in the journal.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let queued = journal_saf(&s.db);
    assert_eq!(queued.len(), 10);
    assert!(queued.iter().all(|q| q.1 == "queued"), "{queued:?}");
    assert!(s
        .sim
        .ledger()
        .await
        .iter()
        .all(|e| e["reversal_messages"] == 0));
    // Back up: the queue drains, each reversed once.
    s.sim.admin("/up", json!({})).await;
    let (approved, reversed) = reconcile(&s.sim, &s.db, &told(&seen)).await;
    assert_eq!((approved, reversed), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_restart_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let sim = Sim::start(None, &["--latency", "2ms..30ms"]);
    let config = procs::write_config_with(dir.path(), sim.addr, "2s", "");
    let mut serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let addr = serve.addr;
    let load = tokio::spawn(async move {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let Some(mut c) = Client::try_connect(addr).await else {
                        return seen;
                    };
                    for i in 0..10_000u64 {
                        let reference = unique("K");
                        let amount = if i % 4 == 3 { 1005 } else { 1000 };
                        let v = c.call(CARD_ORDER, dpan_order(&reference, amount)).await;
                        let gone = v.is_none();
                        seen.push((reference, amount, v));
                        if gone {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let until = Instant::now() + Duration::from_secs(20);
    while sim.ledger().await.len() < 400 {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill9();
    let seen = load.await.unwrap();
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    // The front-end learns the fate of what it was not told: a retry with
    // the same content.
    let mut c = Client::connect(serve.addr).await;
    let mut t = Told::new();
    for (reference, amount, v) in seen {
        let v = match v {
            Some(v) => v,
            None => c
                .call(CARD_ORDER, dpan_order(&reference, amount))
                .await
                .unwrap(),
        };
        t.insert(reference, v);
    }
    let (approved, reversed) = reconcile(&sim, &db, &t).await;
    assert!(approved >= 200, "{approved}");
    eprintln!("approved {approved}, reversed {reversed}");
}

/// An approval whose outcome the journal does not take (injected: the
/// first approval's commit taken as failed, as a full disk would) is
/// answered 99, recorded as told once the journal takes it again, and
/// reversed at the acquirer; a retry of the order gets the same 99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_the_journal_did_not_take_is_reversed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let serve = Serve::start(
        &config,
        &[("ACQSWITCH_FAULT", "first-approval-not-recorded")],
    );
    serve.wait_ready().await;
    let reference = unique("NR");
    let mut c = Client::connect(serve.addr).await;
    let v = c
        .call(CARD_ORDER, dpan_order(&reference, 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "99", "{v}");
    let db = dir.path().join("journal.db");
    let mut told = Told::new();
    told.insert(reference.clone(), v);
    // The ledger: approved, reversed once, not told.
    let (approved, reversed) = reconcile(&sim, &db, &told).await;
    assert_eq!((approved, reversed), (1, 1));
    let rows = journal_rows(&db);
    assert_eq!(rows[0].3, "timed_out", "{rows:?}");
    // The retry is answered as the first time.
    let again = c
        .call(CARD_ORDER, dpan_order(&reference, 1000))
        .await
        .unwrap();
    assert_eq!(again["responseCode"], "99", "{again}");
    // Later approvals are recorded as usual.
    let v = c
        .call(CARD_ORDER, dpan_order(&unique("NR"), 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    assert!(
        serve
            .out
            .lines()
            .iter()
            .any(|l| l.contains("outcome not recorded")),
        "{:?}",
        serve.out.lines()
    );
}
