//! The gateway JSON shapes: requests read with serde into typed structs
//! (a field of the wrong JSON type is named by its path, through
//! `serde_path_to_error`), checked field by field into the switch's typed
//! operations (`30` missing or malformed, `12` invalid value, with the
//! field's name), and the typed responses. Pure: no I/O.
//!
//! Refusals name the field only; the rejected value (possibly card data)
//! is never echoed.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::card::{Expiry, Pan};
use crate::switch::domain::{
    Authentication, CardBrand, Cryptogram, Currency, Eci, HolderAuthentProgram, OrderChannel,
    PanEntryMode, ThreeDsResult, ThreeDsStatus, Wallet,
};
use crate::switch::lifecycle::{applied_capture_day, CaptureMode, OperationKind};
use crate::switch::windows::VAULT_PREFIX;
use crate::switch::{
    Capture, CardInput, CardOrder, CashRequest, OperationAnswer, OrderAnswer, Refusal,
    ResponseCode, TokenCheck, TokenMode, TransactionData,
};

/// Every request field the API reads, as `errorFieldName` names it.
/// Values in the `authenticationResult` sub-objects (`googlePay`,
/// `threeDS`, ...) are named `authenticationResult.<field>`.
const FIELDS: &[&str] = &[
    "merchantId",
    "interfaceVersion",
    "keyVersion",
    "seal",
    "sealAlgorithm",
    "transactionReference",
    "amount",
    "currencyCode",
    "orderChannel",
    "cardNumber",
    "paymentToken",
    "cardExpiryDate",
    "panEntryMode",
    "paymentMeanBrand",
    "paymentMeanDataProvider",
    "paymentData",
    "holderAuthentProgram",
    "authenticationResult",
    "authenticationResult.holderAuthentProgram",
    "authenticationResult.cavv",
    "authenticationResult.eci",
    "schemeTokenData",
    "schemeTokenData.tavv",
    "schemeTokenData.eci",
    "captureMode",
    "captureDay",
    "panType",
    "walletType",
    "authenticationResult.threeDSVersion",
    "authenticationResult.dsTransactionId",
    "authenticationResult.authenticationStatus",
    "operationAmount",
    "operationReference",
    "threeDSStatus",
];

/// The static name of the field at `path` (serde's `a.b.c`), for
/// `errorFieldName`.
pub fn field_name(path: &str) -> &'static str {
    let mut parts = path.split('.').filter(|p| !p.is_empty());
    let top = parts.next().unwrap_or("body");
    let leaf = parts.next_back();
    let candidate = match leaf {
        Some(l) => format!("{top}.{l}"),
        None => top.to_owned(),
    };
    FIELDS
        .iter()
        .find(|f| **f == candidate)
        .or_else(|| FIELDS.iter().find(|f| **f == top))
        .copied()
        .unwrap_or("body")
}

/// Reads `value` as `T`, borrowing its strings; a field of the wrong
/// type is a 30 naming it. The path is only tracked when the plain read
/// fails (tracking it costs a string per field; a refusal is rare).
pub fn typed_ref<'v, T: Deserialize<'v>>(value: &'v Value) -> Result<T, Refusal> {
    match T::deserialize(value) {
        Ok(t) => Ok(t),
        Err(_) => Err(path_of::<T>(value)),
    }
}

/// The refusal naming the field where reading `value` as `T` fails.
fn path_of<'v, T: Deserialize<'v>>(value: &'v Value) -> Refusal {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Err(e) => Refusal::format(field_name(&e.path().to_string())),
        Ok(_) => Refusal::format("body"),
    }
}

/// An amount: a JSON integer or a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Minor(u64),
    /// A number that is not a non-negative integer, or digits that
    /// overflow: refused as an invalid value (12), not a format error.
    Invalid,
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string of digits")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount::Minor(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(u64::try_from(v).map_or(Amount::Invalid, Amount::Minor))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Amount, E> {
                Ok(Amount::Invalid)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Amount, E> {
                if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("not digits"));
                }
                Ok(s.parse().map_or(Amount::Invalid, Amount::Minor))
            }
        }
        d.deserialize_any(V)
    }
}

