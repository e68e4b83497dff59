//! A test-token sender: the inverse of the recipient, signing with test keys.
//!
//! Acquirer test platforms call this a "mock Google Pay": it lets the
//! simulator, the demo and the benchmarks make realistic tokens without
//! Google. Like Google's own serialiser, it writes `=` inside `signedKey` and
//! `signedMessage` as `\u003d`, so recipients are exercised on strings that must
//! be verified as received.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::rand_core::CryptoRngCore;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::json;
use zeroize::Zeroizing;

use super::crypto;
use super::error::TokenError;
use super::keys::public_key_to_spki_b64;
use super::payment::DecryptedPayment;
use super::token::{length_value, ProtocolVersion, B64_PAD, SENDER_ID};

/// The three parts of a `signedMessage`, before base64.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedParts {
    /// 65-byte uncompressed ephemeral public key.
    pub ephemeral_public_key: Vec<u8>,
    /// AES-CTR ciphertext.
    pub encrypted_message: Vec<u8>,
    /// HMAC-SHA256 tag over the ciphertext.
    pub tag: Vec<u8>,
}

impl std::fmt::Debug for EncryptedParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedParts")
            .field("encrypted_message_len", &self.encrypted_message.len())
            .finish_non_exhaustive()
    }
}

impl EncryptedParts {
    /// The `signedMessage` JSON string, in Google's key order and escaping.
    pub fn to_signed_message(&self) -> String {
        let v = json!({
            "encryptedMessage": B64_PAD.encode(&self.encrypted_message),
            "ephemeralPublicKey": B64_PAD.encode(&self.ephemeral_public_key),
            "tag": B64_PAD.encode(&self.tag),
        });
        google_escape(&v.to_string())
    }
}

/// Google's Gson output escapes `=`; in base64-only JSON `=` appears nowhere else.
fn google_escape(json: &str) -> String {
    json.replace('=', "\\u003d")
}

/// Produces tokens for one recipient with test keys.
pub struct TestTokenSender {
    version: ProtocolVersion,
    recipient_id: String,
    root_key: SigningKey,
    /// ECv2 only: the intermediate key, its `signedKey` string and the root's signature over it.
    intermediate: Option<(SigningKey, String, String)>,
    recipient_public_key: PublicKey,
}

impl std::fmt::Debug for TestTokenSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTokenSender")
            .field("version", &self.version)
            .field("recipient_id", &self.recipient_id)
            .finish_non_exhaustive()
    }
}

fn sign(key: &SigningKey, message: &[u8]) -> Result<String, TokenError> {
    let sig: Signature = key
        .try_sign(message)
        .map_err(|_| TokenError::Internal("ecdsa sign"))?;
    Ok(B64_PAD.encode(sig.to_der().as_bytes()))
}

impl TestTokenSender {
    /// An ECv2 sender: `root_key` signs `intermediate_key` (valid until
    /// `intermediate_expiration_ms`), which signs each message.
    pub fn ecv2(
        recipient_id: &str,
        root_key: SigningKey,
        intermediate_key: SigningKey,
        intermediate_expiration_ms: u64,
        recipient_public_key: PublicKey,
    ) -> Result<Self, TokenError> {
        let key_value = public_key_to_spki_b64(&PublicKey::from(intermediate_key.verifying_key()))
            .map_err(|_| TokenError::Internal("encode intermediate key"))?;
        let signed_key = google_escape(
            &json!({
                "keyValue": key_value,
                "keyExpiration": intermediate_expiration_ms.to_string(),
            })
            .to_string(),
        );
        let signature = sign(&root_key, &length_value(&[SENDER_ID, "ECv2", &signed_key]))?;
        Ok(TestTokenSender {
            version: ProtocolVersion::EcV2,
            recipient_id: recipient_id.to_owned(),
            root_key,
            intermediate: Some((intermediate_key, signed_key, signature)),
            recipient_public_key,
        })
    }

    /// An ECv1 sender: the root key signs each message.
    pub fn ecv1(recipient_id: &str, root_key: SigningKey, recipient_public_key: PublicKey) -> Self {
        TestTokenSender {
            version: ProtocolVersion::EcV1,
            recipient_id: recipient_id.to_owned(),
            root_key,
            intermediate: None,
            recipient_public_key,
        }
    }

    /// The protocol version of the tokens made.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The `signedKey` string (ECv2 only).
    pub fn signed_key(&self) -> Option<&str> {
        self.intermediate.as_ref().map(|(_, k, _)| k.as_str())
    }

    /// A token carrying `payment` in Google's payload shape.
    pub fn seal_payment(
        &self,
        payment: &DecryptedPayment,
        rng: &mut impl CryptoRngCore,
    ) -> Result<String, TokenError> {
        let payload = Zeroizing::new(google_escape(&payment.to_google_json(true).to_string()));
        self.seal_plaintext(payload.as_bytes(), rng)
    }

    /// A token carrying any plaintext.
    pub fn seal_plaintext(
        &self,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<String, TokenError> {
        let parts = self.encrypt(plaintext, rng)?;
        self.sign_signed_message(&parts.to_signed_message())
    }

    /// Encrypts for the recipient with a fresh ephemeral key.
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<EncryptedParts, TokenError> {
        let ephemeral = SecretKey::random(rng);
        let ephemeral_public_key = ephemeral
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        // ECDH is symmetric: ECDH(ephemeral secret, recipient public) is the
        // same x coordinate the recipient computes from its side.
        let shared_x = crypto::p256_shared_x(&ephemeral, &self.recipient_public_key);
        let keys = crypto::derive_keys(self.version, &ephemeral_public_key, &shared_x)?;
        let mut encrypted_message = plaintext.to_vec();
        crypto::aes_ctr_apply(&keys, &mut encrypted_message)?;
        let tag = crypto::compute_tag(&keys, &encrypted_message)?.to_vec();
        Ok(EncryptedParts {
            ephemeral_public_key,
            encrypted_message,
            tag,
        })
    }

    /// Signs an arbitrary `signedMessage` string into a token. Tests use it to
    /// build tokens whose signature is right but whose content is not.
    pub fn sign_signed_message(&self, signed_message: &str) -> Result<String, TokenError> {
        let version = self.version.as_str();
        let message = length_value(&[SENDER_ID, &self.recipient_id, version, signed_message]);
        let token = match &self.intermediate {
            Some((key, signed_key, key_signature)) => json!({
                "signature": sign(key, &message)?,
                "intermediateSigningKey": {
                    "signedKey": signed_key,
                    "signatures": [key_signature],
                },
                "protocolVersion": version,
                "signedMessage": signed_message,
            }),
            None => json!({
                "protocolVersion": version,
                "signedMessage": signed_message,
                "signature": sign(&self.root_key, &message)?,
            }),
        };
        Ok(token.to_string())
    }
}
