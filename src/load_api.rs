//! Load through the gateway HTTP API (`acqswitch load --api URL`): sealed
//! `cardOrder` requests over keep-alive HTTP/1.1 connections (a bare
//! [`LoadConnection`] per request loop, so the load generator's own cost
//! stays small next to the switch's), measured with the same
//! [`LoadReport`] as the pool load run. [`ApiClient`] (hyper's client) is
//! the general client for tests and the demo.
//!
//! Every run is bounded by a request count and a wall-clock deadline, and
//! only ever connects to a loopback address.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::card::Secret;
use crate::front::PATH_CARD_ORDER;
use crate::load::{new_hist, ErrorBreakdown, LoadReport, Progress};
use crate::seal::{self, SealAlgorithm};
use zeroize::Zeroizing;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}: give the API as a URL, http://{0}")]
    NoScheme(String),
    #[error("{0}: the load tool talks to loopback addresses only (http://127.0.0.1:PORT)")]
    NotLoopback(String),
    #[error("{0}: not host:port")]
    BadAddress(String),
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(String),
    #[error("response is not JSON")]
    Json,
}

/// `http://127.0.0.1:8080` -> the socket address, loopback only.
pub fn parse_api_url(url: &str) -> Result<SocketAddr, ApiError> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.contains("://") {
            ApiError::NotLoopback(url.to_owned())
        } else {
            ApiError::NoScheme(url.to_owned())
        });
    };
    let hostport = rest.split('/').next().unwrap_or_default();
    hostport
        .to_socket_addrs()
        .map_err(|_| ApiError::BadAddress(url.to_owned()))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| ApiError::NotLoopback(url.to_owned()))
}

/// One keep-alive HTTP/1.1 connection to the API.
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl ApiClient {
    /// Connects to `addr` (loopback only).
    pub async fn connect(addr: SocketAddr) -> Result<ApiClient, ApiError> {
        if !addr.ip().is_loopback() {
            return Err(ApiError::NotLoopback(addr.to_string()));
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ApiError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(ApiClient {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends a request; returns the status and the body.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ApiError> {
        self.sender.ready().await?;
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| ApiError::Request(e.to_string()))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs a JSON value; returns the status and the JSON answer.
    pub async fn post_json(&mut self, path: &str, v: &Value) -> Result<(u16, Value), ApiError> {
        let body = serde_json::to_vec(v).map_err(|_| ApiError::Json)?;
        let (status, body) = self.call("POST", path, Bytes::from(body)).await?;
        let v = serde_json::from_slice(&body).map_err(|_| ApiError::Json)?;
        Ok((status, v))
    }

    pub async fn get_json(&mut self, path: &str) -> Result<(u16, Value), ApiError> {
        let (status, body) = self.call("GET", path, Bytes::new()).await?;
        let v = serde_json::from_slice(&body).map_err(|_| ApiError::Json)?;
        Ok((status, v))
    }
}

/// Largest answer head and body the load run accepts.
const MAX_ANSWER: usize = 1 << 20;

/// A bare HTTP/1.1 keep-alive connection for the load run: one write per
/// request (head and body together), answers read into one reused buffer
/// and their head parsed with `httparse`; no per-request task hand-off as
/// in hyper's client. Answers must carry `content-length` (the API's do).
pub struct LoadConnection {
    stream: TcpStream,
    head: Vec<u8>,
    out: Vec<u8>,
    inbuf: bytes::BytesMut,
}

impl LoadConnection {
    /// Connects to `addr` (loopback only); requests go to `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<LoadConnection, ApiError> {
        if !addr.ip().is_loopback() {
            return Err(ApiError::NotLoopback(addr.to_string()));
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ApiError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: "
        )
        .into_bytes();
        Ok(LoadConnection {
            stream,
            head,
            out: Vec::with_capacity(1024),
            inbuf: bytes::BytesMut::with_capacity(4096),
        })
    }

    /// POSTs `body`; the answer's status and body.
    pub async fn post(&mut self, body: &[u8]) -> Result<(u16, Bytes), ApiError> {
        use std::io::Write;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.out.clear();
        self.out.extend_from_slice(&self.head);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{}", body.len());
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
        self.stream
            .write_all(&self.out)
            .await
            .map_err(ApiError::Io)?;
        loop {
            if let Some((status, head_len, body_len)) = parse_answer_head(&self.inbuf)? {
                if self.inbuf.len() >= head_len + body_len {
                    let mut answer = self.inbuf.split_to(head_len + body_len);
                    let body = answer.split_off(head_len).freeze();
                    return Ok((status, body));
                }
            }
            if self.inbuf.len() > MAX_ANSWER {
                return Err(ApiError::Request("answer too large".into()));
            }
            self.inbuf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.inbuf)
                .await
                .map_err(ApiError::Io)?;
            if n == 0 {
                return Err(ApiError::Request("connection closed".into()));
            }
        }
    }
}

/// Status, head length and body length of a complete answer head in
/// `buf`; `None` while the head is incomplete.
fn parse_answer_head(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, ApiError> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    let bad = |what: &str| ApiError::Request(format!("answer: {what}"));
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad("bad head")),
    };
    let status = resp.code.ok_or_else(|| bad("no status"))?;
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .ok_or_else(|| bad("no content-length"))?;
    if length > MAX_ANSWER {
        return Err(bad("body too large"));
    }
    Ok(Some((status, head_len, length)))
}

