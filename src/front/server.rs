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

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

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
/// being served is answered, then the connection closes.
fn serve_connection(
    stream: TcpStream,
    router: &axum::Router,
    cfg: &ConnConfig,
    permit: OwnedSemaphorePermit,
    shutdown: &watch::Receiver<bool>,
    connections: &TaskTracker,
) {
    let service = TowerToHyperService::new(router.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut stop = shutdown.clone();
    let grace = cfg.grace;
    connections.spawn(async move {
        let _permit = permit;
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(grace, conn).await;
            }
        }
    });
}
