//! The switch's configuration file (TOML), and the embedded default that
//! `acqswitch serve` and `acqswitch demo` use without one.
//!
//! Worked, commented examples are in `examples/*.toml` (one acquirer; two
//! acquirers with failover and TLS; a merchant with its own Google Pay
//! keys); the test suite loads each, checks it and starts `serve` on it.
//! `acqswitch config check FILE` prints a file back with every default
//! filled in and every secret masked.
//!
//! Sections: `[server]` (listen address, shards, body limits, optional
//! `[server.tls]`), `[journal]`, `[store_and_forward]`, `[limits]`,
//! `[simulator]` (an in-process acquirer for demos), `[[acquirers]]` with
//! `[acquirers.pool]` ([`crate::net::PoolConfig`]: endpoints, `links` in
//! all, timeouts, `framing`, `backoff`, optional `tls`),
//! `[response_codes]` ([`crate::switch::ResponseCodeTable`]) and
//! `[[merchants]]` with their seal keys, `[merchants.googlepay]` and
//! `[[merchants.contracts]]` ([`crate::switch::Contract`]).
//!
//! TLS: `[server.tls]` (`cert_file`, `key_file`, optional
//! `client_ca_file` to require client certificates, `handshake_timeout`;
//! [`crate::tls::ServerTlsConfig`]) and `[acquirers.pool.tls]` (`ca_file`,
//! optional `cert_file` + `key_file` for mutual TLS, optional
//! `server_name`; [`crate::tls::LinkTlsConfig`]).
//!
//! Relative paths (journal, keys, certificates, dialect and mapping
//! files) are read from the configuration file's folder, once, at
//! start-up; a file that cannot be used stops the start with its key and
//! path. Secrets (seal secrets, the journal key, Google Pay private keys)
//! are given inline, in a file or in an environment variable, and are
//! never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::card::Secret;
use crate::net::{duration_serde, FramingConfig, PoolConfig};
use crate::switch::{Contract, ResponseCodeTable};
use crate::tls::ServerTlsConfig;

/// `pool.primary` value naming the in-process simulator.
pub const SIMULATOR: &str = "simulator";

/// The embedded default: demo merchant, Google Pay test keys, cb2a
/// acquirer on an in-process simulator.
pub const DEFAULT_TOML: &str = r#"
[server]
listen = "127.0.0.1:8080"
# One shard per core: each a single-threaded runtime with its share of the
# acquirer links (`links` counts an acquirer's links in all); one accept
# loop deals connections to the shards in turn (tokio's work-stealing runtime cost three times the
# CPU per cardOrder here).
threads = 0

[simulator]
dialect = "cb2a"

[[acquirers]]
name = "cb2a"
dialect = "cb2a"
mapping = "cb2a"
[acquirers.pool]
primary = "simulator"
links = 2
request_timeout = "2s"
max_in_flight_per_link = 4096

[[merchants]]
id = "011223344550000"
keys = [{ version = 1, secret = "demo-secret-011223344550000-v1" }]
[merchants.googlepay]
test_keys = true
[[merchants.contracts]]
acquirer = "cb2a"
terminal_id = "ACQ00001"
acceptor_id = "MERCHANT0000001"
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub journal: JournalConfig,
    #[serde(default)]
    pub store_and_forward: StoreAndForwardConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
    pub simulator: Option<SimulatorConfig>,
    pub acquirers: Vec<AcquirerConfig>,
    #[serde(default)]
    pub response_codes: ResponseCodeTable,
    pub merchants: Vec<MerchantConfig>,
    /// The folder relative paths are resolved against: the configuration
    /// file's own folder (the current folder for text or the embedded
    /// default).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// How reversals are sent until the acquirer acknowledges them.
///
/// ```toml
/// [store_and_forward]
/// max_in_flight = 8        # per acquirer: a long queue drains without a flood
/// retry_initial = "1s"     # after a failure; doubles up to retry_max
/// retry_max = "60s"
/// expiry = "24h"           # then given up, logged as an error and counted
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreAndForwardConfig {
    pub max_in_flight: usize,
    #[serde(with = "duration_serde")]
    pub retry_initial: Duration,
    #[serde(with = "duration_serde")]
    pub retry_max: Duration,
    #[serde(with = "duration_serde")]
    pub expiry: Duration,
}

