//! Known answers from Worldline's public Sips SDK tests (tests/data/seal/kat.json).

use acqswitch::card::Secret;
use acqswitch::seal::{self, SealAlgorithm};
use serde_json::Value;

const KAT: &str = include_str!("data/seal/kat.json");

fn kat() -> Value {
    serde_json::from_str(KAT).unwrap()
}

#[test]
fn hmac_sha256_known_answer() {
    let k = &kat()["hmac_kat"];
    let secret = Secret::new(k["key"].as_str().unwrap());
    let got = seal::seal_of_string(
        k["data"].as_str().unwrap(),
        &secret,
        SealAlgorithm::HmacSha256,
    );
    assert_eq!(got, k["hex"].as_str().unwrap());
}

#[test]
fn legacy_sha256_known_answer() {
    let k = &kat()["legacy_sha256_kat"];
    let secret = Secret::new(k["secret"].as_str().unwrap());
    let got = seal::seal_of_string(k["data"].as_str().unwrap(), &secret, SealAlgorithm::Sha256);
    assert_eq!(got, k["hex"].as_str().unwrap());
}

#[test]
fn seal_strings_match_the_sdk() {
    for case in kat()["seal_string_cases"].as_array().unwrap() {
        let got = seal::seal_string(&case["message"]);
        assert_eq!(
            got.as_str(),
            case["seal_string"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn sealed_kat_messages_verify_from_text() {
    let secret = Secret::new("superSafeSecretKey");
    for case in kat()["seal_string_cases"].as_array().unwrap() {
        let mut m = case["message"].clone();
        let s = seal::compute(&m, &secret, SealAlgorithm::HmacSha256);
        m["seal"] = Value::String(s);
        assert!(seal::verify_json(
            &m.to_string(),
            &secret,
            SealAlgorithm::HmacSha256
        ));
    }
}

mod properties {
    use acqswitch::card::Secret;
    use acqswitch::seal::{self, SealAlgorithm};
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~é€]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    proptest! {
        #[test]
        fn sealed_messages_verify_and_key_order_does_not_matter(
            fields in prop::collection::btree_map("[a-zA-Z]{1,8}", arb_value(), 1..8),
            secret in "[ -~]{1,32}",
            legacy in any::<bool>(),
        ) {
            let alg = if legacy { SealAlgorithm::Sha256 } else { SealAlgorithm::HmacSha256 };
            let secret = Secret::new(secret);
            let mut m = Value::Object(fields.clone().into_iter().collect());
            let s = seal::compute(&m, &secret, alg);
            // Same fields in reverse order: same seal.
            let reversed = Value::Object(fields.into_iter().rev().collect());
            prop_assert_eq!(&seal::compute(&reversed, &secret, alg), &s);
            m["seal"] = Value::String(s.clone());
            m["keyVersion"] = Value::from(3);
            prop_assert!(seal::verify_json(&m.to_string(), &secret, alg));
            m["zzAdded"] = Value::String("x".into());
            prop_assert!(!seal::verify(&m, &secret, alg));
        }
    }
}
