//! TLS material and its configuration: the acquirer links' client side
//! ([`LinkTls`]), the API's and the simulator's server side
//! ([`server_config`]), and handshake failures told in words
//! ([`describe`]).
//!
//! The contract:
//! - files are read once, when the configuration is loaded (at start-up):
//!   every shard's pool and every connection share the one
//!   [`rustls::ClientConfig`] or [`rustls::ServerConfig`] built here;
//! - a file that cannot be used is refused with its configuration key,
//!   its path and the problem (`tls ca_file certs/ca.pem: no certificate
//!   in it`);
//! - no error, log line or `Debug` output carries key material: a key
//!   file's bytes are wiped once parsed, and its parse errors are told in
//!   fixed words, never with the text found in the file;
//! - the crypto provider is AWS-LC with the `aws-lc` feature (the
//!   default) and ring without it; no process-wide default is installed,
//!   each configuration names its provider.
//!
//! | rustls says                          | [`describe`] says (link side)                                     |
//! |--------------------------------------|-------------------------------------------------------------------|
//! | `InvalidCertificate(UnknownIssuer)`  | the acquirer's certificate is not signed by a CA we trust ...     |
//! | `InvalidCertificate(NotValidForName)`| the acquirer's certificate is not valid for name N (it names ...) |
//! | `InvalidCertificate(Expired)`        | the acquirer's certificate has expired (not after DATE)           |
//! | `AlertReceived(CertificateRequired)` | the acquirer wants a client certificate ...                       |
//! | `AlertReceived(UnknownCA)` and kin   | the acquirer refused our client certificate (alert ...)           |
//! | `NoCertificatesPresented`            | the client presented no certificate                               |

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, RootCertStore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::net::duration_serde;

/// TLS on the links to one acquirer (`[acquirers.pool.tls]`).
///
/// ```toml
/// ca_file = "acquirer-ca.pem"        # the CA(s) the acquirer's certificate must chain to
/// cert_file = "switch.pem"           # optional: our client certificate (mutual TLS) ...
/// key_file = "switch.key"            # ... and its key, both or neither
/// server_name = "acq.example"        # optional: default the host of each endpoint
/// ```
/// Paths are relative to the configuration file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkTlsConfig {
    pub ca_file: PathBuf,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the acquirer's certificate must carry, on the primary and
    /// the secondary endpoint alike; absent, each endpoint's own host.
    pub server_name: Option<String>,
}

impl LinkTlsConfig {
    /// The same with every path passed through `resolve` (the
    /// configuration's folder: `Config::resolve`).
    pub fn resolved(&self, resolve: impl Fn(&Path) -> PathBuf) -> LinkTlsConfig {
        LinkTlsConfig {
            ca_file: resolve(&self.ca_file),
            cert_file: self.cert_file.as_deref().map(&resolve),
            key_file: self.key_file.as_deref().map(&resolve),
            server_name: self.server_name.clone(),
        }
    }
}

/// TLS on a listener: the API (`[server.tls]`) or the simulator.
///
/// ```toml
/// cert_file = "api.pem"              # our certificate chain, leaf first
/// key_file = "api.key"
/// client_ca_file = "gateways-ca.pem" # optional: require a client certificate signed by it
/// handshake_timeout = "5s"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    /// A client must finish its handshake within this.
    #[serde(default = "default_handshake_timeout", with = "duration_serde")]
    pub handshake_timeout: Duration,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}

impl ServerTlsConfig {
    /// Certificate and key, no client authentication.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        ServerTlsConfig {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            handshake_timeout: default_handshake_timeout(),
        }
    }

    /// The same with every path passed through `resolve`.
    pub fn resolved(&self, resolve: impl Fn(&Path) -> PathBuf) -> ServerTlsConfig {
        ServerTlsConfig {
            cert_file: resolve(&self.cert_file),
            key_file: resolve(&self.key_file),
            client_ca_file: self.client_ca_file.as_deref().map(&resolve),
            handshake_timeout: self.handshake_timeout,
        }
    }
}