/// The request envelope every operation shares (borrowing the request).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    #[serde(borrow)]
    pub merchant_id: Option<&'a str>,
    #[serde(borrow)]
    pub interface_version: Option<&'a str>,
    pub key_version: Option<Amount>,
    #[serde(borrow)]
    pub seal: Option<&'a str>,
    #[serde(borrow)]
    pub seal_algorithm: Option<&'a str>,
}

/// `paymentDataProviderCheck` (borrowing the request, as the others).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRequest<'a> {
    #[serde(borrow)]
    pub payment_mean_data_provider: Option<&'a str>,
    #[serde(borrow)]
    pub payment_data: Option<&'a str>,
}

/// The ECI and cryptogram of an authentication, in any of the
/// sub-objects the gateways use.
#[derive(Default, Deserialize)]
pub struct AuthValues<'a> {
    #[serde(borrow)]
    pub cavv: Option<&'a str>,
    #[serde(borrow)]
    pub eci: Option<&'a str>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResult<'a> {
    #[serde(borrow)]
    pub holder_authent_program: Option<&'a str>,
    #[serde(borrow, alias = "googlepay", alias = "threeDS", alias = "threeDs")]
    pub google_pay: Option<AuthValues<'a>>,
    #[serde(borrow)]
    pub cavv: Option<&'a str>,
    #[serde(borrow)]
    pub eci: Option<&'a str>,
    /// A 3-D Secure result's protocol version (`2.2.0`).
    #[serde(borrow, rename = "threeDSVersion", alias = "threeDsVersion")]
    pub three_ds_version: Option<&'a str>,
    /// The directory server's transaction id.
    #[serde(borrow, rename = "dsTransactionId", alias = "threeDSServerTransID")]
    pub ds_transaction_id: Option<&'a str>,
    /// EMV 3-D Secure `transStatus`: Y, A (go on), N, U, R (refused).
    #[serde(borrow, alias = "transStatus")]
    pub authentication_status: Option<&'a str>,
}

#[derive(Default, Deserialize)]
pub struct SchemeTokenData<'a> {
    #[serde(borrow)]
    pub tavv: Option<&'a str>,
    #[serde(borrow)]
    pub eci: Option<&'a str>,
}

/// `cardOrder`. No `Debug` here nor on the authentication values: they
/// hold the card number and cryptograms as received.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardOrderRequest<'a> {
    #[serde(borrow)]
    pub transaction_reference: Option<&'a str>,
    pub amount: Option<Amount>,
    #[serde(borrow)]
    pub currency_code: Option<&'a str>,
    #[serde(borrow)]
    pub order_channel: Option<&'a str>,
    #[serde(borrow)]
    pub card_number: Option<&'a str>,
    #[serde(borrow)]
    pub payment_token: Option<&'a str>,
    #[serde(borrow)]
    pub card_expiry_date: Option<&'a str>,
    #[serde(borrow)]
    pub pan_entry_mode: Option<&'a str>,
    #[serde(borrow)]
    pub payment_mean_brand: Option<&'a str>,
    #[serde(borrow)]
    pub payment_mean_data_provider: Option<&'a str>,
    #[serde(borrow)]
    pub holder_authent_program: Option<&'a str>,
    #[serde(borrow)]
    pub authentication_result: Option<AuthenticationResult<'a>>,
    #[serde(borrow)]
    pub scheme_token_data: Option<SchemeTokenData<'a>>,
    #[serde(borrow)]
    pub capture_mode: Option<&'a str>,
    pub capture_day: Option<Amount>,
    /// cardValidateAuthenticationAndOrder: `TOKEN_PAN` (the card number
    /// is a vault reference).
    #[serde(borrow)]
    pub pan_type: Option<&'a str>,
    /// cardValidateAuthenticationAndOrder: `GOOGLE_WALLET`.
    #[serde(borrow)]
    pub wallet_type: Option<&'a str>,
}

