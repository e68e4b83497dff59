//! `acqswitch serve [--config FILE]`: runs the switch. Without `--config`,
//! the embedded default: an in-process acquirer simulator, the demo
//! merchant and the Google Pay test keys, the journal in `acqswitch-data/`;
//! it prints where it listens, where the journal is, and ready-to-paste,
//! correctly sealed requests.
//!
//! Signals: SIGTERM and SIGINT stop accepting, answer every request in
//! flight, close the links (sign-off) and the journal, and exit 0. SIGHUP
//! is logged and otherwise ignored.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::card::Secret;
use crate::civil::unix_ms;
use crate::config::Config;
use crate::front::{PATH_CARD_ORDER, PATH_CHECK};
use crate::load_api::seal_request;
use crate::switch::TokenMode;
use crate::system::{self, Running};
use crate::wallet::googlepay::{
    testkeys, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); default: the embedded demo configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address, overriding the configuration's `server.listen`.
    #[arg(long)]
    pub listen: Option<String>,
}

pub fn run(args: ServeArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when the process is asked to stop (SIGTERM, SIGINT); SIGHUP is
/// logged and ignored.
async fn stop_signal() -> Result<&'static str, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| format!("cannot handle signals: {e}");
        let mut term = signal(SignalKind::terminate()).map_err(err)?;
        let mut int = signal(SignalKind::interrupt()).map_err(err)?;
        let mut hup = signal(SignalKind::hangup()).map_err(err)?;
        loop {
            tokio::select! {
                _ = term.recv() => return Ok("SIGTERM"),
                _ = int.recv() => return Ok("SIGINT"),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: nothing to reload, still running");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
        Ok("Ctrl-C")
    }
}

fn run_inner(args: ServeArgs) -> Result<(), String> {
    let embedded = args.config.is_none();
    let mut cfg = match &args.config {
        Some(p) => Config::from_file(p),
        None => Config::embedded_default(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    // Shard 0 runs on this thread's runtime; the others get their own
    // (see crate::system).
    let rt = super::sim::runtime(1).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let demo = embedded
            .then(|| {
                cfg.demo_merchant()
                    .map(|(m, v, s)| (m.to_owned(), v, s.to_owned()))
            })
            .flatten();
        // Install the handlers before anything runs, so a signal during
        // start-up is not the default (immediate) exit.
        let stop = tokio::spawn(stop_signal());
        let mut running = system::start(cfg).await.map_err(|e| e.to_string())?;
        println!("acqswitch listening on {}", running.url());
        println!("journal: {}", running.journal_location());
        let rec = running.recovery();
        if !rec.unknown.is_empty() {
            println!(
                "{} transactions had no outcome at the last stop: marked unknown",
                rec.unknown.len()
            );
        }
        if let Some(sim) = running.simulator() {
            println!("in-process acquirer simulator on {}", sim.addr());
        }
        wait_for_acquirers(&running).await;
        if let Some((merchant, version, secret)) = demo {
            print_examples(&running, &merchant, version, &secret).await?;
        }
        println!("stop with Ctrl-C or SIGTERM");
        tokio::select! {
            s = stop => {
                let s = s.map_err(|e| e.to_string())??;
                tracing::info!(signal = s, "stopping: answering requests in flight");
                eprintln!("{s}: stopping (answering requests in flight)");
            }
            _ = running.wait() => {}
        }
        let journal = std::sync::Arc::clone(running.journal());
        running.shutdown().await;
        let j = journal.stats();
        println!(
            "journal: {} group commits for {} batches (mean {:.1}, max {} per commit), commit time mean {} us, max {} us; groups by size {:?}",
            j.commits,
            j.batches,
            j.mean_group(),
            j.max_group,
            j.commit_ns / j.commits.max(1) / 1000,
            j.max_commit_ns / 1000,
            j.groups
        );
        Ok(())
    })
}

/// Waits up to 10 s for a ready link to every acquirer, saying each
/// second which ones it is still waiting for (and where they are); serving
/// goes on either way (refusals are 99 until a link is up).
async fn wait_for_acquirers(running: &Running) {
    let started = std::time::Instant::now();
    loop {
        if tokio::time::timeout(Duration::from_secs(1), running.wait_ready())
            .await
            .is_ok()
        {
            if started.elapsed() >= Duration::from_secs(1) {
                eprintln!("every acquirer has a ready link");
            }
            return;
        }
        let switch = running.switch();
        let waiting: Vec<String> = switch
            .readiness()
            .links
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(name, _)| {
                let endpoint = switch.acquirer(name).map_or(String::new(), |a| {
                    format!(" at {}", a.pool.config().primary)
                });
                format!("{name}{endpoint}")
            })
            .collect();
        let seconds = started.elapsed().as_secs();
        if seconds >= 10 {
            eprintln!(
                "warning: still no ready link to {}; serving anyway (orders for it are answered 99 \
                 until it is up; GET /readyz tells when)",
                waiting.join(", ")
            );
            return;
        }
        if !waiting.is_empty() {
            eprintln!("waiting for a link to {} ({seconds} s)", waiting.join(", "));
        }
    }
}

