//! Acquirer simulator, for tests (in-process, on `127.0.0.1:0`) and the
//! command line (`acqswitch sim`).
//!
//! # Layout
//! - [`rules`]: the pure function [`respond`] (request + state -> actions),
//!   the ledger and fault injection. No I/O, no clock.
//! - [`server`]: the thin tokio server: [`Simulator::start`] returns a
//!   [`SimHandle`] with the bound address, the ledger, the last decoded
//!   messages, counters and runtime controls (faults, drops, 0800s).

pub mod rules;
pub mod server;

pub use rules::{
    respond, Action, Faults, Latency, Ledger, LedgerEntry, SimCounts, SimState, TxStatus,
};
pub use server::{SimConfig, SimError, SimHandle, Simulator};
