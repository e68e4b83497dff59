//! The real `acqswitch seal` binary against the Worldline known answers.

use serde_json::Value;

const KAT: &str = include_str!("data/seal/kat.json");

mod common;
use common::run;

#[test]
fn compute_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "superSafeSecretKey\n").unwrap();
    let secret = secret.to_str().unwrap();
    let kat: Value = serde_json::from_str(KAT).unwrap();
    for case in kat["seal_string_cases"].as_array().unwrap() {
        let mut msg = case["message"].clone();
        let out = run(
            &["seal", "compute", "--secret-file", secret],
            msg.to_string(),
        );
        assert!(out.status.success());
        let seal = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(seal.len(), 64);
        assert!(seal
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

        msg["seal"] = Value::String(seal.clone());
        let ok = run(
            &["seal", "verify", "--secret-file", secret],
            msg.to_string(),
        );
        assert!(ok.status.success());

        msg["seal"] =
            Value::String(seal.replacen(&seal[..1], if &seal[..1] == "0" { "1" } else { "0" }, 1));
        let bad = run(
            &["seal", "verify", "--secret-file", secret],
            msg.to_string(),
        );
        assert!(!bad.status.success());
    }
    // The legacy algorithm is selectable and differs.
    let a = run(
        &["seal", "compute", "--secret-file", secret],
        "{\"a\":\"1\"}",
    );
    let b = run(
        &[
            "seal",
            "compute",
            "--secret-file",
            secret,
            "--algorithm",
            "SHA-256",
        ],
        "{\"a\":\"1\"}",
    );
    assert_ne!(a.stdout, b.stdout);
    let junk = run(&["seal", "verify", "--secret-file", secret], "not json");
    assert!(!junk.status.success());
}
