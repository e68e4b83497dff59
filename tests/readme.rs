//! The README's step-by-step section ("Your own acquirer and merchant"),
//! run as written: the `sh` block between `<!-- walkthrough -->` and
//! `<!-- /walkthrough -->`, in bash with `set -euo pipefail`, from an empty
//! folder, with the built `acqswitch` first on the `PATH` (the README's
//! `cargo build` + `export PATH` step). It configures an external acquirer
//! (`acqswitch sim` on 127.0.0.1:9100) and a merchant with its own Google
//! Pay keys, and sends a Google Pay check and a sealed cardOrder with curl.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_acqswitch");

/// The `sh` block between `<!-- NAME -->` and `<!-- /NAME -->`.
fn block(name: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find(&format!("<!-- {name} -->"))
        .unwrap_or_else(|| panic!("the {name} marker"));
    let end = readme
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("the {name} end marker"));
    let block = &readme[start..end];
    let body = block
        .split_once("```sh\n")
        .expect("a sh block")
        .1
        .rsplit_once("```")
        .expect("the block's end")
        .0;
    body.to_owned()
}

/// The walkthrough, then the "After the authorization" block in the same
/// folder (cash management, PAN_ONLY with 3-D Secure, the cut-off, the
/// export).
#[test]
fn the_readme_walkthrough_runs_as_written() {
    let operations = block("operations");
    for endpoint in [
        "cardValidateAuthenticationAndOrder",
        "cashManagement/cancel",
        "cashManagement/validate",
        "cashManagement/refund",
        "diagnostic/getTransactionData",
        "journal export",
    ] {
        assert!(operations.contains(endpoint), "{endpoint} has an example");
    }
    let script = format!("{}\n{operations}", block("walkthrough"));
    assert!(script.contains("acqswitch serve --config acqswitch.toml"));
    assert!(script.contains("curl"));
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Background processes are stopped however the script ends.
    let wrapped = format!("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &wrapped])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let until = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the walkthrough did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = |name: &str| {
        std::fs::read_to_string(dir.path().join("shop").join(name)).unwrap_or_default()
    };
    assert!(
        status.success(),
        "walkthrough failed ({status}):\nstdout:\n{stdout}\nstderr:\n{}\nserve.log:\n{}\nsim.log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs("serve.log"),
        logs("sim.log")
    );
    assert!(stdout.contains(r#""responseCode":"00""#), "{stdout}");
    assert!(
        stdout.contains(r#""transactionStatus":"CAPTURED""#),
        "{stdout}"
    );
    let ledger = std::fs::read_to_string(dir.path().join("shop/ledger.json")).unwrap();
    assert!(ledger.contains(r#""refund_messages":1"#), "{ledger}");
    assert!(ledger.contains(r#""reversals_applied":1"#), "{ledger}");
    assert!(stdout.contains("valid"), "the answer's seal: {stdout}");
    // serve stopped cleanly on SIGTERM and wrote its journal where the
    // configuration said, relative to the file.
    assert!(dir.path().join("shop/data/journal.db").exists());
    assert!(dir.path().join("shop/data/journal.key").exists());
    // The last serve's log: the cut-off it caught up at start, the refund.
    let log = logs("serve.log");
    assert!(
        log.contains("cut-off") && log.contains("operation"),
        "{log}"
    );
}
