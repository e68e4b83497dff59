//! The recipient: verify -> decrypt -> validate, with `now` passed in.
//!
//! Order of checks (Tink's `PaymentMethodTokenRecipient`, with an injected clock):
//! 1. size cap, exact JSON key sets, `protocolVersion` equal to the configured one;
//! 2. ECv2: some signature in `intermediateSigningKey.signatures` verifies
//!    `LV("Google", "ECv2", signedKey)` with some root key valid at `now`
//!    (or the cache says so); `keyExpiration` after `now`;
//!    ECv1: the root keys themselves sign the message;
//! 3. `signature` verifies `LV("Google", recipientId, protocolVersion, signedMessage)`;
//! 4. for each merchant private key: ECDH + HKDF, constant-time tag check, AES-CTR;
//! 5. `messageExpiration` after `now`.

use p256::ProjectivePoint;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;
use zeroize::Zeroizing;

use super::cache::{cache_id, CachedKey, IntermediateKeyCache, DEFAULT_CAPACITY};
use super::crypto;
use super::ecdsa_table::{self, FixedBaseTable, KeyMul};
use super::error::{KeyError, TokenError};
use super::keys::{
    not_expired, verifying_key_from_spki_b64, MerchantPrivateKey, RootSigningKey, RootSigningKeys,
};
use super::payment::{parse_payload, DecryptedPayment};
use super::token::{
    b64_decode, length_value, parse_json, parse_ms, IntermediateSigningKey, ProtocolVersion,
    SignedKey, SignedMessage, TokenV1, TokenV2, MAX_TOKEN_LEN, SENDER_ID,
};

/// What a recipient needs: who it is, which protocol, its keys, Google's keys.
#[derive(Debug, Clone)]
pub struct RecipientConfig {
    /// `merchant:<merchantId>` (or `gateway:<gatewayId>`), as registered with Google.
    pub recipient_id: String,
    /// The one protocol version accepted.
    pub protocol_version: ProtocolVersion,
    /// Decryption keys; several during a rotation. Tried in order.
    pub private_keys: Vec<MerchantPrivateKey>,
    /// Google's root signing keys (keys JSON).
    pub root_keys: RootSigningKeys,
}

/// Decrypts Google Pay tokens for one recipient id. `Send + Sync`: share one
/// per merchant behind an `Arc`; the intermediate key cache is internal.
pub struct GooglePayRecipient {
    recipient_id: String,
    version: ProtocolVersion,
    private_keys: Vec<MerchantPrivateKey>,
    roots: Vec<Root>,
    cache: IntermediateKeyCache,
}

/// A trusted root key with its fixed-base table: every intermediate key (ECv2)
/// or every message (ECv1) is verified with one of these.
struct Root {
    key: RootSigningKey,
    table: FixedBaseTable,
}

impl std::fmt::Debug for GooglePayRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GooglePayRecipient")
            .field("recipient_id", &self.recipient_id)
            .field("version", &self.version)
            .field("private_keys", &self.private_keys.len())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// Just enough of a token to say which protocol it claims, for a better error
/// than "malformed" when a token of the other version arrives.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionOnly<'a> {
    #[serde(borrow)]
    protocol_version: Cow<'a, str>,
}

/// Only `messageExpiration` of an arbitrary payload (ECv1 payloads may be any text).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpirationOnly<'a> {
    #[serde(borrow, default)]
    message_expiration: Option<Cow<'a, str>>,
}

impl GooglePayRecipient {
    /// Builds a recipient with the default intermediate key cache size.
    ///
    /// Root keys are filtered once by version and by the "ECv2 keys must have an
    /// expiration" rule; their expiration is checked on each token against `now`.
    pub fn new(config: RecipientConfig) -> Result<Self, KeyError> {
        Self::with_cache_capacity(config, DEFAULT_CAPACITY)
    }

