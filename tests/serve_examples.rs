//! `acqswitch serve` on its embedded default prints sealed, ready-to-paste
//! curl examples: run as printed (in order: the Google Pay check, a
//! cardOrder on a vault reference, a cancel, getTransactionData), each
//! gets the answer the text beside it announces.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_acqswitch");

#[test]
fn the_printed_curl_examples_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut curls = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if line.starts_with("load through the API") {
            break;
        }
        if line.starts_with("curl -s ") {
            curls.push(line);
        }
    }
    assert_eq!(curls.len(), 4, "{curls:?}");
    let run = |c: &str| -> serde_json::Value {
        let out = Command::new("bash").args(["-c", c]).output().unwrap();
        assert!(out.status.success(), "{c}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{c}: {:?}", out.stdout))
    };
    let check = run(&curls[0]);
    assert_eq!(check["responseCode"], "00", "{check}");
    let order = run(&curls[1]);
    assert_eq!(order["responseCode"], "00", "{order}");
    assert_eq!(order["walletType"], "GOOGLE_WALLET", "{order}");
    assert_eq!(run(&curls[1]), order, "a retry gets the journal's answer");
    let cancel = run(&curls[2]);
    assert_eq!(
        (cancel["newStatus"].as_str(), cancel["newAmount"].as_u64()),
        (Some("TO_CAPTURE"), Some(750)),
        "{cancel}"
    );
    assert_eq!(run(&curls[2]), cancel, "the recorded answer");
    let data = run(&curls[3]);
    assert_eq!(data["currentAmount"], 750, "{data}");
    assert_eq!(
        data["operations"].as_array().map(Vec::len),
        Some(1),
        "{data}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
