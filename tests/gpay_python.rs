//! Cross-check: tokens made by acqswitch's test sender decrypt with the
//! OpenSSL-backed Python package `google-pay-token-decryption`.
//!
//! Needs the interpreter at `$ACQSWITCH_PYTHON` (default `.venv/bin/python`)
//! with `pip install google-pay-token-decryption`. A missing interpreter is a
//! failure, not a skip. The package checks expirations against the real clock,
//! so these tokens are made "now" and live for a day.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use acqswitch::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

fn python() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("ACQSWITCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".venv/bin/python"));
    let path = if path.is_relative() && !path.exists() {
        manifest.join(path)
    } else {
        path
    };
    assert!(
        path.exists(),
        "Python interpreter {} not found: create the venv (python3 -m venv .venv && \
         .venv/bin/pip install google-pay-token-decryption) or set ACQSWITCH_PYTHON",
        path.display()
    );
    path
}

#[test]
fn python_package_decrypts_sender_tokens() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = testkeys::merchant_private_key().unwrap();
    std::fs::write(
        d.join("merchant_private_key.b64"),
        key.to_pkcs8_base64().unwrap().as_str(),
    )
    .unwrap();
    std::fs::write(
        d.join("root_keys.json"),
        testkeys::root_keys_json().unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("recipient_id.txt"), testkeys::RECIPIENT_ID).unwrap();

    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let payments: Vec<DecryptedPayment> = (0..6u8)
        .map(|i| {
            let pan = Pan::new(&format!("52047316000147{:02}", 90 + i)).unwrap();
            let details = if i % 2 == 0 {
                PaymentMethodDetails::pan_only(pan, 1 + i, 2030)
            } else {
                PaymentMethodDetails::cryptogram_3ds(
                    pan,
                    1 + i,
                    2031,
                    Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA=")
                        .expect("test cryptogram"),
                    (i != 3).then(|| "05".to_owned()),
                )
            };
            DecryptedPayment {
                message_id: format!("py-cross-check-{i}"),
                message_expiration_ms: now_ms + 86_400_000,
                payment_method: "CARD".into(),
                gateway_merchant_id: (i < 4).then(|| "gw-\"quoted\"=".to_owned()),
                details,
            }
        })
        .collect();
    let sender = testkeys::sender(ProtocolVersion::EcV2).unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let tokens: Vec<String> = payments
        .iter()
        .map(|p| sender.seal_payment(p, &mut rng).unwrap())
        .collect();
    std::fs::write(d.join("tokens.txt"), tokens.join("\n")).unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/compare_gpay.py");
    let out = Command::new(&py)
        .arg(&script)
        .args(["check", "--keys-dir"])
        .arg(d)
        .arg("--tokens")
        .arg(d.join("tokens.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), payments.len());
    for (got, p) in lines.iter().zip(&payments) {
        assert!(got.get("error").is_none(), "python rejected a token: {got}");
        assert_eq!(
            got,
            &p.to_google_json(true),
            "python and acqswitch disagree"
        );
    }
}
