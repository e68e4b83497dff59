//! Wire format of a Google Pay payment method token: strict JSON shapes,
//! strict base64, and the length-value strings that are signed.
//!
//! ```text
//! token (ECv2)                               token (ECv1)
//! { "protocolVersion": "ECv2",               { "protocolVersion": "ECv1",
//!   "signature": b64(DER ECDSA),               "signature": b64(DER ECDSA),
//!   "intermediateSigningKey": {                "signedMessage": "<json>" }
//!      "signedKey": "<json>",
//!      "signatures": [b64(DER ECDSA), ..] },
//!   "signedMessage": "<json>" }
//!
//! signedKey     = {"keyValue": b64(SPKI DER), "keyExpiration": "<ms>"}
//! signedMessage = {"encryptedMessage": b64, "ephemeralPublicKey": b64(04||X||Y), "tag": b64}
//! ```
//!
//! `signedKey` and `signedMessage` are JSON documents inside JSON strings. They
//! are signed exactly as sent (Google's serialiser escapes `=` as `\u003d`), so
//! this module hands out the received string and never re-serialises it.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;

use super::error::TokenError;

/// Largest token accepted, in bytes of JSON. Real tokens are about 2 KiB.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Google's sender id, the first chunk of every signed string.
pub const SENDER_ID: &str = "Google";

/// Standard alphabet; padding optional (Google pads, some tools do not);
/// non-zero trailing bits rejected so that every change to the text is a
/// change to the bytes.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Encoder used by the sender: standard alphabet with padding, like Google.
pub(crate) const B64_PAD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new());

/// The protocol versions this crate decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// Signed directly by a root key; AES-128-CTR + 16-byte HMAC key.
    EcV1,
    /// Signed by an intermediate key that a root key signs; AES-256-CTR + 32-byte HMAC key.
    EcV2,
}

impl ProtocolVersion {
    /// The `protocolVersion` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::EcV1 => "ECv1",
            ProtocolVersion::EcV2 => "ECv2",
        }
    }

    /// Parses the wire name (`ECv1`, `ECv2`).
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "ECv1" => Some(ProtocolVersion::EcV1),
            "ECv2" => Some(ProtocolVersion::EcV2),
            _ => None,
        }
    }

    /// AES-CTR key length in bytes.
    pub(crate) fn aes_key_len(self) -> usize {
        match self {
            ProtocolVersion::EcV1 => 16,
            ProtocolVersion::EcV2 => 32,
        }
    }

    /// HMAC-SHA256 key length in bytes.
    pub(crate) fn mac_key_len(self) -> usize {
        match self {
            ProtocolVersion::EcV1 => 16,
            ProtocolVersion::EcV2 => 32,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ECv2 token. `deny_unknown_fields` plus required fields give the exact key
/// set; serde also rejects a duplicated key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TokenV2 {
    pub protocol_version: String,
    pub signature: String,
    pub intermediate_signing_key: IntermediateSigningKey,
    pub signed_message: String,
}

/// ECv1 token: no intermediate key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TokenV1 {
    pub protocol_version: String,
    pub signature: String,
    pub signed_message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IntermediateSigningKey {
    pub signed_key: String,
    pub signatures: Vec<String>,
}

/// Contents of `signedKey`. Unlike the other objects, extra keys are allowed
/// here, as in Tink: Google reserves the right to extend it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedKey {
    pub key_value: String,
    pub key_expiration: String,
}

/// Contents of `signedMessage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SignedMessage {
    pub encrypted_message: String,
    pub ephemeral_public_key: String,
    pub tag: String,
}

/// Parses `json` into `T`, mapping "not JSON at all" and "wrong shape" to
/// different errors so a front-end log says which one it was.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(
    json: &'a str,
    what: &'static str,
) -> Result<T, TokenError> {
    serde_json::from_str(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => TokenError::Structure(what),
        _ => TokenError::Json(what),
    })
}

/// Strict base64 decode of a named field.
pub(crate) fn b64_decode(s: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    B64.decode(s).map_err(|_| TokenError::Base64(what))
}

/// A decimal millisecond timestamp as Google writes it (a JSON string of digits).
pub(crate) fn parse_ms(s: &str, what: &'static str) -> Result<u64, TokenError> {
    // u64::from_str accepts a leading '+'; Google never sends one.
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Format(what));
    }
    s.parse().map_err(|_| TokenError::Format(what))
}

/// The bytes that are signed: each chunk as a 4-byte little-endian length
/// followed by its UTF-8 bytes.
///
/// ```text
/// | len(c0) u32 LE | c0 | len(c1) u32 LE | c1 | ...
/// ```
pub fn length_value(chunks: &[&str]) -> Vec<u8> {
    let total = chunks.iter().map(|c| 4 + c.len()).sum();
    let mut out = Vec::with_capacity(total);
    for c in chunks {
        // Chunks come from a token capped at MAX_TOKEN_LEN, far below u32::MAX.
        let len = u32::try_from(c.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(c.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_value_matches_googles_layout() {
        let lv = length_value(&["Google", "ECv2"]);
        assert_eq!(
            lv,
            b"\x06\x00\x00\x00Google\x04\x00\x00\x00ECv2".to_vec(),
            "4-byte little-endian length before each chunk"
        );
    }

    #[test]
    fn base64_is_strict_about_trailing_bits_but_not_padding() {
        assert_eq!(b64_decode("QQ==", "x").unwrap(), b"A");
        assert_eq!(b64_decode("QQ", "x").unwrap(), b"A");
        assert!(b64_decode("QR==", "x").is_err());
        assert!(b64_decode("Q", "x").is_err());
    }

    #[test]
    fn token_key_set_is_exact() {
        let extra = r#"{"protocolVersion":"ECv1","signature":"","signedMessage":"","x":1}"#;
        assert_eq!(
            parse_json::<TokenV1>(extra, "token").unwrap_err(),
            TokenError::Structure("token")
        );
        let dup = r#"{"protocolVersion":"ECv1","signature":"","signedMessage":"","signature":""}"#;
        assert!(parse_json::<TokenV1>(dup, "token").is_err());
        let missing = r#"{"protocolVersion":"ECv1","signature":""}"#;
        assert!(parse_json::<TokenV1>(missing, "token").is_err());
        assert_eq!(
            parse_json::<TokenV1>("{", "token").unwrap_err(),
            TokenError::Json("token")
        );
    }

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_ms("1879409613939", "t").unwrap(), 1_879_409_613_939);
        assert!(parse_ms("+1", "t").is_err());
        assert!(parse_ms("", "t").is_err());
        assert!(parse_ms("99999999999999999999999", "t").is_err());
    }
}
