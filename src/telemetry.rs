//! What an operator watches: logs (`tracing`) and metrics (the `metrics`
//! facade, rendered for Prometheus at `GET /metrics` on the API listener).
//!
//! Logs go to stderr: the filter from `RUST_LOG` (or the older
//! `ACQSWITCH_LOG`), text or JSON (`--log-format`), colours only when
//! stderr is a terminal. No log line carries a full PAN, a cryptogram or
//! key material: card data types mask themselves, and messages name fields,
//! never their values.
//!
//! Metrics (names follow Prometheus conventions: `acqswitch_` prefix, the
//! unit in the name, `_total` for counters):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `acqswitch_authorizations_total` | counter | `acquirer`, `response_code` |
//! | `acqswitch_card_order_duration_seconds` | histogram | |
//! | `acqswitch_acquirer_response_duration_seconds` | histogram | `acquirer` |
//! | `acqswitch_http_requests_in_flight` | gauge | |
//! | `acqswitch_link_ready` | gauge (1 ready, 0 not) | `acquirer`, `endpoint`, `link` |
//! | `acqswitch_link_connects_total` | counter | `acquirer` |
//! | `acqswitch_link_timeouts_total` | counter | `acquirer` |
//! | `acqswitch_link_unmatched_total` | counter | `acquirer`, `kind` |
//! | `acqswitch_journal_commit_batches` | histogram (batches per group commit) | |
//! | `acqswitch_journal_commit_duration_seconds` | histogram (one fsync each) | |
//! | `acqswitch_journal_commit_failures_total` | counter | |
//! | `acqswitch_reversals_queued_total`, `_sent_total`, `_acknowledged_total`, `_expired_total` | counter (every store-and-forward message) | `kind` (reversal, cancel, refund) |
//! | `acqswitch_store_and_forward_depth` | gauge | |
//! | `acqswitch_token_failures_total` | counter | `reason` |
//! | `acqswitch_seal_failures_total` | counter | |
//! | `acqswitch_operations_total` | counter | `kind` (cancel, validate, refund), `response_code` |
//! | `acqswitch_cut_off_transactions_total` | counter | `result` (captured, expired) |

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const AUTHORIZATIONS: &str = "acqswitch_authorizations_total";
pub const CARD_ORDER_SECONDS: &str = "acqswitch_card_order_duration_seconds";
pub const ACQUIRER_SECONDS: &str = "acqswitch_acquirer_response_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "acqswitch_http_requests_in_flight";
pub const LINK_READY: &str = "acqswitch_link_ready";
pub const LINK_CONNECTS: &str = "acqswitch_link_connects_total";
pub const LINK_TIMEOUTS: &str = "acqswitch_link_timeouts_total";
pub const LINK_UNMATCHED: &str = "acqswitch_link_unmatched_total";
pub const JOURNAL_BATCHES: &str = "acqswitch_journal_commit_batches";
pub const JOURNAL_SECONDS: &str = "acqswitch_journal_commit_duration_seconds";
pub const JOURNAL_FAILURES: &str = "acqswitch_journal_commit_failures_total";
pub const REVERSALS_QUEUED: &str = "acqswitch_reversals_queued_total";
pub const REVERSALS_SENT: &str = "acqswitch_reversals_sent_total";
pub const REVERSALS_ACKNOWLEDGED: &str = "acqswitch_reversals_acknowledged_total";
pub const REVERSALS_EXPIRED: &str = "acqswitch_reversals_expired_total";
pub const SAF_DEPTH: &str = "acqswitch_store_and_forward_depth";
pub const TOKEN_FAILURES: &str = "acqswitch_token_failures_total";
pub const SEAL_FAILURES: &str = "acqswitch_seal_failures_total";
pub const OPERATIONS: &str = "acqswitch_operations_total";
pub const CUT_OFF: &str = "acqswitch_cut_off_transactions_total";

/// Latency buckets, seconds.
const SECONDS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Group commit sizes.
const BATCHES: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log filter: `RUST_LOG`, else `ACQSWITCH_LOG`, else `default`.
pub fn log_filter(default: &str) -> String {
    std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("ACQSWITCH_LOG"))
        .unwrap_or_else(|_| default.to_owned())
}

/// Keeps the log writer running; dropping it writes out what is
/// buffered. Hold it until the process ends.
#[must_use = "logs written after this is dropped are lost"]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Starts logging to stderr (once per process; later calls do nothing).
///
/// Lines are formatted where they happen and written by a thread of their
/// own (`tracing-appender`): a shard never waits on stderr. The writer
/// blocks rather than drops when its queue is full, so no line is lost.
pub fn init_logs(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("acqswitch-log")
        // Buffered: the writer flushes once its queue is empty, so a burst
        // of lines is one write, and no line waits for the next.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    LogGuard {
        _worker: installed.ok().map(|()| guard),
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder (once): `None` when another
/// recorder was installed first (metrics then go there).
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(JOURNAL_BATCHES.into()), &BATCHES)
                })
                .ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// The metrics in Prometheus's text format.
pub fn render() -> String {
    metrics_handle()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_format() {
        assert!(
            metrics_handle().is_some(),
            "the first recorder of the process"
        );
        metrics::counter!("acqswitch_telemetry_test_total", "kind" => "a").increment(2);
        metrics::histogram!("acqswitch_telemetry_test_seconds").record(0.003);
        let text = render();
        assert!(
            text.contains("acqswitch_telemetry_test_total{kind=\"a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("acqswitch_telemetry_test_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
    }
}