/// `captureMode` (default `AUTHOR_CAPTURE`) and `captureDay` (default 0;
/// above 6 applied as 6, the response says what was applied).
pub fn capture(mode: Option<&str>, day: Option<Amount>) -> Result<Capture, Refusal> {
    let mode =
        parsed(mode, "captureMode", CaptureMode::parse)?.unwrap_or(CaptureMode::AuthorCapture);
    let days = match day {
        None => 0,
        Some(Amount::Minor(d)) => applied_capture_day(d),
        Some(_) => return Err(Refusal::invalid("captureDay")),
    };
    Ok(Capture { mode, days })
}

fn required<T>(v: Option<T>, name: &'static str) -> Result<T, Refusal> {
    v.ok_or(Refusal::format(name))
}

fn parsed<T>(
    v: Option<&str>,
    name: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, Refusal> {
    v.map(|s| parse(s).ok_or(Refusal::invalid(name)))
        .transpose()
}

/// `transactionReference`: 1 to 35 letters and digits (Sips rule).
pub fn transaction_reference(r: Option<&str>) -> Result<String, Refusal> {
    const F: &str = "transactionReference";
    let r = required(r, F)?;
    if r.is_empty() || r.len() > 35 || !r.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Refusal::invalid(F));
    }
    Ok(r.to_owned())
}

pub fn amount(a: Option<Amount>) -> Result<u64, Refusal> {
    match required(a, "amount")? {
        Amount::Minor(a) if (1..=999_999_999_999).contains(&a) => Ok(a),
        _ => Err(Refusal::invalid("amount")),
    }
}

impl CardOrderRequest<'_> {
    /// The typed order: each field checked on its own (the switch checks
    /// how they go together).
    pub fn into_order(self) -> Result<CardOrder, Refusal> {
        let transaction_reference = transaction_reference(self.transaction_reference)?;
        let amount = amount(self.amount)?;
        let currency = parsed(
            Some(required(self.currency_code, "currencyCode")?),
            "currencyCode",
            Currency::parse,
        )?
        .ok_or(Refusal::format("currencyCode"))?;
        let order_channel = parsed(
            Some(required(self.order_channel, "orderChannel")?),
            "orderChannel",
            OrderChannel::parse,
        )?
        .ok_or(Refusal::format("orderChannel"))?;
        let wallet = parsed(
            self.payment_mean_data_provider,
            "paymentMeanDataProvider",
            Wallet::parse,
        )?;
        let authentication = authentication(
            self.holder_authent_program,
            self.authentication_result.as_ref(),
            self.scheme_token_data.as_ref(),
        )?;
        let (card, card_field) = match (self.payment_token, self.card_number) {
            (Some(t), None) => (t, "paymentToken"),
            (None, Some(n)) => (n, "cardNumber"),
            (Some(_), Some(_)) => return Err(Refusal::invalid("cardNumber")),
            (None, None) => return Err(Refusal::format("cardNumber")),
        };
        let card = if card.starts_with(VAULT_PREFIX) {
            CardInput::Vault(card.to_owned())
        } else {
            CardInput::Number(
                Pan::new(card)
                    .filter(Pan::luhn_valid)
                    .ok_or(Refusal::invalid(card_field))?,
            )
        };
        Ok(CardOrder {
            transaction_reference,
            amount,
            currency,
            order_channel,
            card,
            card_field,
            expiry: parsed(
                self.card_expiry_date,
                "cardExpiryDate",
                Expiry::parse_yyyymm,
            )?,
            pan_entry_mode: parsed(self.pan_entry_mode, "panEntryMode", PanEntryMode::parse)?,
            brand: parsed(
                self.payment_mean_brand,
                "paymentMeanBrand",
                CardBrand::parse,
            )?,
            wallet,
            authentication,
            capture: capture(self.capture_mode, self.capture_day)?,
        })
    }
}