    /// As [`GooglePayRecipient::new`]; `capacity` 0 disables the cache.
    pub fn with_cache_capacity(config: RecipientConfig, capacity: usize) -> Result<Self, KeyError> {
        if config.recipient_id.is_empty() {
            return Err(KeyError::RecipientId);
        }
        if config.private_keys.is_empty() {
            return Err(KeyError::NoPrivateKey);
        }
        let roots: Vec<Root> = config
            .root_keys
            .for_version(config.protocol_version)
            .into_iter()
            .map(|key| Root {
                table: FixedBaseTable::new(
                    &ProjectivePoint::from(*key.key.as_affine()),
                    ecdsa_table::KEY_WINDOW_BITS,
                ),
                key,
            })
            .collect();
        if roots.is_empty() {
            return Err(KeyError::NoRootKeyForVersion(
                config.protocol_version.as_str(),
            ));
        }
        Ok(GooglePayRecipient {
            recipient_id: config.recipient_id,
            version: config.protocol_version,
            private_keys: config.private_keys,
            roots,
            cache: IntermediateKeyCache::new(capacity),
        })
    }

    /// The recipient id signed into every token for this merchant.
    pub fn recipient_id(&self) -> &str {
        &self.recipient_id
    }

    /// The protocol version accepted.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// Verifies, decrypts and validates a card token; `now_ms` is the current
    /// time in ms since the Unix epoch.
    pub fn unseal(&self, token_json: &str, now_ms: u64) -> Result<DecryptedPayment, TokenError> {
        let plaintext = self.open(token_json, now_ms)?;
        let payment = parse_payload(&plaintext)?;
        if payment.message_expiration_ms <= now_ms {
            return Err(TokenError::MessageExpired);
        }
        Ok(payment)
    }

