//! Google Pay payment method tokens: the recipient side of Google's "payment
//! data cryptography" (protocolVersion ECv2 and ECv1), as Tink's
//! `PaymentMethodTokenRecipient` implements it, plus a test-token sender.
//!
//! ```no_run
//! use acqswitch::wallet::googlepay::{testkeys, ProtocolVersion};
//! let recipient = testkeys::recipient(ProtocolVersion::EcV2)?;
//! # let token_json = "";
//! # let now_ms = 0;
//! match recipient.unseal(token_json, now_ms) {
//!     Ok(payment) => println!("{}", payment.details.pan),  // masked: 411111******1111
//!     Err(e) => println!("{} {}", e.response_code(), e),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `token`: the JSON shapes, strict base64, the signed length-value strings.
//! - `keys`: Google's root keys JSON, merchant private keys.
//! - `crypto`: ECIES-KEM + AES-CTR/HMAC-SHA256, ECDSA verification.
//! - `recipient`: verify -> decrypt -> validate, with `now` passed in.
//! - `cache`: verified intermediate signing keys.
//! - `payment`: the decrypted payload in masking, zeroizing types.
//! - `sender`: the inverse, for tests and demos; `testkeys`: fixed demo keys.

mod cache;
mod crypto;
mod ecdsa_table;
pub mod error;
pub mod keys;
pub mod payment;
pub mod recipient;
pub mod sender;
pub mod testkeys;
pub mod token;

pub use cache::DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY;
pub use error::{KeyError, TokenError, RESPONSE_CODE_OK};
pub use keys::{MerchantPrivateKey, RootSigningKey, RootSigningKeys};
pub use payment::{AuthMethod, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails};
pub use recipient::{GooglePayRecipient, RecipientConfig};
pub use sender::{EncryptedParts, TestTokenSender};
pub use token::{ProtocolVersion, MAX_TOKEN_LEN};

/// What does the arithmetic: signatures always with p256 (precomputed
/// tables for long-lived keys), the merchant-key ECDH with AWS-LC when the
/// `aws-lc` feature is on (the default), else with p256.
#[cfg(feature = "aws-lc")]
pub const IMPLEMENTATION: &str = "acqswitch (Rust; ECDSA p256, ECDH aws-lc-rs)";
#[cfg(not(feature = "aws-lc"))]
pub const IMPLEMENTATION: &str = "acqswitch (Rust; ECDSA and ECDH p256)";

