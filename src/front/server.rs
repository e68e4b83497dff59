//! The HTTP/1 server of the API: accepting, dealing connections to the
//! shards, serving each connection on its shard. Nothing here builds the
//! switch (that is [`crate::system`]'s job).
//!
//! A plain accept loop over hyper's HTTP/1 connection builder (rather than
//! `axum::serve`) for the slow-client defences axum does not expose: a
//! header read timeout per request, TCP_NODELAY, and a cap on connections
//! served at once. Body size and body read time are bounded in the
//! handlers.
//!
//! ```text
//!   listener ─► accept_loop (shard 0) ─┬─ serve here (turn 0)
//!                                      ├─ handoff ─► shard_loop (shard 1)
//!                                      └─ handoff ─► shard_loop (shard n)
//! ```
//! From then on a request stays on its shard from read to answer. At
//! shutdown each shard stops taking connections and lets those it has
//! finish (each request bounded by `grace`).
//!
//! With TLS ([`ApiTls`]) the handshake is done by the shard that serves
//! the connection, in the connection's own task (never in the accept
//! loop), bounded by the handshake timeout; a client refused there (no
//! certificate, or one not signed by the client CA, when client
//! authentication is on) is logged with its address and the reason.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::tls::{self, Peer};

/// An accepted connection on its way to another shard (the stream
/// deregistered from the accepting runtime, and its connection permit).
pub type Handed = (std::net::TcpStream, OwnedSemaphorePermit);

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// At shutdown, how long a connection may take to finish its request.
    pub grace: Duration,
    /// HTTPS: every connection shakes hands first.
    pub tls: Option<ApiTls>,
}

/// The API's TLS: the server configuration, loaded once at start-up
/// (`crate::tls::server_config`), and how long a client has to finish its
/// handshake.
#[derive(Clone)]
pub struct ApiTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handshake_timeout: Duration,
}

impl fmt::Debug for ApiTls {
    // The acceptor holds the key: say nothing of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Accepts connections (at most `max_connections` at once, over all
/// shards) and deals them round-robin: one served here, the next handed to
/// the next shard, so every shard gets its share of the connections.
pub async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    cfg: ConnConfig,
    mut shutdown: watch::Receiver<bool>,
    handoffs: Vec<mpsc::UnboundedSender<Handed>>,
    connections: &TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut turn = 0usize;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        turn = (turn + 1) % (handoffs.len() + 1);
        let Some(handoff) = turn.checked_sub(1).and_then(|i| handoffs.get(i)) else {
            serve_connection(stream, &router, &cfg, permit, &shutdown, connections);
            continue;
        };
        match stream.into_std() {
            Ok(std_stream) => {
                if let Err(back) = handoff.send((std_stream, permit)) {
                    // That shard has stopped: serve it here.
                    let (std_stream, permit) = back.0;
                    if let Ok(stream) = TcpStream::from_std(std_stream) {
                        serve_connection(stream, &router, &cfg, permit, &shutdown, connections);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot hand a connection over"),
        }
    }
}

/// A shard's connections: those the accepting shard hands over.
pub async fn shard_loop(
    mut incoming: mpsc::UnboundedReceiver<Handed>,
    router: axum::Router,
    cfg: ConnConfig,
    mut shutdown: watch::Receiver<bool>,
    connections: &TaskTracker,
) {
    loop {
        let (std_stream, permit) = tokio::select! {
            c = incoming.recv() => match c {
                Some(c) => c,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        match TcpStream::from_std(std_stream) {
            Ok(stream) => serve_connection(stream, &router, &cfg, permit, &shutdown, connections),
            Err(e) => tracing::warn!(error = %e, "cannot take a connection over"),
        }
    }
}

/// Serves one HTTP/1.1 connection on the current runtime until it ends,
/// or gracefully (`grace` at most) once `shutdown` changes: the request
/// being served is answered, then the connection closes. Under TLS the
/// handshake comes first, in the connection's task.
fn serve_connection(
    stream: TcpStream,
    router: &axum::Router,
    cfg: &ConnConfig,
    permit: OwnedSemaphorePermit,
    shutdown: &watch::Receiver<bool>,
    connections: &TaskTracker,
) {
    let service = TowerToHyperService::new(router.clone());
    let (header_read_timeout, grace) = (cfg.header_read_timeout, cfg.grace);
    let mut stop = shutdown.clone();
    let Some(tls) = cfg.tls.clone() else {
        connections.spawn(async move {
            let _permit = permit;
            serve_http(stream, service, header_read_timeout, grace, stop).await;
        });
        return;
    };
    connections.spawn(async move {
        let _permit = permit;
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let reason = tls::describe_io(&e, Peer::Client, None);
                    // A refused certificate is the operator's business;
                    // a scanner or a plain-HTTP client is noise.
                    let certificate = matches!(
                        tls::rustls_error(&e),
                        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
                    );
                    if certificate {
                        tracing::warn!(%peer, %reason, "TLS handshake refused");
                    } else {
                        tracing::info!(%peer, %reason, "TLS handshake failed");
                    }
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, timeout = ?tls.handshake_timeout, "TLS handshake not finished in time");
                    return;
                }
            },
            _ = stop.changed() => return,
        };
        serve_http(stream, service, header_read_timeout, grace, stop).await;
    });
}

/// HTTP/1.1 on one connection (plain or TLS), until it ends or, once
/// `stop` changes, gracefully within `grace`.
async fn serve_http<S>(
    stream: S,
    service: TowerToHyperService<axum::Router>,
    header_read_timeout: Duration,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, conn).await;
        }
    }
}
