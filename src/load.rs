//! Load generator: drives a [`Pool`] with authorizations and measures
//! round-trip latency with `hdrhistogram`.
//!
//! Every run is bounded twice: by a request count and by a wall-clock
//! deadline (requests are no longer issued after it; those in flight finish
//! within the request timeout).
//!
//! Concurrency without a task per request: each of `workers` tasks drives
//! `concurrency / workers` request loops as one `FuturesUnordered`, all
//! cloning one decoded template message whose fields borrow a shared frame
//! (a clone allocates only the field list).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::iso8583::{Message, Spec};
use crate::net::{LinkError, Pool};

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub requests: u64,
    pub concurrency: usize,
    /// Tasks sharing the request loops (one per runtime worker thread).
    pub workers: usize,
    /// Stop issuing after this long.
    pub max_duration: Duration,
    /// The request to send; the pool sets DE 11.
    pub template: Bytes,
}

/// The result line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub throughput_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl LoadReport {
    /// The summary line for `ok` successes and `errors` failures over
    /// `seconds`, with latency percentiles (microseconds) from `hist`.
    pub fn new(ok: u64, errors: u64, seconds: f64, hist: &Histogram<u64>) -> LoadReport {
        let requests = ok + errors;
        LoadReport {
            requests,
            ok,
            errors,
            seconds: (seconds * 1000.0).round() / 1000.0,
            throughput_per_s: if seconds > 0.0 {
                (requests as f64 / seconds).round()
            } else {
                0.0
            },
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
        }
    }
}

/// Error counts by kind, for the human-readable summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorBreakdown {
    pub timeout: u64,
    pub busy: u64,
    pub disconnected: u64,
    pub no_ready_link: u64,
    /// Answered with a response code other than 00 (see `response_codes`).
    pub declined: u64,
    pub other: u64,
    /// The answers other than 00, by response code (`"none"`: no code).
    pub response_codes: BTreeMap<String, u64>,
}

impl ErrorBreakdown {
    /// Counts an answer with `code` (not 00).
    pub fn refused(&mut self, code: Option<&str>) {
        self.declined += 1;
        *self
            .response_codes
            .entry(code.unwrap_or("none").to_owned())
            .or_default() += 1;
    }

    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &ErrorBreakdown) {
        self.timeout += o.timeout;
        self.busy += o.busy;
        self.disconnected += o.disconnected;
        self.no_ready_link += o.no_ready_link;
        self.declined += o.declined;
        self.other += o.other;
        for (code, n) in &o.response_codes {
            *self.response_codes.entry(code.clone()).or_default() += n;
        }
    }

    /// Every error counted.
    pub fn total(&self) -> u64 {
        self.timeout
            + self.busy
            + self.disconnected
            + self.no_ready_link
            + self.declined
            + self.other
    }
}

/// Progress counters, readable while the run goes on, and the stop
/// request (Ctrl-C): no request is issued once `stop` is set.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub stop: AtomicBool,
}

impl Progress {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A `0100` purchase of `amount_minor` on the built-in test card, encoded
/// with `spec` (DE 11 is set per request by the pool).
pub fn authorization_template(spec: &Spec, amount_minor: u64) -> Result<Bytes, LoadError> {
    let mut m = Message::new(crate::iso8583::Mti::AUTHORIZATION_REQUEST);
    let set = |m: &mut Message<'_>, n: u16, v: &str| -> Result<(), LoadError> {
        if spec.field(n).is_some() {
            spec.set_text(m, n, v)
                .map_err(|e| LoadError::Template(e.to_string()))?;
        }
        Ok(())
    };
    set(&mut m, 2, "4761739001010119")?;
    set(&mut m, 3, "000000")?;
    set(&mut m, 4, &format!("{amount_minor:012}"))?;
    set(&mut m, 7, "0101000000")?;
    set(&mut m, 11, "000001")?;
    set(&mut m, 41, "LOADTERM")?;
    set(&mut m, 42, "LOADMERCHANT001")?;
    set(&mut m, 49, "978")?;
    let bytes = spec
        .encode_to_bytes(&m)
        .map_err(|e| LoadError::Template(e.to_string()))?;
    Ok(bytes.freeze())
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot build the request template: {0}")]
    Template(String),
    #[error("load worker failed: {0}")]
    Worker(String),
}

