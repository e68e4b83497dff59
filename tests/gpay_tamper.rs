//! Tamper tests: every byte-level change to the signature, signedKey,
//! intermediate signatures, signedMessage, tag, ephemeral key or ciphertext is
//! rejected. Public-vector tokens cover what Google signs; sender-made tokens,
//! re-signed after the change, reach the tag and ephemeral key checks.

use acqswitch::wallet::googlepay::{
    testkeys, DecryptedPayment, EncryptedParts, GooglePayRecipient, MerchantPrivateKey, Pan,
    PaymentMethodDetails, ProtocolVersion, RecipientConfig, RootSigningKeys, TokenError,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const VECTORS: &str = include_str!("data/googlepay/public_vectors.json");
const NOW_MS: u64 = 1_704_067_200_000;

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn vector_recipient() -> GooglePayRecipient {
    let v = vectors();
    GooglePayRecipient::new(RecipientConfig {
        recipient_id: v["recipient_id"].as_str().unwrap().to_owned(),
        protocol_version: ProtocolVersion::EcV2,
        private_keys: vec![MerchantPrivateKey::parse(
            v["merchant_private_key_pkcs8_b64"].as_str().unwrap(),
        )
        .unwrap()],
        root_keys: RootSigningKeys::from_google_json(&v["root_signing_keys_json"].to_string())
            .unwrap(),
    })
    .unwrap()
}

/// Each single-bit change of `bytes` (all 8 bits when `all_bits`, else bit 0).
fn flips(bytes: &[u8], all_bits: bool) -> impl Iterator<Item = Vec<u8>> + '_ {
    let bits: &[u8] = if all_bits {
        &[1, 2, 4, 8, 16, 32, 64, 128]
    } else {
        &[1]
    };
    (0..bytes.len()).flat_map(move |i| {
        bits.iter().map(move |b| {
            let mut v = bytes.to_vec();
            v[i] ^= b;
            v
        })
    })
}

/// ASCII text flips keep the string valid UTF-8.
fn text_flips(s: &str) -> impl Iterator<Item = String> + '_ {
    flips(s.as_bytes(), false).filter_map(|v| String::from_utf8(v).ok())
}

