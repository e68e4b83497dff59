//! Framing codec throughput: decode a buffer of many frames, encode in place.
use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio_util::codec::Decoder;

use acqswitch::net::framing::{FramingConfig, LengthStyle};

fn bench(c: &mut Criterion) {
    let body = vec![0x42u8; 120];
    let mut g = c.benchmark_group("framing");
    for style in [
        LengthStyle::TwoByteBinary,
        LengthStyle::FourByteAscii,
        LengthStyle::TwoByteBcd,
    ] {
        let cfg = FramingConfig::new(style).with_header(&[0x60, 0, 1, 0, 0]);
        let codec = cfg.codec().expect("valid config");
        let mut wire = BytesMut::new();
        for _ in 0..1000 {
            codec.encode_message(&body, &mut wire).expect("fits");
        }
        let wire = wire.freeze();
        g.throughput(Throughput::Elements(1000));
        g.bench_function(format!("decode_1000/{}", style.name()), |b| {
            b.iter(|| {
                let mut codec = codec.clone();
                let mut src = BytesMut::from(&wire[..]);
                let mut n = 0;
                while let Ok(Some(_)) = codec.decode(&mut src) {
                    n += 1;
                }
                assert_eq!(n, 1000);
            })
        });
        g.bench_function(format!("encode_in_place_1000/{}", style.name()), |b| {
            let mut dst = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                dst.clear();
                for _ in 0..1000 {
                    let start = codec.begin(&mut dst);
                    dst.put_slice(&body);
                    codec.finish(&mut dst, start).expect("fits");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