impl Default for StoreAndForwardConfig {
    fn default() -> Self {
        StoreAndForwardConfig {
            max_in_flight: 8,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            expiry: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where the journal is kept and the key that seals its card data.
///
/// ```toml
/// [journal]
/// path = "data/journal.db"     # relative to this file's folder
/// key_file = "journal.key"     # or key_env = "ACQSWITCH_JOURNAL_KEY", or key = "<64 hex>"
/// ```
/// With no key given, `journal.key` next to the journal is used, and
/// created (readable by its owner only) when missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// `sqlite` (default), or `memory` (nothing survives the process:
    /// tests and demos only).
    pub backend: String,
    pub path: PathBuf,
    /// The 32-byte key, as 64 hex digits or base64.
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key.
    pub key_env: Option<String>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            backend: "sqlite".into(),
            path: PathBuf::from("acqswitch-data/journal.db"),
            key: None,
            key_file: None,
            key_env: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// A client must send its request headers within this.
    #[serde(with = "duration_serde")]
    pub header_read_timeout: Duration,
    /// ... and its body within this.
    #[serde(with = "duration_serde")]
    pub body_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
    /// Shards of `serve` (0: one per core): threads each with a
    /// single-threaded runtime and its own acquirer links.
    pub threads: usize,
    /// HTTPS, and optionally client certificates (`[server.tls]`).
    pub tls: Option<ServerTlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            body_limit: 64 * 1024,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            max_connections: 4096,
            threads: 0,
            tls: None,
        }
    }
}

/// The daily cut-off that captures transactions (and expires unvalidated
/// `VALIDATION` ones) whose capture day has come.
///
/// ```toml
/// [capture]
/// cut_off = "22:00"              # local time in time_zone
/// time_zone = "Europe/Paris"     # an IANA name; summer time followed
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    pub cut_off: String,
    pub time_zone: String,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            cut_off: "22:00".into(),
            time_zone: "Europe/Paris".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(with = "duration_serde")]
    pub duplicate_window: Duration,
    pub duplicate_capacity: usize,
    #[serde(with = "duration_serde")]
    pub vault_ttl: Duration,
    pub vault_capacity: usize,
    /// How long a decrypted Google Pay `messageId` is remembered, so the
    /// same token presented again is refused; at least the tokens' own
    /// lifetime (`messageExpiration`).
    #[serde(with = "duration_serde")]
    pub token_replay_window: Duration,
    pub token_replay_capacity: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            duplicate_window: Duration::from_secs(3600),
            duplicate_capacity: 1_000_000,
            vault_ttl: Duration::from_secs(900),
            vault_capacity: 100_000,
            token_replay_window: Duration::from_secs(7 * 24 * 3600),
            token_replay_capacity: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub dialect: String,
    #[serde(default = "loopback_any")]
    pub listen: String,
    #[serde(default)]
    pub framing: FramingConfig,
    /// Decoded requests kept for inspection (tests, demo); 0 under load:
    /// keeping one copies every field of every request.
    #[serde(default)]
    pub record: usize,
    /// Approved transactions kept in the simulator's ledger.
    #[serde(default = "default_ledger")]
    pub ledger_capacity: usize,
}

fn default_ledger() -> usize {
    10_000
}

