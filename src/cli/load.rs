//! `acqswitch load`: drives a pool against a simulator and prints one JSON
//! line: `{"requests":N,"ok":N,"errors":N,"seconds":S,"throughput_per_s":X,
//! "p50_us":X,"p99_us":X,"p999_us":X}`.
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::iso8583::Spec;
use crate::load::{authorization_template, LoadConfig, Progress};
use crate::net::duration_serde;
use crate::net::{FramingConfig, Pool, PoolConfig};
use crate::tls::LinkTlsConfig;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Simulator address (loopback only).
    #[arg(long, required_unless_present = "api")]
    pub target: Option<String>,
    /// Load the switch's HTTP API instead (`http://127.0.0.1:8080`,
    /// loopback only): sealed cardOrder requests; see `load_api`.
    #[arg(long, conflicts_with = "target")]
    pub api: Option<String>,
    /// With --api: the merchant the orders are for (default: the embedded
    /// demo merchant, 011223344550000).
    #[arg(long, requires = "api")]
    pub merchant_id: Option<String>,
    /// With --api: the seal key version (default: the demo merchant's, 1).
    #[arg(long, requires = "api")]
    pub key_version: Option<u32>,
    /// With --api: a file holding the merchant's seal secret (default: the
    /// demo merchant's).
    #[arg(long, requires = "api")]
    pub secret_file: Option<std::path::PathBuf>,
    /// Without --api: the dialect, a built-in name (cb2a, iso87ascii,
    /// iso87binary, iso87visa) or a file.
    #[arg(long, default_value = "cb2a")]
    pub spec: String,
    /// Without --api: the framing, as for `acqswitch sim` (e.g.
    /// two_byte_binary, two_byte_bcd,header=6000010000).
    #[arg(long, default_value = "two_byte_binary", value_parser = FramingConfig::parse_cli)]
    pub framing: FramingConfig,
    /// Authorizations to send.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u64,
    /// Requests in flight (with --api: HTTP connections, one request in
    /// flight on each).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Without --api: TCP connections to the simulator.
    #[arg(long, default_value_t = 4)]
    pub links: usize,
    /// Without --api: per-request timeout.
    #[arg(long, default_value = "5s", value_parser = duration_serde::parse)]
    pub timeout: Duration,
    /// Stop issuing requests after this many seconds (Ctrl-C stops too;
    /// either way the summary covers what was done).
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Amount in minor units (the simulator approves cents 00, refuses
    /// 05 with 05, and answers 96 to cents 99).
    #[arg(long, default_value_t = 1000)]
    pub amount: u64,
    /// Runtime worker threads (1 = single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// No progress bar (the summary still goes to stdout).
    #[arg(long)]
    pub quiet: bool,
    /// TLS to the simulator: trust this CA (PEM) for its certificate.
    #[arg(long, value_name = "FILE", conflicts_with = "api")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Mutual TLS: our client certificate (PEM), with --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The name to check on the simulator's certificate (default: the
    /// target's host).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

pub fn run(args: LoadArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: LoadArgs) -> Result<ExitCode, String> {
    if args.api.is_some() {
        return crate::cli::load_api::run(args);
    }
    let target = args.target.clone().unwrap_or_default();
    // This tool only ever talks to a local simulator.
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| format!("target {target}: {e}"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(format!("target {target} is not a loopback address"));
    }
    let spec = Arc::new(Spec::load(&args.spec).map_err(|e| e.to_string())?);
    let template = authorization_template(&spec, args.amount).map_err(|e| e.to_string())?;
    let pool_cfg = PoolConfig {
        links: args.links,
        primary: addrs[0].to_string(),
        request_timeout: args.timeout,
        max_in_flight_per_link: args.concurrency.max(1),
        echo_interval: None,
        framing: args.framing,
        tls: args.tls_ca.clone().map(|ca_file| LinkTlsConfig {
            ca_file,
            cert_file: args.tls_cert.clone(),
            key_file: args.tls_key.clone(),
            server_name: args.tls_server_name.clone(),
        }),
        ..PoolConfig::default()
    };
    let cfg = LoadConfig {
        requests: args.requests,
        concurrency: args.concurrency.max(1),
        workers: args.threads.max(1),
        max_duration: Duration::from_secs(args.max_seconds),
        template,
    };
    let rt = super::sim::runtime(args.threads).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let pool = Pool::start(pool_cfg, spec).map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(10), pool.wait_ready(args.links))
            .await
            .map_err(|_| format!("links to {target} not ready within 10 s"))?;
        let progress = Arc::new(Progress::default());
        let shown = ProgressDisplay::start(args.quiet, args.requests, &progress)?;
        let result = crate::load::run(&pool, &cfg, Arc::clone(&progress)).await;
        shown.finish();
        let (report, errors) = result.map_err(|e| e.to_string())?;
        print_summary(&report, &errors)?;
        pool.shutdown().await;
        Ok(if report.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// The progress bar of a load run, refreshed from the run's counters.
pub(super) struct ProgressDisplay {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressDisplay {
    /// Starts refreshing (hidden when `quiet`); call inside the runtime.
    pub(super) fn start(
        quiet: bool,
        total: u64,
        progress: &Arc<Progress>,
    ) -> Result<ProgressDisplay, String> {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
                .map_err(|e| e.to_string())?,
        );
        let ticker = {
            let (bar, progress) = (bar.clone(), Arc::clone(progress));
            let started = std::time::Instant::now();
            tokio::spawn(async move {
                loop {
                    let done = progress.done.load(Ordering::Relaxed);
                    let seconds = started.elapsed().as_secs_f64();
                    let rate = if seconds > 0.0 {
                        (done as f64 / seconds).round() as u64
                    } else {
                        0
                    };
                    bar.set_position(done);
                    bar.set_message(format!(
                        "{rate}/s errors: {}",
                        progress.errors.load(Ordering::Relaxed)
                    ));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        stop_on_ctrl_c(progress);
        Ok(ProgressDisplay { bar, ticker })
    }

    pub(super) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Ctrl-C stops issuing requests: those in flight finish, and the run
/// ends with its summary of what was done.
fn stop_on_ctrl_c(progress: &Arc<Progress>) {
    let progress = Arc::clone(progress);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the requests in flight; the summary is partial");
            progress.stop.store(true, Ordering::Relaxed);
        }
    });
}

/// Errors by kind on stderr, then the one JSON summary line on stdout.
pub(super) fn print_summary(
    report: &crate::load::LoadReport,
    errors: &crate::load::ErrorBreakdown,
) -> Result<(), String> {
    let errors = serde_json::to_string(errors).map_err(|e| e.to_string())?;
    eprintln!("errors by kind (response_codes: answers other than 00): {errors}");
    println!(
        "{}",
        serde_json::to_string(report).map_err(|e| e.to_string())?
    );
    Ok(())
}