impl<'a> CardOrderRequest<'a> {
    /// cardValidateAuthenticationAndOrder: a PAN_ONLY card kept in the
    /// vault (`cardNumber` its reference, `panType` `TOKEN_PAN`,
    /// `walletType` `GOOGLE_WALLET`, `panEntryMode` `WALLET` or absent)
    /// and the result of the merchant's 3-D Secure authentication
    /// (`authenticationResult`: `cavv`, `eci`, `threeDSVersion`,
    /// `dsTransactionId`, `authenticationStatus`; the program is 3DS).
    pub fn into_validated_order(mut self) -> Result<CardOrder, Refusal> {
        match self.pan_type {
            Some("TOKEN_PAN") => {}
            Some(_) => return Err(Refusal::invalid("panType")),
            None => return Err(Refusal::format("panType")),
        }
        match self.wallet_type {
            Some("GOOGLE_WALLET") => {}
            Some(_) => return Err(Refusal::invalid("walletType")),
            None => return Err(Refusal::format("walletType")),
        }
        if self.pan_entry_mode.is_some_and(|m| m != "WALLET") {
            return Err(Refusal::invalid("panEntryMode"));
        }
        if self.payment_token.is_some() {
            return Err(Refusal::invalid("paymentToken"));
        }
        match self.card_number {
            Some(n) if n.starts_with(VAULT_PREFIX) => {}
            Some(_) => return Err(Refusal::invalid("cardNumber")),
            None => return Err(Refusal::format("cardNumber")),
        }
        let status = self
            .authentication_result
            .as_ref()
            .and_then(|r| r.authentication_status);
        if status.is_none() {
            return Err(Refusal::format("authenticationResult.authenticationStatus"));
        }
        if self.holder_authent_program.is_none() {
            self.holder_authent_program = Some(HolderAuthentProgram::ThreeDs.as_str());
        }
        self.into_order()
    }
}

/// The 3-D Secure result's identifiers and status, when a status is
/// given (the version is then required).
fn three_ds(result: Option<&AuthenticationResult<'_>>) -> Result<Option<ThreeDsResult>, Refusal> {
    const STATUS: &str = "authenticationResult.authenticationStatus";
    const VERSION: &str = "authenticationResult.threeDSVersion";
    const DS_ID: &str = "authenticationResult.dsTransactionId";
    let Some(r) = result else { return Ok(None) };
    let Some(status) = r.authentication_status else {
        return Ok(None);
    };
    let status = ThreeDsStatus::parse(status).ok_or(Refusal::invalid(STATUS))?;
    let version = r.three_ds_version.ok_or(Refusal::format(VERSION))?;
    let version_ok = (1..=8).contains(&version.len())
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !version_ok {
        return Err(Refusal::invalid(VERSION));
    }
    let ds_transaction_id = r
        .ds_transaction_id
        .map(|d| {
            let ok = (1..=36).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
            ok.then(|| d.to_owned()).ok_or(Refusal::invalid(DS_ID))
        })
        .transpose()?;
    Ok(Some(ThreeDsResult {
        version: version.to_owned(),
        ds_transaction_id,
        status,
    }))
}

