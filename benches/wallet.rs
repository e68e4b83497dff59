//! Criterion benchmarks: Google Pay unseal (cold and cached intermediate key),
//! its ECDSA/ECDH parts, and the Sips seal.

use acqswitch::card::Secret;
use acqswitch::seal::{self, SealAlgorithm};
use acqswitch::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::Signature;
use rand::rngs::StdRng;
use rand::SeedableRng;

const NOW_MS: u64 = 1_704_067_200_000;

fn payment() -> DecryptedPayment {
    DecryptedPayment {
        message_id:
            "AH2EjtfkY514K5lmPF4NOP9lMR5tPedsjQR719hIzI-zB1g0A-TBlYInGQuEVQeIWGlajqEpvSyrl3r".into(),
        message_expiration_ms: NOW_MS + 3_600_000,
        payment_method: "CARD".into(),
        gateway_merchant_id: Some("acqswitch-gw".into()),
        details: PaymentMethodDetails::cryptogram_3ds(
            Pan::new("4895370012003478").unwrap(),
            12,
            2030,
            Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA=").expect("test cryptogram"),
            Some("05".into()),
        ),
    }
}

fn unseal(c: &mut Criterion) {
    let sender = testkeys::sender(ProtocolVersion::EcV2).unwrap();
    let recipient = testkeys::recipient(ProtocolVersion::EcV2).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let tokens: Vec<String> = (0..64)
        .map(|_| sender.seal_payment(&payment(), &mut rng).unwrap())
        .collect();
    let mut g = c.benchmark_group("gpay_unseal_ecv2");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("cached_intermediate", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            recipient.unseal(black_box(&tokens[i]), NOW_MS).unwrap()
        })
    });
    g.bench_function("cold_intermediate", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            recipient.clear_cache();
            recipient.unseal(black_box(&tokens[i]), NOW_MS).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("gpay_parts");
    let key = testkeys::intermediate_signing_key().unwrap();
    let msg = tokens[0].as_bytes();
    let sig: Signature = key.sign(msg);
    let vk = *key.verifying_key();
    g.bench_function("ecdsa_p256_verify", |b| {
        b.iter(|| vk.verify(black_box(msg), &sig).is_ok())
    });
    let secret = p256::SecretKey::random(&mut rng);
    let public = p256::SecretKey::random(&mut rng).public_key();
    g.bench_function("ecdh_p256", |b| {
        b.iter(|| {
            p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), black_box(public.as_affine()))
        })
    });
    g.bench_function("sender_seal_payment", |b| {
        b.iter(|| sender.seal_payment(&payment(), &mut rng).unwrap())
    });
    g.finish();
}

fn seal_bench(c: &mut Criterion) {
    let msg: serde_json::Value = serde_json::from_str(
        r#"{"amount":1000,"automaticResponseUrl":"https://merchant.example/auto","currencyCode":"978",
            "customerContact":{"email":"a@b.c","firstName":"Ada","lastName":"L"},"interfaceVersion":"IR_WS_2.47",
            "keyVersion":"1","merchantId":"002001000000001","normalReturnUrl":"https://merchant.example/ret",
            "orderChannel":"INTERNET","paymentMeanBrandList":["VISA","MASTERCARD"],"transactionReference":"ref-123456"}"#,
    )
    .unwrap();
    let text = msg.to_string();
    let secret = Secret::new("002001000000001_KEY1");
    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Elements(1));
    g.bench_function("compute_hmac_sha256_value", |b| {
        b.iter(|| seal::compute(black_box(&msg), &secret, SealAlgorithm::HmacSha256))
    });
    g.bench_function("compute_hmac_sha256_from_json_text", |b| {
        b.iter(|| seal::compute_json(black_box(&text), &secret, SealAlgorithm::HmacSha256).unwrap())
    });
    g.finish();
}

criterion_group!(benches, unseal, seal_bench);
criterion_main!(benches);
