//! `acqswitch iso decode|encode`.
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum IsoCommand {}

pub fn run(cmd: IsoCommand) -> ExitCode {
    match cmd {}
}
