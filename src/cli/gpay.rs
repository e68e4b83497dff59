//! `acqswitch gpay decrypt|test-token|test-keys`.
//!
//! `decrypt` prints the payload in Google's shape (PAN and cryptogram masked
//! unless `--reveal`) or `{"responseCode":"..","error":".."}` with a non-zero
//! exit; card data never reaches stderr.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, GooglePayRecipient, MerchantPrivateKey, Pan,
    PaymentMethodDetails, ProtocolVersion, RecipientConfig, RootSigningKeys, TestTokenSender,
    MAX_TOKEN_LEN,
};

#[derive(Subcommand)]
pub enum GpayCommand {
    /// Verify and decrypt a Google Pay token read from stdin.
    Decrypt(DecryptArgs),
    /// Make a test token signed with the embedded test keys (a "mock" Google Pay).
    TestToken(TestTokenArgs),
    /// Write the embedded test keys for use with `decrypt`.
    TestKeys(TestKeysArgs),
    /// Make a merchant's own decryption key pair: the private key (PEM,
    /// readable by its owner only) for `private_key_files`, and the public
    /// key to register with Google (base64 of the uncompressed point).
    Keygen(KeygenArgs),
    /// Measure single-core unseal throughput on a file of tokens (one per line),
    /// with the intermediate key cache cold and warm. Build with --release.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Version {
    #[value(name = "ECv2")]
    EcV2,
    #[value(name = "ECv1")]
    EcV1,
}

impl From<Version> for ProtocolVersion {
    fn from(v: Version) -> Self {
        match v {
            Version::EcV2 => ProtocolVersion::EcV2,
            Version::EcV1 => ProtocolVersion::EcV1,
        }
    }
}

