//! The chaos run, short: `acqswitch soak` kills and restarts the switch
//! under load against a faulty acquirer, then reconciles what the clients
//! were told with the acquirer's ledger. Nothing may be lost, wrongly
//! reversed or reversed twice.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_chaos_run_loses_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args([
            "soak",
            "--duration",
            "16s",
            "--kill-every",
            "4s",
            "--concurrency",
            "16",
            "--request-timeout",
            "500ms",
            "--seed",
            "7",
        ])
        .output()
        .expect("acqswitch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().last().expect("a summary line");
    let r: Value = serde_json::from_str(line).expect("JSON");
    for key in ["lost", "wrongly_reversed", "double_reversed"] {
        assert_eq!(r[key], 0, "{key}: {line}");
    }
    assert!(r["kills"].as_u64().unwrap() >= 2, "{line}");
    assert!(r["requests"].as_u64().unwrap() > 1000, "{line}");
    assert!(
        r["reversed"].as_u64().unwrap() > 0,
        "faults made no reversal: {line}"
    );
    assert!(
        r["approved_at_acquirer"].as_u64().unwrap() >= r["approved_told"].as_u64().unwrap(),
        "{line}"
    );
}
