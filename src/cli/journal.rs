//! `acqswitch journal export`: the merchant's transaction log and
//! operations log from the journal (read only: safe while `serve` runs),
//! as CSV or JSON, masked card data only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::civil::unix_ms;
use crate::config::Config;
use crate::journal::sqlite::SqliteBackend;
use crate::journal::{Backend, OperationRecord, TxRecord};
use crate::switch::cutoff::CutOff;
use crate::switch::export::{operation_line, transaction_line, OperationLine, TransactionLine};

#[derive(Subcommand)]
pub enum JournalCommand {
    /// The transaction log (transactions created in the period) and the
    /// operations log (operations recorded in it: cancellations,
    /// validations, refunds, the cut-off's captures and expiries), on
    /// stdout. CSV: the two tables one after the other, a blank line
    /// between them, each with its header; JSON: one object with
    /// `transactions` and `operations`.
    Export(ExportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The switch's configuration: its `[journal] path` and cut-off.
    /// Without it (and without --journal), the embedded default's journal
    /// (`acqswitch-data/journal.db`).
    #[arg(long, conflicts_with = "journal")]
    config: Option<PathBuf>,
    /// The journal file itself.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// First day (YYYY-MM-DD, UTC), or an instant (2026-11-30T08:00:00Z).
    #[arg(long)]
    from: String,
    /// Last day, included (YYYY-MM-DD, UTC), or an instant (excluded).
    #[arg(long)]
    to: String,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

pub fn run(cmd: JournalCommand) -> ExitCode {
    let JournalCommand::Export(args) = cmd;
    match export(&args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `text` as Unix milliseconds: an RFC 3339 instant, or the start of a
/// UTC day (`end`: of the day after, so that the day is included).
fn instant(text: &str, flag: &str, end: bool) -> Result<u64, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return u64::try_from(t.as_millisecond())
            .map_err(|_| format!("{flag} {text}: before 1970"));
    }
    let date: jiff::civil::Date = text.parse().map_err(|_| {
        format!("{flag} {text:?}: expected YYYY-MM-DD or an instant like 2026-11-30T08:00:00Z")
    })?;
    let date = if end {
        date.tomorrow().map_err(|e| format!("{flag} {text}: {e}"))?
    } else {
        date
    };
    let t = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| format!("{flag} {text}: {e}"))?
        .timestamp();
    u64::try_from(t.as_millisecond()).map_err(|_| format!("{flag} {text}: before 1970"))
}

#[derive(Serialize)]
struct Export {
    from: String,
    to: String,
    transactions: Vec<TransactionLine>,
    operations: Vec<OperationLine>,
}

fn export(args: &ExportArgs, out: &mut impl Write) -> Result<(), String> {
    let from_ms = instant(&args.from, "--from", false)?;
    let to_ms = instant(&args.to, "--to", true)?;
    if to_ms <= from_ms {
        return Err(format!(
            "--to {} is not after --from {}",
            args.to, args.from
        ));
    }
    let (path, cut_off) = match (&args.config, &args.journal) {
        (Some(file), _) => {
            let cfg = Config::from_file(file).map_err(|e| e.to_string())?;
            if cfg.journal.backend != "sqlite" {
                return Err(format!(
                    "{}: the journal is kept in memory ({}): nothing to export",
                    file.display(),
                    cfg.journal.backend
                ));
            }
            let cut = CutOff::new(&cfg.capture.time_zone, &cfg.capture.cut_off)
                .map_err(|e| format!("{}: [capture]: {e}", file.display()))?;
            (cfg.resolve(&cfg.journal.path), cut)
        }
        (None, Some(p)) => (p.clone(), CutOff::paris()),
        (None, None) => (PathBuf::from("acqswitch-data/journal.db"), CutOff::paris()),
    };
    if !path.exists() {
        return Err(format!("no journal at {}", path.display()));
    }
    let mut db = SqliteBackend::open_read_only(&path).map_err(|e| e.to_string())?;
    let txs = db
        .transactions_between(from_ms, to_ms)
        .map_err(|e| e.to_string())?;
    let ops = db
        .operations_between(from_ms, to_ms)
        .map_err(|e| e.to_string())?;
    let now_ms = unix_ms(std::time::SystemTime::now());
    let transactions = txs
        .iter()
        .map(|t| transaction_line(t, &cut_off, now_ms))
        .collect();
    let operations = operation_lines(&mut db, &txs, &ops)?;
    let export = Export {
        from: args.from.clone(),
        to: args.to.clone(),
        transactions,
        operations,
    };
    let write_err = |e: std::io::Error| format!("cannot write the export: {e}");
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &export)
                .map_err(|e| format!("cannot write the export: {e}"))?;
            writeln!(out).map_err(write_err)?;
        }
        Format::Csv => {
            csv_table(&mut *out, &export.transactions, TRANSACTION_HEADER)?;
            writeln!(out).map_err(write_err)?;
            csv_table(&mut *out, &export.operations, OPERATION_HEADER)?;
        }
    }
    Ok(())
}

