//! What an operator sees when something is set up wrong, on real
//! processes: a framing mismatch named on both sides, an acquirer that is
//! down named with its address while `serve` waits, a reconnect loop that
//! does not flood the log, an address in use named.

mod procs;

use std::time::{Duration, Instant};

use procs::{Serve, Sim};

/// Waits until a line of `out` satisfies `pred`.
fn wait_line(out: &procs::Output, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(l) = out.lines().into_iter().find(|l| pred(l)) {
            return Some(l);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_framing_mismatch_is_named_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator frames with a 2-byte BCD length, the switch with the
    // default 2-byte binary one.
    let sim = Sim::start(None, &["--framing", "two_byte_bcd"]);
    let config = procs::write_config(dir.path(), sim.addr, "");
    let serve = Serve::start(&config, &[]);
    let switch_side = wait_line(&serve.out, Duration::from_secs(10), |l| {
        l.contains("link down") && l.contains("framing")
    });
    assert!(switch_side.is_some(), "{:?}", serve.out.lines());
    let line = switch_side.unwrap();
    assert!(line.contains("acquirer=main"), "{line}");
    let sim_side = wait_line(&sim.out, Duration::from_secs(5), |l| {
        l.contains("does not read") && l.contains("framing")
    });
    assert!(sim_side.is_some(), "{:?}", sim.out.lines());
}

#[test]
fn an_acquirer_down_at_start_is_named_and_its_retries_do_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // An address nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let config = procs::write_config(dir.path(), addr, "");
    let serve = Serve::start(&config, &[]);
    let waiting = wait_line(&serve.out, Duration::from_secs(5), |l| {
        l.contains("waiting for a link to main") && l.contains(&addr.to_string())
    });
    assert!(waiting.is_some(), "{:?}", serve.out.lines());
    // Backoff 50-200 ms: about 15 attempts per link in 3 s, one warning
    // per link (2 links).
    std::thread::sleep(Duration::from_secs(3));
    let lines = serve.out.lines();
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("link down")).collect();
    assert!(
        !warnings.is_empty() && warnings.len() <= 2,
        "{} warnings: {warnings:?}",
        warnings.len()
    );
    for w in &warnings {
        assert!(w.contains(&addr.to_string()), "the endpoint is named: {w}");
        assert!(w.contains("acquirer=main"), "{w}");
    }
}

#[test]
fn an_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args(["sim", "--listen", &addr, "--spec", "cb2a"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args(["serve", "--listen", &addr])
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}
