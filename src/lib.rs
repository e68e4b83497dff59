//! acqswitch: an acquirer-facing payment message switch.
//!
//! # Layout
//! - [`iso8583`]: ISO 8583 engine driven by dialect files (pure bytes <-> types, no I/O).
//! - [`cli`]: command-line front ends.
//! - [`wallet`]: wallet payment tokens (Google Pay), verify -> decrypt -> validate.
//! - [`seal`]: Sips-style seal (HMAC-SHA-256) of front-end JSON requests and responses.
#![forbid(unsafe_code)]

pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod iso8583;
pub mod seal;
pub mod wallet;
