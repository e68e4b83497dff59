//! `acqswitch simulate`: the deterministic simulation (see
//! [`crate::simulation`]) over many seeds. Prints a failing seed's
//! violations and its last events, then one JSON summary line; exits 1
//! when any seed failed. `--seed N` replays one run exactly.

use std::process::ExitCode;

use clap::Args;

use crate::simulation::{self, SimulationConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 10_000)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Replay this one seed (its trace is printed even when it passes).
    #[arg(long, conflicts_with_all = ["seeds", "from"])]
    pub seed: Option<u64>,
    /// Client orders per run.
    #[arg(long, default_value_t = 24)]
    pub orders: usize,
    /// Turn off the switch's crashes, the acquirer's faults or the
    /// network's resets.
    #[arg(long)]
    pub no_crashes: bool,
    #[arg(long)]
    pub no_acquirer_faults: bool,
    #[arg(long)]
    pub no_network_faults: bool,
}

pub fn run(args: SimulateArgs) -> ExitCode {
    // The cores log what a real switch would (undecodable frames, late
    // answers): thousands of runs of faults are not worth a log line each.
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        run_quiet(args)
    })
}

fn run_quiet(args: SimulateArgs) -> ExitCode {
    let cfg = SimulationConfig {
        orders: args.orders,
        crashes: !args.no_crashes,
        acquirer_faults: !args.no_acquirer_faults,
        network_faults: !args.no_network_faults,
        ..SimulationConfig::default()
    };
    if let Some(seed) = args.seed {
        // One run, its events kept: shown whether it passes or not.
        let mut r = simulation::run_traced(seed, &cfg, true);
        let passed = r.violations.is_empty();
        for line in &r.trace {
            eprintln!("{line}");
        }
        for v in &r.violations {
            eprintln!("seed {seed}: {v}");
        }
        r.trace.clear();
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
        return if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let (summary, failed) = simulation::run_many(args.from, args.seeds, &cfg);
    if let Some(first) = failed.first() {
        for line in &first.trace {
            eprintln!("{line}");
        }
    }
    for r in &failed {
        for v in &r.violations {
            eprintln!("seed {}: {v}", r.seed);
        }
    }
    if !failed.is_empty() {
        let seeds: Vec<String> = failed.iter().map(|r| r.seed.to_string()).collect();
        eprintln!(
            "failing seeds: {} (replay one: acqswitch simulate --seed N)",
            seeds.join(" ")
        );
    }
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
