//! Key material: Google's root signing keys (keys JSON) and the merchant's
//! private decryption keys (base64 PKCS#8 DER or PEM).

use base64::Engine;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::KeyError;
use super::token::{ProtocolVersion, B64, B64_PAD};

/// Largest keys JSON accepted: Google's file is well under 1 KiB.
pub const MAX_ROOT_KEYS_JSON_LEN: usize = 64 * 1024;

/// One entry of Google's root signing keys JSON.
#[derive(Clone, Debug)]
pub struct RootSigningKey {
    /// The ECDSA P-256 verifying key (from `keyValue`, base64 SPKI DER).
    pub key: VerifyingKey,
    /// The `protocolVersion` this key signs for.
    pub protocol_version: ProtocolVersion,
    /// `keyExpiration` in ms since the epoch, when present.
    pub key_expiration_ms: Option<u64>,
}

/// Google's root signing keys, as published at
/// `https://payments.developers.google.com/paymentmethodtoken/keys.json`
/// (or the `/test/` variant).
#[derive(Clone, Debug, Default)]
pub struct RootSigningKeys {
    keys: Vec<RootSigningKey>,
}

#[derive(Deserialize)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    key_value: String,
    protocol_version: String,
    #[serde(default)]
    key_expiration: Option<serde_json::Value>,
}

impl RootSigningKeys {
    /// Parses Google's keys JSON: `{"keys":[{"keyValue":..,"protocolVersion":..,"keyExpiration":..}]}`.
    ///
    /// Entries for protocol versions this crate does not decrypt (for example
    /// `ECv2SigningOnly`) are skipped; a malformed entry for ECv1 or ECv2 is an error.
    pub fn from_google_json(json: &str) -> Result<Self, KeyError> {
        if json.len() > MAX_ROOT_KEYS_JSON_LEN {
            return Err(KeyError::RootKeysJson("too large"));
        }
        let file: KeysFile = serde_json::from_str(json)
            .map_err(|_| KeyError::RootKeysJson("not the keys format"))?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for entry in file.keys {
            let Some(protocol_version) = ProtocolVersion::from_wire(&entry.protocol_version) else {
                continue;
            };
            // Google writes keyExpiration as a string of digits; accept a JSON number too.
            let key_expiration_ms = match entry.key_expiration {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(
                    super::token::parse_ms(&s, "keyExpiration")
                        .map_err(|_| KeyError::RootKeysJson("bad keyExpiration"))?,
                ),
                Some(serde_json::Value::Number(n)) => Some(
                    n.as_u64()
                        .ok_or(KeyError::RootKeysJson("bad keyExpiration"))?,
                ),
                Some(_) => return Err(KeyError::RootKeysJson("bad keyExpiration")),
            };
            let key = verifying_key_from_spki_b64(&entry.key_value).ok_or(KeyError::RootKey)?;
            keys.push(RootSigningKey {
                key,
                protocol_version,
                key_expiration_ms,
            });
        }
        Ok(RootSigningKeys { keys })
    }

    /// Builds the set from already-parsed keys.
    pub fn from_keys(keys: Vec<RootSigningKey>) -> Self {
        RootSigningKeys { keys }
    }

    /// All entries, in file order.
    pub fn keys(&self) -> &[RootSigningKey] {
        &self.keys
    }

    /// Keeps the keys a recipient of `version` may ever trust, as Tink does:
    /// the version must match, and every version but ECv1 requires a
    /// `keyExpiration` (ECv1 keys without one are trusted on the assumption that
    /// the caller honours the HTTP cache headers of the keys file).
    pub(crate) fn for_version(&self, version: ProtocolVersion) -> Vec<RootSigningKey> {
        self.keys
            .iter()
            .filter(|k| k.protocol_version == version)
            .filter(|k| version == ProtocolVersion::EcV1 || k.key_expiration_ms.is_some())
            .cloned()
            .collect()
    }
}

/// Whether a key with this expiration is still valid at `now_ms`. Google's rule:
/// expired when `keyExpiration <= now`.
pub(crate) fn not_expired(expiration_ms: Option<u64>, now_ms: u64) -> bool {
    expiration_ms.is_none_or(|e| e > now_ms)
}

