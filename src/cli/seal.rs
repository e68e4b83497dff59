//! `acqswitch seal compute|verify|request`: the Sips-style seal of a JSON
//! message on stdin.

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
    /// Print the message back as a merchant sends it: `keyVersion` set and
    /// `seal` added (`curl -d @-` takes it from a pipe).
    Request(RequestArgs),
}

#[derive(Args)]
pub struct RequestArgs {
    #[command(flatten)]
    seal: SealArgs,
    /// The key version the secret is registered under.
    #[arg(long, default_value_t = 1)]
    key_version: u32,
    /// NAME=FILE: set string field NAME to FILE's content (one trailing
    /// newline dropped), e.g. paymentData=token.json. Repeatable.
    #[arg(long, value_name = "NAME=FILE")]
    field_file: Vec<String>,
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
    let (args, mode) = match cmd {
        SealCommand::Compute(a) => (a, Mode::Compute),
        SealCommand::Verify(a) => (a, Mode::Verify),
        SealCommand::Request(r) => {
            let fields = match read_fields(&r.field_file) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            (r.seal, Mode::Request(r.key_version, fields))
        }
    };
    match run_inner(&args, mode) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

enum Mode {
    Compute,
    Verify,
    /// The key version and fields to set.
    Request(u32, Vec<(String, String)>),
}

/// `NAME=FILE` arguments, read.
fn read_fields(args: &[String]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|a| {
            let (name, file) = a
                .split_once('=')
                .filter(|(n, f)| !n.is_empty() && !f.is_empty())
                .ok_or_else(|| format!("--field-file {a:?}: expected NAME=FILE"))?;
            let mut text = std::fs::read_to_string(file)
                .map_err(|e| format!("--field-file {name}: cannot read {file}: {e}"))?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Ok((name.to_owned(), text))
        })
        .collect()
}

fn run_inner(args: &SealArgs, mode: Mode) -> Result<ExitCode, String> {
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
    if let Mode::Request(version, fields) = mode {
        let mut message = message;
        let Some(object) = message.as_object_mut() else {
            return Err("the message is not a JSON object".into());
        };
        for (name, text) in fields {
            object.insert(name, serde_json::Value::String(text));
        }
        let sealed = seal::sealed(message, version, &secret, algorithm);
        println!("{sealed}");
        return Ok(ExitCode::SUCCESS);
    }
    if matches!(mode, Mode::Verify) {
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