/// Two requests for the demo merchant: a Google Pay check with a fresh
/// PAN_ONLY test token, and a cardOrder on a vault reference made now
/// (valid for the vault TTL), so no card number is printed.
async fn print_examples(
    running: &Running,
    merchant_id: &str,
    version: u32,
    secret_text: &str,
) -> Result<(), String> {
    let secret = &Secret::new(secret_text);
    // The switch's clock (moved in tests), for the tokens and the check.
    let now = running.switch().now();
    let now_ms = unix_ms(now);
    let pan = Pan::new("5413330089020011").ok_or("test PAN")?;
    let sender = testkeys::sender(ProtocolVersion::EcV2).map_err(|e| e.to_string())?;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut token = |id: String| {
        let payment = DecryptedPayment::card(
            id,
            now_ms + 3_600_000,
            PaymentMethodDetails::pan_only(pan.clone(), 12, 2030),
        );
        sender
            .seal_payment(&payment, &mut rng)
            .map_err(|e| e.to_string())
    };
    let base = running.url();
    let check = seal_request(
        json!({
            "merchantId": merchant_id,
            "interfaceVersion": "IR_WS_2.55",
            "paymentMeanDataProvider": "GOOGLEPAY",
            "paymentData": token(format!("serve-example-{now_ms}"))?,
        }),
        version,
        secret,
    );
    // A vault reference for the cardOrder example, through the switch
    // itself (so it is in the journal like any other).
    let switch = running.switch();
    let merchant = switch.merchant(merchant_id).ok_or("demo merchant")?;
    let reference = match switch
        .check_token(
            now,
            merchant,
            &token(format!("serve-example-vault-{now_ms}"))?,
        )
        .await
        .map_err(|r| format!("example token refused: {r}"))?
        .mode
    {
        TokenMode::PanOnly { reference } => reference,
        TokenMode::Cryptogram3ds { .. } => return Err("example token is not PAN_ONLY".into()),
    };
    let order = seal_request(
        json!({
            "merchantId": merchant_id,
            "interfaceVersion": "IR_WS_2.55",
            "transactionReference": format!("SERVE{now_ms}"),
            "amount": 1000,
            "currencyCode": "978",
            "orderChannel": "INTERNET",
            "paymentMeanDataProvider": "GOOGLEPAY",
            "paymentToken": reference,
            "authenticationResult": {
                "holderAuthentProgram": "3DS",
                "threeDS": {"eci": "02", "cavv": "AAABBEg0VhI0VniQEjRWAAAAAAA="}
            }
        }),
        version,
        secret,
    );
    let curl = |path: &str, v: &Value| {
        format!(
            "curl -s {base}{path} -H 'content-type: application/json' -d '{}'",
            v
        )
    };
    // The demo secret is public (it is in the embedded configuration).
    println!("\ndemo merchant {merchant_id}, key version {version}, seal secret {secret_text:?}");
    println!(
        "\nGoogle Pay check (PAN_ONLY test token; the answer's paymentToken is a vault reference):"
    );
    println!("{}", curl(PATH_CHECK, &check));
    println!("\ncardOrder on a vault reference (amount 1000: approved; run it again: the same answer, from the journal):");
    println!("{}", curl(PATH_CARD_ORDER, &order));
    let about = |extra: Value| {
        let mut body = json!({
            "merchantId": merchant_id,
            "interfaceVersion": "IR_WS_2.55",
            "transactionReference": format!("SERVE{now_ms}"),
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        seal_request(body, version, secret)
    };
    println!("\nthen cancel 2.50 of it (TO_CAPTURE, 7.50 left; once more: the recorded answer):");
    println!(
        "{}",
        curl(
            crate::front::PATH_CANCEL,
            &about(json!({"operationAmount": 250, "operationReference": "C1"}))
        )
    );
    println!("\nand read its status, amounts and operations:");
    println!(
        "{}",
        curl(crate::front::PATH_TRANSACTION_DATA, &about(json!({})))
    );
    println!("\nload through the API: acqswitch load --api {base} --requests 200000 --concurrency 128 --threads 1\n");
    Ok(())
}
