//! `acqswitch soak`: the chaos run (see [`crate::soak`]). Ends with one
//! JSON line on stdout; exits 1 when anything was lost, wrongly reversed
//! or reversed twice.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::net::duration_serde;
use crate::soak::{self, SoakConfig};

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long orders are sent ("2m", "20s").
    #[arg(long, default_value = "2m", value_parser = duration_serde::parse)]
    pub duration: Duration,
    /// SIGKILL the switch about this often (0.5x to 1.5x), then restart it
    /// on the same journal.
    #[arg(long, default_value = "10s", value_parser = duration_serde::parse)]
    pub kill_every: Duration,
    /// Clients sending at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The switch's request timeout (the simulator's latency passes it
    /// now and then).
    #[arg(long, default_value = "1s", value_parser = duration_serde::parse)]
    pub request_timeout: Duration,
    /// Seed of the run's choices (kill times, amounts, slow periods).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the journal and configuration here (default: a temporary
    /// folder, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: SoakArgs) -> ExitCode {
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = SoakConfig {
        duration: args.duration,
        kill_every: args.kill_every,
        concurrency: args.concurrency,
        request_timeout: args.request_timeout,
        seed: args.seed,
        binary,
        dir: args.dir,
    };
    let rt = match super::sim::runtime(2) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(soak::run(&cfg)) {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            if r.lost == 0 && r.wrongly_reversed == 0 && r.double_reversed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
