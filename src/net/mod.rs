//! The async shell around the ISO 8583 engine: framing, acquirer links, pools.
//!
//! # Layout
//! - [`framing`]: length-header codecs (tokio-util `Decoder`/`Encoder`), one per
//!   header style, chosen per acquirer in configuration.
//! - [`matcher`]: I/O-free pending table that pairs responses with requests,
//!   expires them (`poll_timeout(now)`) and classifies strays (late, duplicate,
//!   unknown).
//! - [`stan`]: per-acquirer STAN allocator (000001-999999, wrapping, never
//!   reusing a STAN still in flight).
//! - [`backoff`]: exponential backoff with jitter, RNG passed in.
//! - [`key`]: the configurable match key (default: response MTI + DE 11 + DE 41).
//! - [`proto`]: the link protocol without I/O (sign-on, echo, matching,
//!   strays, draining and sign-off) for one connection, `now` passed in.
//! - [`link`]: the tokio driver around [`proto`]: one task owns one TCP
//!   connection at a time; callers send `(request, oneshot::Sender)` over
//!   an `mpsc`.
//! - `io` (crate-private): the transport under a driver: plain TCP with
//!   readiness calls, or TLS through `AsyncRead`/`AsyncWrite`.
//! - [`pool`]: N links per acquirer, least-in-flight selection, reconnect,
//!   primary/secondary failover, health.
//! - [`error`]: one error enum per layer ([`FramingError`], [`LinkError`]).

pub mod backoff;
pub mod duration_serde;
pub mod error;
pub mod framing;
pub(crate) mod io;
pub mod key;
pub mod link;
pub mod matcher;
pub mod pool;
pub mod proto;
pub mod stan;

pub use error::{CodecError, FramingError, LinkError};
pub use framing::{Frame, FrameCodec, FramingConfig, LengthStyle};
pub use key::{MatchKey, MatchKeyConfig};
pub use link::{ConnectConfig, LinkMetrics, MetricsSnapshot, Unmatched, UnmatchedHandler};
pub use pool::{Health, Pool, PoolConfig};
pub use proto::{LinkConfig, LinkState, Response, UnmatchedKind};
pub use stan::{Stan, StanAllocator, StanLease};
