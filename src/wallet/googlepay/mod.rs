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

/// Fuzz entry point: any bytes, as a token for the demo recipient at a fixed
/// time. Must never panic; errors are the expected outcome.
pub fn fuzz_token(data: &[u8]) {
    use std::sync::OnceLock;
    static RECIPIENTS: OnceLock<Option<(GooglePayRecipient, GooglePayRecipient)>> = OnceLock::new();
    let Some((v2, v1)) = RECIPIENTS.get_or_init(|| {
        Some((
            testkeys::recipient(ProtocolVersion::EcV2).ok()?,
            testkeys::recipient(ProtocolVersion::EcV1).ok()?,
        ))
    }) else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = v2.unseal(text, 1_700_000_000_000);
        let _ = v1.unseal_plaintext(text, 1_700_000_000_000);
    }
    let _ = payment::parse_payload_for_fuzz(data);
}
