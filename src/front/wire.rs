//! The gateway JSON shapes: reading request fields with the error code and
//! field name to return (`30` missing or malformed, `12` invalid value),
//! and the response fields. Pure: no I/O.
//!
//! Error values name the field only; the rejected value (possibly card
//! data) is never echoed.

use serde_json::{Map, Value};

use crate::switch::domain::{
    AuthCryptogram, Authentication, CardBrand, Currency, Eci, Expiry, HolderAuthentProgram,
    OrderChannel, PanEntryMode, Wallet,
};

/// A refused request: the response code and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub field: Option<&'static str>,
}

impl Refusal {
    pub fn format(field: &'static str) -> Refusal {
        Refusal {
            code: "30",
            field: Some(field),
        }
    }

    pub fn invalid(field: &'static str) -> Refusal {
        Refusal {
            code: "12",
            field: Some(field),
        }
    }

    pub fn code(code: &'static str) -> Refusal {
        Refusal { code, field: None }
    }
}

/// A string field: absent -> `None`; present but not a string -> 30.
pub fn opt_str<'v>(
    obj: &'v Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'v str>, Refusal> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Refusal::format(name)),
    }
}

pub fn req_str<'v>(obj: &'v Map<String, Value>, name: &'static str) -> Result<&'v str, Refusal> {
    opt_str(obj, name)?.ok_or(Refusal::format(name))
}

/// A non-negative integer given as a JSON number or a digit string.
pub fn opt_u64(obj: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Refusal> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(Refusal::invalid(name)),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 19 => {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map(Some).map_err(|_| Refusal::invalid(name))
            } else {
                Err(Refusal::format(name))
            }
        }
        Some(_) => Err(Refusal::format(name)),
    }
}

/// A nested object, under any of `names` (the first present wins).
pub fn opt_obj<'v>(
    obj: &'v Map<String, Value>,
    names: &[&'static str],
) -> Result<Option<&'v Map<String, Value>>, Refusal> {
    for name in names {
        match obj.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => return Ok(Some(m)),
            Some(_) => return Err(Refusal::format(name)),
        }
    }
    Ok(None)
}

/// `transactionReference`: 1 to 35 letters and digits (Sips rule).
pub fn transaction_reference(obj: &Map<String, Value>) -> Result<&str, Refusal> {
    const F: &str = "transactionReference";
    let r = req_str(obj, F)?;
    if r.is_empty() || r.len() > 35 || !r.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Refusal::invalid(F));
    }
    Ok(r)
}

pub fn amount(obj: &Map<String, Value>) -> Result<u64, Refusal> {
    match opt_u64(obj, "amount")? {
        None => Err(Refusal::format("amount")),
        Some(0) => Err(Refusal::invalid("amount")),
        Some(a) if a > 999_999_999_999 => Err(Refusal::invalid("amount")),
        Some(a) => Ok(a),
    }
}

/// A present string field read by `parse`: missing is 30, unparsable 12.
fn req_parsed<T>(
    obj: &Map<String, Value>,
    name: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, Refusal> {
    parse(req_str(obj, name)?).ok_or(Refusal::invalid(name))
}

/// An optional string field read by `parse`: unparsable is 12.
fn opt_parsed<T>(
    obj: &Map<String, Value>,
    name: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, Refusal> {
    opt_str(obj, name)?
        .map(|s| parse(s).ok_or(Refusal::invalid(name)))
        .transpose()
}

pub fn currency(obj: &Map<String, Value>) -> Result<Currency, Refusal> {
    req_parsed(obj, "currencyCode", Currency::parse)
}

pub fn order_channel(obj: &Map<String, Value>) -> Result<OrderChannel, Refusal> {
    req_parsed(obj, "orderChannel", OrderChannel::parse)
}

pub fn pan_entry_mode(obj: &Map<String, Value>) -> Result<Option<PanEntryMode>, Refusal> {
    opt_parsed(obj, "panEntryMode", PanEntryMode::parse)
}

pub fn brand(obj: &Map<String, Value>) -> Result<Option<CardBrand>, Refusal> {
    opt_parsed(obj, "paymentMeanBrand", CardBrand::parse)
}

pub fn wallet(obj: &Map<String, Value>) -> Result<Option<Wallet>, Refusal> {
    opt_parsed(obj, "paymentMeanDataProvider", Wallet::parse)
}

pub fn expiry(obj: &Map<String, Value>) -> Result<Option<Expiry>, Refusal> {
    opt_parsed(obj, "cardExpiryDate", Expiry::parse_yyyymm)
}

/// The authentication data: `holderAuthentProgram`, the ECI and the
/// cryptogram, from `authenticationResult` (`googlePay`/`googlepay`/
/// `threeDS` sub-objects) and `schemeTokenData` (`tavv`, `eci`). TAVV and
/// CAVV are two names for the one cryptogram carried: given both, they must
/// be equal.
pub fn authentication(obj: &Map<String, Value>) -> Result<Option<Authentication>, Refusal> {
    const AR: &str = "authenticationResult";
    const TAVV: &str = "schemeTokenData.tavv";
    let result = opt_obj(obj, &[AR])?;
    let std_ = opt_obj(obj, &["schemeTokenData"])?;
    let inner = match result {
        Some(r) => opt_obj(r, &["googlePay", "googlepay", "threeDS", "threeDs"])?,
        None => None,
    };
    let program = match result {
        Some(r) => opt_str(r, "holderAuthentProgram")
            .map_err(|_| Refusal::format("authenticationResult.holderAuthentProgram"))?,
        None => None,
    }
    .or(opt_str(obj, "holderAuthentProgram")?);
    let program = program
        .map(|p| HolderAuthentProgram::parse(p).ok_or(Refusal::invalid("holderAuthentProgram")))
        .transpose()?;
    let cavv = field(inner, "cavv", "authenticationResult.cavv")?.or(field(
        result,
        "cavv",
        "authenticationResult.cavv",
    )?);
    let tavv = field(std_, "tavv", TAVV)?;
    let eci = field(inner, "eci", "authenticationResult.eci")?
        .or(field(result, "eci", "authenticationResult.eci")?)
        .or(field(std_, "eci", "schemeTokenData.eci")?);
    let cryptogram_text = match (tavv, cavv) {
        (Some(t), Some(c)) if t != c => return Err(Refusal::invalid(TAVV)),
        (Some(t), _) => Some((t, TAVV)),
        (None, Some(c)) => Some((c, "authenticationResult.cavv")),
        (None, None) => None,
    };
    let cryptogram = cryptogram_text
        .map(|(t, f)| AuthCryptogram::from_base64(t).ok_or(Refusal::invalid(f)))
        .transpose()?;
    let eci = eci
        .map(|e| Eci::parse(e).ok_or(Refusal::invalid("authenticationResult.eci")))
        .transpose()?;
    let program = match (program, &cryptogram) {
        (Some(p), _) => p,
        (None, None) if eci.is_none() => return Ok(None),
        (None, _) => return Err(Refusal::format("holderAuthentProgram")),
    };
    Ok(Some(Authentication {
        program,
        eci,
        cryptogram,
    }))
}

fn field<'v>(
    o: Option<&'v Map<String, Value>>,
    name: &'static str,
    label: &'static str,
) -> Result<Option<&'v str>, Refusal> {
    o.map(|m| opt_str(m, name).map_err(|_| Refusal::format(label)))
        .transpose()
        .map(Option::flatten)
}

