//! The real `acqswitch gpay` binary: decrypt output shape, masking, failure
//! objects and exit codes.

use std::path::Path;

use serde_json::Value;

const VECTORS: &str = include_str!("data/googlepay/public_vectors.json");
const NOW_MS: &str = "1704067200000";

mod common;
use common::run;

fn vector_files(dir: &Path) -> (String, String) {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    let key = dir.join("key.b64");
    std::fs::write(&key, v["merchant_private_key_pkcs8_b64"].as_str().unwrap()).unwrap();
    let roots = dir.join("roots.json");
    std::fs::write(&roots, v["root_signing_keys_json"].to_string()).unwrap();
    (key.display().to_string(), roots.display().to_string())
}

fn decrypt_args<'a>(key: &'a str, roots: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    decrypt_args_at(key, roots, NOW_MS, extra)
}

fn decrypt_args_at<'a>(
    key: &'a str,
    roots: &'a str,
    now: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "gpay",
        "decrypt",
        "--recipient-id",
        "someRecipient",
        "--private-key",
        key,
        "--root-keys",
        roots,
        "--now-ms",
        now,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn decrypt_vector_masked_and_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let (key, roots) = vector_files(dir.path());
    let token = serde_json::from_str::<Value>(VECTORS).unwrap()["ecv2_token"].to_string();

    let out = run(&decrypt_args(&key, &roots, &[]), &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stdout.contains("4111111111111111") && !stderr.contains("4111111111111111"));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["paymentMethodDetails"]["pan"], "411111******1111");
    assert_eq!(v["paymentMethodDetails"]["authMethod"], "PAN_ONLY");
    assert_eq!(v["paymentMethodDetails"]["expirationMonth"], 12);
    assert_eq!(v["messageExpiration"], "32506264800000");
    assert_eq!(v["paymentMethod"], "CARD");

    let out = run(&decrypt_args(&key, &roots, &["--reveal"]), &token);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["paymentMethodDetails"]["pan"], "4111111111111111");
}

#[test]
fn failures_print_response_code_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (key, roots) = vector_files(dir.path());
    let token = serde_json::from_str::<Value>(VECTORS).unwrap()["ecv2_token"].to_string();
    let tampered = token.replacen("MEYCIQCb", "MEYCIQCc", 1);
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (tampered.as_str(), decrypt_args(&key, &roots, &[]), "12"),
        ("not json", decrypt_args(&key, &roots, &[]), "30"),
        (
            token.as_str(),
            decrypt_args_at(&key, &roots, "1879409613939", &[]),
            "12",
        ),
        (
            token.as_str(),
            decrypt_args(&key, "/nonexistent/roots.json", &[]),
            "03",
        ),
    ];
    for (stdin, args, code) in cases {
        let out = run(&args, stdin);
        assert!(!out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["responseCode"], code, "{v}");
        assert!(v["error"].is_string());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("4111111111111111"));
    }
}

#[test]
fn test_token_round_trips_through_decrypt_with_test_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(run(&["gpay", "test-keys", "--dir", d], "").status.success());
    for (version, auth) in [
        ("ECv2", "CRYPTOGRAM_3DS"),
        ("ECv2", "PAN_ONLY"),
        ("ECv1", "PAN_ONLY"),
    ] {
        let out = run(
            &[
                "gpay",
                "test-token",
                "--protocol-version",
                version,
                "--auth-method",
                auth,
                "--pan",
                "5204731600014792",
                "--now-ms",
                NOW_MS,
                "--seed",
                "9",
                "--gateway-merchant-id",
                "gw-1",
            ],
            "",
        );
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).unwrap();
        for key in ["merchant_private_key.b64", "merchant_private_key.pem"] {
            let key = format!("{d}/{key}");
            let roots = format!("{d}/root_keys.json");
            let out = run(
                &[
                    "gpay",
                    "decrypt",
                    "--recipient-id",
                    "merchant:acqswitch-demo",
                    "--private-key",
                    &key,
                    "--root-keys",
                    &roots,
                    "--now-ms",
                    NOW_MS,
                    "--protocol-version",
                    version,
                    "--reveal",
                ],
                &token,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["paymentMethodDetails"]["pan"], "5204731600014792");
            assert_eq!(v["paymentMethodDetails"]["authMethod"], auth);
            assert_eq!(v["gatewayMerchantId"], "gw-1");
        }
    }
}