/// Fuzz entry point. Input starting with `{` is a whole token for the demo
/// recipients (ECv2 and ECv1) and a payload for the payload parser;
/// otherwise the first byte, modulo 4, picks what the rest is:
/// - 0: the same as `{` input (token and payload);
/// - 1 (`P`, `1`, ...): a payload plaintext, encrypted and signed with the
///   test keys: unsealing it must give exactly what the payload parser
///   gives (same payment, or an error from both);
/// - 2 (`2`, `R`, ...): a `signedMessage` text signed with the test keys, so
///   its structure, base64 parts, ephemeral point, tag and ciphertext are
///   reached past the signature checks;
/// - 3 (`K`, `3`, ...): a root signing keys file (Google's keys JSON).
///
/// Must never panic; errors are the expected outcome.
pub fn fuzz_token(data: &[u8]) {
    use std::sync::OnceLock;
    type Fixture = (GooglePayRecipient, GooglePayRecipient, TestTokenSender);
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    // Inside the test keys' validity (they expire in 2100).
    const NOW_MS: u64 = 1_700_000_000_000;
    let Some((v2, v1, sender)) = FIXTURE.get_or_init(|| {
        Some((
            testkeys::recipient(ProtocolVersion::EcV2).ok()?,
            testkeys::recipient(ProtocolVersion::EcV1).ok()?,
            testkeys::sender(ProtocolVersion::EcV2).ok()?,
        ))
    }) else {
        return;
    };
    let (mode, rest) = match data.split_first() {
        Some((b'{', _)) => (0, data),
        Some((&m, rest)) => (m % 4, rest),
        None => return,
    };
    match mode {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = v2.unseal(text, NOW_MS);
                let _ = v1.unseal_plaintext(text, NOW_MS);
            }
            let _ = payment::parse_payload_for_fuzz(rest);
        }
        1 => {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(rest.len() as u64);
            let Ok(token) = sender.seal_plaintext(rest, &mut rng) else {
                return;
            };
            let unsealed = v2.unseal(&token, NOW_MS);
            let parsed = payment::parse_payload(rest)
                .ok()
                .filter(|p| p.message_expiration_ms > NOW_MS);
            match (unsealed, parsed) {
                (Ok(a), Some(b)) => assert_eq!(a, b, "unseal(seal(p)) != parse(p)"),
                (Err(_), None) => {}
                (a, b) => panic!(
                    "unseal and the payload parser disagree: unseal ok {}, parse ok {}",
                    a.is_ok(),
                    b.is_some()
                ),
            }
        }
        2 => {
            if let Ok(signed_message) = std::str::from_utf8(rest) {
                if let Ok(token) = sender.sign_signed_message(signed_message) {
                    let _ = v2.unseal(&token, NOW_MS);
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(keys) = RootSigningKeys::from_google_json(text) {
                    for version in [ProtocolVersion::EcV1, ProtocolVersion::EcV2] {
                        let _ = keys.for_version(version);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn fuzz_entry_survives_odd_input() {
        let sender = testkeys::sender(ProtocolVersion::EcV2).unwrap();
        let token = sender
            .seal_plaintext(
                b"{\"messageExpiration\":\"x\"}",
                &mut StdRng::seed_from_u64(1),
            )
            .unwrap();
        let inputs: [&[u8]; 7] = [
            b"",
            b"\xff\xfe",
            b"{\"protocolVersion\":\"ECv2\",\"signature\":\"\",\"signedMessage\":\"\",\"intermediateSigningKey\":{\"signedKey\":\"\",\"signatures\":[\"\"]}}",
            b"[[[[[[[[[[[[[[[[[[[[",
            b"{\"messageExpiration\":\"1\",\"messageId\":\"m\",\"paymentMethod\":\"CARD\",\"paymentMethodDetails\":{\"pan\":\"\",\"expirationMonth\":300}}",
            token.as_bytes(),
            &token.as_bytes()[..token.len() / 2],
        ];
        for input in inputs {
            fuzz_token(input);
        }
        // The other modes: a payload sealed then unsealed (valid, expired,
        // malformed), a signed signedMessage, a root keys file.
        let payload = br#"{"messageExpiration":"4102444800000","messageId":"m","paymentMethod":"CARD","paymentMethodDetails":{"pan":"4895370012003478","expirationMonth":12,"expirationYear":2030,"authMethod":"PAN_ONLY"}}"#;
        let expired = br#"{"messageExpiration":"1","messageId":"m","paymentMethod":"CARD","paymentMethodDetails":{"pan":"4895370012003478","expirationMonth":12,"expirationYear":2030,"authMethod":"PAN_ONLY"}}"#;
        for body in [&payload[..], &expired[..], b"{", b""] {
            fuzz_token(&[b"P", body].concat());
        }
        let signed_message = serde_json::from_str::<serde_json::Value>(&token).unwrap()
            ["signedMessage"]
            .as_str()
            .unwrap()
            .to_owned();
        fuzz_token(format!("2{signed_message}").as_bytes());
        fuzz_token(b"2{\"encryptedMessage\":\"\",\"ephemeralPublicKey\":\"BA==\",\"tag\":\"\"}");
        fuzz_token(format!("K{}", testkeys::root_keys_json().unwrap()).as_bytes());
        fuzz_token(b"K{\"keys\":[{}]}");
    }
}
