//! acqswitch: an acquirer-facing payment message switch.
//!
//! # Layout
//! - [`iso8583`]: ISO 8583 engine driven by dialect files (pure bytes <-> types, no I/O).
//! - [`net`]: framing, acquirer links (request/response matching), connection pools.
//! - [`sim`]: acquirer simulator (pure rules + thin tokio server), for tests and the CLI.
//! - [`load`]: load generator behind `acqswitch load` (bounded in count and time).
//! - [`cli`]: command-line front ends.
//! - [`wallet`]: wallet payment tokens (Google Pay), verify -> decrypt -> validate.
//! - [`seal`]: Sips-style seal (HMAC-SHA-256) of front-end JSON requests and responses.
//! - [`switch`]: authorization domain, dialect mappings, response codes, routing, the service.
#![forbid(unsafe_code)]

pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod iso8583;
pub mod load;
pub mod net;
pub mod seal;
pub mod sim;
pub mod switch;
pub mod wallet;