/// Decodes a base64 DER SubjectPublicKeyInfo holding a P-256 key.
pub(crate) fn verifying_key_from_spki_b64(b64: &str) -> Option<VerifyingKey> {
    let der = B64.decode(b64.trim()).ok()?;
    VerifyingKey::from_public_key_der(&der).ok()
}

/// Encodes a P-256 public key as Google publishes keys: base64 SPKI DER.
pub fn public_key_to_spki_b64(key: &PublicKey) -> Result<String, KeyError> {
    let der = key
        .to_public_key_der()
        .map_err(|_| KeyError::PrivateKey("cannot encode public key"))?;
    Ok(B64_PAD.encode(der.as_bytes()))
}

/// A merchant's P-256 private decryption key. The scalar zeroizes on drop and
/// `Debug` never shows it. With the `aws-lc` feature the same key is also
/// held by AWS-LC for the ECDH (AWS-LC wipes it when freed).
#[derive(Clone)]
pub struct MerchantPrivateKey {
    secret: SecretKey,
    #[cfg(feature = "aws-lc")]
    agreement: std::sync::Arc<aws_lc_rs::agreement::PrivateKey>,
}

impl MerchantPrivateKey {
    /// Parses base64 PKCS#8 DER (the form in Google's documentation) or a PEM
    /// `PRIVATE KEY` block; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return Self::from_pkcs8_pem(text);
        }
        Self::from_pkcs8_base64(text)
    }

    /// Reads a key file (base64 PKCS#8 DER or PEM, surrounding whitespace
    /// ignored); the text read is wiped.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|_| KeyError::PrivateKey("cannot read the key file"))?,
        );
        Self::parse(&text)
    }

    /// Parses base64 PKCS#8 DER.
    pub fn from_pkcs8_base64(b64: &str) -> Result<Self, KeyError> {
        let der = Zeroizing::new(
            B64.decode(b64.trim())
                .map_err(|_| KeyError::PrivateKey("not base64"))?,
        );
        let secret = SecretKey::from_pkcs8_der(&der)
            .map_err(|_| KeyError::PrivateKey("not a PKCS#8 P-256 key"))?;
        Self::with_secret(secret)
    }

    /// Parses a PEM `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let secret = SecretKey::from_pkcs8_pem(pem)
            .map_err(|_| KeyError::PrivateKey("not a PKCS#8 PEM P-256 key"))?;
        Self::with_secret(secret)
    }

    /// Wraps an existing secret key.
    pub fn from_secret_key(secret: SecretKey) -> Result<Self, KeyError> {
        Self::with_secret(secret)
    }

    #[cfg(not(feature = "aws-lc"))]
    fn with_secret(secret: SecretKey) -> Result<Self, KeyError> {
        Ok(MerchantPrivateKey { secret })
    }

    #[cfg(feature = "aws-lc")]
    fn with_secret(secret: SecretKey) -> Result<Self, KeyError> {
        // Handed over as the raw 32-byte scalar, wiped here after use.
        let scalar = Zeroizing::new(secret.to_bytes());
        let agreement = aws_lc_rs::agreement::PrivateKey::from_private_key(
            &aws_lc_rs::agreement::ECDH_P256,
            scalar.as_slice(),
        )
        .map_err(|_| KeyError::PrivateKey("not a P-256 key"))?;
        Ok(MerchantPrivateKey {
            secret,
            agreement: std::sync::Arc::new(agreement),
        })
    }

    /// The x coordinate of ECDH(this key, `ephemeral`): the shared secret
    /// of Google's KEM. `ephemeral_sec1` is the same point, uncompressed.
    pub(crate) fn ecdh_x(
        &self,
        ephemeral: &PublicKey,
        ephemeral_sec1: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, super::TokenError> {
        #[cfg(not(feature = "aws-lc"))]
        {
            let _ = ephemeral_sec1;
            Ok(super::crypto::p256_shared_x(&self.secret, ephemeral))
        }
        #[cfg(feature = "aws-lc")]
        {
            let _ = ephemeral;
            let mut x = Zeroizing::new([0u8; 32]);
            use aws_lc_rs::agreement::{agree, UnparsedPublicKey, ECDH_P256};
            agree(
                &self.agreement,
                UnparsedPublicKey::new(&ECDH_P256, ephemeral_sec1),
                super::TokenError::EphemeralKey,
                |shared| {
                    if shared.len() == 32 {
                        x.copy_from_slice(shared);
                        Ok(())
                    } else {
                        Err(super::TokenError::Internal("ecdh length"))
                    }
                },
            )?;
            Ok(x)
        }
    }

    /// Base64 PKCS#8 DER, the form Google's documentation and tools use.
    pub fn to_pkcs8_base64(&self) -> Result<Zeroizing<String>, KeyError> {
        let der = self
            .secret
            .to_pkcs8_der()
            .map_err(|_| KeyError::PrivateKey("cannot encode"))?;
        Ok(Zeroizing::new(B64_PAD.encode(der.as_bytes())))
    }

    /// PEM `PRIVATE KEY` (PKCS#8).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|_| KeyError::PrivateKey("cannot encode"))
    }

    /// The matching public key (what the merchant registers with Google).
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }
}

