//! Sender -> recipient round trips, including a property test over random
//! payloads, message expiry and key rotation.

use acqswitch::wallet::googlepay::{
    testkeys, AuthMethod, Cryptogram, DecryptedPayment, GooglePayRecipient, MerchantPrivateKey,
    Pan, PaymentMethodDetails, ProtocolVersion, RecipientConfig, RootSigningKeys, TestTokenSender,
    TokenError,
};
use p256::ecdsa::SigningKey;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const NOW_MS: u64 = 1_704_067_200_000;

fn payment(auth: AuthMethod, exp_ms: u64) -> DecryptedPayment {
    let pan = Pan::new("4895370012003478").unwrap();
    let details = match auth {
        AuthMethod::PanOnly => PaymentMethodDetails::pan_only(pan, 3, 2031),
        AuthMethod::Cryptogram3ds => PaymentMethodDetails::cryptogram_3ds(
            pan,
            3,
            2031,
            Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA=").expect("test cryptogram"),
            Some("05".into()),
        ),
    };
    DecryptedPayment {
        message_id: "msg-1".into(),
        message_expiration_ms: exp_ms,
        payment_method: "CARD".into(),
        gateway_merchant_id: Some("acqswitch-gw".into()),
        details,
    }
}

#[test]
fn sender_tokens_look_like_googles() {
    let sender = testkeys::sender(ProtocolVersion::EcV2).unwrap();
    let token = sender
        .seal_payment(
            &payment(AuthMethod::Cryptogram3ds, NOW_MS + 1),
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
    // Google's serialiser escapes '=' inside the nested JSON strings.
    assert!(token.contains("\\\\u003d"), "{token}");
    assert!(!token.contains("4895370012003478"));
    let v: serde_json::Value = serde_json::from_str(&token).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "signature",
            "intermediateSigningKey",
            "protocolVersion",
            "signedMessage"
        ]
    );
}

#[test]
fn message_expiry_uses_the_injected_clock() {
    for version in [ProtocolVersion::EcV2, ProtocolVersion::EcV1] {
        let sender = testkeys::sender(version).unwrap();
        let r = testkeys::recipient(version).unwrap();
        let token = sender
            .seal_payment(
                &payment(AuthMethod::PanOnly, NOW_MS),
                &mut StdRng::seed_from_u64(2),
            )
            .unwrap();
        assert!(r.unseal(&token, NOW_MS - 1).is_ok());
        assert_eq!(
            r.unseal(&token, NOW_MS).unwrap_err(),
            TokenError::MessageExpired
        );
        assert_eq!(
            r.unseal_plaintext(&token, NOW_MS).unwrap_err(),
            TokenError::MessageExpired
        );
    }
}

#[test]
fn rotation_tries_every_merchant_key() {
    let old = MerchantPrivateKey::from_secret_key(p256::SecretKey::from_slice(&[7u8; 32]).unwrap())
        .unwrap();
    let mut cfg = testkeys::recipient_config(ProtocolVersion::EcV2).unwrap();
    cfg.private_keys.insert(0, old.clone());
    let r = GooglePayRecipient::new(cfg).unwrap();
    let sender = testkeys::sender(ProtocolVersion::EcV2).unwrap();
    let token = sender
        .seal_payment(
            &payment(AuthMethod::PanOnly, NOW_MS + 1),
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
    assert!(r.unseal(&token, NOW_MS).is_ok());
    // A recipient holding only the other key cannot decrypt: invalid tag.
    let mut cfg = testkeys::recipient_config(ProtocolVersion::EcV2).unwrap();
    cfg.private_keys = vec![old];
    let only_old = GooglePayRecipient::new(cfg).unwrap();
    assert_eq!(
        only_old.unseal(&token, NOW_MS).unwrap_err(),
        TokenError::Tag
    );
}

#[test]
fn expired_intermediate_key_and_untrusted_root_are_rejected() {
    let merchant = testkeys::merchant_private_key().unwrap().public_key();
    let short_lived = TestTokenSender::ecv2(
        testkeys::RECIPIENT_ID,
        testkeys::root_signing_key().unwrap(),
        testkeys::intermediate_signing_key().unwrap(),
        NOW_MS,
        merchant,
    )
    .unwrap();
    let r = testkeys::recipient(ProtocolVersion::EcV2).unwrap();
    let p = payment(AuthMethod::PanOnly, NOW_MS + 10);
    let token = short_lived
        .seal_payment(&p, &mut StdRng::seed_from_u64(4))
        .unwrap();
    assert!(r.unseal(&token, NOW_MS - 1).is_ok());
    assert_eq!(
        r.unseal(&token, NOW_MS).unwrap_err(),
        TokenError::IntermediateKeyExpired
    );

    let rogue = TestTokenSender::ecv2(
        testkeys::RECIPIENT_ID,
        SigningKey::from_slice(&[9u8; 32]).unwrap(),
        testkeys::intermediate_signing_key().unwrap(),
        testkeys::KEY_EXPIRATION_MS,
        merchant,
    )
    .unwrap();
    let token = rogue
        .seal_payment(&p, &mut StdRng::seed_from_u64(5))
        .unwrap();
    assert_eq!(
        r.unseal(&token, NOW_MS).unwrap_err(),
        TokenError::IntermediateKeySignature
    );
}

#[test]
fn ecv2_root_keys_without_expiration_are_not_trusted() {
    let spki = acqswitch::wallet::googlepay::keys::public_key_to_spki_b64(&p256::PublicKey::from(
        testkeys::root_signing_key().unwrap().verifying_key(),
    ))
    .unwrap();
    let json = format!(r#"{{"keys":[{{"keyValue":"{spki}","protocolVersion":"ECv2"}}]}}"#);
    let cfg = RecipientConfig {
        root_keys: RootSigningKeys::from_google_json(&json).unwrap(),
        ..testkeys::recipient_config(ProtocolVersion::EcV2).unwrap()
    };
    assert!(GooglePayRecipient::new(cfg).is_err());
}

fn arb_payment() -> impl Strategy<Value = DecryptedPayment> {
    (
        "[0-9]{12,19}",
        1u8..=12,
        2000u16..=2099,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 1..=40),
        proptest::option::of("0[0-9]"),
        "[ -~]{1,80}",
        proptest::option::of("[a-zA-Z0-9 é\"\\\\=]{0,30}"),
        1u64..1_000_000_000,
    )
        .prop_map(|(pan, month, year, cryptogram, c, eci, id, gw, ttl)| {
            let pan = Pan::new(&pan).unwrap();
            let details = if cryptogram {
                PaymentMethodDetails::cryptogram_3ds(
                    pan,
                    month,
                    year,
                    Cryptogram::from_bytes(&c).expect("test cryptogram"),
                    eci,
                )
            } else {
                PaymentMethodDetails::pan_only(pan, month, year)
            };
            DecryptedPayment {
                message_id: id,
                message_expiration_ms: NOW_MS + ttl,
                payment_method: "CARD".into(),
                gateway_merchant_id: gw,
                details,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn seal_then_unseal_is_identity(p in arb_payment(), seed in any::<u64>(), v1 in any::<bool>()) {
        let version = if v1 { ProtocolVersion::EcV1 } else { ProtocolVersion::EcV2 };
        let sender = testkeys::sender(version).unwrap();
        let r = testkeys::recipient(version).unwrap();
        let token = sender.seal_payment(&p, &mut StdRng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(r.unseal(&token, NOW_MS).unwrap(), p);
    }
}