/// The authentication data: `holderAuthentProgram`, the ECI and the
/// cryptogram, from `authenticationResult` (and its `googlePay`/
/// `googlepay`/`threeDS` sub-objects) and `schemeTokenData` (`tavv`,
/// `eci`). TAVV and CAVV are two names for the one cryptogram carried:
/// given both, they must be equal.
pub fn authentication(
    top_program: Option<&str>,
    result: Option<&AuthenticationResult<'_>>,
    std_: Option<&SchemeTokenData<'_>>,
) -> Result<Option<Authentication>, Refusal> {
    const TAVV: &str = "schemeTokenData.tavv";
    const CAVV: &str = "authenticationResult.cavv";
    let inner = result.and_then(|r| r.google_pay.as_ref());
    let program = result
        .and_then(|r| r.holder_authent_program)
        .or(top_program);
    let program = program
        .map(|p| HolderAuthentProgram::parse(p).ok_or(Refusal::invalid("holderAuthentProgram")))
        .transpose()?;
    let cavv = inner.and_then(|i| i.cavv).or(result.and_then(|r| r.cavv));
    let tavv = std_.and_then(|s| s.tavv);
    let eci = inner
        .and_then(|i| i.eci)
        .or(result.and_then(|r| r.eci))
        .or(std_.and_then(|s| s.eci));
    let cryptogram_text = match (tavv, cavv) {
        (Some(t), Some(c)) if t != c => return Err(Refusal::invalid(TAVV)),
        (Some(t), _) => Some((t, TAVV)),
        (None, Some(c)) => Some((c, CAVV)),
        (None, None) => None,
    };
    let cryptogram = cryptogram_text
        .map(|(t, f)| {
            Cryptogram::from_base64(t)
                .filter(Cryptogram::is_scheme_length)
                .ok_or(Refusal::invalid(f))
        })
        .transpose()?;
    let eci = eci
        .map(|e| Eci::parse(e).ok_or(Refusal::invalid("authenticationResult.eci")))
        .transpose()?;
    let three_ds = three_ds(result)?;
    let program = match (program, &cryptogram) {
        (Some(p), _) => p,
        (None, None) if eci.is_none() && three_ds.is_none() => return Ok(None),
        (None, _) => return Err(Refusal::format("holderAuthentProgram")),
    };
    if three_ds.is_some() && program != HolderAuthentProgram::ThreeDs {
        return Err(Refusal::invalid("holderAuthentProgram"));
    }
    Ok(Some(Authentication {
        program,
        eci,
        cryptogram,
        three_ds,
    }))
}

/// A refusal as the merchant sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalResponse {
    pub response_code: ResponseCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_field_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_reference: Option<String>,
}

impl RefusalResponse {
    pub fn of(r: Refusal) -> RefusalResponse {
        RefusalResponse {
            response_code: r.code,
            error_field_name: r.field,
            transaction_reference: None,
        }
    }
}

/// `cardOrder`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardOrderResponse {
    pub response_code: ResponseCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquirer_response_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorisation_id: Option<String>,
    pub transaction_reference: String,
    pub transaction_date_time: String,
    pub masked_pan: String,
    pub payment_mean_brand: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_mean_data_provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_type: Option<&'static str>,
    pub pan_entry_mode: &'static str,
    pub capture_mode: &'static str,
    /// As applied (a value above 6 asked is 6).
    pub capture_day: u8,
}

impl From<OrderAnswer> for CardOrderResponse {
    fn from(a: OrderAnswer) -> Self {
        let (payment_mean_data_provider, wallet_type) =
            Wallet::log_fields(a.wallet, a.pan_entry_mode);
        CardOrderResponse {
            response_code: a.response_code,
            acquirer_response_code: a.acquirer_response_code,
            authorisation_id: a.authorisation_id,
            transaction_reference: a.transaction_reference,
            transaction_date_time: crate::civil::iso8601(a.transaction_ms / 1000),
            masked_pan: a.masked_pan,
            payment_mean_brand: a.brand.as_str(),
            payment_mean_data_provider,
            wallet_type,
            pan_entry_mode: a.pan_entry_mode.as_str(),
            capture_mode: a.capture.mode.as_str(),
            capture_day: a.capture.days,
        }
    }
}

/// No `Debug`: the cryptogram is in clear here (the merchant's copy).
#[derive(Serialize)]
pub struct GooglePayValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eci: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cavv: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckAuthentication {
    pub holder_authent_program: &'static str,
    pub google_pay: GooglePayValues,
}

