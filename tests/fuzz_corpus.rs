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
        let data = match fs::read(&path) {
            Ok(d) => d,
            // A fuzzer running beside the tests replaces corpus entries.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
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
fn replay_framing_split() {
    replay("framing_split", fuzzing::framing_split);
}

#[test]
fn replay_tlv_containers() {
    replay("tlv_containers", fuzzing::tlv_containers);
}

#[test]
fn replay_gpay_token() {
    replay("gpay_token", fuzzing::gpay_token);
}

#[test]
fn replay_seal() {
    replay("seal", fuzzing::seal);
}

#[test]
fn replay_api_body() {
    replay("api_body", fuzzing::api_body);
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
    // iso_decode also picks iso87visa (3) and the everything test dialect (4).
    for (i, spec) in [
        (3u8, Spec::builtin("iso87visa").unwrap()),
        (
            4u8,
            Spec::from_file(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialects/everything.toml"),
            )
            .unwrap(),
        ),
    ] {
        let mut msgs = vec![sample::full_message(&spec, &mut rng)];
        for _ in 0..6 {
            msgs.push(sample::random_message(&spec, 0.3, 40, &mut rng));
        }
        for (j, m) in msgs.iter().enumerate() {
            let mut wire = vec![i];
            wire.extend_from_slice(&spec.encode_to_bytes(m).unwrap());
            fs::write(dir("iso_decode").join(format!("{}-{j}", spec.name)), &wire).unwrap();
        }
    }
    // Framing: a few encoded messages back to back, per framing mode.
    let spec = Spec::builtin("cb2a").unwrap();
    let wire = spec
        .encode_to_bytes(&sample::wallet_authorization_cb2a(&spec).unwrap())
        .unwrap();
    for mode in 0u8..16 {
        let mut stream = vec![mode, 7];
        for _ in 0..3 {
            let len = wire.len() + if mode & 4 != 0 { 5 } else { 0 };
            let prefix_len = if mode & 1 == 1 { 4 } else { 2 };
            let value = len + if mode & 8 != 0 { prefix_len } else { 0 };
            match mode & 3 {
                0 => stream.extend_from_slice(&(value as u16).to_be_bytes()),
                1 => stream.extend_from_slice(format!("{value:04}").as_bytes()),
                2 => stream.extend_from_slice(&[
                    (((value / 1000) << 4) | ((value / 100) % 10)) as u8,
                    ((((value / 10) % 10) << 4) | (value % 10)) as u8,
                ]),
                _ => stream.extend_from_slice(&(value as u32).to_be_bytes()),
            }
            if mode & 4 != 0 {
                stream.extend_from_slice(&[0x60, 0, 1, 0, 0]);
            }
            stream.extend_from_slice(&wire);
        }
        fs::write(dir("framing_split").join(format!("mode-{mode}")), &stream).unwrap();
    }
    // TLV containers: the sample's DE 47, a nested DE 55, an ASCII DE 59.
    let msg = sample::wallet_authorization_cb2a(&spec).unwrap();
    let mut de47 = vec![1u8];
    de47.extend_from_slice(msg.field(47).unwrap().raw());
    fs::write(dir("tlv_containers").join("de47"), &de47).unwrap();
    let de55 = hex::decode("009F2608112233445566778870075A054895370012").unwrap();
    fs::write(dir("tlv_containers").join("de55"), &de55).unwrap();
    fs::write(
        dir("tlv_containers").join("de59"),
        b"\x020100003ABC0200002XY",
    )
    .unwrap();
    // Tokens and seals: the public vectors and known answers.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let read_json = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(data.join(p)).unwrap()).unwrap()
    };
    let vectors = read_json("googlepay/public_vectors.json");
    for (k, v) in vectors.as_object().unwrap() {
        if k.ends_with("_token") {
            fs::write(dir("gpay_token").join(k), v.to_string()).unwrap();
        }
    }
    // The harness's other modes: a payload to seal ("P"), a signedMessage
    // to sign ("2"), a root keys file ("K").
    let payload = r#"{"messageExpiration":"4102444800000","messageId":"seed","paymentMethod":"CARD","paymentMethodDetails":{"pan":"4895370012003478","expirationMonth":12,"expirationYear":2030,"authMethod":"CRYPTOGRAM_3DS","cryptogram":"AgAAAAAABk4DWZ4C28yUQAAAAAA=","eciIndicator":"05"}}"#;
    fs::write(
        dir("gpay_token").join("mode-payload"),
        format!("P{payload}"),
    )
    .unwrap();
    let signed_message = vectors["ecv2_token"]["signedMessage"].as_str().unwrap();
    fs::write(
        dir("gpay_token").join("mode-signed-message"),
        format!("2{signed_message}"),
    )
    .unwrap();
    let root_keys = acqswitch::wallet::googlepay::testkeys::root_keys_json().unwrap();
    fs::write(
        dir("gpay_token").join("mode-root-keys"),
        format!("K{root_keys}"),
    )
    .unwrap();
    let kat = read_json("seal/kat.json");
    let mut walk = vec![&kat];
    let mut i = 0;
    while let Some(v) = walk.pop() {
        match v {
            serde_json::Value::Object(m) => {
                if m.len() > 1 {
                    fs::write(dir("seal").join(format!("kat-{i}")), v.to_string()).unwrap();
                    i += 1;
                }
                walk.extend(m.values());
            }
            serde_json::Value::Array(a) => walk.extend(a.iter()),
            _ => {}
        }
    }
    let everything =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialects/everything.toml"))
            .unwrap();
    fs::write(dir("spec_load").join("everything"), everything).unwrap();
}