#[test]
fn every_raw_byte_of_the_vector_token_matters() {
    let r = vector_recipient();
    let token = vectors()["ecv2_token"].to_string();
    assert!(r.unseal(&token, NOW_MS).is_ok());
    let mut count = 0;
    for i in 0..token.len() {
        let mut t = token.clone().into_bytes();
        t[i] = if t[i] == b'A' { b'0' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert!(
            r.unseal(&t, NOW_MS).is_err(),
            "accepted a change at byte {i}"
        );
        count += 1;
    }
    assert_eq!(count, token.len());
}

#[test]
fn vector_signature_signed_key_and_signed_message_changes_are_rejected() {
    let r = vector_recipient();
    let original = vectors()["ecv2_token"].clone();
    let check = |t: &Value, expected: &[TokenError]| {
        let err = r.unseal(&t.to_string(), NOW_MS).unwrap_err();
        assert!(expected.contains(&err), "unexpected {err:?}");
    };

    let sig = STANDARD
        .decode(original["signature"].as_str().unwrap())
        .unwrap();
    for s in flips(&sig, true) {
        let mut t = original.clone();
        t["signature"] = json!(STANDARD.encode(s));
        check(&t, &[TokenError::MessageSignature]);
    }

    let key_sig = original["intermediateSigningKey"]["signatures"][0]
        .as_str()
        .unwrap();
    for s in flips(&STANDARD.decode(key_sig).unwrap(), true) {
        let mut t = original.clone();
        t["intermediateSigningKey"]["signatures"][0] = json!(STANDARD.encode(s));
        check(&t, &[TokenError::IntermediateKeySignature]);
    }

    let signed_key = original["intermediateSigningKey"]["signedKey"]
        .as_str()
        .unwrap();
    for s in text_flips(signed_key) {
        let mut t = original.clone();
        t["intermediateSigningKey"]["signedKey"] = json!(s);
        check(&t, &[TokenError::IntermediateKeySignature]);
    }

    let signed_message = original["signedMessage"].as_str().unwrap();
    for s in text_flips(signed_message) {
        let mut t = original.clone();
        t["signedMessage"] = json!(s);
        check(&t, &[TokenError::MessageSignature]);
    }
}

fn parts_of(token: &str) -> EncryptedParts {
    let t: Value = serde_json::from_str(token).unwrap();
    let m: Value = serde_json::from_str(t["signedMessage"].as_str().unwrap()).unwrap();
    let d = |k: &str| STANDARD.decode(m[k].as_str().unwrap()).unwrap();
    EncryptedParts {
        ephemeral_public_key: d("ephemeralPublicKey"),
        encrypted_message: d("encryptedMessage"),
        tag: d("tag"),
    }
}

fn payment() -> DecryptedPayment {
    DecryptedPayment::card(
        "tamper-test".into(),
        NOW_MS + 60_000,
        PaymentMethodDetails::pan_only(Pan::new("4111111111111111").unwrap(), 12, 2030),
    )
}

/// Changes under a valid signature: only the DEM checks stand in the way.
#[test]
fn resigned_changes_to_tag_ephemeral_key_and_ciphertext_are_rejected() {
    for version in [ProtocolVersion::EcV2, ProtocolVersion::EcV1] {
        let sender = testkeys::sender(version).unwrap();
        let r = testkeys::recipient(version).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let token = sender.seal_payment(&payment(), &mut rng).unwrap();
        assert!(r.unseal(&token, NOW_MS).is_ok());
        let parts = parts_of(&token);
        let resealed = |p: &EncryptedParts| {
            let t = sender.sign_signed_message(&p.to_signed_message()).unwrap();
            r.unseal(&t, NOW_MS).unwrap_err()
        };
        assert!(r
            .unseal(
                &sender
                    .sign_signed_message(&parts.to_signed_message())
                    .unwrap(),
                NOW_MS
            )
            .is_ok());

        // Every bit for ECv2; ECv1 shares the code path, so one bit per byte.
        let all_bits = version == ProtocolVersion::EcV2;
        for tag in flips(&parts.tag, all_bits) {
            let p = EncryptedParts {
                tag,
                ..parts.clone()
            };
            assert_eq!(resealed(&p), TokenError::Tag);
        }
        for ct in flips(&parts.encrypted_message, false) {
            let p = EncryptedParts {
                encrypted_message: ct,
                ..parts.clone()
            };
            assert_eq!(resealed(&p), TokenError::Tag);
        }
        for eph in flips(&parts.ephemeral_public_key, all_bits) {
            let p = EncryptedParts {
                ephemeral_public_key: eph,
                ..parts.clone()
            };
            let err = resealed(&p);
            assert!(
                matches!(
                    err,
                    TokenError::Tag | TokenError::EphemeralKey | TokenError::Format(_)
                ),
                "{err:?}"
            );
        }
        // Truncated and extended fields.
        let mut short = parts.clone();
        short.tag.pop();
        assert_eq!(resealed(&short), TokenError::Tag);
        let mut long = parts.clone();
        long.encrypted_message.push(0);
        assert_eq!(resealed(&long), TokenError::Tag);
    }
}

#[test]
fn structure_changes_are_malformed_data() {
    let r = vector_recipient();
    let original = vectors()["ecv2_token"].clone();
    let mut extra = original.clone();
    extra["extra"] = json!("x");
    let mut missing = original.clone();
    missing.as_object_mut().unwrap().remove("signature");
    let mut not_string = original.clone();
    not_string["signature"] = json!(1);
    let mut isk_extra = original.clone();
    isk_extra["intermediateSigningKey"]["x"] = json!([]);
    for t in [extra, missing, not_string, isk_extra] {
        let err = r.unseal(&t.to_string(), NOW_MS).unwrap_err();
        assert_eq!(err.response_code(), "30", "{err:?}");
    }
    for junk in ["", "null", "[]", "{}", "\"x\"", "{\"protocolVersion\":1}"] {
        assert_eq!(
            r.unseal(junk, NOW_MS).unwrap_err().response_code(),
            "30",
            "{junk}"
        );
    }
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(70_000));
    assert!(matches!(
        r.unseal(&huge, NOW_MS).unwrap_err(),
        TokenError::TooLarge { .. }
    ));
}
