//! The merchant's logs, without I/O: a journaled transaction as a line of
//! the transaction log and an operation as a line of the operations log
//! (`acqswitch journal export`). Masked card data only (the journal holds
//! nothing else in clear); the wallet named as the Google Pay guide's logs
//! name it (`paymentMeanDataProvider` `GOOGLEPAY` for CRYPTOGRAM_3DS,
//! `walletType` `GOOGLE_WALLET` for PAN_ONLY).

use serde::Serialize;

use super::cash::lifecycle_of;
use super::cutoff::{date_text, CutOff};
use super::domain::{PanEntryMode, Wallet};
use crate::civil::iso8601;
use crate::journal::{OperationRecord, TxRecord, TxState};

/// One line of the transaction log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionLine {
    pub merchant_id: String,
    pub transaction_reference: String,
    pub transaction_date_time: String,
    pub amount: u64,
    pub currency_code: String,
    pub masked_pan: String,
    pub payment_mean_brand: String,
    pub pan_entry_mode: String,
    pub payment_mean_data_provider: Option<&'static str>,
    pub wallet_type: Option<&'static str>,
    pub order_channel: String,
    /// The authorization's answer to the merchant (none while pending).
    pub response_code: Option<String>,
    pub acquirer_response_code: Option<String>,
    pub authorisation_id: Option<String>,
    /// `PENDING` while the authorization waits for its answer.
    pub transaction_status: &'static str,
    pub capture_mode: String,
    pub capture_limit_date: String,
    pub current_amount: u64,
    pub captured_amount: u64,
    pub refunded_amount: u64,
    /// An authorization without an answer reversed at the acquirer:
    /// `none`, `queued`, `acknowledged`, `expired`.
    pub reversal_status: &'static str,
    pub acquirer: Option<String>,
    pub terminal_id: Option<String>,
    pub stan: Option<String>,
    pub rrn: Option<String>,
}

/// One line of the operations log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationLine {
    pub merchant_id: String,
    pub transaction_reference: String,
    pub operation_date_time: String,
    /// `cancel`, `validate`, `refund`, or the cut-off's `capture`,
    /// `expire`.
    pub operation_type: String,
    pub operation_amount: u64,
    pub currency_code: String,
    pub response_code: String,
    pub new_status: String,
    pub new_amount: u64,
    pub operation_reference: Option<String>,
    pub masked_pan: String,
    pub payment_mean_data_provider: Option<&'static str>,
    pub wallet_type: Option<&'static str>,
}

fn wallet_of(t: &TxRecord) -> (Option<&'static str>, Option<&'static str>) {
    let mode = PanEntryMode::parse(&t.pan_entry_mode).unwrap_or(PanEntryMode::Wallet);
    Wallet::log_fields(t.wallet.as_deref().and_then(Wallet::parse), mode)
}

/// `t` as the transaction log shows it, with the cut-offs closed by
/// `now_ms` counted as run.
pub fn transaction_line(t: &TxRecord, cut_off: &CutOff, now_ms: u64) -> TransactionLine {
    let l = lifecycle_of(t).as_of(cut_off.last_closed(now_ms));
    let pending = t.state == TxState::Sent;
    let (provider, wallet_type) = wallet_of(t);
    let sent = t.sent_to.as_ref();
    TransactionLine {
        merchant_id: t.merchant_id.clone(),
        transaction_reference: t.reference.clone(),
        transaction_date_time: iso8601(t.created_ms / 1000),
        amount: t.amount,
        currency_code: t.currency.clone(),
        masked_pan: t.masked_pan.clone(),
        payment_mean_brand: t.brand.clone(),
        pan_entry_mode: t.pan_entry_mode.clone(),
        payment_mean_data_provider: provider,
        wallet_type,
        order_channel: t.order_channel.clone(),
        response_code: t.answer.as_ref().map(|a| a.response_code.clone()),
        acquirer_response_code: t
            .answer
            .as_ref()
            .and_then(|a| a.acquirer_response_code.clone()),
        authorisation_id: t.answer.as_ref().and_then(|a| a.authorisation_id.clone()),
        transaction_status: if pending {
            "PENDING"
        } else {
            l.status.as_str()
        },
        capture_mode: t.capture_mode.clone(),
        capture_limit_date: date_text(l.capture_day),
        current_amount: if pending { 0 } else { l.current_amount() },
        captured_amount: l.captured,
        refunded_amount: l.refunded,
        reversal_status: t.reversal.as_str(),
        acquirer: sent.map(|s| s.acquirer.clone()),
        terminal_id: sent.map(|s| s.terminal_id.clone()),
        stan: sent.map(|s| s.stan.clone()),
        rrn: sent.map(|s| s.rrn.clone()),
    }
}

/// Operation `op` of transaction `t`, as the operations log shows it.
pub fn operation_line(op: &OperationRecord, t: &TxRecord) -> OperationLine {
    let (provider, wallet_type) = wallet_of(t);
    OperationLine {
        merchant_id: t.merchant_id.clone(),
        transaction_reference: t.reference.clone(),
        operation_date_time: iso8601(op.created_ms / 1000),
        operation_type: op.kind.clone(),
        operation_amount: op.amount,
        currency_code: t.currency.clone(),
        response_code: op.response_code.clone(),
        new_status: op.new_status.clone(),
        new_amount: op.new_amount,
        operation_reference: op.operation_reference.clone(),
        masked_pan: t.masked_pan.clone(),
        payment_mean_data_provider: provider,
        wallet_type,
    }
}
