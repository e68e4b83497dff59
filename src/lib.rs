//! acqswitch: an acquirer-facing payment message switch.
//!
//! # Layout
//! - [`iso8583`]: ISO 8583 engine driven by dialect files (pure bytes <-> types, no I/O).
//! - [`net`]: framing, acquirer links (request/response matching), connection pools.
//! - [`sim`]: acquirer simulator (pure rules + thin tokio server), for tests and the CLI.
//! - [`load`]: load generator behind `acqswitch load` (bounded in count and time).
//! - [`simulation`]: deterministic simulation of the switch's cores under faults, one seed a run.
//! - [`soak`]: the chaos run behind `acqswitch soak` (kills, faults, reconciliation).
//! - [`load_api`]: the same load through the HTTP API (`acqswitch load --api`).
//! - [`cli`]: command-line front ends.
//! - [`card`]: card data types (PAN, expiry) that mask themselves and zeroize.
//! - [`journal`]: the durable journal (SQLite, group commit), card data sealed.
//! - [`civil`]: UTC calendar fields from Unix seconds (no date-time dependency).
//! - [`wallet`]: wallet payment tokens (Google Pay), verify -> decrypt -> validate.
//! - [`seal`]: Sips-style seal (HMAC-SHA-256) of front-end JSON requests and responses.
//! - [`front`]: gateway-facing HTTP JSON API (axum), thin: seal, typed JSON, one switch call.
//! - [`config`]: TOML configuration and the embedded default.
//! - [`switch`]: the switch core: authorizations, the windows, numbering, the
//!   journal's write-ahead rule; typed operations, no HTTP.
//! - [`telemetry`]: logs (tracing, text or JSON) and Prometheus metrics.
//! - [`system`]: the composition root: a configuration becomes a running switch.
//! - [`tls`]: TLS material (certificates, keys, CAs) loaded once, and handshake failures in words.
#![forbid(unsafe_code)]

pub mod card;
pub mod civil;
pub mod cli;
pub mod config;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod iso8583;
pub mod journal;
pub mod load;
pub mod load_api;
pub mod net;
pub(crate) mod runtime;
pub mod seal;
pub mod sim;
pub mod simulation;
pub mod soak;
pub mod switch;
pub mod system;
pub mod telemetry;
pub mod tls;
pub mod wallet;
