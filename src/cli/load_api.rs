//! `acqswitch load --api URL`: the load run through the HTTP API, with the
//! same progress bar and the same final JSON line as the pool load run.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::load::{print_summary, LoadArgs, ProgressDisplay};
use crate::card::Secret;
use crate::config::Config;
use crate::load::Progress;
use crate::load_api::{parse_api_url, ApiLoadConfig};

pub fn run(args: LoadArgs) -> Result<ExitCode, String> {
    let url = args.api.clone().unwrap_or_default();
    let addr = parse_api_url(&url).map_err(|e| e.to_string())?;
    let default = Config::embedded_default().map_err(|e| e.to_string())?;
    let (demo_id, demo_version, demo_secret) = default
        .demo_merchant()
        .ok_or("the embedded default has no merchant")?;
    let secret = match &args.secret_file {
        Some(p) => Secret::from_file(p)?,
        None => Secret::new(demo_secret),
    };
    let cfg = ApiLoadConfig {
        addr,
        requests: args.requests,
        concurrency: args.concurrency.max(1),
        workers: args.threads.max(1),
        max_duration: Duration::from_secs(args.max_seconds),
        merchant_id: args
            .merchant_id
            .clone()
            .unwrap_or_else(|| demo_id.to_owned()),
        key_version: args.key_version.unwrap_or(demo_version),
        secret,
        amount: args.amount,
    };
    let rt = super::sim::runtime(args.threads).map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let progress = Arc::new(Progress::default());
        let shown = ProgressDisplay::start(args.quiet, args.requests, &progress)?;
        let result = crate::load_api::run(&cfg, Arc::clone(&progress)).await;
        shown.finish();
        let (report, errors) = result.map_err(|e| e.to_string())?;
        print_summary(&report, &errors)?;
        Ok(if report.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
