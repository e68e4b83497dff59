//! `acqswitch sim`: the acquirer simulator on the command line.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::iso8583::Spec;
use crate::net::duration_serde;
use crate::net::FramingConfig;
use crate::sim::{Faults, Latency, SimConfig, Simulator};
use crate::tls::ServerTlsConfig;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Dialect: a built-in name (cb2a, iso87ascii, iso87binary, iso87visa) or a file.
    #[arg(long, default_value = "cb2a")]
    pub spec: String,
    /// Framing: `STYLE[+self][,header=HEX][,max=N]`, STYLE one of
    /// two_byte_binary, four_byte_ascii, two_byte_bcd, four_byte_binary.
    #[arg(long, default_value = "two_byte_binary", value_parser = FramingConfig::parse_cli)]
    pub framing: FramingConfig,
    /// Added latency: "5ms", or a random range "1ms..5ms".
    #[arg(long, value_parser = parse_latency)]
    pub latency: Option<Latency>,
    /// Reverse responses within windows of N requests.
    #[arg(long, value_name = "N")]
    pub reorder: Option<usize>,
    /// Delay step between reordered responses.
    #[arg(long, default_value = "1ms", value_parser = duration_serde::parse)]
    pub reorder_step: Duration,
    /// Do not answer every N-th financial request.
    #[arg(long, value_name = "N")]
    pub no_response_every: Option<u64>,
    /// Answer every N-th financial request twice.
    #[arg(long, value_name = "N")]
    pub duplicate_every: Option<u64>,
    /// Close the connection at the N-th financial request (unanswered).
    #[arg(long, value_name = "N")]
    pub drop_after: Option<u64>,
    /// Send a garbage frame instead of every N-th response.
    #[arg(long, value_name = "N")]
    pub garbage_every: Option<u64>,
    /// Refuse sign-on (DE 39 = 91).
    #[arg(long)]
    pub refuse_sign_on: bool,
    /// Never answer echo tests.
    #[arg(long)]
    pub ignore_echo: bool,
    /// Decoded messages kept in memory (0 for load tests).
    #[arg(long, default_value_t = 0)]
    pub record: usize,
    /// Ledger entries kept in memory.
    #[arg(long, default_value_t = 100_000)]
    pub ledger: usize,
    /// Runtime worker threads (1 = single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Serve the admin API here (loopback): `GET /ledger` lists every
    /// authorization received with its answer and reversals (JSON).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Exit after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub max_seconds: Option<u64>,
    /// Speak TLS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: require a client certificate signed by a CA in FILE (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// The simulator's TLS configuration from the command line, if asked for.
fn tls_config(args: &SimArgs) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let cfg = ServerTlsConfig {
        client_ca_file: args.tls_client_ca.clone(),
        ..ServerTlsConfig::new(cert, key)
    };
    let server = crate::tls::server_config(&cfg).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(server)))
}

fn parse_latency(s: &str) -> Result<Latency, String> {
    match s.split_once("..") {
        Some((a, b)) => Ok(Latency::Uniform(
            duration_serde::parse(a)?,
            duration_serde::parse(b)?,
        )),
        None => Ok(Latency::Fixed(duration_serde::parse(s)?)),
    }
}

pub(crate) fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub fn run(args: SimArgs) -> ExitCode {
    let spec = match Spec::load(&args.spec) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let faults = Faults {
        latency: args.latency.unwrap_or_default(),
        out_of_order: args.reorder,
        reorder_step: args.reorder_step,
        no_response_every: args.no_response_every,
        duplicate_every: args.duplicate_every,
        drop_after: args.drop_after,
        garbage_every: args.garbage_every,
        refuse_sign_on: args.refuse_sign_on,
        ignore_echo: args.ignore_echo,
    };
    let tls = match tls_config(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mutual = args.tls_client_ca.is_some();
    let cfg = SimConfig {
        tls,
        listen: args.listen,
        framing: args.framing,
        faults,
        record: args.record,
        ledger_capacity: args.ledger,
        ..SimConfig::new(spec)
    };
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let sim = match Simulator::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("acquirer simulator listening on {}", sim.addr());
        if args.tls_cert.is_some() {
            eprintln!(
                "simulator TLS on{}",
                if mutual {
                    ", client certificate required"
                } else {
                    ""
                }
            );
        }
        if let Some(addr) = args.admin {
            match sim.serve_admin(addr).await {
                Ok(a) => eprintln!("simulator admin on http://{a}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let limit = args.max_seconds.map_or(Duration::MAX, Duration::from_secs);
        tokio::select! {
            _ = stop_signal() => {}
            _ = tokio::time::sleep(limit) => {}
        }
        let counts = sim.counts();
        println!(
            "{}",
            serde_json::to_string(&counts).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
        sim.shutdown().await;
        ExitCode::SUCCESS
    })
}