/// `paymentDataProviderCheck`'s answer. For CRYPTOGRAM_3DS the DPAN and
/// cryptogram go back to the merchant (the contract); for
/// PAN_ONLY, a vault reference. No `Debug`: the DPAN and cryptogram are
/// in clear here, for the merchant only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    pub response_code: ResponseCode,
    pub payment_mean_data_provider: &'static str,
    pub payment_mean_brand: &'static str,
    pub masked_pan: String,
    pub card_expiry_date: String,
    pub pan_entry_mode: &'static str,
    pub payment_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_result: Option<CheckAuthentication>,
}

impl From<TokenCheck> for CheckResponse {
    fn from(c: TokenCheck) -> Self {
        let (pan_entry_mode, payment_token, authentication_result) = match c.mode {
            TokenMode::Cryptogram3ds {
                dpan,
                cryptogram,
                eci,
            } => (
                PanEntryMode::OemPay,
                dpan.reveal().to_owned(),
                Some(CheckAuthentication {
                    holder_authent_program: HolderAuthentProgram::GooglePay.as_str(),
                    google_pay: GooglePayValues {
                        eci,
                        cavv: cryptogram.map(|c| c.to_base64().to_string()),
                    },
                }),
            ),
            TokenMode::PanOnly { reference } => (PanEntryMode::Wallet, reference, None),
        };
        CheckResponse {
            response_code: ResponseCode::Approved,
            payment_mean_data_provider: Wallet::GooglePay.as_str(),
            payment_mean_brand: c.brand.as_str(),
            masked_pan: c.masked_pan,
            card_expiry_date: c.expiry.yyyymm(),
            pan_entry_mode: pan_entry_mode.as_str(),
            payment_token,
            authentication_result,
        }
    }
}

/// `cancel`, `validate`, `refund` (cashManagement).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashManagementRequest<'a> {
    #[serde(borrow)]
    pub transaction_reference: Option<&'a str>,
    pub operation_amount: Option<Amount>,
    #[serde(borrow)]
    pub currency_code: Option<&'a str>,
    #[serde(borrow)]
    pub operation_reference: Option<&'a str>,
}

impl CashManagementRequest<'_> {
    pub fn into_request(self, kind: OperationKind) -> Result<CashRequest, Refusal> {
        const AMOUNT: &str = "operationAmount";
        let amount = match self.operation_amount {
            None => return Err(Refusal::format(AMOUNT)),
            Some(Amount::Minor(a)) if (1..=999_999_999_999).contains(&a) => a,
            Some(_) => return Err(Refusal::invalid(AMOUNT)),
        };
        let operation_reference = self
            .operation_reference
            .map(|r| {
                let ok =
                    (1..=35).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| r.to_owned())
                    .ok_or(Refusal::invalid("operationReference"))
            })
            .transpose()?;
        Ok(CashRequest {
            kind,
            transaction_reference: transaction_reference(self.transaction_reference)?,
            amount,
            currency: parsed(self.currency_code, "currencyCode", Currency::parse)?,
            operation_reference,
        })
    }
}

/// A cash-management operation's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CashManagementResponse {
    pub response_code: ResponseCode,
    pub transaction_reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_reference: Option<String>,
    pub new_status: &'static str,
    pub new_amount: u64,
    pub operation_date_time: String,
}

impl From<OperationAnswer> for CashManagementResponse {
    fn from(a: OperationAnswer) -> Self {
        CashManagementResponse {
            response_code: a.response_code,
            transaction_reference: a.transaction_reference,
            operation_reference: a.operation_reference,
            new_status: a.new_status.as_str(),
            new_amount: a.new_amount,
            operation_date_time: crate::civil::iso8601(a.operation_ms / 1000),
        }
    }
}

/// `getTransactionData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDataRequest<'a> {
    #[serde(borrow)]
    pub transaction_reference: Option<&'a str>,
}