impl std::fmt::Debug for MerchantPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MerchantPrivateKey(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const ECV2_ROOT: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/1+3HBVSbdv+j7NaArdgMyoSAM43yRydzqdg1TxodSzA96Dj4Mc1EiKroxxunavVIvdxGnJeFViTzFvzFRxyCw==";

    #[test]
    fn keys_json_filters_by_version_and_expiration_rule() {
        let json = format!(
            r#"{{"keys":[
              {{"keyValue":"{ECV2_ROOT}","protocolVersion":"ECv1"}},
              {{"keyValue":"{ECV2_ROOT}","protocolVersion":"ECv2"}},
              {{"keyValue":"{ECV2_ROOT}","protocolVersion":"ECv2","keyExpiration":"2000"}},
              {{"keyValue":"garbage","protocolVersion":"ECv2SigningOnly"}}
            ]}}"#
        );
        let keys = RootSigningKeys::from_google_json(&json).unwrap();
        assert_eq!(keys.keys().len(), 3);
        assert_eq!(keys.for_version(ProtocolVersion::EcV1).len(), 1);
        // The ECv2 key without keyExpiration is never trusted.
        let v2 = keys.for_version(ProtocolVersion::EcV2);
        assert_eq!(v2.len(), 1);
        assert!(not_expired(v2[0].key_expiration_ms, 1999));
        assert!(!not_expired(v2[0].key_expiration_ms, 2000));
    }

    #[test]
    fn bad_keys_are_errors_not_panics() {
        assert!(RootSigningKeys::from_google_json("[]").is_err());
        assert!(RootSigningKeys::from_google_json(
            r#"{"keys":[{"keyValue":"AAAA","protocolVersion":"ECv2","keyExpiration":"1"}]}"#
        )
        .is_err());
        assert!(MerchantPrivateKey::parse("not a key").is_err());
        assert!(MerchantPrivateKey::parse(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .is_err());
    }

    #[test]
    fn private_key_debug_is_masked_and_pem_round_trips() {
        let b64 = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCPSuFr4iSIaQprjjchHPyDu2NXFe0vDBoTpPkYaK9dehRANCAATnaFz/vQKuO90pxsINyVNWojabHfbx9qIJ6uD7Q7ZSxmtyo/Ez3/o2kDT8g0pIdyVIYktCsq65VoQIDWSh2Bdm";
        let key = MerchantPrivateKey::parse(b64).unwrap();
        assert_eq!(format!("{key:?}"), "MerchantPrivateKey(****)");
        assert_eq!(key.to_pkcs8_base64().unwrap().as_str(), b64);
        let pem = key.to_pkcs8_pem().unwrap();
        let again = MerchantPrivateKey::parse(&pem).unwrap();
        assert_eq!(again.public_key(), key.public_key());
    }

    /// Whichever backend does the ECDH, it is p256's answer.
    #[test]
    fn ecdh_matches_p256() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        for _ in 0..8 {
            let merchant = SecretKey::random(&mut rng);
            let key = MerchantPrivateKey::from_secret_key(merchant.clone()).unwrap();
            let ephemeral = SecretKey::random(&mut rng).public_key();
            let sec1 = ephemeral.to_encoded_point(false);
            let expected =
                p256::ecdh::diffie_hellman(merchant.to_nonzero_scalar(), ephemeral.as_affine());
            let x = key.ecdh_x(&ephemeral, sec1.as_bytes()).unwrap();
            assert_eq!(&x[..], &expected.raw_secret_bytes()[..]);
        }
    }
}
