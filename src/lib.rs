//! acqswitch: an acquirer-facing payment message switch.
//!
//! # Layout
//! - [`iso8583`]: ISO 8583 engine driven by dialect files (pure bytes <-> types, no I/O).
//! - [`cli`]: command-line front ends.
#![forbid(unsafe_code)]

pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod iso8583;
