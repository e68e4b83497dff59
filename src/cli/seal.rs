//! `acqswitch seal compute|verify`: the Sips-style seal of a JSON message on stdin.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::card::Secret;
use crate::seal::{self, SealAlgorithm, MAX_MESSAGE_LEN};

#[derive(Subcommand)]
pub enum SealCommand {
    /// Print the lowercase hex seal of the message.
    Compute(SealArgs),
    /// Exit 0 when the message's `seal` field is right, 1 otherwise.
    Verify(SealArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Algorithm {
    #[value(name = "HMAC-SHA-256")]
    HmacSha256,
    #[value(name = "SHA-256")]
    Sha256,
}

#[derive(Args)]
pub struct SealArgs {
    /// File holding the merchant's secret (one trailing newline is ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// Algorithm; default: the message's `sealAlgorithm`, else HMAC-SHA-256.
    #[arg(long, value_enum)]
    algorithm: Option<Algorithm>,
}

pub fn run(cmd: SealCommand) -> ExitCode {
    let (args, verify) = match cmd {
        SealCommand::Compute(a) => (a, false),
        SealCommand::Verify(a) => (a, true),
    };
    match run_inner(&args, verify) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &SealArgs, verify: bool) -> Result<ExitCode, String> {
    let secret = Secret::from_file(&args.secret_file)?;

    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_MESSAGE_LEN as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|_| "cannot read stdin".to_owned())?;
    let text = std::str::from_utf8(&input).map_err(|_| "message is not UTF-8".to_owned())?;
    let message = seal::parse(text).map_err(|e| e.to_string())?;
    let algorithm = match args.algorithm {
        Some(Algorithm::HmacSha256) => SealAlgorithm::HmacSha256,
        Some(Algorithm::Sha256) => SealAlgorithm::Sha256,
        None => SealAlgorithm::of_message(&message).map_err(|e| e.to_string())?,
    };
    if verify {
        if seal::verify(&message, &secret, algorithm) {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("invalid");
            Ok(ExitCode::FAILURE)
        }
    } else {
        println!("{}", seal::compute(&message, &secret, algorithm));
        Ok(ExitCode::SUCCESS)
    }
}