/// TLS material that cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file named in the configuration: which key, which path, what is wrong.
    #[error("tls {key} {}: {problem}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("tls: {0}")]
    Config(String),
}

/// The crypto provider of every TLS configuration built here.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc")]
    let p = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc"))]
    let p = rustls::crypto::ring::default_provider();
    Arc::new(p)
}

/// The client side of the links to one acquirer, loaded once: whom to
/// trust, what to present, which name to check. Cheap to clone.
#[derive(Clone)]
pub struct LinkTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for LinkTls {
    // rustls's own Debug of a configuration lists its internals: the name
    // and whether a client certificate is presented say enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkTls")
            .field("server_name", &self.server_name)
            .field(
                "client_certificate",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish()
    }
}

impl PartialEq for LinkTls {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.config, &o.config) && self.server_name == o.server_name
    }
}

impl LinkTls {
    /// Reads the files of `cfg` (paths as given: resolve them first) and
    /// builds the client configuration.
    pub fn load(cfg: &LinkTlsConfig) -> Result<LinkTls, TlsError> {
        let server_name = cfg
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_owned()).map_err(|_| {
                    TlsError::Config(format!(
                        "server_name {n:?} is neither a DNS name nor an IP address"
                    ))
                })
            })
            .transpose()?;
        let roots = root_store("ca_file", &cfg.ca_file)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&cfg.cert_file, &cfg.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certificates("cert_file", cert)?;
                let key_der = private_key(key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| pair_error(cert, key, &e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file go together (a client certificate needs its key)"
                        .into(),
                ))
            }
        };
        Ok(LinkTls::new(Arc::new(config), server_name))
    }

    /// From a configuration built elsewhere (tests); `server_name`
    /// overrides the endpoints' hosts.
    pub fn new(
        config: Arc<rustls::ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        LinkTls {
            config,
            server_name,
        }
    }

    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// The name to check on `endpoint` (`host:port`): the configured
    /// `server_name`, or the endpoint's host (a DNS name or an IP address).
    pub fn server_name(&self, endpoint: &str) -> Result<ServerName<'static>, String> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        let host = endpoint_host(endpoint);
        ServerName::try_from(host.to_owned()).map_err(|_| {
            format!("{host:?} (the host of {endpoint}) is neither a DNS name nor an IP address: set tls.server_name")
        })
    }
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn endpoint_host(endpoint: &str) -> &str {
    let host = match endpoint.rsplit_once(':') {
        // A bare IPv6 address has colons but no port: only a bracketed
        // one, or a host without colons, is followed by one.
        Some((h, port))
            if !h.is_empty()
                && (h.starts_with('[') || !h.contains(':'))
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            h
        }
        _ => endpoint,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The server side of a listener, loaded once. Set ALPN on the result as
/// the protocol needs (the API: `http/1.1`).
pub fn server_config(cfg: &ServerTlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certificates("cert_file", &cfg.cert_file)?;
    let key = private_key(&cfg.key_file)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &cfg.client_ca_file {
        Some(ca) => {
            let roots = root_store("client_ca_file", ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(format!("client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| pair_error(&cfg.cert_file, &cfg.key_file, &e))
}

fn read(key: &'static str, path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| TlsError::File {
            key,
            path: path.to_owned(),
            problem: format!("cannot read: {e}"),
        })
}

/// Every certificate of a PEM file, in order; at least one.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let bad = |problem: String| TlsError::File {
        key,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM file ({})", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The trust anchors of a PEM file; every certificate in it must be usable.
fn root_store(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(key, path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::File {
            key,
            path: path.to_owned(),
            problem: format!("certificate {} is not usable as a CA: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1). The
/// file's bytes are wiped once parsed; no error quotes them.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::File {
        key: "key_file",
        path: path.to_owned(),
        problem: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)"
                    .into()
            }
            e => format!("not a PEM file ({})", pem_problem(&e)),
        },
    })
}

/// A PEM parse error in fixed words: the library's own message may quote
/// a line of the file, and a key file's lines are secret.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a section has no END line",
        E::IllegalSectionStart { .. } => "a malformed BEGIN line",
        E::Base64Decode(_) => "bad base64 in a section",
        E::Io(_) => "read error",
        E::NoItemsFound => "nothing in it",
        _ => "unreadable",
    }
}

