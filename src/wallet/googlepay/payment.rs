//! The decrypted payload: card data in types that mask themselves and zeroize
//! on drop, parsed from and printed as Google's JSON shape.
//!
//! ```json
//! {"gatewayMerchantId": "...",            (optional)
//!  "messageExpiration": "1879409613939",
//!  "messageId": "AH2Ejt...",
//!  "paymentMethod": "CARD",
//!  "paymentMethodDetails": {
//!     "pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2026,
//!     "authMethod": "CRYPTOGRAM_3DS",
//!     "cryptogram": "AgAAAAAABk4DWZ4C28yUQAAAAAA=", "eciIndicator": "05"}}
//! ```

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::error::TokenError;
pub use crate::card::{Cryptogram, Pan};

/// How the card was authenticated by Google.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A card on file in the Google account; no cryptogram.
    PanOnly,
    /// A device token (DPAN) with a cryptogram.
    Cryptogram3ds,
}

impl AuthMethod {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::PanOnly => "PAN_ONLY",
            AuthMethod::Cryptogram3ds => "CRYPTOGRAM_3DS",
        }
    }
}

/// `paymentMethodDetails` of a CARD payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethodDetails {
    /// FPAN for PAN_ONLY, DPAN for CRYPTOGRAM_3DS.
    pub pan: Pan,
    /// 1..=12.
    pub expiration_month: u8,
    /// Four-digit year.
    pub expiration_year: u16,
    /// PAN_ONLY or CRYPTOGRAM_3DS.
    pub auth_method: AuthMethod,
    /// Present (and required) for CRYPTOGRAM_3DS.
    pub cryptogram: Option<Cryptogram>,
    /// ECI, present for some networks with CRYPTOGRAM_3DS.
    pub eci_indicator: Option<String>,
}

impl PaymentMethodDetails {
    /// A PAN_ONLY card.
    pub fn pan_only(pan: Pan, expiration_month: u8, expiration_year: u16) -> Self {
        PaymentMethodDetails {
            pan,
            expiration_month,
            expiration_year,
            auth_method: AuthMethod::PanOnly,
            cryptogram: None,
            eci_indicator: None,
        }
    }

    /// A CRYPTOGRAM_3DS device token.
    pub fn cryptogram_3ds(
        dpan: Pan,
        expiration_month: u8,
        expiration_year: u16,
        cryptogram: Cryptogram,
        eci_indicator: Option<String>,
    ) -> Self {
        PaymentMethodDetails {
            pan: dpan,
            expiration_month,
            expiration_year,
            auth_method: AuthMethod::Cryptogram3ds,
            cryptogram: Some(cryptogram),
            eci_indicator,
        }
    }
}

/// A verified, decrypted and unexpired Google Pay payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedPayment {
    /// `messageId`, Google's id for the payload.
    pub message_id: String,
    /// `messageExpiration`, ms since the epoch.
    pub message_expiration_ms: u64,
    /// `paymentMethod`; `CARD` is the only value Google defines.
    pub payment_method: String,
    /// `gatewayMerchantId`, present when the merchant's Google Pay set-up names one.
    pub gateway_merchant_id: Option<String>,
    /// The card.
    pub details: PaymentMethodDetails,
}

impl DecryptedPayment {
    /// A `CARD` payload with no gatewayMerchantId: what the test sender,
    /// the demo and the benchmarks seal.
    pub fn card(
        message_id: String,
        message_expiration_ms: u64,
        details: PaymentMethodDetails,
    ) -> Self {
        DecryptedPayment {
            message_id,
            message_expiration_ms,
            payment_method: "CARD".into(),
            gateway_merchant_id: None,
            details,
        }
    }

    /// Google's JSON shape, with PAN and cryptogram masked unless `reveal`.
    ///
    /// With `reveal` the returned value holds the clear PAN in ordinary
    /// (non-zeroizing) strings; only the CLI asks for that.
    pub fn to_google_json(&self, reveal: bool) -> Value {
        let d = &self.details;
        let mut details = Map::new();
        let pan = if reveal {
            d.pan.reveal().to_owned()
        } else {
            d.pan.masked()
        };
        details.insert("pan".into(), Value::String(pan));
        details.insert("expirationMonth".into(), json!(d.expiration_month));
        details.insert("expirationYear".into(), json!(d.expiration_year));
        details.insert("authMethod".into(), json!(d.auth_method.as_str()));
        if let Some(c) = &d.cryptogram {
            let c = if reveal {
                c.to_base64().to_string()
            } else {
                c.to_string()
            };
            details.insert("cryptogram".into(), Value::String(c));
        }
        if let Some(eci) = &d.eci_indicator {
            details.insert("eciIndicator".into(), json!(eci));
        }
        let mut out = Map::new();
        if let Some(g) = &self.gateway_merchant_id {
            out.insert("gatewayMerchantId".into(), json!(g));
        }
        out.insert(
            "messageExpiration".into(),
            json!(self.message_expiration_ms.to_string()),
        );
        out.insert("messageId".into(), json!(self.message_id));
        out.insert("paymentMethod".into(), json!(self.payment_method));
        out.insert("paymentMethodDetails".into(), Value::Object(details));
        Value::Object(out)
    }
}

/// The payload as deserialised. Strings borrow the plaintext when they carry
/// no escapes, so the card data is not copied into buffers nobody zeroizes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload<'a> {
    #[serde(borrow, default)]
    gateway_merchant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_expiration: Cow<'a, str>,
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    payment_method: Cow<'a, str>,
    #[serde(borrow)]
    payment_method_details: RawDetails<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetails<'a> {
    #[serde(borrow)]
    pan: Cow<'a, str>,
    expiration_month: u8,
    expiration_year: u16,
    #[serde(borrow)]
    auth_method: Cow<'a, str>,
    #[serde(borrow, default)]
    cryptogram: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    eci_indicator: Option<Cow<'a, str>>,
}