/// Adds `keyVersion` and the `seal` (HMAC-SHA-256) to a request.
pub fn seal_request(v: Value, key_version: u32, secret: &Secret) -> Value {
    seal::sealed(v, key_version, secret, SealAlgorithm::HmacSha256)
}

/// Test DPAN and cryptogram sent by the load run (a CRYPTOGRAM_3DS card,
/// as `paymentDataProviderCheck` would have returned it).
pub const LOAD_DPAN: &str = "4895370012003478";
pub const LOAD_CRYPTOGRAM: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";

/// A sealed CRYPTOGRAM_3DS `cardOrder`.
pub fn card_order_request(
    merchant_id: &str,
    key_version: u32,
    secret: &Secret,
    reference: &str,
    amount: u64,
) -> Value {
    let mut v = card_order_fields(merchant_id, amount);
    v["transactionReference"] = json!(reference);
    seal_request(v, key_version, secret)
}

/// The fields of the load run's `cardOrder` but its reference and seal.
fn card_order_fields(merchant_id: &str, amount: u64) -> Value {
    json!({
        "merchantId": merchant_id,
        "interfaceVersion": "IR_WS_2.55",
        "amount": amount,
        "currencyCode": "978",
        "orderChannel": "INTERNET",
        "paymentMeanDataProvider": "GOOGLEPAY",
        "panEntryMode": "OEMPAY",
        "paymentToken": LOAD_DPAN,
        "cardExpiryDate": "203012",
        "authenticationResult": {
            "holderAuthentProgram": "GOOGLEPAY",
            "googlePay": {"eci": "05", "cavv": LOAD_CRYPTOGRAM}
        }
    })
}

const REFERENCE_KEY: &str = "transactionReference";

/// Sealed `cardOrder` bodies that differ only in `transactionReference`,
/// for the load run: the JSON and the seal string of everything else are
/// made once (the reference sorts last among the sealed fields, so each
/// request's seal string is that prefix and its reference), leaving one
/// HMAC and a few copies per request. Same bytes on the wire as
/// [`card_order_request`] up to field order.
pub struct CardOrderBodies {
    /// The JSON object without its closing brace, reference and seal.
    head: String,
    /// The seal string before the reference (it holds the DPAN).
    seal_head: Zeroizing<String>,
    secret: Secret,
    merchant_id: String,
    key_version: u32,
    amount: u64,
    /// No sealed field sorts after the reference (true for the fields above).
    reference_last: bool,
}

impl CardOrderBodies {
    pub fn new(merchant_id: &str, key_version: u32, secret: &Secret, amount: u64) -> Self {
        let mut v = card_order_fields(merchant_id, amount);
        v["keyVersion"] = json!(key_version);
        let reference_last = v
            .as_object()
            .is_some_and(|o| o.keys().all(|k| k.as_str() < REFERENCE_KEY));
        let mut head = v.to_string();
        head.pop();
        CardOrderBodies {
            head,
            seal_head: seal::seal_string(&v),
            secret: secret.clone(),
            merchant_id: merchant_id.to_owned(),
            key_version,
            amount,
            reference_last,
        }
    }

