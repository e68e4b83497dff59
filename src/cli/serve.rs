//! `acqswitch serve [--config FILE]`: runs the switch. Without `--config`,
//! the embedded default: an in-process acquirer simulator, the demo
//! merchant and the Google Pay test keys; it prints where it listens and
//! ready-to-paste, correctly sealed requests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::config::Config;
use crate::front::{self, Running, PATH_CARD_ORDER, PATH_CHECK};
use crate::load_api::seal_request;
use crate::seal::SealSecret;
use crate::switch::domain::{Expiry, Pan};
use crate::wallet::googlepay::{testkeys, DecryptedPayment, PaymentMethodDetails, ProtocolVersion};

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
    let threads = match cfg.server.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    // One single-threaded runtime per shard (see Running::start_shards):
    // this thread's, and threads - 1 more.
    let rt = super::sim::runtime(1).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let demo = embedded
            .then(|| {
                cfg.demo_merchant()
                    .map(|(m, v, s)| (m.to_owned(), v, SealSecret::new(s)))
            })
            .flatten();
        let mut running = front::start(cfg).await.map_err(|e| e.to_string())?;
        running
            .start_shards(threads - 1)
            .await
            .map_err(|e| e.to_string())?;
        if tokio::time::timeout(Duration::from_secs(10), running.wait_ready())
            .await
            .is_err()
        {
            eprintln!("warning: not every acquirer has a ready link yet; /readyz tells when");
        }
        println!("acqswitch listening on http://{}", running.addr());
        if let Some(sim) = running.simulator() {
            println!("in-process acquirer simulator on {}", sim.addr());
        }
        if let Some((merchant, version, secret)) = demo {
            print_examples(&running, &merchant, version, &secret)?;
        }
        println!("stop with Ctrl-C");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = running.wait() => {}
        }
        running.shutdown().await;
        Ok(())
    })
}

/// Two requests for the demo merchant: a Google Pay check with a fresh
/// PAN_ONLY test token, and a cardOrder on a vault reference created now
/// (valid for the vault TTL), so no card number is printed.
fn print_examples(
    running: &Running,
    merchant: &str,
    version: u32,
    secret: &SealSecret,
) -> Result<(), String> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let pan = Pan::new("5413330089020011").ok_or("test PAN")?;
    let payment = DecryptedPayment::card(
        format!("serve-example-{now_ms}"),
        now_ms + 3_600_000,
        PaymentMethodDetails::pan_only(pan.clone(), 12, 2030),
    );
    let mut rng = rand::rngs::StdRng::from_entropy();
    let token = testkeys::sender(ProtocolVersion::EcV2)
        .and_then(|s| {
            s.seal_payment(&payment, &mut rng)
                .map_err(|_| crate::wallet::googlepay::KeyError::PrivateKey("test token"))
        })
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", running.addr());
    let check = seal_request(
        json!({
            "merchantId": merchant,
            "interfaceVersion": "IR_WS_2.55",
            "paymentMeanDataProvider": "GOOGLEPAY",
            "paymentData": token,
        }),
        version,
        secret,
    );
    let reference = crate::front::vault_put(
        running.state(),
        merchant,
        pan,
        Expiry::new(2030, 12).ok_or("expiry")?,
        Instant::now(),
    );
    let order = seal_request(
        json!({
            "merchantId": merchant,
            "interfaceVersion": "IR_WS_2.55",
            "transactionReference": format!("SERVE{now_ms}"),
            "amount": 1000,
            "currencyCode": "978",
            "orderChannel": "INTERNET",
            "paymentMeanDataProvider": "GOOGLEPAY",
            "paymentToken": reference,
            "authenticationResult": {
                "holderAuthentProgram": "3DS",
                "threeDS": {"eci": "05", "cavv": "AAABBEg0VhI0VniQEjRWAAAAAAA="}
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
    println!(
        "\nGoogle Pay check (PAN_ONLY test token; the answer's paymentToken is a vault reference):"
    );
    println!("{}", curl(PATH_CHECK, &check));
    println!("\ncardOrder on a vault reference (amount 1000: approved; a second run answers 94, duplicate reference):");
    println!("{}", curl(PATH_CARD_ORDER, &order));
    println!("\nload through the API: acqswitch load --api {base} --requests 200000 --concurrency 128 --threads 1\n");
    Ok(())
}
