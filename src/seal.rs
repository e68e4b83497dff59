//! Sips-style seal: front-ends sign each JSON request, and verify each
//! response, with a secret shared per merchant and key version.
//!
//! Seal string: the values of all fields, sorted by field name (byte order),
//! concatenated without separators.
//! - `keyVersion`, `sealAlgorithm` and `seal` of the top-level object are left out;
//! - `null` (and absent) fields contribute nothing;
//! - an object is flattened in place, at its own key's position, with its fields
//!   sorted the same way, recursively;
//! - a list contributes its elements in the order given;
//! - strings contribute their text, numbers and booleans their JSON text.
//!
//! ```text
//! {"b":"2","a":{"y":"Y","x":"X"},"keyVersion":"1","c":["3","4"]}  ->  "XY234"
//! HMAC-SHA-256: hex(HMAC-SHA256(key = secret, msg = seal string))   (default)
//! SHA-256:      hex(SHA256(seal string || secret))                  (legacy)
//! ```
//!
//! The seal covers the JSON as received, unknown fields included, so it is
//! computed on a parsed `serde_json::Value` (object keys are re-sorted, so their
//! order on the wire does not matter). Numbers are written as serde_json prints
//! them: integers as received, non-integers in shortest round-trip form.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Largest JSON message accepted by the string entry points.
pub const MAX_MESSAGE_LEN: usize = 1024 * 1024;

/// Top-level fields that are not sealed.
const EXCLUDED: [&str; 3] = ["keyVersion", "sealAlgorithm", "seal"];

/// Seal algorithms, by their `sealAlgorithm` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SealAlgorithm {
    /// `HMAC-SHA-256`, the default.
    #[default]
    HmacSha256,
    /// `SHA-256`: the legacy keyed hash SHA256(seal string || secret).
    Sha256,
}

impl SealAlgorithm {
    /// The `sealAlgorithm` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SealAlgorithm::HmacSha256 => "HMAC-SHA-256",
            SealAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses a `sealAlgorithm` name.
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "HMAC-SHA-256" => Some(SealAlgorithm::HmacSha256),
            "SHA-256" => Some(SealAlgorithm::Sha256),
            _ => None,
        }
    }

    /// The algorithm a message names in its `sealAlgorithm` field, the default
    /// when absent or null. A front-end should still check it against the
    /// merchant's configuration rather than let the message choose.
    pub fn of_message(message: &Value) -> Result<Self, SealError> {
        match message.get("sealAlgorithm") {
            None | Some(Value::Null) => Ok(SealAlgorithm::default()),
            Some(Value::String(s)) => Self::from_wire(s).ok_or(SealError::UnknownAlgorithm),
            Some(_) => Err(SealError::UnknownAlgorithm),
        }
    }
}

pub use crate::card::Secret;

/// Why a message could not be sealed or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The message is larger than [`MAX_MESSAGE_LEN`].
    #[error("message too large")]
    TooLarge,
    /// The message is not valid JSON.
    #[error("message is not valid JSON")]
    Json,
    /// `sealAlgorithm` names an unknown algorithm.
    #[error("unknown sealAlgorithm")]
    UnknownAlgorithm,
}

/// The seal string of a message (see the module docs). It may hold card data,
/// so it is returned in a zeroizing buffer.
pub fn seal_string(message: &Value) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    match message {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| !EXCLUDED.contains(&k.as_str()))
                .collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (_, v) in fields {
                flatten(v, &mut out);
            }
        }
        other => flatten(other, &mut out),
    }
    out
}

/// Depth is bounded by serde_json's parser recursion limit (128).
fn flatten(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (_, v) in fields {
                flatten(v, out);
            }
        }
    }
}

/// Lowercase hex seal of a seal string.
pub fn seal_of_string(seal_string: &str, secret: &Secret, algorithm: SealAlgorithm) -> String {
    let digest: [u8; 32] = match algorithm {
        SealAlgorithm::HmacSha256 => {
            // HMAC accepts keys of any length; new_from_slice cannot fail here.
            match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
                Ok(mut mac) => {
                    mac.update(seal_string.as_bytes());
                    mac.finalize().into_bytes().into()
                }
                Err(_) => [0u8; 32],
            }
        }
        SealAlgorithm::Sha256 => {
            let mut h = Sha256::new();
            h.update(seal_string.as_bytes());
            h.update(secret.as_bytes());
            h.finalize().into()
        }
    };
    hex::encode(digest)
}

/// `message` (a JSON object) with `keyVersion` set to `key_version` and
/// its `seal` computed over the rest: a request as a merchant sends it.
pub fn sealed(
    mut message: serde_json::Value,
    key_version: u32,
    secret: &Secret,
    algorithm: SealAlgorithm,
) -> serde_json::Value {
    message["keyVersion"] = serde_json::json!(key_version);
    if algorithm != SealAlgorithm::HmacSha256 {
        message["sealAlgorithm"] = serde_json::json!(algorithm.as_str());
    }
    let seal = compute(&message, secret, algorithm);
    message["seal"] = serde_json::json!(seal);
    message
}