#[derive(Args)]
pub struct DecryptArgs {
    /// Recipient id, e.g. merchant:12345678901234567890.
    #[arg(long)]
    recipient_id: String,
    /// Merchant private key file: base64 PKCS#8 DER or PEM. Repeat for rotation.
    #[arg(long, required = true)]
    private_key: Vec<PathBuf>,
    /// Google's root signing keys JSON.
    #[arg(long)]
    root_keys: PathBuf,
    /// Protocol version accepted.
    #[arg(long, value_enum, default_value = "ECv2")]
    protocol_version: Version,
    /// Current time in ms since the epoch (default: the system clock).
    #[arg(long)]
    now_ms: Option<u64>,
    /// Print the full PAN and cryptogram instead of masking them.
    #[arg(long)]
    reveal: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Auth {
    #[value(name = "CRYPTOGRAM_3DS")]
    Cryptogram3ds,
    #[value(name = "PAN_ONLY")]
    PanOnly,
}

#[derive(Args)]
pub struct TestTokenArgs {
    #[arg(long, value_enum, default_value = "ECv2")]
    protocol_version: Version,
    /// Card number (DPAN for CRYPTOGRAM_3DS).
    #[arg(long, default_value = "4895370012003478")]
    pan: String,
    #[arg(long, default_value_t = 12)]
    expiration_month: u8,
    #[arg(long, default_value_t = 2030)]
    expiration_year: u16,
    #[arg(long, value_enum, default_value = "CRYPTOGRAM_3DS")]
    auth_method: Auth,
    #[arg(long, default_value = "AgAAAAAABk4DWZ4C28yUQAAAAAA=")]
    cryptogram: String,
    #[arg(long, default_value = "05")]
    eci: String,
    /// messageId (default: random).
    #[arg(long)]
    message_id: Option<String>,
    #[arg(long)]
    gateway_merchant_id: Option<String>,
    /// Time the token is made, ms since the epoch (default: the system clock).
    #[arg(long)]
    now_ms: Option<u64>,
    /// messageExpiration = now + ttl.
    #[arg(long, default_value_t = 3_600_000)]
    ttl_ms: u64,
    /// Seed for the ephemeral key and messageId, for reproducible tokens.
    #[arg(long)]
    seed: Option<u64>,
    /// Encrypt for this merchant: its recipient id (default: the demo
    /// merchant's, merchant:acqswitch-demo).
    #[arg(long, requires = "merchant_public_key")]
    recipient_id: Option<String>,
    /// ... and its public key file, as `gpay keygen` writes it (base64
    /// uncompressed point). Still signed with the test root keys: the
    /// recipient must trust `test-keys`' root_keys.json.
    #[arg(long, requires = "recipient_id")]
    merchant_public_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory to write merchant_private_key.pem (mode 0600) and
    /// merchant_public_key.b64 into; existing files are not overwritten.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Recipient id the tokens were made for.
    #[arg(long)]
    recipient_id: String,
    /// Merchant private key file (base64 PKCS#8 DER or PEM).
    #[arg(long)]
    private_key: PathBuf,
    /// Google's root signing keys JSON.
    #[arg(long)]
    root_keys: PathBuf,
    /// Tokens, one JSON document per line.
    #[arg(long)]
    tokens: PathBuf,
    /// Passes over the token file per measurement.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    #[arg(long)]
    now_ms: Option<u64>,
}

#[derive(Args)]
pub struct TestKeysArgs {
    /// Directory to write merchant_private_key.b64, merchant_private_key.pem,
    /// root_keys.json and recipient_id.txt into.
    #[arg(long)]
    dir: PathBuf,
}

pub fn run(cmd: GpayCommand) -> ExitCode {
    match cmd {
        GpayCommand::Decrypt(args) => decrypt(args),
        GpayCommand::TestToken(args) => test_token(args),
        GpayCommand::TestKeys(args) => test_keys(&args.dir),
        GpayCommand::Keygen(args) => match keygen(&args.dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        GpayCommand::Bench(args) => match bench(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Prints the failure object; the message is static text from the error types.
fn fail(code: &str, error: &str) -> ExitCode {
    println!("{}", json!({"responseCode": code, "error": error}));
    ExitCode::FAILURE
}

fn decrypt(args: DecryptArgs) -> ExitCode {
    let mut private_keys = Vec::new();
    for path in &args.private_key {
        let key =
            MerchantPrivateKey::from_file(path).map_err(|e| format!("{}: {e}", path.display()));
        match key {
            Ok(k) => private_keys.push(k),
            Err(e) => return fail("03", &e),
        }
    }
    let root_keys = match std::fs::read_to_string(&args.root_keys) {
        Ok(text) => match RootSigningKeys::from_google_json(&text) {
            Ok(k) => k,
            Err(e) => return fail("03", &e.to_string()),
        },
        Err(e) => {
            return fail(
                "03",
                &format!(
                    "cannot read root keys file {}: {e}",
                    args.root_keys.display()
                ),
            )
        }
    };
    let recipient = match GooglePayRecipient::new(RecipientConfig {
        recipient_id: args.recipient_id,
        protocol_version: args.protocol_version.into(),
        private_keys,
        root_keys,
    }) {
        Ok(r) => r,
        Err(e) => return fail(e.response_code(), &e.to_string()),
    };
    let mut input = Vec::new();
    // Read one byte past the cap so an oversized token is reported, not truncated.
    if std::io::stdin()
        .take(MAX_TOKEN_LEN as u64 + 1)
        .read_to_end(&mut input)
        .is_err()
    {
        return fail("30", "cannot read token from stdin");
    }
    let Ok(token) = std::str::from_utf8(&input) else {
        return fail("30", "token is not UTF-8");
    };
    let now_ms = args.now_ms.unwrap_or_else(system_now_ms);
    match recipient.unseal(token.trim(), now_ms) {
        Ok(payment) => {
            println!("{}", payment.to_google_json(args.reveal));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.response_code(), &e.to_string()),
    }
}

fn test_token(args: TestTokenArgs) -> ExitCode {
    let Some(pan) = Pan::new(&args.pan) else {
        eprintln!("error: --pan must be 12 to 19 digits");
        return ExitCode::FAILURE;
    };
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let Some(cryptogram) = Cryptogram::from_base64(&args.cryptogram) else {
        eprintln!("error: --cryptogram must be base64 of 1 to 64 bytes");
        return ExitCode::FAILURE;
    };
    let details = match args.auth_method {
        Auth::PanOnly => {
            PaymentMethodDetails::pan_only(pan, args.expiration_month, args.expiration_year)
        }
        Auth::Cryptogram3ds => PaymentMethodDetails::cryptogram_3ds(
            pan,
            args.expiration_month,
            args.expiration_year,
            cryptogram,
            Some(args.eci),
        ),
    };
    let message_id = args
        .message_id
        .unwrap_or_else(|| format!("acqswitch-test-{:032x}", rng.gen::<u128>()));
    let now_ms = args.now_ms.unwrap_or_else(system_now_ms);
    let payment = DecryptedPayment {
        gateway_merchant_id: args.gateway_merchant_id,
        ..DecryptedPayment::card(message_id, now_ms.saturating_add(args.ttl_ms), details)
    };
    let sender = match (&args.recipient_id, &args.merchant_public_key) {
        (Some(id), Some(file)) => sender_for(id, file, args.protocol_version.into()),
        _ => testkeys::sender(args.protocol_version.into()).map_err(|e| e.to_string()),
    };
    let token = sender.and_then(|s| {
        s.seal_payment(&payment, &mut rng)
            .map_err(|e| e.to_string())
    });
    match token {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A test sender (the test root keys) encrypting for another merchant.
fn sender_for(
    recipient_id: &str,
    public_key_file: &Path,
    version: ProtocolVersion,
) -> Result<TestTokenSender, String> {
    use base64::Engine;
    let text = std::fs::read_to_string(public_key_file).map_err(|e| {
        format!(
            "cannot read the public key file {}: {e}",
            public_key_file.display()
        )
    })?;
    let bad = || {
        format!(
            "{}: not a P-256 public key (base64 of the uncompressed point, as gpay keygen writes it)",
            public_key_file.display()
        )
    };
    let point = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad())?;
    let key = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| bad())?;
    let root = testkeys::root_signing_key().map_err(|e| e.to_string())?;
    match version {
        ProtocolVersion::EcV1 => Ok(TestTokenSender::ecv1(recipient_id, root, key)),
        ProtocolVersion::EcV2 => TestTokenSender::ecv2(
            recipient_id,
            root,
            testkeys::intermediate_signing_key().map_err(|e| e.to_string())?,
            testkeys::KEY_EXPIRATION_MS,
            key,
        )
        .map_err(|e| e.to_string()),
    }
}

/// Writes `text` to a new file `path`, readable and writable by its owner
/// only when `private` (a key).
fn write_new(path: &Path, text: &str, private: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn keygen(dir: &Path) -> Result<(), String> {
    use base64::Engine;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let key = MerchantPrivateKey::from_secret_key(secret).map_err(|e| e.to_string())?;
    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let point = key.public_key().to_encoded_point(false);
    let public = base64::engine::general_purpose::STANDARD.encode(point.as_bytes());
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let private_path = dir.join("merchant_private_key.pem");
    let public_path = dir.join("merchant_public_key.b64");
    write_new(&private_path, pem.as_str(), true)?;
    write_new(&public_path, &format!("{public}\n"), false)?;
    println!("{}", private_path.display());
    println!("{}", public_path.display());
    Ok(())
}

fn test_keys(dir: &Path) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let key = testkeys::merchant_private_key().map_err(|e| e.to_string())?;
        let b64 = key.to_pkcs8_base64().map_err(|e| e.to_string())?;
        let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
        let roots = testkeys::root_keys_json().map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str, private: bool| {
            let path = dir.join(name);
            // Written afresh, with the mode from the start.
            let _ = std::fs::remove_file(&path);
            write_new(&path, text, private)
        };
        write(
            "merchant_private_key.b64",
            &format!("{}\n", b64.as_str()),
            true,
        )?;
        write("merchant_private_key.pem", pem.as_str(), true)?;
        write("root_keys.json", &format!("{roots}\n"), false)?;
        write(
            "recipient_id.txt",
            &format!("{}\n", testkeys::RECIPIENT_ID),
            false,
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let recipient = GooglePayRecipient::new(RecipientConfig {
        recipient_id: args.recipient_id.clone(),
        protocol_version: ProtocolVersion::EcV2,
        private_keys: vec![
            MerchantPrivateKey::from_file(&args.private_key).map_err(|e| e.to_string())?
        ],
        root_keys: RootSigningKeys::from_google_json(&read(&args.root_keys)?)
            .map_err(|e| e.to_string())?,
    })
    .map_err(|e| e.to_string())?;
    let text = read(&args.tokens)?;
    let tokens: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let now_ms = args.now_ms.unwrap_or_else(system_now_ms);
    // Returns (wall tokens/s, tokens per CPU-second of this thread). The
    // second is the per-core figure and does not depend on other load.
    let measure = |cold: bool| -> Result<(f64, f64), String> {
        let start = std::time::Instant::now();
        let cpu_start = thread_cpu_ns();
        let mut n = 0u64;
        for _ in 0..args.rounds {
            for t in &tokens {
                if cold {
                    recipient.clear_cache();
                }
                recipient.unseal(t, now_ms).map_err(|e| e.to_string())?;
                n += 1;
            }
        }
        let wall = n as f64 / start.elapsed().as_secs_f64();
        let cpu = match (cpu_start, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => n as f64 / ((b - a) as f64 / 1e9),
            _ => wall,
        };
        Ok((wall, cpu))
    };
    measure(false)?; // warm-up
    let cold = measure(true)?;
    let cached = measure(false)?;
    println!(
        "{}",
        json!({
            "implementation": crate::wallet::googlepay::IMPLEMENTATION,
            "tokens": tokens.len(),
            "rounds": args.rounds,
            "cold_tokens_per_s": cold.0.round(),
            "cached_tokens_per_s": cached.0.round(),
            "cold_tokens_per_cpu_s": cold.1.round(),
            "cached_tokens_per_cpu_s": cached.1.round(),
            "cached_cpu_us_per_token": (1e6 / cached.1 * 10.0).round() / 10.0,
        })
    );
    Ok(())
}

/// CPU time of the calling thread in ns, from Linux's schedstat (no unsafe
/// code needed); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
