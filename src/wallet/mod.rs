//! Wallet payment tokens: verify, decrypt and validate what a wallet hands to the
//! merchant, with the clock passed in.
//!
//! - [`googlepay`]: Google Pay payment method tokens (protocolVersion ECv1 and ECv2).

pub mod googlepay;
