//! Helpers shared by the tests that drive the real `acqswitch` binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `acqswitch ARGS` with `stdin` and waits for it.
pub fn run(args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the acqswitch binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_ref())
        .expect("stdin accepts the input");
    child
        .wait_with_output()
        .expect("acqswitch runs to completion")
}
