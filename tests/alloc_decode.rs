//! Decoding allocates nothing for a message of up to `INLINE_FIELDS`
//! fields and once (the field table) for a larger one, never per field:
//! measured with a counting allocator.
//! This is its own test binary because the allocator is process-wide.

use acqswitch::iso8583::{sample, Spec, INLINE_FIELDS};
use rand::{rngs::StdRng, SeedableRng};

fn allocations_of_decode(spec: &Spec, wire: &[u8]) -> u64 {
    // Warm up (lazy statics, thread-locals) outside the measurement.
    let _ = spec.decode(wire).unwrap();
    let info = allocation_counter::measure(|| {
        let msg = spec.decode(wire).unwrap();
        std::hint::black_box(&msg);
    });
    info.count_total
}

#[test]
fn decode_allocates_at_most_once_per_message_never_per_field() {
    let mut rng = StdRng::seed_from_u64(7);
    for name in ["cb2a", "iso87ascii", "iso87binary"] {
        let spec = Spec::builtin(name).unwrap();
        let small = match name {
            "cb2a" => sample::wallet_authorization_cb2a(&spec).unwrap(),
            _ => sample::wallet_authorization_iso87(&spec).unwrap(),
        };
        let large = sample::full_message(&spec, &mut rng);
        assert!(
            large.len() > small.len() + 10,
            "{name}: large message too small"
        );
        for msg in [&small, &large] {
            let wire = spec.encode_to_bytes(msg).unwrap();
            let n = allocations_of_decode(&spec, &wire);
            let expected = u64::from(msg.len() > INLINE_FIELDS);
            assert_eq!(
                n,
                expected,
                "{name}: {} fields decoded with {n} allocations",
                msg.len()
            );
        }
    }
}

#[test]
fn encode_into_a_reserved_buffer_does_not_allocate() {
    let spec = Spec::builtin("cb2a").unwrap();
    let msg = sample::wallet_authorization_cb2a(&spec).unwrap();
    let mut buf = bytes::BytesMut::with_capacity(4096);
    spec.encode(&msg, &mut buf).unwrap();
    buf.clear();
    let info = allocation_counter::measure(|| {
        spec.encode(&msg, &mut buf).unwrap();
    });
    assert_eq!(info.count_total, 0);
}
