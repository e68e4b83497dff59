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

/// The test dialect with every engine feature the shipped ones lack
/// (header, EBCDIC, LLLL, tertiary bitmap, fixed and bitmap sub-fields).
const EVERYTHING: &str = include_str!("../tests/data/dialects/everything.toml");

/// The shipped dialects and the `everything` test dialect, loaded once.
pub fn dialect(name: &str) -> &'static Spec {
    static CB2A: OnceLock<Spec> = OnceLock::new();
    static ASCII: OnceLock<Spec> = OnceLock::new();
    static BINARY: OnceLock<Spec> = OnceLock::new();
    static VISA: OnceLock<Spec> = OnceLock::new();
    static ALL: OnceLock<Spec> = OnceLock::new();
    match name {
        "cb2a" => builtin("cb2a", &CB2A),
        "iso87ascii" => builtin("iso87ascii", &ASCII),
        "iso87visa" => builtin("iso87visa", &VISA),
        "everything" => ALL.get_or_init(|| match Spec::from_toml_str(EVERYTHING) {
            Ok(s) => s,
            Err(e) => panic!("the everything dialect does not load: {e}"),
        }),
        _ => builtin("iso87binary", &BINARY),
    }
}

/// Decode arbitrary bytes; whatever decodes must re-encode to the same
/// bytes and display without panicking.
pub fn iso_decode(spec: &Spec, data: &[u8]) {
    let decoded = spec.decode(data);
    // The planned fast path and the general path agree on every input:
    // same message, or the same error at the same place.
    assert_eq!(
        decoded,
        crate::iso8583::decode::decode_reference(spec, data),
        "planned and reference decoders disagree"
    );
    if let Ok(msg) = decoded {
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

/// Decode with each shipped dialect, or the `everything` test dialect,
/// chosen by the first byte.
pub fn iso_decode_any(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let name = [
        "cb2a",
        "iso87ascii",
        "iso87binary",
        "iso87visa",
        "everything",
    ][usize::from(which % 5)];
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

/// A byte stream cut at arbitrary points must frame exactly as the whole
/// stream does, and every message frame must re-encode to the same bytes.
/// Byte 0 picks the framing (style, TPDU header, self-counting length),
/// byte 1 the cut points' seed; the rest is the stream.
pub fn framing_split(data: &[u8]) {
    use crate::net::framing::{Frame, FramingConfig, LengthStyle};
    use tokio_util::codec::{Decoder, Encoder};

    let [mode, seed, stream @ ..] = data else {
        return;
    };
    let style = [
        LengthStyle::TwoByteBinary,
        LengthStyle::FourByteAscii,
        LengthStyle::TwoByteBcd,
        LengthStyle::FourByteBinary,
    ][usize::from(mode & 3)];
    let mut cfg = FramingConfig::new(style);
    if mode & 4 != 0 {
        cfg = cfg.with_header(&[0x60, 0x00, 0x01, 0x00, 0x00]);
    }
    cfg.length_includes_self = mode & 8 != 0;
    cfg.max_frame = 2048;
    let Ok(codec) = cfg.codec() else { return };

    // Reference: the whole stream in one buffer.
    let run = |cuts: &mut dyn FnMut(usize) -> usize| {
        let mut dec = codec.clone();
        let mut buf = bytes::BytesMut::new();
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < stream.len() {
            let take = cuts(stream.len() - pos).clamp(1, stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + take]);
            pos += take;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => frames.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        frames.push(Err(e.to_string()));
                        return frames;
                    }
                }
            }
        }
        frames
    };
    let whole = run(&mut |left| left);
    let mut x = u32::from(*seed) | 1;
    let split = run(&mut |_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x % 17) as usize
    });
    assert_eq!(whole, split, "framing depends on how the stream was cut");
    for frame in whole.into_iter().flatten() {
        if let Frame::Message { header, body } = frame {
            let mut enc = codec.clone();
            let mut out = bytes::BytesMut::new();
            if enc.encode(body.clone(), &mut out).is_ok() {
                let mut dec = codec.clone();
                match dec.decode(&mut out) {
                    Ok(Some(Frame::Message {
                        body: b2,
                        header: h2,
                    })) => {
                        assert_eq!(b2, body);
                        assert_eq!(h2.len(), header.len());
                    }
                    other => panic!("re-encoded frame does not decode: {other:?}"),
                }
            }
        }
    }
}

/// Arbitrary bytes as the contents of the cb2a containers: DE 55 (BER-TLV),
/// DE 47 (binary national TLV) and DE 59 (ASCII national TLV). Whatever
/// decodes must re-encode to the same bytes (unknown tags kept).
pub fn tlv_containers(data: &[u8]) {
    use crate::iso8583::{Field, Message, Mti};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let spec = dialect("cb2a");
    let n = [55u16, 47, 59][usize::from(which % 3)];
    if rest.len() > 255 {
        return;
    }
    let mut msg = Message::new(Mti::AUTHORIZATION_REQUEST);
    msg.insert(n, Field::from_wire(rest, rest.len() as u16));
    let Ok(wire) = spec.encode_to_bytes(&msg) else {
        return;
    };
    iso_decode(spec, &wire);
}

/// Google Pay token parser and decryptor on arbitrary bytes.
pub fn gpay_token(data: &[u8]) {
    crate::wallet::googlepay::fuzz_token(data);
}

/// The seal calculator on arbitrary JSON.
pub fn seal(data: &[u8]) {
    crate::seal::fuzz_seal(data);
}

/// A gateway request body: JSON parsing with the body limit the server
/// applies, then the typed readers of every request (the envelope, the
/// cardOrder and paymentDataProviderCheck requests, the checked order),
/// and the seal over the whole body. Readers must refuse with a code and
/// a field name from the known list, never panic.
pub fn api_body(data: &[u8]) {
    use crate::front::wire;
    if data.len() > 64 * 1024 {
        return;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let named = |r: crate::switch::Refusal| {
        if let Some(f) = r.field {
            assert!(
                f == "body" || wire::field_name(f) == f,
                "refusal names an unknown field {f:?}"
            );
        }
    };
    if let Err(r) = wire::typed_ref::<wire::Envelope<'_>>(&value) {
        named(r);
    }
    if let Err(r) = wire::typed_ref::<wire::CheckRequest<'_>>(&value) {
        named(r);
    }
    match wire::typed_ref::<wire::CardOrderRequest<'_>>(&value).and_then(|o| o.into_order()) {
        // A typed card number prints masked: no run of 13 digits or more.
        Ok(crate::switch::CardOrder {
            card: crate::switch::CardInput::Number(pan),
            ..
        }) => {
            let shown = format!("{pan:?} {pan}");
            let longest = shown
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest < 13, "an order printed a card number");
        }
        Ok(_) => {}
        Err(r) => named(r),
    }
    if let Err(r) =
        wire::typed_ref::<wire::CardOrderRequest<'_>>(&value).and_then(|o| o.into_validated_order())
    {
        named(r);
    }
    for kind in crate::switch::lifecycle::OperationKind::ALL {
        match wire::typed_ref::<wire::CashManagementRequest<'_>>(&value)
            .and_then(|o| o.into_request(kind))
        {
            Ok(r) => assert!(r.amount > 0 && r.transaction_reference.len() <= 35),
            Err(r) => named(r),
        }
    }
    if let Err(r) = wire::typed_ref::<wire::TransactionDataRequest<'_>>(&value)
        .and_then(|r| wire::transaction_reference(r.transaction_reference))
    {
        named(r);
    }
    crate::seal::fuzz_seal(data);
}