struct WorkerResult {
    ok: u64,
    errors: ErrorBreakdown,
    hist: Histogram<u64>,
}

/// Runs the load; returns the report and the error breakdown.
pub async fn run(
    pool: &Pool,
    cfg: &LoadConfig,
    progress: Arc<Progress>,
) -> Result<(LoadReport, ErrorBreakdown), LoadError> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + cfg.max_duration;
    let workers = cfg.workers.clamp(1, cfg.concurrency.max(1));
    let mut handles = Vec::new();
    for w in 0..workers {
        // Spread the request loops evenly over the workers.
        let loops = cfg.concurrency / workers + usize::from(w < cfg.concurrency % workers);
        let pool = pool.clone();
        let template = cfg.template.clone();
        let issued = Arc::clone(&issued);
        let progress = Arc::clone(&progress);
        let total = cfg.requests;
        handles.push(tokio::spawn(async move {
            worker(pool, template, loops, issued, total, deadline, progress).await
        }));
    }
    let mut hist = new_hist();
    let mut ok = 0;
    let mut errors = ErrorBreakdown::default();
    for h in handles {
        let r = h.await.map_err(|e| LoadError::Worker(e.to_string()))??;
        ok += r.ok;
        errors.add(&r.errors);
        hist.add(&r.hist)
            .map_err(|e| LoadError::Worker(e.to_string()))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((LoadReport::new(ok, errors.total(), seconds, &hist), errors))
}

/// A latency histogram: 1 us .. 60 s at 3 significant digits.
pub(crate) fn new_hist() -> Histogram<u64> {
    // 1 us .. 60 s at 3 significant digits; bounds are constants.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

async fn worker(
    pool: Pool,
    template: Bytes,
    loops: usize,
    issued: Arc<AtomicU64>,
    total: u64,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<WorkerResult, LoadError> {
    let spec = Arc::clone(pool.spec());
    let template = spec
        .decode(&template)
        .map_err(|e| LoadError::Template(e.to_string()))?;
    let template = &template;
    let spec = &*spec;
    let pool = &pool;
    let issued = &*issued;
    let progress = &*progress;
    let mut loops_set: FuturesUnordered<_> = (0..loops)
        .map(|_| async move {
            let mut hist = new_hist();
            let mut ok = 0u64;
            let mut errors = ErrorBreakdown::default();
            while !progress.stopped()
                && issued.fetch_add(1, Ordering::Relaxed) < total
                && Instant::now() < deadline
            {
                let t0 = Instant::now();
                let result = pool.send(template.clone()).await;
                let us = t0.elapsed().as_micros().max(1) as u64;
                match result {
                    Ok(resp) => {
                        // The load tool's own dialects carry the response code in DE 39.
                        match spec.text(resp.message(), 39).as_deref() {
                            Some("00") => {
                                ok += 1;
                                let _ = hist.record(us);
                            }
                            code => {
                                errors.refused(code);
                                progress.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) => {
                        match e {
                            LinkError::Timeout => errors.timeout += 1,
                            LinkError::Busy => errors.busy += 1,
                            LinkError::Disconnected => errors.disconnected += 1,
                            LinkError::NoReadyLink => {
                                errors.no_ready_link += 1;
                                // Do not spin while the links reconnect.
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            _ => errors.other += 1,
                        }
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            (ok, errors, hist)
        })
        .collect();
    let mut out = WorkerResult {
        ok: 0,
        errors: ErrorBreakdown::default(),
        hist: new_hist(),
    };
    while let Some((ok, e, h)) = loops_set.next().await {
        out.ok += ok;
        out.errors.add(&e);
        let _ = out.hist.add(&h);
    }
    Ok(out)
}