    /// Verifies and decrypts, returning the plaintext whatever it is (Tink's
    /// `unseal`): if it is a JSON object with `messageExpiration`, that is checked.
    pub fn unseal_plaintext(
        &self,
        token_json: &str,
        now_ms: u64,
    ) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let plaintext = self.open(token_json, now_ms)?;
        if let Ok(exp) = serde_json::from_slice::<ExpirationOnly<'_>>(&plaintext) {
            if let Some(e) = exp.message_expiration {
                let e = parse_ms(&e, "messageExpiration")
                    .map_err(|_| TokenError::Payload("messageExpiration"))?;
                if e <= now_ms {
                    return Err(TokenError::MessageExpired);
                }
            }
        }
        Ok(plaintext)
    }

    /// Number of verified intermediate keys currently cached.
    pub fn cached_intermediate_keys(&self) -> usize {
        self.cache.len()
    }

    /// Forgets every cached intermediate key (benchmarks measure the cold path with it).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Steps 1-4: everything but the payload checks.
    fn open(&self, token_json: &str, now_ms: u64) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        if token_json.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge {
                len: token_json.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let version = self.version.as_str();
        let (claimed, signature, signed_message, intermediate) = match self.version {
            ProtocolVersion::EcV1 => {
                let t: TokenV1 = parse_json(token_json, "token")
                    .map_err(|e| self.version_hint(token_json, e))?;
                (t.protocol_version, t.signature, t.signed_message, None)
            }
            ProtocolVersion::EcV2 => {
                let t: TokenV2 = parse_json(token_json, "token")
                    .map_err(|e| self.version_hint(token_json, e))?;
                (
                    t.protocol_version,
                    t.signature,
                    t.signed_message,
                    Some(t.intermediate_signing_key),
                )
            }
        };
        if claimed != version {
            return Err(TokenError::ProtocolVersion);
        }
        let signature = b64_decode(&signature, "signature")?;
        let signed_bytes = length_value(&[SENDER_ID, &self.recipient_id, version, &signed_message]);
        let verified = match &intermediate {
            Some(isk) => {
                let (key, cached) = self.intermediate_key(isk, now_ms)?;
                let mul = if cached { key.table() } else { key.point() };
                crypto::parse_signature(&signature)
                    .is_some_and(|sig| ecdsa_table::verify(mul, &signed_bytes, &sig))
            }
            None => {
                let sig = crypto::parse_signature(&signature);
                let mut valid = self.valid_roots(now_ms).peekable();
                if valid.peek().is_none() {
                    return Err(TokenError::NoValidRootKey);
                }
                sig.is_some_and(|sig| {
                    valid.any(|r| ecdsa_table::verify(KeyMul::Table(&r.table), &signed_bytes, &sig))
                })
            }
        };
        if !verified {
            return Err(TokenError::MessageSignature);
        }
        self.decrypt(&signed_message)
    }

    /// When a token does not have our version's shape, say so if it claims
    /// another version; otherwise keep the structural error.
    fn version_hint(&self, token_json: &str, err: TokenError) -> TokenError {
        match serde_json::from_str::<VersionOnly<'_>>(token_json) {
            Ok(v) if v.protocol_version != self.version.as_str() => TokenError::ProtocolVersion,
            _ => err,
        }
    }

    fn valid_roots(&self, now_ms: u64) -> impl Iterator<Item = &Root> {
        self.roots
            .iter()
            .filter(move |r| not_expired(r.key.key_expiration_ms, now_ms))
    }

    /// Step 2 for ECv2: the intermediate key, from the cache (`true`) or verified now.
    fn intermediate_key(
        &self,
        isk: &IntermediateSigningKey,
        now_ms: u64,
    ) -> Result<(Arc<CachedKey>, bool), TokenError> {
        let id = cache_id(&isk.signed_key, &isk.signatures);
        if let Some(key) = self.cache.get(&id, now_ms) {
            return Ok((key, true));
        }
        let mut valid = self.valid_roots(now_ms).peekable();
        if valid.peek().is_none() {
            return Err(TokenError::NoValidRootKey);
        }
        let mut signatures = Vec::with_capacity(isk.signatures.len());
        for s in &isk.signatures {
            signatures.push(b64_decode(s, "intermediateSigningKey.signatures")?);
        }
        let signed_bytes = length_value(&[SENDER_ID, self.version.as_str(), &isk.signed_key]);
        let parsed: Vec<_> = signatures
            .iter()
            .filter_map(|s| crypto::parse_signature(s))
            .collect();
        let root = valid
            .find(|r| {
                parsed
                    .iter()
                    .any(|sig| ecdsa_table::verify(KeyMul::Table(&r.table), &signed_bytes, sig))
            })
            .ok_or(TokenError::IntermediateKeySignature)?;

        let signed_key: SignedKey = parse_json(&isk.signed_key, "signedKey")?;
        let expiration = parse_ms(&signed_key.key_expiration, "signedKey.keyExpiration")?;
        if expiration <= now_ms {
            return Err(TokenError::IntermediateKeyExpired);
        }
        let key = verifying_key_from_spki_b64(&signed_key.key_value)
            .ok_or(TokenError::Format("signedKey.keyValue"))?;
        let valid_until = root
            .key
            .key_expiration_ms
            .map_or(expiration, |r| r.min(expiration));
        let key = Arc::new(CachedKey::new(&key));
        self.cache.insert(id, Arc::clone(&key), valid_until, now_ms);
        Ok((key, false))
    }

    /// Step 4: KEM/DEM with each private key until the tag matches.
    fn decrypt(&self, signed_message: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let msg: SignedMessage = parse_json(signed_message, "signedMessage")?;
        let ephemeral_bytes = b64_decode(&msg.ephemeral_public_key, "ephemeralPublicKey")?;
        let tag = b64_decode(&msg.tag, "tag")?;
        let ciphertext = b64_decode(&msg.encrypted_message, "encryptedMessage")?;
        let ephemeral = crypto::parse_ephemeral_key(&ephemeral_bytes)?;
        if tag.len() != crypto::TAG_LEN {
            // A truncated or padded tag is as wrong as a changed one.
            return Err(TokenError::Tag);
        }
        for key in &self.private_keys {
            let shared_x = key.ecdh_x(&ephemeral, &ephemeral_bytes)?;
            let keys = crypto::derive_keys(self.version, &ephemeral_bytes, &shared_x)?;
            if crypto::tag_matches(&keys, &ciphertext, &tag)? {
                let mut plaintext = Zeroizing::new(ciphertext);
                crypto::aes_ctr_apply(&keys, &mut plaintext)?;
                return Ok(plaintext);
            }
        }
        Err(TokenError::Tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<GooglePayRecipient>();
    }

    #[test]
    fn config_errors() {
        let cfg = RecipientConfig {
            recipient_id: "merchant:x".into(),
            protocol_version: ProtocolVersion::EcV2,
            private_keys: vec![],
            root_keys: RootSigningKeys::default(),
        };
        assert_eq!(
            GooglePayRecipient::new(cfg.clone()).unwrap_err(),
            KeyError::NoPrivateKey
        );
        let cfg = RecipientConfig {
            recipient_id: String::new(),
            ..cfg
        };
        assert_eq!(
            GooglePayRecipient::new(cfg).unwrap_err(),
            KeyError::RecipientId
        );
    }
}