/// One operation in `getTransactionData`'s `operations`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationLine {
    /// `cancel`, `validate`, `refund`, or the cut-off's `capture`,
    /// `expire`.
    pub operation_type: String,
    pub operation_amount: u64,
    pub operation_date_time: String,
    pub response_code: String,
    pub new_status: String,
    pub new_amount: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_reference: Option<String>,
}

/// `getTransactionData`'s answer: masked card data only.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDataResponse {
    pub response_code: ResponseCode,
    pub transaction_reference: String,
    pub transaction_date_time: String,
    /// `PENDING` while the authorization waits for its answer.
    pub transaction_status: &'static str,
    pub original_amount: u64,
    pub current_amount: u64,
    pub captured_amount: u64,
    pub refunded_amount: u64,
    pub currency_code: String,
    pub capture_mode: &'static str,
    pub capture_day: u8,
    pub capture_limit_date: String,
    /// The authorization's answer, as the merchant was told it.
    pub authorisation_response_code: ResponseCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquirer_response_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorisation_id: Option<String>,
    /// Whether an authorization without an answer (90/99) was reversed at
    /// the acquirer: `none`, `queued`, `acknowledged`, `expired`.
    pub reversal_status: &'static str,
    pub masked_pan: String,
    pub payment_mean_brand: &'static str,
    pub pan_entry_mode: &'static str,
    /// `GOOGLEPAY` for a Google Pay CRYPTOGRAM_3DS payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_mean_data_provider: Option<&'static str>,
    /// `GOOGLE_WALLET` for a Google Pay PAN_ONLY payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_type: Option<&'static str>,
    pub operations: Vec<OperationLine>,
}

