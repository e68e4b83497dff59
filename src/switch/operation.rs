//! The switch's typed operations: what a front-end asks ([`CardOrder`],
//! a Google Pay token to check) and what it is told ([`OrderAnswer`],
//! [`TokenCheck`], or a [`Refusal`] naming the code and the field at
//! fault). No HTTP here: the API layer turns JSON into these and back.

use std::fmt;

use super::codes::ResponseCode;
use super::domain::{Authentication, CardBrand, Currency, OrderChannel, PanEntryMode, Wallet};
use super::lifecycle::{CaptureMode, OperationKind, Status};
use crate::card::{Expiry, Pan};
use crate::wallet::googlepay::Cryptogram;

/// A refused operation: the response code and, for a request field at
/// fault, its name (`errorFieldName`). Never carries the field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: ResponseCode,
    pub field: Option<&'static str>,
}

impl Refusal {
    /// A field missing or malformed (30).
    pub fn format(field: &'static str) -> Refusal {
        Refusal {
            code: ResponseCode::FormatError,
            field: Some(field),
        }
    }

    /// A field whose value is not acceptable (12).
    pub fn invalid(field: &'static str) -> Refusal {
        Refusal {
            code: ResponseCode::InvalidTransaction,
            field: Some(field),
        }
    }

    pub fn code(code: ResponseCode) -> Refusal {
        Refusal { code, field: None }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{} ({field})", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

/// The card of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardInput {
    /// Card digits: a DPAN (CRYPTOGRAM_3DS) or a PAN.
    Number(Pan),
    /// A vault reference handed out for a PAN_ONLY token.
    Vault(String),
}

/// An authorization request as the front-end gives it, typed and checked
/// field by field; the switch checks how the fields go together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOrder {
    pub transaction_reference: String,
    /// Minor units.
    pub amount: u64,
    pub currency: Currency,
    pub order_channel: OrderChannel,
    pub card: CardInput,
    /// The request field the card came in (`cardNumber`, `paymentToken`),
    /// named in refusals.
    pub card_field: &'static str,
    pub expiry: Option<Expiry>,
    pub pan_entry_mode: Option<PanEntryMode>,
    pub brand: Option<CardBrand>,
    pub wallet: Option<Wallet>,
    pub authentication: Option<Authentication>,
    /// `captureMode` and `captureDay` (as applied: at most 6).
    pub capture: Capture,
}

/// How an approved authorization is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub mode: CaptureMode,
    /// Business days after the authorization's (0-6).
    pub days: u8,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            mode: CaptureMode::AuthorCapture,
            days: 0,
        }
    }
}

/// What the merchant is told of an authorization (the same on a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAnswer {
    pub response_code: ResponseCode,
    pub acquirer_response_code: Option<String>,
    pub authorisation_id: Option<String>,
    pub transaction_reference: String,
    /// When the switch received the order, Unix milliseconds.
    pub transaction_ms: u64,
    pub masked_pan: String,
    pub brand: CardBrand,
    pub wallet: Option<Wallet>,
    pub pan_entry_mode: PanEntryMode,
    pub capture: Capture,
}

/// A decrypted Google Pay token, as the merchant gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCheck {
    pub masked_pan: String,
    pub brand: CardBrand,
    pub expiry: Expiry,
    pub mode: TokenMode,
}

/// What the token carries, by Google's `authMethod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenMode {
    /// The network token (DPAN) itself and its cryptogram go back to the
    /// merchant for the cardOrder.
    Cryptogram3ds {
        dpan: Pan,
        cryptogram: Option<Cryptogram>,
        eci: Option<String>,
    },
    /// The PAN stays in the switch's vault; the merchant gets a reference.
    PanOnly { reference: String },
}

/// A cash-management operation as the front-end gives it (`cancel`,
/// `validate`, `refund`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashRequest {
    pub kind: OperationKind,
    pub transaction_reference: String,
    /// `operationAmount`, minor units.
    pub amount: u64,
    /// `currencyCode`: when given, the transaction's.
    pub currency: Option<Currency>,
    /// The merchant's id for this operation (`operationReference`): a
    /// retry with the same one gets the recorded answer, and changes
    /// nothing. Without it, every request is a new operation.
    pub operation_reference: Option<String>,
}

/// What the merchant is told of an operation (the same on a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationAnswer {
    pub response_code: ResponseCode,
    pub transaction_reference: String,
    pub operation_reference: Option<String>,
    pub new_status: Status,
    /// What is left to capture before capture; captured less refunded
    /// after.
    pub new_amount: u64,
    /// When the operation was recorded, Unix milliseconds.
    pub operation_ms: u64,
}

/// One line of a transaction's history: an operation or a cut-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    /// `cancel`, `validate`, `refund`, `capture`, `expire`.
    pub kind: String,
    pub amount: u64,
    pub response_code: String,
    pub new_status: String,
    pub new_amount: u64,
    pub operation_ms: u64,
    pub operation_reference: Option<String>,
}

/// getTransactionData: where a transaction stands, and how it got there.
/// Card data masked only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionData {
    pub transaction_reference: String,
    /// `None`: the authorization is still waiting for its answer.
    pub status: Option<Status>,
    pub original_amount: u64,
    pub current_amount: u64,
    pub captured_amount: u64,
    pub refunded_amount: u64,
    /// ISO 4217 numeric.
    pub currency: String,
    pub capture: Capture,
    /// The date (`YYYY-MM-DD`, the cut-off's time zone) whose cut-off
    /// captures it, or expires it unvalidated.
    pub capture_limit_date: String,
    /// The authorization's answer as the merchant was told it.
    pub order: OrderAnswer,
    /// Whether the switch reversed the authorization at the acquirer
    /// because its answer never came (a 90/99): `none`, `queued`,
    /// `acknowledged`, `expired`.
    pub reversal: &'static str,
    pub history: Vec<HistoryLine>,
}
