//! TLS end to end, with certificates made at test time (rcgen): an
//! acquirer link over mutual TLS to the simulator, the API over HTTPS
//! with and without client certificates, and every refusal (a CA we do
//! not trust, a wrong name, an expired certificate, a missing or refused
//! client certificate, a bad file at start-up) told in words. Only
//! 127.0.0.1; every wait bounded.

mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acqswitch::card::Secret;
use acqswitch::config::Config;
use acqswitch::iso8583::Spec;
use acqswitch::load_api::{seal_request, ApiClient};
use acqswitch::net::{Pool, PoolConfig};
use acqswitch::sim::{SimConfig, SimHandle, Simulator};
use acqswitch::system::{self, Running};
use acqswitch::tls::{self, LinkTls, LinkTlsConfig, Peer, ServerTlsConfig};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use procs::{dpan_order, Serve, Sim, CARD_ORDER, MERCHANT, SECRET};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------- certificates

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A test CA that issues leaf certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Use {
    Server,
    Client,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: pem("CERTIFICATE", cert.der()),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names` (DNS names or IP addresses).
    fn issue(&self, names: &[&str], usage: Use, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![match usage {
            Use::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Use::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        } else {
            params.not_before = date_time_ymd(2024, 1, 1);
            params.not_after = date_time_ymd(2099, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            pem("CERTIFICATE", cert.der()),
            pem("PRIVATE KEY", &key.serialize_der()),
        )
    }
}

/// A folder of PEM files.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn dir(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `NAME.pem` and `NAME.key`.
    fn pair(&self, name: &str, (cert, key): (String, String)) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.pem"), &cert),
            self.write(&format!("{name}.key"), &key),
        )
    }
}

// ---------------------------------------------------------------- helpers

fn spec() -> Arc<Spec> {
    Arc::new(Spec::builtin("cb2a").unwrap())
}

/// The in-process simulator speaking TLS with `cert`/`key`, requiring a
/// client certificate signed by `client_ca` when given.
async fn tls_sim(cert: &Path, key: &Path, client_ca: Option<&Path>) -> SimHandle {
    let cfg = ServerTlsConfig {
        client_ca_file: client_ca.map(Path::to_path_buf),
        ..ServerTlsConfig::new(cert, key)
    };
    let server = tls::server_config(&cfg).unwrap();
    Simulator::start(SimConfig {
        tls: Some(Arc::new(server)),
        ..SimConfig::new(spec())
    })
    .await
    .unwrap()
}

/// A switch configuration (TOML) in `dir`: one cb2a acquirer at
/// `primary` with `pool_extra` at the end of its pool table, the test
/// merchant, `server_extra` in `[server]`, and a memory journal.
fn switch_config(dir: &Path, primary: &str, pool_extra: &str, server_extra: &str) -> Config {
    let sim = if primary == "simulator" {
        "[simulator]\ndialect = \"cb2a\""
    } else {
        ""
    };
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
threads = 2
{server_extra}

[journal]
backend = "memory"

{sim}

[[acquirers]]
name = "main"
dialect = "cb2a"
mapping = "cb2a"
[acquirers.pool]
primary = "{primary}"
links = 1
request_timeout = "2s"
connect_timeout = "1s"
{pool_extra}

[[merchants]]
id = "{MERCHANT}"
keys = [{{ version = 1, secret = "{SECRET}" }}]
[merchants.googlepay]
test_keys = true
[[merchants.contracts]]
acquirer = "main"
terminal_id = "ACQ00001"
acceptor_id = "MERCHANT0000001"
"#
    );
    let path = dir.join("acqswitch.toml");
    std::fs::write(&path, text).unwrap();
    Config::from_file(&path).unwrap()
}

async fn ready(r: &Running) {
    tokio::time::timeout(Duration::from_secs(10), r.wait_ready())
        .await
        .expect("every acquirer link ready");
}

fn sealed_order(reference: &str) -> Value {
    let mut body = dpan_order(reference, 1000);
    body["merchantId"] = json!(MERCHANT);
    body["interfaceVersion"] = json!("IR_WS_2.55");
    seal_request(body, 1, &Secret::new(SECRET))
}

/// One HTTPS POST to the API at `addr`, trusting `ca`, presenting
/// `client` (certificate and key files) if given. The error, if any, in
/// the words of `acqswitch::tls` when it is a TLS one.
async fn https_post(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let link = LinkTls::load(&LinkTlsConfig {
        ca_file: ca.to_owned(),
        cert_file: client.map(|c| c.0.to_owned()),
        key_file: client.map(|c| c.1.to_owned()),
        server_name: None,
    })
    .unwrap();
    let words = |e: &(dyn std::error::Error + 'static)| {
        // hyper wraps the I/O error that carries rustls's.
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return tls::describe_io(io, Peer::Client, None);
            }
            cur = err.source();
        }
        e.to_string()
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = link.server_name(&addr.to_string()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(link.config()))
        .connect(name, tcp)
        .await
        .map_err(|e| words(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| words(&e))?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        // Under TLS 1.3 the server refuses a client certificate after
        // the client's handshake is done: the connection's task has the
        // alert, the request only "canceled".
        Err(e) => {
            return Err(match conn.await {
                Ok(Err(c)) => words(&c),
                _ => words(&e),
            })
        }
    };
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| words(&e))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
    ))
}

/// The first line of a process's output containing `needle` (10 s at most).
async fn line_with(out: &procs::Output, needle: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = out.lines().into_iter().find(|l| l.contains(needle)) {
            return l;
        }
        assert!(Instant::now() < until, "no {needle:?} in {:?}", out.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pool of one link to `sim` with `tls`; the reason its link failed,
/// once it did (the link must never become ready).
async fn refusal(addr: SocketAddr, tls: LinkTlsConfig) -> String {
    let mut cfg = PoolConfig::new(addr.to_string());
    cfg.links = 1;
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.tls = Some(tls);
    let pool = Pool::start(cfg, spec()).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let why = loop {
        if let Some(why) = pool.last_error() {
            break why;
        }
        assert!(Instant::now() < until, "no failure reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(pool.ready_links(), 0, "{why}");
    pool.shutdown().await;
    why
}

// ---------------------------------------------------------------- tests

/// The acquirer requires a client certificate; the switch presents one,
/// checks the acquirer's against its CA and a configured name (the
/// endpoint is an IP address, the certificate names acq.test), with
/// paths relative to the configuration file; two shards share the
/// material; a cardOrder is approved end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_order_over_mutual_tls_to_the_simulator() {
    let files = Files::new();
    let acq_ca = Ca::new("acquirer CA");
    let switch_ca = Ca::new("switch CA");
    files.write("acquirer-ca.pem", &acq_ca.pem);
    let switch_ca_file = files.write("switch-ca.pem", &switch_ca.pem);
    let (sim_cert, sim_key) = files.pair("acq", acq_ca.issue(&["acq.test"], Use::Server, false));
    files.pair(
        "switch",
        switch_ca.issue(&["switch.test"], Use::Client, false),
    );
    let sim = tls_sim(&sim_cert, &sim_key, Some(&switch_ca_file)).await;

    let cfg = switch_config(
        files.dir(),
        &sim.addr().to_string(),
        r#"[acquirers.pool.tls]
ca_file = "acquirer-ca.pem"
cert_file = "switch.pem"
key_file = "switch.key"
server_name = "acq.test""#,
        "",
    );
    let r = system::start(cfg).await.unwrap();
    ready(&r).await;
    let mut api = ApiClient::connect(r.addr()).await.unwrap();
    let (status, v) = api
        .post_json(CARD_ORDER, &sealed_order("TLSLINK1"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["responseCode"], "00", "{v}");
    assert_eq!(sim.ledger().len(), 1);
    r.shutdown().await;
    sim.shutdown().await;
}

/// HTTPS on the API: a sealed cardOrder approved; with client_ca_file a
/// client without a certificate, or with one from another CA, is refused
/// at the handshake, and one with a certificate from that CA is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_https_with_and_without_client_certificates() {
    let files = Files::new();
    let api_ca = Ca::new("API CA");
    let gateways_ca = Ca::new("gateways CA");
    let other_ca = Ca::new("someone else's CA");
    let api_ca_file = files.write("api-ca.pem", &api_ca.pem);
    files.write("gateways-ca.pem", &gateways_ca.pem);
    files.pair("api", api_ca.issue(&["127.0.0.1"], Use::Server, false));
    let gw = files.pair("gw", gateways_ca.issue(&["gw.test"], Use::Client, false));
    let stranger = files.pair("stranger", other_ca.issue(&["gw.test"], Use::Client, false));
    let gw = (gw.0.as_path(), gw.1.as_path());
    let stranger = (stranger.0.as_path(), stranger.1.as_path());

    // Server authentication only.
    let cfg = switch_config(
        files.dir(),
        "simulator",
        "",
        "[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"api.key\"",
    );
    let r = system::start(cfg).await.unwrap();
    assert_eq!(r.url(), format!("https://{}", r.addr()));
    ready(&r).await;
    let (status, v) = https_post(
        r.addr(),
        &api_ca_file,
        None,
        CARD_ORDER,
        &sealed_order("TLSAPI1"),
    )
    .await
    .unwrap();
    assert_eq!((status, &v["responseCode"]), (200, &json!("00")), "{v}");
    // Plain HTTP to the HTTPS port gets no answer.
    let mut plain = ApiClient::connect(r.addr()).await.unwrap();
    assert!(plain.get_json("/healthz").await.is_err());
    r.shutdown().await;

    // Client certificates required.
    let cfg = switch_config(
        files.dir(),
        "simulator",
        "",
        "[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"api.key\"\nclient_ca_file = \"gateways-ca.pem\"",
    );
    let r = system::start(cfg).await.unwrap();
    ready(&r).await;
    let none = https_post(
        r.addr(),
        &api_ca_file,
        None,
        CARD_ORDER,
        &sealed_order("TLSAPI2"),
    )
    .await
    .unwrap_err();
    assert!(none.contains("certificate_required"), "{none}");
    let wrong = https_post(
        r.addr(),
        &api_ca_file,
        Some(stranger),
        CARD_ORDER,
        &sealed_order("TLSAPI3"),
    )
    .await
    .unwrap_err();
    assert!(wrong.contains("unknown_ca"), "{wrong}");
    let (status, v) = https_post(
        r.addr(),
        &api_ca_file,
        Some(gw),
        CARD_ORDER,
        &sealed_order("TLSAPI4"),
    )
    .await
    .unwrap();
    assert_eq!((status, &v["responseCode"]), (200, &json!("00")), "{v}");
    // Only the served order reached the acquirer.
    assert_eq!(r.simulator().unwrap().ledger().len(), 1);
    r.shutdown().await;
}

/// Each way a handshake with the acquirer can be refused: the link never
/// becomes ready, and its last error says which and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_acquirer_certificates_are_named_in_words() {
    let files = Files::new();
    let ca = Ca::new("acquirer CA");
    let other = Ca::new("someone else's CA");
    let switch_ca = Ca::new("switch CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let switch_ca_file = files.write("switch-ca.pem", &switch_ca.pem);
    let unknown = files.pair("unknown", other.issue(&["127.0.0.1"], Use::Server, false));
    let named = files.pair("named", ca.issue(&["acq.test"], Use::Server, false));
    let expired = files.pair("expired", ca.issue(&["127.0.0.1"], Use::Server, true));
    let good = files.pair("good", ca.issue(&["127.0.0.1"], Use::Server, false));
    let stranger = files.pair(
        "stranger",
        other.issue(&["switch.test"], Use::Client, false),
    );

    let sims = [
        tls_sim(&unknown.0, &unknown.1, None).await,
        tls_sim(&named.0, &named.1, None).await,
        tls_sim(&expired.0, &expired.1, None).await,
        tls_sim(&good.0, &good.1, Some(&switch_ca_file)).await,
    ];
    let plain = Simulator::start(SimConfig::new(spec())).await.unwrap();
    let trust = |cert: Option<&(PathBuf, PathBuf)>| LinkTlsConfig {
        ca_file: ca_file.clone(),
        cert_file: cert.map(|c| c.0.clone()),
        key_file: cert.map(|c| c.1.clone()),
        server_name: None,
    };
    let [unknown_issuer, wrong_name, expired, no_client_cert, refused_client_cert, not_tls] =
        futures::join!(
            refusal(sims[0].addr(), trust(None)),
            refusal(sims[1].addr(), trust(None)),
            refusal(sims[2].addr(), trust(None)),
            refusal(sims[3].addr(), trust(None)),
            refusal(sims[3].addr(), trust(Some(&stranger))),
            refusal(plain.addr(), trust(None)),
        )
        .into();
    let at = |s: &SimHandle| format!("TLS to {}: ", s.addr());
    let expect = |why: &str, sim: &SimHandle, words: &str| {
        assert!(why.contains(&at(sim)), "{why}");
        assert!(why.contains(words), "{why}");
    };
    expect(
        &unknown_issuer,
        &sims[0],
        "the acquirer's certificate is not signed by a CA we trust",
    );
    expect(
        &wrong_name,
        &sims[1],
        "the acquirer's certificate is not valid for name 127.0.0.1 (it names acq.test)",
    );
    expect(
        &expired,
        &sims[2],
        "the acquirer's certificate has expired (not valid after 2021-01-01",
    );
    expect(
        &no_client_cert,
        &sims[3],
        "the acquirer wants a client certificate and got none",
    );
    expect(
        &refused_client_cert,
        &sims[3],
        "the acquirer refused our client certificate (alert unknown_ca)",
    );
    expect(&not_tls, &plain, "no handshake within the connect timeout");
    // None of these reached the acquirer's rules.
    for s in &sims {
        assert_eq!(s.counts().received, 0);
    }
    for s in sims {
        s.shutdown().await;
    }
    plain.shutdown().await;
}

/// A primary that refuses the handshake is passed over like one that
/// refuses the connection: the link comes up on the secondary, checked
/// against the secondary's own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_primary_fails_over_to_the_secondary() {
    let files = Files::new();
    let ca = Ca::new("acquirer CA");
    let other = Ca::new("someone else's CA");
    let ca_file = files.write("ca.pem", &ca.pem);
    let bad = files.pair("bad", other.issue(&["127.0.0.1"], Use::Server, false));
    let good = files.pair("good", ca.issue(&["127.0.0.1"], Use::Server, false));
    let primary = tls_sim(&bad.0, &bad.1, None).await;
    let secondary = tls_sim(&good.0, &good.1, None).await;
    let mut cfg = PoolConfig::new(primary.addr().to_string());
    cfg.secondary = Some(secondary.addr().to_string());
    cfg.links = 1;
    cfg.failback_interval = None;
    cfg.tls = Some(LinkTlsConfig {
        ca_file,
        cert_file: None,
        key_file: None,
        server_name: None,
    });
    let pool = Pool::start(cfg, spec()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), pool.wait_ready(1))
        .await
        .expect("ready on the secondary");
    assert!(pool.links()[0].on_secondary());
    pool.shutdown().await;
    primary.shutdown().await;
    secondary.shutdown().await;
}

/// The same refusals as operators see them: `serve`'s log names the
/// endpoint and the reason for a link (here, a wrong name), and the
/// client address and the reason for an API client refused at the
/// handshake. The simulator process runs with its --tls-* flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_refused_handshakes_in_words() {
    let files = Files::new();
    let ca = Ca::new("acquirer CA");
    let switch_ca = Ca::new("switch CA");
    files.write("ca.pem", &ca.pem);
    let switch_ca_file = files.write("switch-ca.pem", &switch_ca.pem);
    let (cert, key) = files.pair("sim", ca.issue(&["acq.test"], Use::Server, false));
    files.pair(
        "switch",
        switch_ca.issue(&["switch.test"], Use::Client, false),
    );
    let api_ca_file = files.write("api-ca.pem", &ca.pem);
    files.pair("api", ca.issue(&["127.0.0.1"], Use::Server, false));
    let (c, k, cca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        switch_ca_file.to_str().unwrap(),
    );
    let sim = Sim::start(
        None,
        &["--tls-cert", c, "--tls-key", k, "--tls-client-ca", cca],
    );
    assert!(
        sim.out
            .wait_for(
                "simulator TLS on, client certificate required",
                Duration::from_secs(5)
            )
            .is_some(),
        "{:?}",
        sim.out.lines()
    );
    let config = procs::write_config(
        files.dir(),
        sim.addr,
        "[acquirers.pool.tls]\nca_file = \"ca.pem\"\ncert_file = \"switch.pem\"\nkey_file = \"switch.key\"\nserver_name = \"acq.example\"",
    );
    // The API over TLS with client certificates, in the same process.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "threads = 2\n",
        "threads = 2\n[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"api.key\"\nclient_ca_file = \"switch-ca.pem\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let serve = Serve::start(&config, &[]);
    let link = line_with(&serve.out, "link down, reconnecting").await;
    let words = format!(
        "TLS to {}: the acquirer's certificate is not valid for name acq.example (it names acq.test)",
        sim.addr
    );
    assert!(link.contains(&words), "{link}");

    // An API client without a certificate: refused, and logged.
    let err = https_post(serve.addr, &api_ca_file, None, "/healthz", &json!({}))
        .await
        .unwrap_err();
    assert!(err.contains("certificate_required"), "{err}");
    let refused = line_with(&serve.out, "TLS handshake refused").await;
    assert!(
        refused.contains("the client presented no certificate") && refused.contains("127.0.0.1:"),
        "{refused}"
    );
    // Nothing secret in the log.
    let key_text = std::fs::read_to_string(files.dir().join("switch.key")).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(!serve.out.lines().iter().any(|l| l.contains(key_line)));
}

/// A file that cannot be used stops the start, naming the key, the file
/// and the problem; so does the simulator's command line.
#[tokio::test]
async fn bad_files_stop_the_start_with_their_name() {
    let files = Files::new();
    let ca = Ca::new("CA");
    files.write("ca.pem", &ca.pem);
    files.write("empty.pem", "");
    files.pair("api", ca.issue(&["127.0.0.1"], Use::Server, false));
    let (_, other_key) = files.pair("other", ca.issue(&["127.0.0.1"], Use::Server, false));
    let start_error = |pool: &str, server: &str| {
        let cfg = switch_config(files.dir(), "127.0.0.1:9", pool, server);
        async move {
            match system::start(cfg).await {
                Ok(_) => panic!("started"),
                Err(e) => e.to_string(),
            }
        }
    };
    let dir = files.dir().display().to_string();

    let e = start_error("[acquirers.pool.tls]\nca_file = \"missing.pem\"", "").await;
    assert!(
        e.starts_with(&format!(
            "acquirer main: tls ca_file {dir}/missing.pem: cannot read"
        )),
        "{e}"
    );
    let e = start_error("[acquirers.pool.tls]\nca_file = \"empty.pem\"", "").await;
    assert_eq!(
        e,
        format!("acquirer main: tls ca_file {dir}/empty.pem: no certificate in it (expected -----BEGIN CERTIFICATE-----)")
    );
    let e = start_error(
        "[acquirers.pool.tls]\nca_file = \"ca.pem\"\ncert_file = \"api.pem\"",
        "",
    )
    .await;
    assert!(e.contains("cert_file and key_file go together"), "{e}");
    let e = start_error(
        "",
        "[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"empty.pem\"",
    )
    .await;
    assert!(
        e.starts_with(&format!(
            "server: tls key_file {dir}/empty.pem: no private key in it"
        )),
        "{e}"
    );
    let e = start_error(
        "",
        "[server.tls]\ncert_file = \"api.pem\"\nkey_file = \"other.key\"",
    )
    .await;
    assert_eq!(
        e,
        format!("server: tls key_file {dir}/other.key: does not match the certificate")
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acqswitch"))
        .args(["sim", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(files.dir().join("empty.pem"))
        .arg("--tls-key")
        .arg(&other_key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tls cert_file") && stderr.contains("empty.pem: no certificate in it"),
        "{stderr}"
    );
}
