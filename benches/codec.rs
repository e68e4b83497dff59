//! ISO 8583 codec benchmarks: a realistic Google Pay wallet authorization
//! 0100 and a "large" message (every field of the dialect) per dialect,
//! decode (borrowing the frame, or sharing it as a link does) and encode;
//! bitmap walk; TLV sub-field lookup.
//!
//! `cargo bench --bench codec`; `BENCHMARKS.md` has the figures.

use acqswitch::iso8583::{sample, Bitmap, Spec};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{rngs::StdRng, SeedableRng};

fn codec(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(42);
    for name in ["cb2a", "iso87binary", "iso87ascii"] {
        let spec = Spec::builtin(name).unwrap();
        let wallet = match name {
            "cb2a" => sample::wallet_authorization_cb2a(&spec).unwrap(),
            _ => sample::wallet_authorization_iso87(&spec).unwrap(),
        };
        let large = sample::full_message(&spec, &mut rng);
        for (kind, msg) in [("wallet_0100", &wallet), ("large", &large)] {
            let wire = spec.encode_to_bytes(msg).unwrap();
            let mut g = c.benchmark_group(format!("{name}/{kind}"));
            g.throughput(Throughput::Bytes(wire.len() as u64));
            g.bench_function("decode", |b| {
                b.iter(|| spec.decode(black_box(&wire)).unwrap())
            });
            // What a link does with each response: a message that keeps
            // a shared handle on the read buffer, handed to the caller.
            let frame = bytes::Bytes::copy_from_slice(&wire);
            g.bench_function("decode_shared", |b| {
                b.iter(|| spec.decode_shared(black_box(&frame).clone()).unwrap())
            });
            let mut buf = BytesMut::with_capacity(8192);
            g.bench_function("encode", |b| {
                b.iter(|| {
                    buf.clear();
                    spec.encode(black_box(msg), &mut buf).unwrap();
                })
            });
            g.finish();
        }
    }
}

fn parts(c: &mut Criterion) {
    let spec = Spec::builtin("cb2a").unwrap();
    let msg = sample::wallet_authorization_cb2a(&spec).unwrap();
    let bitmap = msg.bitmap(false);
    c.bench_function("bitmap/iterate_wallet_0100", |b| {
        b.iter(|| black_box(&bitmap).iter().map(u32::from).sum::<u32>())
    });
    c.bench_function("bitmap/build_from_fields", |b| {
        b.iter(|| black_box(&msg).bitmap(false))
    });
    let _ = Bitmap::default();
    c.bench_function("tlv/cb2a_de47_lookup_eci", |b| {
        b.iter(|| spec.subfield_text(black_box(&msg), 47, "01").unwrap())
    });
    c.bench_function("text/cb2a_de2_bcd_to_digits", |b| {
        b.iter(|| spec.text(black_box(&msg), 2).unwrap().len())
    });
}

criterion_group!(benches, codec, parts);
criterion_main!(benches);
