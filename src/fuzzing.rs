//! Fuzz entry points. Each `fuzz/fuzz_targets/*.rs` is one line calling a
//! function here, and `tests/fuzz_corpus.rs` replays the saved corpus and
//! every crash artifact through the same functions under `cargo test`.
//!
//! Each function must not panic on any input; round-trip targets assert
//! their property (a failed property is a panic, which the fuzzer reports).

use std::sync::OnceLock;

use crate::iso8583::Spec;

fn builtin(name: &'static str, cell: &'static OnceLock<Spec>) -> &'static Spec {
    cell.get_or_init(|| match Spec::builtin(name) {
        Ok(s) => s,
        Err(e) => panic!("built-in dialect {name} does not load: {e}"),
    })
}

/// The shipped dialects, loaded once.
pub fn dialect(name: &str) -> &'static Spec {
    static CB2A: OnceLock<Spec> = OnceLock::new();
    static ASCII: OnceLock<Spec> = OnceLock::new();
    static BINARY: OnceLock<Spec> = OnceLock::new();
    match name {
        "cb2a" => builtin("cb2a", &CB2A),
        "iso87ascii" => builtin("iso87ascii", &ASCII),
        _ => builtin("iso87binary", &BINARY),
    }
}

/// Decode arbitrary bytes; whatever decodes must re-encode to the same
/// bytes and display without panicking.
pub fn iso_decode(spec: &Spec, data: &[u8]) {
    if let Ok(msg) = spec.decode(data) {
        let wire = match spec.encode_to_bytes(&msg) {
            Ok(w) => w,
            Err(e) => panic!("decoded message does not re-encode: {e}"),
        };
        assert_eq!(&wire[..], data, "encode(decode(b)) != b");
        let _ = spec.display(&msg).to_string();
        let doc = crate::iso8583::json::to_document(spec, &msg, true);
        // The JSON document form is lossless for decoded messages.
        match crate::iso8583::json::from_document(spec, &doc) {
            Ok(back) => assert_eq!(
                &spec
                    .encode_to_bytes(&back)
                    .map(|b| b.to_vec())
                    .unwrap_or_default()[..],
                data
            ),
            Err(e) => panic!("document of a decoded message does not encode: {e}"),
        }
    }
}

/// Decode with each shipped dialect, chosen by the first byte.
pub fn iso_decode_any(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let name = ["cb2a", "iso87ascii", "iso87binary"][usize::from(which % 3)];
    iso_decode(dialect(name), rest);
}

/// A dialect file from arbitrary text: an error or a spec, never a panic;
/// a loaded spec must decode its own sample messages.
pub fn spec_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = Spec::from_toml_str(text) {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(data.len() as u64);
        let msg = crate::iso8583::sample::random_message(&spec, 0.5, 32, &mut rng);
        if let Ok(wire) = spec.encode_to_bytes(&msg) {
            iso_decode(&spec, &wire);
        }
    }
}

/// A JSON document from arbitrary bytes: encode, then decode back to the
/// same logical message.
pub fn iso_document(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let spec = dialect(["cb2a", "iso87ascii", "iso87binary"][usize::from(which % 3)]);
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    if let Ok(msg) = crate::iso8583::json::from_document(spec, &doc) {
        if let Ok(wire) = spec.encode_to_bytes(&msg) {
            match spec.decode(&wire) {
                Ok(back) => assert_eq!(back, msg, "decode(encode(m)) != m"),
                Err(e) => panic!("encoded document does not decode: {e}"),
            }
        }
    }
}
