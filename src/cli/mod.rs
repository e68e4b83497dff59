//! Command-line front ends, one module per subcommand. Each exposes a clap
//! `Args`/`Subcommand` type and a `run` function returning an exit code.

pub mod demo;
pub mod gpay;
pub mod iso;
pub mod load;
pub mod load_api;
pub mod seal;
pub mod serve;
pub mod sim;
pub mod simulate;
pub mod soak;

/// Logs go to stderr so stdout stays machine-readable (JSON, bytes).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACQSWITCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
