//! `acqswitch iso decode|encode`: the codec on the command line.
//!
//! Decode reads one message (raw bytes, or hex text with `--hex`) and prints
//! its JSON document (pyiso8583's shape), masked unless `--reveal`. Encode is
//! the inverse. On bad input: a message naming field and offset on stderr,
//! nothing on stdout, exit status 1.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::iso8583::{json, Spec};

/// Largest input accepted on stdin; ISO 8583 messages are a few KiB.
const MAX_INPUT: u64 = 1 << 20;

#[derive(Subcommand)]
pub enum IsoCommand {
    /// Decode one message from stdin and print it as JSON.
    Decode(DecodeArgs),
    /// Encode one JSON message document from stdin.
    Encode(EncodeArgs),
}

#[derive(Args)]
pub struct DecodeArgs {
    /// Dialect file, or the name of a built-in dialect (cb2a, iso87ascii, iso87binary, iso87visa).
    #[arg(long)]
    pub spec: String,
    /// Input is hex text rather than raw bytes.
    #[arg(long)]
    pub hex: bool,
    /// Show sensitive fields (PAN, track, cryptogram, PIN) in full.
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Args)]
pub struct EncodeArgs {
    /// Dialect file, or the name of a built-in dialect.
    #[arg(long)]
    pub spec: String,
    /// Print hex text rather than raw bytes.
    #[arg(long)]
    pub hex: bool,
}

pub fn run(cmd: IsoCommand) -> ExitCode {
    let result = match cmd {
        IsoCommand::Decode(a) => decode(&a),
        IsoCommand::Encode(a) => encode(&a),
    };
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!("input over {MAX_INPUT} bytes"));
    }
    Ok(buf)
}

/// Hex text to bytes, ignoring whitespace; errors name the character offset.
pub fn parse_hex_text(text: &[u8]) -> Result<Vec<u8>, String> {
    let digits: Vec<(usize, u8)> = text
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| !c.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 != 0 {
        return Err("hex input has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let v = |(i, c): (usize, u8)| {
                crate::iso8583::encoding::hex_value(c)
                    .ok_or_else(|| format!("hex input: bad character at offset {i}"))
            };
            Ok((v(pair[0])? << 4) | v(pair[1])?)
        })
        .collect()
}

fn decode(a: &DecodeArgs) -> Result<Vec<u8>, String> {
    let spec = Spec::load(&a.spec).map_err(|e| e.to_string())?;
    let input = read_stdin()?;
    let bytes = if a.hex {
        parse_hex_text(&input)?
    } else {
        input
    };
    let msg = spec.decode(&bytes).map_err(|e| e.to_string())?;
    let doc = json::to_document(&spec, &msg, a.reveal);
    let mut out = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

fn encode(a: &EncodeArgs) -> Result<Vec<u8>, String> {
    let spec = Spec::load(&a.spec).map_err(|e| e.to_string())?;
    let input = read_stdin()?;
    let doc: serde_json::Value =
        serde_json::from_slice(&input).map_err(|e| format!("input is not JSON: {e}"))?;
    let msg = json::from_document(&spec, &doc).map_err(|e| e.to_string())?;
    let wire = spec.encode_to_bytes(&msg).map_err(|e| e.to_string())?;
    Ok(if a.hex {
        let mut s = hex::encode_upper(&wire).into_bytes();
        s.push(b'\n');
        s
    } else {
        wire.to_vec()
    })
}
