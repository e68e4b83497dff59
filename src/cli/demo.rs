//! `acqswitch demo`: the whole switch on loopback, no setup. Starts the
//! acquirer simulator and the switch (embedded default configuration),
//! makes Google Pay test tokens, and runs paymentDataProviderCheck then
//! cardOrder over HTTP for approved (.00), refused (.05) and technical
//! failure (.99) amounts in CRYPTOGRAM_3DS and PAN_ONLY modes; prints a
//! table with masked card data, the masked 0100 the simulator decoded, then
//! a short load run through the API.
//!
//! Nothing printed carries a full PAN, DPAN or cryptogram.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::card::Secret;
use crate::config::Config;
use crate::front::{PATH_CARD_ORDER, PATH_CHECK};
use crate::load::Progress;
use crate::load_api::{seal_request, ApiClient, ApiLoadConfig};
use crate::switch::windows::VAULT_PREFIX;
use crate::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};

/// Requests in the closing load run (bounded in time as well).
const LOAD_REQUESTS: u64 = 20_000;

pub fn run() -> ExitCode {
    let rt = match super::sim::runtime(2) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(demo()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A journal folder of the demo's own, removed at the end.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn demo() -> Result<(), String> {
    let mut cfg = Config::embedded_default().map_err(s)?;
    cfg.server.listen = "127.0.0.1:0".into();
    let data = TempDir(std::env::temp_dir().join(format!(
        // Hex: a long run of digits in a path reads like a card number to
        // log scanners.
        "acqswitch-demo-{}-{:x}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )));
    cfg.journal.path = data.0.join("journal.db");
    if let Some(sim) = cfg.simulator.as_mut() {
        // To show the 0100 the simulator decoded.
        sim.record = 16;
    }
    let (merchant, version, secret) = cfg
        .demo_merchant()
        .map(|(m, v, k)| (m.to_owned(), v, Secret::new(k)))
        .ok_or("no demo merchant")?;
    let running = crate::system::start(cfg).await.map_err(s)?;
    tokio::time::timeout(Duration::from_secs(10), running.wait_ready())
        .await
        .map_err(|_| "acquirer links not ready within 10 s")?;
    let sim = running.simulator().ok_or("no simulator")?;
    println!(
        "acqswitch demo: switch on http://{}, acquirer simulator (cb2a) on {}, journal {}",
        running.addr(),
        sim.addr(),
        running.journal_location()
    );
    println!("merchant {merchant}, Google Pay test keys (ECv2), simulator rules: cents .00 approve, .05 refuse, .99 technical failure\n");

    let sender = testkeys::sender(ProtocolVersion::EcV2).map_err(s)?;
    let mut rng = StdRng::from_entropy();
    let mut client = ApiClient::connect(running.addr()).await.map_err(s)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<15} {:>6} | {:<5} {:<17} {:<9} | {:<4} {:<4} {:<6} meaning",
        "mode", "amount", "check", "maskedPan", "token", "rc", "acq", "authId"
    );
    let _ = writeln!(out, "{}", "-".repeat(96));
    let mut last_0100 = None;
    let mut approved_reference = None;
    for (mode, pan) in [
        ("CRYPTOGRAM_3DS", "4895370012003478"),
        ("PAN_ONLY", "5413330089020011"),
    ] {
        for (amount, meaning) in [
            (1000u64, "approved"),
            (1005, "refused"),
            (1099, "technical failure"),
        ] {
            let pan = Pan::new(pan).ok_or("test PAN")?;
            let details = if mode == "PAN_ONLY" {
                PaymentMethodDetails::pan_only(pan, 12, 2030)
            } else {
                PaymentMethodDetails::cryptogram_3ds(
                    pan,
                    12,
                    2030,
                    Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA=")
                        .expect("test cryptogram"),
                    Some("05".into()),
                )
            };
            let payment = DecryptedPayment::card(
                format!("demo-{now_ms}-{mode}-{amount}"),
                now_ms + 3_600_000,
                details,
            );
            let token = sender.seal_payment(&payment, &mut rng).map_err(s)?;
            let check = seal_request(
                json!({"merchantId": merchant, "interfaceVersion": "IR_WS_2.55",
                       "paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token}),
                version,
                &secret,
            );
            let (_, c) = client.post_json(PATH_CHECK, &check).await.map_err(s)?;
            let token_shown = match c["paymentToken"].as_str() {
                Some(t) if t.starts_with(VAULT_PREFIX) => format!("{}..", t.get(..7).unwrap_or(t)),
                Some(_) => "DPAN".to_owned(),
                None => "-".to_owned(),
            };
            let reference = format!("DEMO{now_ms}{}{amount}", &mode[..3]);
            let mut order = json!({
                "merchantId": merchant, "interfaceVersion": "IR_WS_2.55",
                "transactionReference": reference,
                "amount": amount, "currencyCode": "978", "orderChannel": "INTERNET",
                "paymentMeanDataProvider": "GOOGLEPAY",
                "paymentToken": c["paymentToken"], "cardExpiryDate": c["cardExpiryDate"],
            });
            if mode == "PAN_ONLY" {
                // 3-D Secure (simulated here) supplies the CAVV and ECI (02:
                // Mastercard, fully authenticated).
                order["authenticationResult"] = json!({"holderAuthentProgram": "3DS",
                    "threeDS": {"eci": "02", "cavv": "AAABBEg0VhI0VniQEjRWAAAAAAA="}});
            } else {
                order["authenticationResult"] = c["authenticationResult"].clone();
            }
            let order = seal_request(order, version, &secret);
            let (_, r) = client.post_json(PATH_CARD_ORDER, &order).await.map_err(s)?;
            let f = |v: &Value, k: &str| v[k].as_str().unwrap_or("-").to_owned();
            let _ = writeln!(
                out,
                "{:<15} {:>3}.{:02} | {:<5} {:<17} {:<9} | {:<4} {:<4} {:<6} {}",
                mode,
                amount / 100,
                amount % 100,
                f(&c, "responseCode"),
                f(&c, "maskedPan"),
                token_shown,
                f(&r, "responseCode"),
                f(&r, "acquirerResponseCode"),
                f(&r, "authorisationId"),
                meaning
            );
            if mode == "CRYPTOGRAM_3DS" && amount == 1000 {
                approved_reference = Some(reference.clone());
                last_0100 = sim
                    .records()
                    .into_iter()
                    .rev()
                    .find(|m| m.mti() == crate::iso8583::Mti::AUTHORIZATION_REQUEST);
            }
        }
    }
    print!("{out}");
    if let (Some(msg), Some(a)) = (&last_0100, running.switch().acquirer("cb2a")) {
        println!("\nthe approved CRYPTOGRAM_3DS 0100 as the simulator decoded it (masked):");
        println!("  {}", a.spec.display(msg));
    }
    println!("\nresponse codes: 00 approved; 05 refused; 90 technical, retry later (acquirer 90-98); 99 unreachable/timeout");

    if let Some(reference) = approved_reference {
        after_the_authorization(
            &running,
            &mut client,
            &merchant,
            version,
            &secret,
            &reference,
        )
        .await?;
    }

    println!("\nload: {LOAD_REQUESTS} cardOrder requests through the HTTP API (64 connections, at most 5 s)");
    let progress = Arc::new(Progress::default());
    let bar = ProgressBar::new(LOAD_REQUESTS);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec}")
            .map_err(s)?,
    );
    let ticker = {
        let (bar, progress) = (bar.clone(), Arc::clone(&progress));
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let load = ApiLoadConfig {
        addr: running.addr(),
        requests: LOAD_REQUESTS,
        concurrency: 64,
        workers: 1,
        max_duration: Duration::from_secs(5),
        merchant_id: merchant.clone(),
        key_version: version,
        secret,
        amount: 1000,
    };
    let result = crate::load_api::run(&load, progress).await;
    ticker.abort();
    bar.finish_and_clear();
    let (report, _) = result.map_err(s)?;
    println!(
        "{} requests, {} approved, {} errors in {:.2} s: {} per second; latency p50 {} us, p99 {} us, p99.9 {} us",
        report.requests,
        report.ok,
        report.errors,
        report.seconds,
        report.throughput_per_s,
        report.p50_us,
        report.p99_us,
        report.p999_us
    );
    println!("(demo: switch, simulator and load share one process; `acqswitch serve` + `acqswitch load --api` measure them apart)");
    let j = running.journal().stats();
    println!(
        "journal: {} group commits for {} batches (mean {:.1} per commit)",
        j.commits,
        j.batches,
        j.mean_group()
    );
    running.shutdown().await;
    drop(data);
    Ok(())
}

/// Cash management on the approved CRYPTOGRAM_3DS order: a partial
/// cancel, the cut-off (run here with the clock three days on), a refund,
/// and the transaction's history.
async fn after_the_authorization(
    running: &crate::system::Running,
    client: &mut ApiClient,
    merchant: &str,
    version: u32,
    secret: &Secret,
    reference: &str,
) -> Result<(), String> {
    use crate::front::{PATH_CANCEL, PATH_REFUND, PATH_TRANSACTION_DATA};
    println!("\nafter the authorization ({reference}):");
    let sealed = |body: Value| {
        let mut body = body;
        body["merchantId"] = json!(merchant);
        body["interfaceVersion"] = json!("IR_WS_2.55");
        body["transactionReference"] = json!(reference);
        seal_request(body, version, secret)
    };
    let line = |what: &str, v: &Value| {
        let status = v["newStatus"].as_str().or(v["transactionStatus"].as_str());
        let amount = v["newAmount"].as_u64().or(v["currentAmount"].as_u64());
        println!(
            "  {what:<44} responseCode {} -> {} {}",
            v["responseCode"].as_str().unwrap_or("-"),
            status.unwrap_or("-"),
            amount.map_or("-".to_owned(), |a| format!("{}.{:02}", a / 100, a % 100))
        );
    };
    let v = client
        .post_json(PATH_CANCEL, &sealed(json!({"operationAmount": 250})))
        .await
        .map_err(s)?
        .1;
    line("cancel 2.50 (a partial reversal, DE 95)", &v);
    let v = client
        .post_json(PATH_REFUND, &sealed(json!({"operationAmount": 300})))
        .await
        .map_err(s)?
        .1;
    line("refund 3.00 before capture (refused)", &v);
    let later = running.switch().now() + std::time::Duration::from_secs(3 * 86_400);
    let cut = running.switch().run_cut_off(later).await.map_err(s)?;
    println!(
        "  the cut-off, three days on: {} captured, {} expired",
        cut.captured, cut.expired
    );
    let v = client
        .post_json(PATH_REFUND, &sealed(json!({"operationAmount": 300})))
        .await
        .map_err(s)?
        .1;
    line("refund 3.00 (a 0220 advice)", &v);
    let v = client
        .post_json(PATH_TRANSACTION_DATA, &sealed(json!({})))
        .await
        .map_err(s)?
        .1;
    line("getTransactionData", &v);
    for op in v["operations"].as_array().into_iter().flatten() {
        println!(
            "    {:<8} {:>6} -> {}",
            op["operationType"].as_str().unwrap_or("-"),
            op["operationAmount"].as_u64().unwrap_or(0),
            op["newStatus"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}
