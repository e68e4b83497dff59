//! A fixed number of decodes and encodes of the wallet authorization, for
//! instruction-count profiles that do not depend on machine load:
//! `valgrind --tool=callgrind target/release/examples/codec_loop cb2a 100000`.

use acqswitch::iso8583::{sample, Spec};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "cb2a".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let op = args.next().unwrap_or_else(|| "decode".into());
    let spec = Spec::builtin(&name).expect("dialect");
    let msg = match name.as_str() {
        "cb2a" => sample::wallet_authorization_cb2a(&spec),
        _ => sample::wallet_authorization_iso87(&spec),
    }
    .expect("sample");
    let wire = spec.encode_to_bytes(&msg).expect("encode");
    let mut buf = bytes::BytesMut::with_capacity(4096);
    for _ in 0..n {
        if op == "decode" {
            black_box(spec.decode(black_box(&wire)).expect("decode"));
        } else {
            buf.clear();
            spec.encode(black_box(&msg), &mut buf).expect("encode");
        }
    }
}