    /// The sealed body for `reference`. References of letters and digits
    /// (what the load run makes) take the fast path; anything else goes
    /// through [`card_order_request`].
    pub fn body(&self, reference: &str) -> Bytes {
        if !self.reference_last || !reference.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let v = card_order_request(
                &self.merchant_id,
                self.key_version,
                &self.secret,
                reference,
                self.amount,
            );
            return Bytes::from(v.to_string());
        }
        let mut sealed = Zeroizing::new(String::with_capacity(
            self.seal_head.len() + reference.len(),
        ));
        sealed.push_str(&self.seal_head);
        sealed.push_str(reference);
        let seal = seal::seal_of_string(&sealed, &self.secret, SealAlgorithm::HmacSha256);
        let mut body = String::with_capacity(self.head.len() + reference.len() + 120);
        body.push_str(&self.head);
        for part in [
            ",\"",
            REFERENCE_KEY,
            "\":\"",
            reference,
            "\",\"seal\":\"",
            &seal,
            "\"}",
        ] {
            body.push_str(part);
        }
        Bytes::from(body)
    }
}

/// The one field of an answer the load run reads.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(rename = "responseCode", borrow)]
    response_code: Option<std::borrow::Cow<'a, str>>,
}

/// The answer's `responseCode` (`None`: none, or not JSON).
fn response_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Answer<'_>>(body)
        .ok()
        .and_then(|a| a.response_code.map(|c| c.into_owned()))
}

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct ApiLoadConfig {
    pub addr: SocketAddr,
    pub requests: u64,
    /// Connections (one request in flight on each).
    pub concurrency: usize,
    /// Tasks sharing the connections (one per runtime worker thread).
    pub workers: usize,
    pub max_duration: Duration,
    pub merchant_id: String,
    pub key_version: u32,
    pub secret: Secret,
    pub amount: u64,
}

struct LoopResult {
    ok: u64,
    errors: ErrorBreakdown,
    hist: Histogram<u64>,
}

