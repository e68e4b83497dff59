//! Command-line front ends, one module per subcommand. Each exposes a clap
//! `Args`/`Subcommand` type and a `run` function returning an exit code.

pub mod config;
pub mod demo;
pub mod gpay;
pub mod iso;
pub mod journal;
pub mod load;
pub mod load_api;
pub mod seal;
pub mod serve;
pub mod sim;
pub mod simulate;
pub mod soak;