impl From<TransactionData> for TransactionDataResponse {
    fn from(d: TransactionData) -> Self {
        let o = d.order;
        let (payment_mean_data_provider, wallet_type) =
            Wallet::log_fields(o.wallet, o.pan_entry_mode);
        TransactionDataResponse {
            response_code: ResponseCode::Approved,
            transaction_reference: d.transaction_reference,
            transaction_date_time: crate::civil::iso8601(o.transaction_ms / 1000),
            transaction_status: d.status.map_or("PENDING", |s| s.as_str()),
            original_amount: d.original_amount,
            current_amount: d.current_amount,
            captured_amount: d.captured_amount,
            refunded_amount: d.refunded_amount,
            currency_code: d.currency,
            capture_mode: d.capture.mode.as_str(),
            capture_day: d.capture.days,
            capture_limit_date: d.capture_limit_date,
            authorisation_response_code: o.response_code,
            acquirer_response_code: o.acquirer_response_code,
            authorisation_id: o.authorisation_id,
            reversal_status: d.reversal,
            masked_pan: o.masked_pan,
            payment_mean_brand: o.brand.as_str(),
            pan_entry_mode: o.pan_entry_mode.as_str(),
            payment_mean_data_provider,
            wallet_type,
            operations: d
                .history
                .into_iter()
                .map(|h| OperationLine {
                    operation_type: h.kind,
                    operation_amount: h.amount,
                    operation_date_time: crate::civil::iso8601(h.operation_ms / 1000),
                    response_code: h.response_code,
                    new_status: h.new_status,
                    new_amount: h.new_amount,
                    operation_reference: h.operation_reference,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";

    fn order(v: Value) -> Result<CardOrder, Refusal> {
        typed_ref::<CardOrderRequest<'_>>(&v)?.into_order()
    }

    fn base() -> Value {
        json!({"transactionReference": "R1", "amount": 1000, "currencyCode": "978",
               "orderChannel": "INTERNET", "cardNumber": "4895370012003478",
               "authenticationResult": {"holderAuthentProgram": "GOOGLEPAY",
                   "googlePay": {"eci": "05", "cavv": C}}})
    }

    #[test]
    fn authentication_names() {
        let a = order(base()).unwrap().authentication.unwrap();
        assert_eq!(a.program, HolderAuthentProgram::GooglePay);
        assert_eq!(a.eci.unwrap().as_str(), "05");
        let mut v = base();
        v.as_object_mut().unwrap().remove("authenticationResult");
        v["holderAuthentProgram"] = json!("GOOGLEPAY");
        v["schemeTokenData"] = json!({"tavv": C, "eci": "05"});
        assert_eq!(order(v).unwrap().authentication.unwrap(), a);
        let mut v = base();
        v["authenticationResult"] = json!({"holderAuthentProgram": "GOOGLEPAY",
            "googlepay": {"cavv": C}});
        assert!(order(v)
            .unwrap()
            .authentication
            .unwrap()
            .cryptogram
            .is_some());
        // Two different values for the one cryptogram.
        let mut v = base();
        v["schemeTokenData"] = json!({"tavv": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="});
        assert_eq!(
            order(v).unwrap_err(),
            Refusal::invalid("schemeTokenData.tavv")
        );
        let mut v = base();
        v["authenticationResult"] = json!({"holderAuthentProgram": "3DS",
            "threeDS": {"cavv": "short"}});
        assert_eq!(
            order(v).unwrap_err(),
            Refusal::invalid("authenticationResult.cavv")
        );
        // A wrong JSON type deep inside is named like its value.
        let mut v = base();
        v["authenticationResult"]["googlePay"]["eci"] = json!(5);
        assert_eq!(
            order(v).unwrap_err(),
            Refusal::format("authenticationResult.eci")
        );
        let mut v = base();
        v["schemeTokenData"] = json!("x");
        assert_eq!(order(v).unwrap_err(), Refusal::format("schemeTokenData"));
    }

    #[test]
    fn scalar_fields() {
        let amount_of = |a: Value| {
            let mut v = base();
            v["amount"] = a;
            order(v).map(|o| o.amount)
        };
        assert_eq!(amount_of(json!(1000)).unwrap(), 1000);
        assert_eq!(amount_of(json!("1000")).unwrap(), 1000);
        assert_eq!(
            amount_of(json!("10.00")).unwrap_err(),
            Refusal::format("amount")
        );
        assert_eq!(amount_of(json!(0)).unwrap_err(), Refusal::invalid("amount"));
        assert_eq!(
            amount_of(json!(-5)).unwrap_err(),
            Refusal::invalid("amount")
        );
        assert_eq!(
            amount_of(json!(1.5)).unwrap_err(),
            Refusal::invalid("amount")
        );
        assert_eq!(
            amount_of(json!(true)).unwrap_err(),
            Refusal::format("amount")
        );
        let mut v = base();
        v.as_object_mut().unwrap().remove("amount");
        assert_eq!(order(v).unwrap_err(), Refusal::format("amount"));
        let mut v = base();
        v["transactionReference"] = json!("a-b");
        assert_eq!(
            order(v).unwrap_err(),
            Refusal::invalid("transactionReference")
        );
        let mut v = base();
        v["currencyCode"] = json!("EUR");
        assert_eq!(order(v).unwrap_err(), Refusal::invalid("currencyCode"));
        let mut v = base();
        v["currencyCode"] = json!(978);
        assert_eq!(order(v).unwrap_err(), Refusal::format("currencyCode"));
        let mut v = base();
        v["paymentToken"] = json!("vlt_0");
        assert_eq!(order(v).unwrap_err(), Refusal::invalid("cardNumber"));
    }

    #[test]
    fn field_names_from_paths() {
        assert_eq!(field_name("amount"), "amount");
        assert_eq!(
            field_name("authenticationResult.threeDS.cavv"),
            "authenticationResult.cavv"
        );
        assert_eq!(
            field_name("authenticationResult.eci"),
            "authenticationResult.eci"
        );
        assert_eq!(
            field_name("authenticationResult.x.y"),
            "authenticationResult"
        );
        assert_eq!(field_name("nonsense"), "body");
        assert_eq!(field_name("."), "body");
    }
}