fn loopback_any() -> String {
    "127.0.0.1:0".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquirerConfig {
    pub name: String,
    pub dialect: String,
    pub mapping: String,
    #[serde(default)]
    pub pool: PoolConfig,
}

/// Where a secret is given: in the configuration, in a file (resolved
/// against the configuration's folder) or in an environment variable;
/// or nowhere, or in more than one of them.
#[derive(Debug, Clone, Copy)]
pub enum SecretSource<'a> {
    Inline(&'a Secret),
    File(&'a Path),
    Env(&'a str),
    Nowhere,
    Several,
}

impl<'a> SecretSource<'a> {
    pub fn of(
        inline: Option<&'a Secret>,
        file: Option<&'a PathBuf>,
        env: Option<&'a String>,
    ) -> SecretSource<'a> {
        match (inline, file, env) {
            (Some(s), None, None) => SecretSource::Inline(s),
            (None, Some(f), None) => SecretSource::File(f),
            (None, None, Some(v)) => SecretSource::Env(v),
            (None, None, None) => SecretSource::Nowhere,
            _ => SecretSource::Several,
        }
    }
}

/// A merchant's seal key: its version and its secret, given inline
/// (`secret`), in a file (`secret_file`, relative to the configuration's
/// folder; one trailing newline ignored) or in an environment variable
/// (`secret_env`); exactly one of the three.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealKeyConfig {
    pub version: u32,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
}

impl SealKeyConfig {
    /// The secret, from wherever it is given. The error names the source,
    /// never the value.
    pub fn secret(&self, cfg: &Config) -> Result<Secret, String> {
        let source = SecretSource::of(
            self.secret.as_ref(),
            self.secret_file.as_ref(),
            self.secret_env.as_ref(),
        );
        match source {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File(f) => Secret::from_file(&cfg.resolve(f)),
            SecretSource::Env(var) => Secret::from_env(var),
            SecretSource::Nowhere | SecretSource::Several => Err(format!(
                "key version {}: give exactly one of secret, secret_file and secret_env",
                self.version
            )),
        }
        .and_then(|s| {
            if s.reveal().is_empty() {
                Err(format!("key version {}: the secret is empty", self.version))
            } else if s.reveal() == "****" {
                // What `config check` prints in a secret's place: a
                // printed configuration fed back must not run with it.
                Err(format!(
                    "key version {}: \"****\" is the mask `config check` prints, not a secret",
                    self.version
                ))
            } else {
                Ok(s)
            }
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: String,
    pub keys: Vec<SealKeyConfig>,
    /// `HMAC-SHA-256` (default) or `SHA-256`.
    pub seal_algorithm: Option<String>,
    pub googlepay: Option<GooglePayConfig>,
    #[serde(default)]
    pub contracts: Vec<Contract>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GooglePayConfig {
    /// `merchant:<id>` as registered with Google.
    pub recipient_id: Option<String>,
    /// `ECv2` (default) or `ECv1`.
    pub protocol_version: Option<String>,
    /// Base64 PKCS#8 DER or PEM, several during a rotation.
    pub private_keys: Vec<Secret>,
    pub private_key_files: Vec<PathBuf>,
    /// Google's root signing keys JSON, inline or as a file.
    pub root_keys: Option<String>,
    pub root_keys_file: Option<PathBuf>,
    /// Use the crate's public test keys (demo and tests only).
    pub test_keys: bool,
}

/// Why a configuration cannot be used. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("configuration: {0}")]
    Syntax(String),
    #[error("{0}")]
    Invalid(String),
}

/// serde's "invalid type: string \"…\", expected u32" quotes the value it
/// got, which may be a secret: keep the kind and what was expected.
fn without_value(message: &str) -> String {
    for kind in ["invalid type", "invalid value"] {
        if let Some(rest) = message.strip_prefix(kind) {
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            return format!("{kind} (value not shown){expected}");
        }
    }
    message.to_owned()
}

impl Config {
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        // toml's own message quotes the offending line, which may hold a
        // secret: say where and what, never the line itself.
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
                format!("line {line}, column {column}: ")
            });
            ConfigError::Syntax(format!("{at}{}", without_value(e.message())))
        })
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut cfg = Config::from_toml_str(&text)?;
        cfg.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(cfg)
    }

    /// `p` as written in the configuration: relative to its folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.base_dir.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// A dialect or mapping as written: a built-in name as it is, a file
    /// (a path, or a name ending in `.toml`) relative to this file's folder.
    pub fn resolve_name(&self, name_or_path: &str) -> String {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            self.resolve(Path::new(name_or_path)).display().to_string()
        } else {
            name_or_path.to_owned()
        }
    }

    /// The embedded default.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_toml_str(DEFAULT_TOML)
    }

    /// The first merchant of the embedded default: (id, key version, secret).
    pub fn demo_merchant(&self) -> Option<(&str, u32, &str)> {
        let m = self.merchants.first()?;
        let k = m.keys.first()?;
        Some((&m.id, k.version, k.secret.as_ref()?.reveal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_secret_fed_back_is_refused() {
        let cfg = Config::embedded_default().unwrap();
        let key = SealKeyConfig {
            version: 3,
            secret: Some(Secret::new("****")),
            secret_file: None,
            secret_env: None,
        };
        let e = key.secret(&cfg).unwrap_err();
        assert!(e.contains("key version 3") && e.contains("mask"), "{e}");
    }

    #[test]
    fn a_seal_key_is_given_in_exactly_one_place() {
        let cfg = Config::embedded_default().unwrap();
        let key = |secret: Option<&str>, env: Option<&str>| SealKeyConfig {
            version: 2,
            secret: secret.map(Secret::new),
            secret_file: None,
            secret_env: env.map(String::from),
        };
        assert_eq!(
            key(Some("s3cret"), None).secret(&cfg).unwrap().reveal(),
            "s3cret"
        );
        for k in [key(None, None), key(Some("s3cret"), Some("VAR"))] {
            let e = k.secret(&cfg).unwrap_err();
            assert!(e.contains("exactly one of") && !e.contains("s3cret"), "{e}");
        }
        let var = "ACQSWITCH_TEST_SEAL_SECRET_UNSET";
        let e = key(None, Some(var)).secret(&cfg).unwrap_err();
        assert!(e.contains(var), "{e}");
    }

    #[test]
    fn embedded_default_parses() {
        let c = Config::from_toml_str(DEFAULT_TOML).unwrap();
        assert_eq!(c.acquirers[0].pool.primary, SIMULATOR);
        assert_eq!(c.server.body_limit, 65536);
        assert!(c.merchants[0].googlepay.as_ref().unwrap().test_keys);
        assert!(!format!("{c:?}").contains("demo-secret"));
    }

    /// toml quotes the line it stopped at; a secret on that line must not
    /// reach the message (it goes to stderr and log collectors).
    #[test]
    fn syntax_errors_never_quote_the_line() {
        let text = DEFAULT_TOML.replace(
            "secret = \"demo-secret-011223344550000-v1\"",
            "secret = \"s3cr3t-on-a-bad-line, oops = ",
        );
        let e = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("line "), "{e}");
        let typed = DEFAULT_TOML.replace("version = 1, secret", "version = \"s3cr3t\", secret");
        let e = Config::from_toml_str(&typed).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t") && !e.contains("demo-secret"), "{e}");
    }

    #[test]
    fn tls_tables() {
        let text = DEFAULT_TOML
            .replace(
                "threads = 0\n",
                "threads = 0\n[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"api.key\"\n",
            )
            .replace(
                "max_in_flight_per_link = 4096\n",
                "max_in_flight_per_link = 4096\n[acquirers.pool.tls]\nca_file = \"ca.pem\"\n",
            );
        let c = Config::from_toml_str(&text).unwrap();
        let server = c.server.tls.as_ref().unwrap();
        assert_eq!(server.handshake_timeout, Duration::from_secs(5));
        assert_eq!(server.client_ca_file, None);
        let link = c.acquirers[0].pool.tls.as_ref().unwrap();
        assert_eq!(link.ca_file, PathBuf::from("ca.pem"));
        assert_eq!((&link.cert_file, &link.server_name), (&None, &None));
        // A misspelt key is refused, not ignored (a silently unverified link).
        let typo = text.replace(
            "ca_file = \"ca.pem\"",
            "ca_file = \"ca.pem\"\nverify = false",
        );
        let e = Config::from_toml_str(&typo).unwrap_err().to_string();
        assert!(e.contains("verify"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Config::from_toml_str(&format!("{DEFAULT_TOML}\ncolour = 1\n")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