/// A certificate and key refused together (most often: they do not match).
fn pair_error(cert: &Path, key: &Path, e: &rustls::Error) -> TlsError {
    let problem = match e {
        rustls::Error::InconsistentKeys(_) => "does not match the certificate".to_owned(),
        e => format!("refused with its certificate {}: {e}", cert.display()),
    };
    TlsError::File {
        key: "key_file",
        path: key.to_owned(),
        problem,
    }
}

/// Who is at the other end of a handshake, for the words of [`describe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// We are the client (a link).
    Acquirer,
    /// We are the server (the API, the simulator).
    Client,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Acquirer => "the acquirer",
            Peer::Client => "the client",
        }
    }
}

/// The rustls error inside an I/O error from a TLS stream, if any.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A failed handshake (or a TLS stream that failed later) in words a user
/// can act on. `expected` is the name we checked, when we are the client.
pub fn describe_io(e: &io::Error, peer: Peer, expected: Option<&ServerName<'_>>) -> String {
    if let Some(tls) = rustls_error(e) {
        return describe(tls, peer, expected);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
            "{} closed the connection during the handshake (does it speak TLS{}?)",
            peer.name(),
            match peer {
                Peer::Acquirer => ", and does it want a client certificate",
                Peer::Client => "",
            }
        ),
        _ => e.to_string(),
    }
}

/// See [`describe_io`].
pub fn describe(e: &rustls::Error, peer: Peer, expected: Option<&ServerName<'_>>) -> String {
    let who = peer.name();
    let ours = match peer {
        Peer::Acquirer => "our client certificate",
        Peer::Client => "our certificate",
    };
    match e {
        rustls::Error::InvalidCertificate(c) => format!("{who}'s certificate {}", certificate(c, expected)),
        rustls::Error::NoCertificatesPresented => match peer {
            Peer::Client => "the client presented no certificate (client_ca_file requires one)".into(),
            Peer::Acquirer => "the acquirer presented no certificate".into(),
        },
        rustls::Error::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired => format!(
                "{who} wants a client certificate and got none (alert certificate_required){}",
                match peer {
                    Peer::Acquirer => ": set tls.cert_file and tls.key_file",
                    Peer::Client => "",
                }
            ),
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied => {
                format!("{who} refused {ours} (alert {})", alert(*a))
            }
            AlertDescription::HandshakeFailure => format!(
                "{who} refused the handshake (alert handshake_failure: no protocol or cipher in common, or a certificate it does not accept)"
            ),
            AlertDescription::ProtocolVersion => {
                format!("no TLS version in common with {who} (alert protocol_version)")
            }
            a => format!("{who} ended the handshake (alert {})", alert(*a)),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "{who} does not speak TLS, or the stream is corrupt ({e})"
        ),
        rustls::Error::PeerIncompatible(_) => {
            format!("no TLS version or cipher suite in common with {who} ({e})")
        }
        e => format!("TLS failed: {e}"),
    }
}

/// What is wrong with a certificate, after "the acquirer's certificate ".
fn certificate(c: &CertificateError, expected: Option<&ServerName<'_>>) -> String {
    let at = |t: &UnixTime| crate::civil::iso8601(t.as_secs());
    match c {
        CertificateError::UnknownIssuer => {
            "is not signed by a CA we trust (unknown issuer: check the CA file)".into()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "is not valid for name {} (it names {})",
            name(expected),
            if presented.is_empty() {
                "nothing".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::NotValidForName => match expected {
            Some(n) => format!("is not valid for name {}", name(n)),
            None => "is not valid for the name asked".into(),
        },
        CertificateError::ExpiredContext { time, not_after } => format!(
            "has expired (not valid after {}, now {})",
            at(not_after),
            at(time)
        ),
        CertificateError::Expired => "has expired".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "is not valid yet (not before {}, now {}: check the clocks)",
            at(not_before),
            at(time)
        ),
        CertificateError::NotValidYet => "is not valid yet (check the clocks)".into(),
        CertificateError::Revoked => "has been revoked".into(),
        CertificateError::BadSignature => "has a bad signature".into(),
        CertificateError::BadEncoding => "is malformed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "is not meant for this use (its extended key usage)".into()
        }
        CertificateError::UnhandledCriticalExtension => {
            "has a critical extension we do not support".into()
        }
        c => format!("is refused: {c}"),
    }
}

