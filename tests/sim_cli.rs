//! `acqswitch sim` and `acqswitch load` through the real binary, on loopback,
//! bounded in count (2,000 requests) and time (the simulator exits by itself).
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn load_against_sim_prints_one_json_line() {
    let bin = env!("CARGO_BIN_EXE_acqswitch");
    let mut sim = Command::new(bin)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--spec",
            "cb2a",
            "--max-seconds",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sim.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    let out = Command::new(bin)
        .args([
            "load",
            "--target",
            &addr,
            "--spec",
            "cb2a",
            "--requests",
            "2000",
        ])
        .args([
            "--concurrency",
            "16",
            "--links",
            "2",
            "--quiet",
            "--max-seconds",
            "20",
        ])
        .output()
        .unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in [
        "requests",
        "ok",
        "errors",
        "seconds",
        "throughput_per_s",
        "p50_us",
        "p99_us",
        "p999_us",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {stdout}");
    }
    assert_eq!(v["requests"], 2000);
    assert_eq!(v["ok"], 2000);
    assert_eq!(v["errors"], 0);
}

#[test]
fn load_refuses_non_loopback_targets() {
    let out = Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args(["load", "--target", "192.0.2.1:5000", "--requests", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback"));
}
