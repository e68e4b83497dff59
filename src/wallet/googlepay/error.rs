//! Errors of the Google Pay recipient, each mapped to the response code a
//! front-end returns to the merchant.
//!
//! Messages are static text: an error never carries card data, key material or
//! the rejected token, so it can be logged and returned as is.

use thiserror::Error;

/// Response code for a successfully decrypted token.
pub const RESPONSE_CODE_OK: &str = "00";

/// Why a token was rejected.
///
/// [`TokenError::response_code`] gives the front-end response code:
/// `03` no valid keys for this merchant, `12` invalid token, `30` malformed
/// or missing data, `99` internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is larger than the recipient accepts.
    #[error("token too large: {len} bytes, at most {max}")]
    TooLarge { len: usize, max: usize },
    /// The token, `signedKey`, `signedMessage` or decrypted payload is not valid JSON.
    #[error("{0} is not valid JSON")]
    Json(&'static str),
    /// A JSON object does not have exactly the expected keys, or a value has the wrong type.
    #[error("malformed {0}")]
    Structure(&'static str),
    /// A field that must be base64 is not (standard alphabet, strict).
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    /// A decoded field has the wrong length or encoding.
    #[error("{0} has the wrong length or format")]
    Format(&'static str),
    /// The token's `protocolVersion` is not the one this recipient is configured for.
    #[error("unexpected protocolVersion")]
    ProtocolVersion,
    /// No root signing key for this protocol version is valid at `now`.
    #[error("no valid root signing key for this protocol version")]
    NoValidRootKey,
    /// No signature over `signedKey` verifies with a trusted root key.
    #[error("cannot verify the intermediate signing key")]
    IntermediateKeySignature,
    /// The intermediate signing key's `keyExpiration` is not after `now`.
    #[error("expired intermediate signing key")]
    IntermediateKeyExpired,
    /// The `signature` over `signedMessage` does not verify (wrong key, wrong
    /// recipient id, or altered message).
    #[error("cannot verify the message signature")]
    MessageSignature,
    /// The ephemeral public key is not a point on P-256.
    #[error("invalid ephemeral public key")]
    EphemeralKey,
    /// The HMAC tag does not match with any configured merchant private key.
    #[error("cannot decrypt: invalid tag")]
    Tag,
    /// The decrypted payload's `messageExpiration` is not after `now`.
    #[error("expired payload")]
    MessageExpired,
    /// The decrypted payload lacks a field or has an invalid value.
    #[error("invalid payload: {0}")]
    Payload(&'static str),
    /// A bug or an impossible state; the token may be fine.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl TokenError {
    /// A short, stable name of the error's kind (a metric label; never
    /// carries token content).
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Json(_) => "json",
            TokenError::Structure(_) => "structure",
            TokenError::Base64(_) => "base64",
            TokenError::Format(_) => "format",
            TokenError::ProtocolVersion => "protocol_version",
            TokenError::NoValidRootKey => "no_valid_root_key",
            TokenError::IntermediateKeySignature => "intermediate_key_signature",
            TokenError::IntermediateKeyExpired => "intermediate_key_expired",
            TokenError::MessageSignature => "message_signature",
            TokenError::EphemeralKey => "ephemeral_key",
            TokenError::Tag => "tag",
            TokenError::MessageExpired => "message_expired",
            TokenError::Payload(_) => "payload",
            TokenError::Internal(_) => "internal",
        }
    }

    /// The two-digit response code a front-end returns for this error.
    pub fn response_code(&self) -> &'static str {
        match self {
            TokenError::NoValidRootKey => "03",
            TokenError::ProtocolVersion
            | TokenError::IntermediateKeySignature
            | TokenError::IntermediateKeyExpired
            | TokenError::MessageSignature
            | TokenError::EphemeralKey
            | TokenError::Tag
            | TokenError::MessageExpired => "12",
            TokenError::TooLarge { .. }
            | TokenError::Json(_)
            | TokenError::Structure(_)
            | TokenError::Base64(_)
            | TokenError::Format(_)
            | TokenError::Payload(_) => "30",
            TokenError::Internal(_) => "99",
        }
    }
}

/// Why keys or a recipient configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The keys JSON is not Google's `{"keys":[{"keyValue","protocolVersion","keyExpiration"}]}`.
    #[error("malformed root signing keys JSON: {0}")]
    RootKeysJson(&'static str),
    /// A `keyValue` is not a base64 DER SubjectPublicKeyInfo of a P-256 key.
    #[error("invalid root signing public key")]
    RootKey,
    /// No root key usable for the configured protocol version.
    #[error("no root signing key for protocol version {0}")]
    NoRootKeyForVersion(&'static str),
    /// The private key is neither base64 PKCS#8 DER nor PEM of a P-256 key.
    #[error("invalid merchant private key: {0}")]
    PrivateKey(&'static str),
    /// The configuration lists no merchant private key.
    #[error("no merchant private key configured")]
    NoPrivateKey,
    /// The recipient id is empty.
    #[error("empty recipient id")]
    RecipientId,
    /// Unknown protocol version name.
    #[error("unsupported protocol version")]
    ProtocolVersion,
}

impl KeyError {
    /// Configuration problems mean no valid contract or keys for the merchant.
    pub fn response_code(&self) -> &'static str {
        "03"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_front_end_contract() {
        assert_eq!(TokenError::Tag.response_code(), "12");
        assert_eq!(TokenError::MessageExpired.response_code(), "12");
        assert_eq!(TokenError::Json("token").response_code(), "30");
        assert_eq!(TokenError::NoValidRootKey.response_code(), "03");
        assert_eq!(TokenError::Internal("x").response_code(), "99");
        assert_eq!(KeyError::NoPrivateKey.response_code(), "03");
    }
}
