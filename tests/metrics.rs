//! `GET /metrics` after an end-to-end run: `acqswitch sim` and `acqswitch
//! serve` in their own processes, a known mix of approvals, refusals, a
//! timeout (reversed), token failures and a bad seal; every counter and
//! histogram the run touched is read back with its value.

mod procs;

use procs::unique;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use acqswitch::card::Secret;
use acqswitch::load_api::{seal_request, ApiClient};
use procs::{dpan_order, token, Client, Serve, Sim, CARD_ORDER, CHECK, DPAN, MERCHANT};
use serde_json::json;

/// One sample of the text format: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
}

/// The samples of a scrape (comments skipped).
fn parse(text: &str) -> Vec<(Sample, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("label=value");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.push((
            Sample {
                name: name.to_owned(),
                labels,
            },
            value,
        ));
    }
    out
}

struct Scrape(Vec<(Sample, f64)>);

impl Scrape {
    /// The sum over the samples named `name` whose labels include `with`.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| s.name == name)
            .filter(|(s, _)| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn samples(&self, name: &str) -> Vec<&(Sample, f64)> {
        self.0.iter().filter(|(s, _)| s.name == name).collect()
    }
}

async fn scrape(serve: &Serve) -> Scrape {
    let mut c = ApiClient::connect(serve.addr).await.unwrap();
    let (status, body) = c
        .call("GET", "/metrics", bytes::Bytes::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    Scrape(parse(std::str::from_utf8(&body).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_and_histograms_of_an_end_to_end_run() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(None, &[]);
    let config = procs::write_config_with(dir.path(), sim.addr, "300ms", "");
    let serve = Serve::start(&config, &[]);
    serve.wait_ready().await;
    let mut c = Client::connect(serve.addr).await;

    // 4 approvals (cents 00), 2 refusals (cents 05).
    let mut approved = Vec::new();
    for amount in [1000, 1000, 1000, 1000, 1005, 1005] {
        let reference = unique("M");
        let v = c
            .call(CARD_ORDER, dpan_order(&reference, amount))
            .await
            .unwrap();
        let want = if amount == 1005 { "05" } else { "00" };
        assert_eq!(v["responseCode"], want, "{v}");
        if want == "00" {
            approved.push(reference);
        }
    }
    // Operations: a partial cancel (a second store-and-forward message),
    // and a validate its status does not allow (24).
    let op = |path: &str, r: &str| {
        (
            path.to_owned(),
            json!({"transactionReference": r, "operationAmount": 100}),
        )
    };
    for (path, body) in [
        op("/rs-services/v2/cashManagement/cancel", &approved[0]),
        op("/rs-services/v2/cashManagement/validate", &approved[1]),
    ] {
        c.call(&path, body).await.unwrap();
    }
    // A refusal before the acquirer (Luhn): no authorization counted.
    let mut bad = dpan_order(&unique("M"), 1000);
    bad["cardNumber"] = json!("4895370012003479");
    let v = c.call(CARD_ORDER, bad).await.unwrap();
    assert_eq!(v["responseCode"], "12");
    // One order the acquirer never answers: 99, and a reversal that is
    // acknowledged once the acquirer answers again.
    sim.admin("/faults", json!({"no_response_every": 1})).await;
    let v = c
        .call(CARD_ORDER, dpan_order(&unique("M"), 1000))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "99", "{v}");
    sim.admin("/faults", json!({})).await;

    // Tokens: one good, the same again (replayed), one not JSON, one whose
    // card fails the Luhn check.
    let good = token(false, DPAN, &unique("msg"));
    let check = |t: &str| json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": t});
    assert_eq!(
        c.call(CHECK, check(&good)).await.unwrap()["responseCode"],
        "00"
    );
    assert_eq!(
        c.call(CHECK, check(&good)).await.unwrap()["responseCode"],
        "12"
    );
    assert_eq!(
        c.call(CHECK, check("{x")).await.unwrap()["responseCode"],
        "30"
    );
    let luhn = token(true, "4111111111111112", &unique("msg"));
    assert_eq!(
        c.call(CHECK, check(&luhn)).await.unwrap()["responseCode"],
        "12"
    );
    // A seal made with the wrong secret.
    let mut raw = ApiClient::connect(serve.addr).await.unwrap();
    let mut body = dpan_order(&unique("M"), 1000);
    body["merchantId"] = json!(MERCHANT);
    body["interfaceVersion"] = json!("IR_WS_2.55");
    let (_, v) = raw
        .post_json(CARD_ORDER, &seal_request(body, 1, &Secret::new("wrong")))
        .await
        .unwrap();
    assert_eq!(v["responseCode"], "34");

    // The reversal is acknowledged in the background: wait for it.
    let until = Instant::now() + Duration::from_secs(15);
    let m = loop {
        let m = scrape(&serve).await;
        if m.value("acqswitch_reversals_acknowledged_total", &[]) >= 2.0 {
            break m;
        }
        assert!(Instant::now() < until, "reversal not acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let auth = |code| {
        m.value(
            "acqswitch_authorizations_total",
            &[("acquirer", "main"), ("response_code", code)],
        )
    };
    assert_eq!((auth("00"), auth("05"), auth("99")), (4.0, 2.0, 1.0));
    assert_eq!(m.value("acqswitch_authorizations_total", &[]), 7.0);
    // Every cardOrder request is timed, refusals included: 6 + 1 + 1 + 1.
    assert_eq!(
        m.value("acqswitch_card_order_duration_seconds_count", &[]),
        9.0
    );
    let slowest = m.value(
        "acqswitch_card_order_duration_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(slowest, 9.0);
    // The one that timed out took the request timeout (300 ms) at least.
    assert!(
        m.value(
            "acqswitch_card_order_duration_seconds_bucket",
            &[("le", "0.2")]
        ) <= 8.0,
        "{:?}",
        m.samples("acqswitch_card_order_duration_seconds_bucket")
    );
    // Acquirer latency: the 6 answered 0100s.
    assert_eq!(
        m.value(
            "acqswitch_acquirer_response_duration_seconds_count",
            &[("acquirer", "main")]
        ),
        6.0
    );
    assert_eq!(m.value("acqswitch_http_requests_in_flight", &[]), 0.0);
    // Links: 2 for the acquirer in all (whatever the shard count), ready,
    // labelled with the endpoint; each connected once.
    let links = m.samples("acqswitch_link_ready");
    assert_eq!(links.len(), 2, "{links:?}");
    let endpoint = sim.addr.to_string();
    for (s, v) in &links {
        assert_eq!(*v, 1.0);
        assert_eq!(s.labels["acquirer"], "main");
        assert_eq!(s.labels["endpoint"], endpoint);
    }
    assert_eq!(
        m.value("acqswitch_link_connects_total", &[("acquirer", "main")]),
        2.0
    );
    assert!(m.value("acqswitch_link_timeouts_total", &[("acquirer", "main")]) >= 1.0);
    assert_eq!(
        m.value("acqswitch_link_unmatched_total", &[("kind", "unknown")]),
        0.0
    );
    // Journal: every commit timed; a batch per commit at least, the
    // orders' (sent, outcome) among them.
    let commits = m.value("acqswitch_journal_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0);
    assert_eq!(
        m.value("acqswitch_journal_commit_batches_count", &[]),
        commits
    );
    assert!(m.value("acqswitch_journal_commit_batches_sum", &[]) >= 2.0 * 7.0);
    assert_eq!(m.value("acqswitch_journal_commit_failures_total", &[]), 0.0);
    // Store and forward: one reversal, acknowledged, the queue empty.
    // The timed-out order's reversal and the cancellation's.
    assert_eq!(m.value("acqswitch_reversals_queued_total", &[]), 2.0);
    assert!(m.value("acqswitch_reversals_sent_total", &[]) >= 2.0);
    assert_eq!(m.value("acqswitch_reversals_acknowledged_total", &[]), 2.0);
    for kind in ["reversal", "cancel"] {
        let of = |name| m.value(name, &[("kind", kind)]);
        assert_eq!(of("acqswitch_reversals_queued_total"), 1.0, "{kind}");
        assert_eq!(of("acqswitch_reversals_acknowledged_total"), 1.0, "{kind}");
    }
    assert_eq!(
        m.value("acqswitch_reversals_queued_total", &[("kind", "refund")]),
        0.0
    );
    let ops = |kind, code| {
        m.value(
            "acqswitch_operations_total",
            &[("kind", kind), ("response_code", code)],
        )
    };
    assert_eq!(ops("cancel", "00"), 1.0);
    assert_eq!(ops("validate", "24"), 1.0);
    assert_eq!(m.value("acqswitch_operations_total", &[]), 2.0);
    // The cut-off ran at start (nothing due yet).
    assert_eq!(
        m.samples("acqswitch_cut_off_transactions_total").len(),
        2,
        "captured and expired"
    );
    assert_eq!(m.value("acqswitch_cut_off_transactions_total", &[]), 0.0);
    assert_eq!(m.value("acqswitch_reversals_expired_total", &[]), 0.0);
    assert_eq!(m.value("acqswitch_store_and_forward_depth", &[]), 0.0);
    // Token failures by reason, seal failures.
    let token_failure = |r| m.value("acqswitch_token_failures_total", &[("reason", r)]);
    assert_eq!(
        (
            token_failure("replayed"),
            token_failure("json"),
            token_failure("luhn")
        ),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(m.value("acqswitch_token_failures_total", &[]), 3.0);
    assert_eq!(m.value("acqswitch_seal_failures_total", &[]), 1.0);
}
