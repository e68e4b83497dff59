//! Replays the saved fuzz corpus and every crash artifact through the fuzz
//! entry points (`acqswitch::fuzzing`), so `cargo test` keeps every input
//! the fuzzers ever found interesting.
//!
//! `ACQSWITCH_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_corpus` rewrites the
//! seed files from the sample generator and the shipped dialects.

use std::fs;
use std::path::{Path, PathBuf};

use acqswitch::fuzzing;
use acqswitch::iso8583::{json, sample, Spec};
use rand::{rngs::StdRng, SeedableRng};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["corpus", "artifacts"] {
        if let Ok(entries) = fs::read_dir(fuzz_dir().join(kind).join(target)) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, f: fn(&[u8])) {
    let inputs = files(target);
    assert!(!inputs.is_empty(), "no corpus for {target}");
    for path in inputs {
        let data = fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| f(&data));
        assert!(result.is_ok(), "{} fails", path.display());
    }
}

#[test]
fn replay_iso_decode() {
    replay("iso_decode", fuzzing::iso_decode_any);
}

#[test]
fn replay_iso_document() {
    replay("iso_document", fuzzing::iso_document);
}

#[test]
fn replay_spec_load() {
    replay("spec_load", fuzzing::spec_load);
}

#[test]
fn write_seeds() {
    if std::env::var_os("ACQSWITCH_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(1);
    let dir = |t: &str| {
        let d = fuzz_dir().join("corpus").join(t);
        fs::create_dir_all(&d).unwrap();
        d
    };
    for (i, name) in ["cb2a", "iso87ascii", "iso87binary"].iter().enumerate() {
        let spec = Spec::builtin(name).unwrap();
        let mut msgs = vec![sample::full_message(&spec, &mut rng)];
        msgs.push(match *name {
            "cb2a" => sample::wallet_authorization_cb2a(&spec).unwrap(),
            _ => sample::wallet_authorization_iso87(&spec).unwrap(),
        });
        for _ in 0..6 {
            msgs.push(sample::random_message(&spec, 0.3, 40, &mut rng));
        }
        for (j, m) in msgs.iter().enumerate() {
            let mut wire = vec![i as u8];
            wire.extend_from_slice(&spec.encode_to_bytes(m).unwrap());
            fs::write(dir("iso_decode").join(format!("{name}-{j}")), &wire).unwrap();
            let mut doc = vec![i as u8];
            doc.extend_from_slice(json::to_document(&spec, m, true).to_string().as_bytes());
            fs::write(dir("iso_document").join(format!("{name}-{j}")), &doc).unwrap();
        }
        let (_, text) = acqswitch::iso8583::spec::BUILTIN
            .iter()
            .find(|(n, _)| n == name)
            .unwrap();
        fs::write(dir("spec_load").join(name), text).unwrap();
    }
    let everything =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialects/everything.toml"))
            .unwrap();
    fs::write(dir("spec_load").join("everything"), everything).unwrap();
}