/// The lowercase hex seal of `message`.
pub fn compute(message: &Value, secret: &Secret, algorithm: SealAlgorithm) -> String {
    seal_of_string(&seal_string(message), secret, algorithm)
}

/// [`compute`] on JSON text.
pub fn compute_json(
    json: &str,
    secret: &Secret,
    algorithm: SealAlgorithm,
) -> Result<String, SealError> {
    Ok(compute(&parse(json)?, secret, algorithm))
}

/// Whether the message's `seal` field is the right seal, compared in constant
/// time. A missing or non-string `seal` is simply wrong.
pub fn verify(message: &Value, secret: &Secret, algorithm: SealAlgorithm) -> bool {
    let Some(received) = message.get("seal").and_then(Value::as_str) else {
        return false;
    };
    let expected = compute(message, secret, algorithm);
    bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// [`verify`] on JSON text; anything unparseable is not verified.
pub fn verify_json(json: &str, secret: &Secret, algorithm: SealAlgorithm) -> bool {
    parse(json).is_ok_and(|m| verify(&m, secret, algorithm))
}

/// Parses a message with the size cap.
pub fn parse(json: &str) -> Result<Value, SealError> {
    if json.len() > MAX_MESSAGE_LEN {
        return Err(SealError::TooLarge);
    }
    serde_json::from_str(json).map_err(|_| SealError::Json)
}

/// Fuzz entry point: any bytes as a message. Must never panic.
pub fn fuzz_seal(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secret = Secret::new("fuzz");
    if let Ok(m) = parse(text) {
        for alg in [SealAlgorithm::HmacSha256, SealAlgorithm::Sha256] {
            let _ = compute(&m, &secret, alg);
            let _ = verify(&m, &secret, alg);
        }
        let _ = SealAlgorithm::of_message(&m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_rules() {
        let m = json!({"b":"2","a":{"y":"Y","x":"X"},"keyVersion":"1","c":["3",{"z":1,"w":true}],
                       "d":null,"seal":"x","sealAlgorithm":"SHA-256"});
        assert_eq!(seal_string(&m).as_str(), "XY23true1");
        // Byte order: uppercase before lowercase.
        assert_eq!(seal_string(&json!({"a":"1","B":"2"})).as_str(), "21");
        // Excluded only at the top level.
        assert_eq!(seal_string(&json!({"n":{"seal":"s"}})).as_str(), "s");
    }

    #[test]
    fn verify_is_exact() {
        let secret = Secret::new("k");
        let mut m = json!({"amount": 2, "currencyCode": "978"});
        let seal = compute(&m, &secret, SealAlgorithm::HmacSha256);
        m["seal"] = json!(seal);
        assert!(verify(&m, &secret, SealAlgorithm::HmacSha256));
        assert!(!verify(&m, &Secret::new("K"), SealAlgorithm::HmacSha256));
        assert!(!verify(&m, &secret, SealAlgorithm::Sha256));
        m["amount"] = json!(3);
        assert!(!verify(&m, &secret, SealAlgorithm::HmacSha256));
        assert!(!verify_json("{", &secret, SealAlgorithm::HmacSha256));
        assert_eq!(format!("{secret:?}"), "Secret(****)");
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            SealAlgorithm::of_message(&json!({})).unwrap(),
            SealAlgorithm::HmacSha256
        );
        assert_eq!(
            SealAlgorithm::of_message(&json!({"sealAlgorithm":"SHA-256"})).unwrap(),
            SealAlgorithm::Sha256
        );
        assert!(SealAlgorithm::of_message(&json!({"sealAlgorithm":"MD5"})).is_err());
    }

    #[test]
    fn fuzz_entry_survives_odd_input() {
        for input in [
            &b""[..],
            b"\xff",
            b"[[[[",
            b"1e999999",
            b"{\"seal\":1}",
            b"null",
        ] {
            fuzz_seal(input);
        }
    }

    /// One final line ending is not part of the secret; everything else is.
    #[test]
    fn secret_file_drops_one_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let msg = serde_json::json!({"a": "1"});
        for (text, secret) in [("k \n", "k "), ("k\r\n", "k"), ("k\n\n", "k\n"), ("k", "k")] {
            let path = dir.path().join("secret");
            std::fs::write(&path, text).unwrap();
            let from_file = Secret::from_file(&path).unwrap();
            assert_eq!(
                compute(&msg, &from_file, SealAlgorithm::HmacSha256),
                compute(&msg, &Secret::new(secret), SealAlgorithm::HmacSha256),
                "{text:?}"
            );
        }
        let missing = Secret::from_file(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("cannot read secret file"), "{missing}");
    }
}