/// `2024-11-14T22:13:20Z` from seconds since the Unix epoch.
pub fn iso8601(secs: u64) -> String {
    let c = crate::civil::CivilTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// (year, month) of `secs`, for expiry checks.
pub fn year_month(secs: u64) -> (u16, u8) {
    let c = crate::civil::CivilTime::from_unix(secs);
    (u16::try_from(c.year).unwrap_or(u16::MAX), c.month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    const C: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";

    #[test]
    fn authentication_names() {
        let a = authentication(&obj(json!({"authenticationResult": {
            "holderAuthentProgram": "GOOGLEPAY", "googlePay": {"eci": "05", "cavv": C}}})))
        .unwrap()
        .unwrap();
        assert_eq!(a.program, HolderAuthentProgram::GooglePay);
        assert_eq!(a.eci.unwrap().as_str(), "05");
        let b = authentication(&obj(json!({"holderAuthentProgram": "GOOGLEPAY",
            "schemeTokenData": {"tavv": C, "eci": "05"}})))
        .unwrap()
        .unwrap();
        assert_eq!(a, b);
        let c = authentication(&obj(json!({"authenticationResult": {
            "holderAuthentProgram": "GOOGLEPAY", "googlepay": {"cavv": C}}})))
        .unwrap()
        .unwrap();
        assert!(c.cryptogram.is_some());
        // Two different values for the one cryptogram.
        let e = authentication(&obj(json!({"holderAuthentProgram": "GOOGLEPAY",
            "schemeTokenData": {"tavv": C},
            "authenticationResult": {"googlePay": {"cavv": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}})))
        .unwrap_err();
        assert_eq!(e, Refusal::invalid("schemeTokenData.tavv"));
        let e = authentication(&obj(json!({"holderAuthentProgram": "3DS",
            "authenticationResult": {"threeDS": {"cavv": "short"}}})))
        .unwrap_err();
        assert_eq!(e.code, "12");
        assert_eq!(authentication(&obj(json!({}))).unwrap(), None);
    }

    #[test]
    fn scalar_fields() {
        assert_eq!(amount(&obj(json!({"amount": 1000}))).unwrap(), 1000);
        assert_eq!(amount(&obj(json!({"amount": "1000"}))).unwrap(), 1000);
        assert_eq!(
            amount(&obj(json!({"amount": "10.00"}))).unwrap_err(),
            Refusal::format("amount")
        );
        assert_eq!(
            amount(&obj(json!({"amount": 0}))).unwrap_err(),
            Refusal::invalid("amount")
        );
        assert_eq!(
            amount(&obj(json!({}))).unwrap_err(),
            Refusal::format("amount")
        );
        assert!(transaction_reference(&obj(json!({"transactionReference": "a-b"}))).is_err());
        assert_eq!(
            currency(&obj(json!({"currencyCode": "EUR"}))).unwrap_err(),
            Refusal::invalid("currencyCode")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(year_month(1_700_000_000), (2023, 11));
    }
}
