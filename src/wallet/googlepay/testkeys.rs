//! Deterministic test keys for demos, the simulator and tests. They are
//! public: never configure them for real traffic.
//!
//! Each scalar is SHA-256 of a fixed label, so the keys are the same in every
//! build without embedding key files.

use p256::ecdsa::SigningKey;
use p256::SecretKey;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::KeyError;
use super::keys::{public_key_to_spki_b64, MerchantPrivateKey, RootSigningKeys};
use super::recipient::{GooglePayRecipient, RecipientConfig};
use super::sender::TestTokenSender;
use super::token::ProtocolVersion;

/// Recipient id of the demo merchant.
pub const RECIPIENT_ID: &str = "merchant:acqswitch-demo";
/// Expiration of the test root and intermediate keys: 2100-01-01T00:00:00Z.
pub const KEY_EXPIRATION_MS: u64 = 4_102_444_800_000;

fn secret(label: &str) -> Result<SecretKey, KeyError> {
    SecretKey::from_slice(&Sha256::digest(label.as_bytes()))
        .map_err(|_| KeyError::PrivateKey("test key label"))
}

/// Google's role: the root signing key (trusted by recipients via the keys JSON).
pub fn root_signing_key() -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from(secret(
        "acqswitch test root signing key v1",
    )?))
}

/// Google's role: the intermediate signing key (ECv2).
pub fn intermediate_signing_key() -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from(secret(
        "acqswitch test intermediate signing key v1",
    )?))
}

/// The demo merchant's decryption key.
pub fn merchant_private_key() -> Result<MerchantPrivateKey, KeyError> {
    MerchantPrivateKey::from_secret_key(secret("acqswitch test merchant key v1")?)
}

/// Google's keys JSON trusting the test root key for ECv1 and ECv2.
pub fn root_keys_json() -> Result<String, KeyError> {
    let root = root_signing_key()?;
    let spki = public_key_to_spki_b64(&p256::PublicKey::from(root.verifying_key()))?;
    Ok(json!({"keys": [
        {"keyValue": spki, "protocolVersion": "ECv1"},
        {"keyValue": spki, "protocolVersion": "ECv2", "keyExpiration": KEY_EXPIRATION_MS.to_string()},
    ]})
    .to_string())
}

/// A recipient configuration for the demo merchant.
pub fn recipient_config(version: ProtocolVersion) -> Result<RecipientConfig, KeyError> {
    Ok(RecipientConfig {
        recipient_id: RECIPIENT_ID.to_owned(),
        protocol_version: version,
        private_keys: vec![merchant_private_key()?],
        root_keys: RootSigningKeys::from_google_json(&root_keys_json()?)?,
    })
}

/// A recipient for the demo merchant.
pub fn recipient(version: ProtocolVersion) -> Result<GooglePayRecipient, KeyError> {
    GooglePayRecipient::new(recipient_config(version)?)
}

/// A sender for the demo merchant.
pub fn sender(version: ProtocolVersion) -> Result<TestTokenSender, KeyError> {
    let merchant = merchant_private_key()?.public_key();
    match version {
        ProtocolVersion::EcV1 => Ok(TestTokenSender::ecv1(
            RECIPIENT_ID,
            root_signing_key()?,
            merchant,
        )),
        ProtocolVersion::EcV2 => TestTokenSender::ecv2(
            RECIPIENT_ID,
            root_signing_key()?,
            intermediate_signing_key()?,
            KEY_EXPIRATION_MS,
            merchant,
        )
        .map_err(|_| KeyError::PrivateKey("test sender")),
    }
}
