//! `acqswitch config check FILE`: validates a configuration as `serve`
//! would (without starting anything) and prints it back with every default
//! filled in and every secret masked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::system;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: dialects, mappings, merchants' secrets
    /// and Google Pay keys, contracts, the journal key. Prints the
    /// effective configuration (defaults filled in, secrets as ****) on
    /// stdout and notes on stderr; exits 1 with the reason when it is not
    /// usable.
    Check {
        /// The configuration file (relative paths in it are read from its
        /// folder).
        file: PathBuf,
    },
}

pub fn run(cmd: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check { file } = cmd;
    let cfg = match Config::from_file(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let notes = match system::check(&cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match toml::to_string_pretty(&cfg) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: cannot print the configuration: {e}");
            return ExitCode::FAILURE;
        }
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    eprintln!("{}: ok", file.display());
    ExitCode::SUCCESS
}