/// The operations with their transactions (read from the journal when
/// the transaction is older than the period).
fn operation_lines(
    db: &mut SqliteBackend,
    txs: &[TxRecord],
    ops: &[OperationRecord],
) -> Result<Vec<OperationLine>, String> {
    // The period's transactions by id (an operation per transaction at
    // least, at the cut-off: no search per operation), older ones read
    // from the journal once each.
    let mut by_id: std::collections::HashMap<u64, &TxRecord> =
        txs.iter().map(|t| (t.id, t)).collect();
    let mut older: std::collections::HashMap<u64, TxRecord> = std::collections::HashMap::new();
    for op in ops {
        if by_id.contains_key(&op.tx_id) || older.contains_key(&op.tx_id) {
            continue;
        }
        let t = db
            .transaction_by_id(op.tx_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "operation {} names transaction {} that is not in the journal",
                    op.id, op.tx_id
                )
            })?;
        older.insert(op.tx_id, t);
    }
    by_id.extend(older.iter().map(|(id, t)| (*id, t)));
    let mut lines = Vec::with_capacity(ops.len());
    for op in ops {
        let Some(t) = by_id.get(&op.tx_id) else {
            continue;
        };
        lines.push(operation_line(op, t));
    }
    Ok(lines)
}

/// Headers written even for an empty table.
const TRANSACTION_HEADER: &[&str] = &[
    "merchantId",
    "transactionReference",
    "transactionDateTime",
    "amount",
    "currencyCode",
    "maskedPan",
    "paymentMeanBrand",
    "panEntryMode",
    "paymentMeanDataProvider",
    "walletType",
    "orderChannel",
    "responseCode",
    "acquirerResponseCode",
    "authorisationId",
    "transactionStatus",
    "captureMode",
    "captureLimitDate",
    "currentAmount",
    "capturedAmount",
    "refundedAmount",
    "reversalStatus",
    "acquirer",
    "terminalId",
    "stan",
    "rrn",
];
const OPERATION_HEADER: &[&str] = &[
    "merchantId",
    "transactionReference",
    "operationDateTime",
    "operationType",
    "operationAmount",
    "currencyCode",
    "responseCode",
    "newStatus",
    "newAmount",
    "operationReference",
    "maskedPan",
    "paymentMeanDataProvider",
    "walletType",
];

fn csv_table<T: Serialize>(
    out: &mut impl Write,
    rows: &[T],
    header: &[&str],
) -> Result<(), String> {
    let err = |e: csv::Error| format!("cannot write the export: {e}");
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush()
        .map_err(|e| format!("cannot write the export: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_instants() {
        assert_eq!(instant("1970-01-02", "--from", false), Ok(86_400_000));
        assert_eq!(instant("1970-01-02", "--to", true), Ok(2 * 86_400_000));
        assert_eq!(instant("1970-01-01T00:00:01Z", "--to", true), Ok(1000));
        assert!(instant("yesterday", "--from", false)
            .unwrap_err()
            .contains("YYYY-MM-DD"));
    }

    #[test]
    fn headers_match_the_lines() {
        // The serialized field names are the headers, in order.
        let t = serde_json::to_value(TransactionLine {
            merchant_id: String::new(),
            transaction_reference: String::new(),
            transaction_date_time: String::new(),
            amount: 0,
            currency_code: String::new(),
            masked_pan: String::new(),
            payment_mean_brand: String::new(),
            pan_entry_mode: String::new(),
            payment_mean_data_provider: None,
            wallet_type: None,
            order_channel: String::new(),
            response_code: None,
            acquirer_response_code: None,
            authorisation_id: None,
            transaction_status: "",
            capture_mode: String::new(),
            capture_limit_date: String::new(),
            current_amount: 0,
            captured_amount: 0,
            refunded_amount: 0,
            reversal_status: "",
            acquirer: None,
            terminal_id: None,
            stan: None,
            rrn: None,
        })
        .unwrap();
        let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, TRANSACTION_HEADER);
        let o = serde_json::to_value(OperationLine {
            merchant_id: String::new(),
            transaction_reference: String::new(),
            operation_date_time: String::new(),
            operation_type: String::new(),
            operation_amount: 0,
            currency_code: String::new(),
            response_code: String::new(),
            new_status: String::new(),
            new_amount: 0,
            operation_reference: None,
            masked_pan: String::new(),
            payment_mean_data_provider: None,
            wallet_type: None,
        })
        .unwrap();
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, OPERATION_HEADER);
    }
}
