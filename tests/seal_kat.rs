//! Known answers from Worldline's public Sips SDK tests (tests/data/seal/kat.json).

use acqswitch::seal::{self, SealAlgorithm, SealSecret};
use serde_json::Value;

const KAT: &str = include_str!("data/seal/kat.json");

fn kat() -> Value {
    serde_json::from_str(KAT).unwrap()
}

#[test]
fn hmac_sha256_known_answer() {
    let k = &kat()["hmac_kat"];
    let secret = SealSecret::new(k["key"].as_str().unwrap());
    let got = seal::seal_of_string(k["data"].as_str().unwrap(), &secret, SealAlgorithm::HmacSha256);
    assert_eq!(got, k["hex"].as_str().unwrap());
}

#[test]
fn legacy_sha256_known_answer() {
    let k = &kat()["legacy_sha256_kat"];
    let secret = SealSecret::new(k["secret"].as_str().unwrap());
    let got = seal::seal_of_string(k["data"].as_str().unwrap(), &secret, SealAlgorithm::Sha256);
    assert_eq!(got, k["hex"].as_str().unwrap());
}

#[test]
fn seal_strings_match_the_sdk() {
    for case in kat()["seal_string_cases"].as_array().unwrap() {
        let got = seal::seal_string(&case["message"]);
        assert_eq!(got.as_str(), case["seal_string"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn sealed_kat_messages_verify_from_text() {
    let secret = SealSecret::new("superSafeSecretKey");
    for case in kat()["seal_string_cases"].as_array().unwrap() {
        let mut m = case["message"].clone();
        let s = seal::compute(&m, &secret, SealAlgorithm::HmacSha256);
        m["seal"] = Value::String(s);
        assert!(seal::verify_json(&m.to_string(), &secret, SealAlgorithm::HmacSha256));
    }
}