/// Runs the load; `responseCode` other than 00 counts as `declined`.
pub async fn run(
    cfg: &ApiLoadConfig,
    progress: Arc<Progress>,
) -> Result<(LoadReport, ErrorBreakdown), ApiError> {
    // Connect first so connection set-up is not measured.
    let mut clients = Vec::with_capacity(cfg.concurrency);
    for _ in 0..cfg.concurrency.max(1) {
        clients.push(LoadConnection::connect(cfg.addr, PATH_CARD_ORDER).await?);
    }
    // References unique across runs against the same server.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let issued = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(CardOrderBodies::new(
        &cfg.merchant_id,
        cfg.key_version,
        &cfg.secret,
        cfg.amount,
    ));
    let started = Instant::now();
    let deadline = started + cfg.max_duration;
    let workers = cfg.workers.clamp(1, clients.len());
    let mut per_worker: Vec<Vec<LoadConnection>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, c) in clients.into_iter().enumerate() {
        per_worker[i % workers].push(c);
    }
    let mut handles = Vec::new();
    for conns in per_worker {
        let cfg = cfg.clone();
        let issued = Arc::clone(&issued);
        let progress = Arc::clone(&progress);
        let bodies = Arc::clone(&bodies);
        handles.push(tokio::spawn(async move {
            let cfg = &cfg;
            let bodies = &*bodies;
            let issued = &*issued;
            let progress = &*progress;
            let mut set: FuturesUnordered<_> = conns
                .into_iter()
                .map(|mut client| async move {
                    let mut r = LoopResult {
                        ok: 0,
                        errors: ErrorBreakdown::default(),
                        hist: new_hist(),
                    };
                    loop {
                        if progress.stopped() {
                            break;
                        }
                        let n = issued.fetch_add(1, Ordering::Relaxed);
                        if n >= cfg.requests || Instant::now() >= deadline {
                            break;
                        }
                        let reference = format!("L{run_id}x{n}");
                        let body = bodies.body(&reference);
                        let t0 = Instant::now();
                        let result = client.post(&body).await;
                        let us = t0.elapsed().as_micros().max(1) as u64;
                        match result {
                            Ok((200, b)) => match response_code(&b).as_deref() {
                                Some("00") => {
                                    r.ok += 1;
                                    let _ = r.hist.record(us);
                                }
                                code => {
                                    r.errors.refused(code);
                                    progress.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            },
                            Ok(_) => {
                                r.errors.other += 1;
                                progress.errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                r.errors.disconnected += 1;
                                progress.errors.fetch_add(1, Ordering::Relaxed);
                                progress.done.fetch_add(1, Ordering::Relaxed);
                                // The connection is gone: this loop stops.
                                break;
                            }
                        }
                        progress.done.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                })
                .collect();
            let mut out = LoopResult {
                ok: 0,
                errors: ErrorBreakdown::default(),
                hist: new_hist(),
            };
            while let Some(r) = set.next().await {
                out.ok += r.ok;
                out.errors.add(&r.errors);
                let _ = out.hist.add(&r.hist);
            }
            out
        }));
    }
    let mut total = LoopResult {
        ok: 0,
        errors: ErrorBreakdown::default(),
        hist: new_hist(),
    };
    for h in handles {
        let r = h.await.map_err(|e| ApiError::Request(e.to_string()))?;
        total.ok += r.ok;
        total.errors.add(&r.errors);
        let _ = total.hist.add(&r.hist);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((
        LoadReport::new(total.ok, total.errors.total(), seconds, &total.hist),
        total.errors,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_loopback_only() {
        assert_eq!(parse_api_url("http://127.0.0.1:8080").unwrap().port(), 8080);
        assert!(parse_api_url("http://127.0.0.1:8080/x").is_ok());
        assert!(parse_api_url("https://127.0.0.1:8080").is_err());
        assert!(parse_api_url("http://10.0.0.1:8080").is_err());
    }

    #[test]
    fn requests_verify() {
        let secret = Secret::new("s");
        let v = card_order_request("m", 1, &secret, "r1", 1000);
        assert!(seal::verify(&v, &secret, SealAlgorithm::HmacSha256));
    }

    #[test]
    fn prepared_bodies_are_the_generic_requests() {
        let secret = Secret::new("s3cr3t");
        let bodies = CardOrderBodies::new("m01", 2, &secret, 1005);
        assert!(bodies.reference_last);
        // The fast path, and the fallback for a reference needing escapes.
        for reference in ["L123x0", "R9", "a \"quoted\" ref/1"] {
            let fast: Value = serde_json::from_slice(&bodies.body(reference)).unwrap();
            let generic = card_order_request("m01", 2, &secret, reference, 1005);
            assert_eq!(fast, generic, "{reference}");
            assert!(seal::verify(&fast, &secret, SealAlgorithm::HmacSha256));
        }
        let other = CardOrderBodies::new("m01", 2, &Secret::new("other"), 1005);
        let v: Value = serde_json::from_slice(&other.body("L1")).unwrap();
        assert!(!seal::verify(&v, &secret, SealAlgorithm::HmacSha256));
    }

    #[test]
    fn answer_heads() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\"}";
        assert_eq!(parse_answer_head(ok).unwrap(), Some((200, ok.len() - 5, 5)));
        assert_eq!(parse_answer_head(&ok[..20]).unwrap(), None);
        assert!(parse_answer_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(
            parse_answer_head(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n").is_err()
        );
        assert!(parse_answer_head(b"HTTP/1.1 2x0 OK\r\n\r\n").is_err());
    }

    #[test]
    fn answers_are_read_without_a_value_tree() {
        let code = |b: &[u8]| response_code(b);
        assert_eq!(
            code(br#"{"seal":"x","responseCode":"00","maskedPan":"4895##"}"#).as_deref(),
            Some("00")
        );
        assert_eq!(code(br#"{"responseCode":"05"}"#).as_deref(), Some("05"));
        assert_eq!(
            code(br#"{"responseCode":"\u0030\u0030x"}"#).as_deref(),
            Some("00x")
        );
        assert_eq!(
            code(br#"{"responseCode":"\u0030\u0030"}"#).as_deref(),
            Some("00")
        );
        assert_eq!(code(b"{}"), None);
        assert_eq!(code(b"not json"), None);
    }

    #[test]
    fn api_urls_are_explained() {
        assert!(parse_api_url("http://127.0.0.1:8080").is_ok());
        assert!(matches!(
            parse_api_url("127.0.0.1:8081"),
            Err(ApiError::NoScheme(_))
        ));
        assert!(matches!(
            parse_api_url("https://127.0.0.1:8081"),
            Err(ApiError::NotLoopback(_))
        ));
        assert!(matches!(
            parse_api_url("http://10.1.2.3:80"),
            Err(ApiError::NotLoopback(_))
        ));
        let e = parse_api_url("127.0.0.1:8081").unwrap_err().to_string();
        assert!(e.contains("http://127.0.0.1:8081"), "{e}");
    }
}