/// webpki lists the names a certificate presents in their `Debug` form
/// (`DnsName("acq.example")`, `IpAddress(10.0.0.1)`): the name itself.
fn presented_name(p: &str) -> &str {
    p.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            p.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(p)
}

fn name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        n => format!("{n:?}"),
    }
}

/// An alert's name as the RFC writes it (`unknown_ca`).
fn alert(a: AlertDescription) -> String {
    let camel = format!("{a:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    let mut prev_upper = true;
    for ch in camel.chars() {
        let upper = ch.is_ascii_uppercase();
        // "UnknownCA" -> "unknown_ca": a run of capitals is one word.
        if upper && !prev_upper {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
        prev_upper = upper;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_hosts() {
        assert_eq!(endpoint_host("127.0.0.1:5443"), "127.0.0.1");
        assert_eq!(endpoint_host("acq.example:5000"), "acq.example");
        assert_eq!(endpoint_host("[::1]:5000"), "::1");
        assert_eq!(endpoint_host("acq.example"), "acq.example");
        assert_eq!(endpoint_host("::1"), "::1");
    }

    /// Each endpoint is checked against its own host unless a name is
    /// configured: a secondary with its own certificate name works.
    #[test]
    fn server_names_per_endpoint() {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let config = Arc::new(config);
        let own = LinkTls::new(Arc::clone(&config), None);
        let dns = |n: &str| ServerName::try_from(n.to_owned()).unwrap();
        assert_eq!(
            own.server_name("acq1.example:5000"),
            Ok(dns("acq1.example"))
        );
        assert_eq!(
            own.server_name("acq2.example:5000"),
            Ok(dns("acq2.example"))
        );
        assert_eq!(own.server_name("127.0.0.1:5000"), Ok(dns("127.0.0.1")));
        assert!(own.server_name("bad name:5000").is_err());
        let fixed = LinkTls::new(config, Some(dns("acq.example")));
        assert_eq!(fixed.server_name("10.0.0.2:5000"), Ok(dns("acq.example")));
    }

    #[test]
    fn presented_names() {
        assert_eq!(presented_name("DnsName(\"acq.test\")"), "acq.test");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn alert_names() {
        assert_eq!(alert(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert(AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(alert(AlertDescription::BadCertificate), "bad_certificate");
    }

    #[test]
    fn certificate_errors_in_words() {
        let expected = ServerName::try_from("acq.example").unwrap();
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(
            describe(&e, Peer::Acquirer, Some(&expected)),
            "the acquirer's certificate is not valid for name acq.example"
        );
        let e = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_600_000_000)),
        });
        assert_eq!(
            describe(&e, Peer::Acquirer, None),
            "the acquirer's certificate has expired (not valid after 2020-09-13T12:26:40Z, now 2023-11-14T22:13:20Z)"
        );
        let e = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert_eq!(
            describe(&e, Peer::Acquirer, None),
            "the acquirer refused our client certificate (alert unknown_ca)"
        );
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        );
        assert_eq!(
            describe_io(&io, Peer::Client, None),
            "the client presented no certificate (client_ca_file requires one)"
        );
    }

    /// A key file that is not PEM is refused without quoting it.
    #[test]
    fn key_file_errors_never_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("bad.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\ns3cr3t-material!!\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = private_key(&key).unwrap_err().to_string();
        assert!(e.contains("key_file") && e.contains("bad.key"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = certificates("ca_file", &empty).unwrap_err().to_string();
        assert!(
            e.contains("tls ca_file") && e.contains("no certificate in it"),
            "{e}"
        );
        let e = certificates("ca_file", &dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem: cannot read"), "{e}");
    }
}