/// Moves an owned (escaped) string into a zeroizing wrapper, so the copy
/// serde made is wiped too.
fn secret(c: Cow<'_, str>) -> Zeroizing<String> {
    match c {
        Cow::Borrowed(s) => Zeroizing::new(s.to_owned()),
        Cow::Owned(s) => Zeroizing::new(s),
    }
}

/// Parses the plaintext of an ECv2/ECv1 card payload.
pub(crate) fn parse_payload(plaintext: &[u8]) -> Result<DecryptedPayment, TokenError> {
    let raw: RawPayload<'_> =
        serde_json::from_slice(plaintext).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => TokenError::Payload("missing or mistyped field"),
            _ => TokenError::Json("payload"),
        })?;
    let message_expiration_ms =
        super::token::parse_ms(&raw.message_expiration, "messageExpiration")
            .map_err(|_| TokenError::Payload("messageExpiration"))?;
    let d = raw.payment_method_details;
    let pan = Pan::new(&secret(d.pan)).ok_or(TokenError::Payload("pan"))?;
    if !(1..=12).contains(&d.expiration_month) {
        return Err(TokenError::Payload("expirationMonth"));
    }
    if !(1000..=9999).contains(&d.expiration_year) {
        return Err(TokenError::Payload("expirationYear"));
    }
    let cryptogram = d
        .cryptogram
        .map(|c| Cryptogram::from_base64(&secret(c)).ok_or(TokenError::Payload("cryptogram")))
        .transpose()?;
    let auth_method = match d.auth_method.as_ref() {
        "PAN_ONLY" => AuthMethod::PanOnly,
        "CRYPTOGRAM_3DS" => AuthMethod::Cryptogram3ds,
        _ => return Err(TokenError::Payload("authMethod")),
    };
    if auth_method == AuthMethod::Cryptogram3ds && cryptogram.is_none() {
        return Err(TokenError::Payload("cryptogram missing for CRYPTOGRAM_3DS"));
    }
    if raw.message_id.is_empty() {
        return Err(TokenError::Payload("messageId"));
    }
    Ok(DecryptedPayment {
        message_id: raw.message_id.into_owned(),
        message_expiration_ms,
        payment_method: raw.payment_method.into_owned(),
        gateway_merchant_id: raw.gateway_merchant_id.map(Cow::into_owned),
        details: PaymentMethodDetails {
            pan,
            expiration_month: d.expiration_month,
            expiration_year: d.expiration_year,
            auth_method,
            cryptogram,
            eci_indicator: d.eci_indicator.map(Cow::into_owned),
        },
    })
}

/// Fuzzing hook: the payload parser on arbitrary bytes.
#[doc(hidden)]
pub fn parse_payload_for_fuzz(data: &[u8]) -> bool {
    parse_payload(data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_masks_first6_last4() {
        let pan = Pan::new("4111111111111111").unwrap();
        assert_eq!(pan.to_string(), "411111******1111");
        // Under 13 digits, 6 + 4 would show almost all of it: hidden.
        assert_eq!(Pan::new("411111111111").unwrap().masked(), "************");
        assert_eq!(format!("{pan:?}"), "Pan(411111******1111)");
        assert!(Pan::new("41111111111").is_none());
        assert!(Pan::new("4111a11111111111").is_none());
        assert_eq!(
            format!("{}", Cryptogram::from_base64("AgAA").unwrap()),
            "****"
        );
    }

    #[test]
    fn payload_with_escapes_parses() {
        let p = br#"{"messageExpiration":"1879409613939","messageId":"m1","paymentMethod":"CARD",
            "paymentMethodDetails":{"expirationYear":2026,"expirationMonth":12,"pan":"4111111111111111",
            "authMethod":"CRYPTOGRAM_3DS","cryptogram":"AgAAAAAABk4DWZ4C28yUQAAAAAA\u003d","eciIndicator":"05"}}"#;
        let d = parse_payload(p).unwrap();
        assert_eq!(
            d.details.cryptogram.as_ref().unwrap().to_base64().as_str(),
            "AgAAAAAABk4DWZ4C28yUQAAAAAA="
        );
        assert_eq!(d.details.auth_method, AuthMethod::Cryptogram3ds);
        let masked = d.to_google_json(false).to_string();
        assert!(!masked.contains("4111111111111111"));
        assert!(!masked.contains("AgAAAAAABk4"));
        let clear = d.to_google_json(true);
        assert_eq!(clear["paymentMethodDetails"]["pan"], "4111111111111111");
        assert_eq!(parse_payload(clear.to_string().as_bytes()).unwrap(), d);
    }

    #[test]
    fn payload_rules() {
        let cases: [&[u8]; 4] = [
            br#"{"messageExpiration":"1","messageId":"m","paymentMethod":"CARD","paymentMethodDetails":{"expirationYear":2026,"expirationMonth":13,"pan":"4111111111111111","authMethod":"PAN_ONLY"}}"#,
            br#"{"messageExpiration":"1","messageId":"m","paymentMethod":"CARD","paymentMethodDetails":{"expirationYear":2026,"expirationMonth":1,"pan":"4111111111111111","authMethod":"CRYPTOGRAM_3DS"}}"#,
            br#"{"messageId":"m","paymentMethod":"CARD","paymentMethodDetails":{"expirationYear":2026,"expirationMonth":1,"pan":"4111111111111111","authMethod":"PAN_ONLY"}}"#,
            b"plaintext",
        ];
        for c in cases {
            assert_eq!(parse_payload(c).unwrap_err().response_code(), "30");
        }
    }
}
