//! Errors of the network layer: one enum per layer.
//!
//! [`FramingError`] is what a length-header codec reports: a corrupt stream,
//! never a partial frame (that is `Ok(None)`). [`LinkError`] is what a caller
//! of a link or pool gets back for one request; every variant is something the
//! caller can act on (retry elsewhere, reverse, give up).

use std::io;

/// A corrupt or oversized frame, or an I/O error under the codec.
///
/// Any of these closes the link: after a bad length header the byte stream
/// cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The length header is not valid for its style (non-digit ASCII, bad
    /// BCD nibble). The message does not show the bytes: once the stream is
    /// out of step they may be part of a card number.
    #[error("invalid {style} length header")]
    BadLengthHeader {
        style: &'static str,
        header: [u8; 4],
    },
    /// The announced frame exceeds the configured maximum; nothing was reserved.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The announced length is smaller than what it must at least cover
    /// (the length header itself or the fixed header).
    #[error("announced length {len} is smaller than the minimum {min}")]
    LengthTooSmall { len: usize, min: usize },
    /// Outbound: the configured header does not have `header_len` bytes.
    #[error("fixed header has {got} bytes, configuration says {expected}")]
    HeaderLength { expected: usize, got: usize },
    /// The configuration cannot work (for example `max_frame` above what the style can express).
    #[error("invalid framing configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// A message that could not be encoded or decoded on a link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] crate::iso8583::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] crate::iso8583::DecodeError),
    #[error("value: {0}")]
    Value(#[from] crate::iso8583::ValueError),
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    #[error("match key: {0}")]
    Key(#[from] super::key::KeyError),
}

/// The outcome of one request that got no response. Each variant says what
/// the caller may do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Written, but not answered within the request timeout. The acquirer may
    /// have acted on it: a candidate for reversal.
    #[error("no response within the request timeout")]
    Timeout,
    /// The link (or every ready link) has `max_in_flight` requests pending.
    /// Nothing was sent; retry later.
    #[error("link busy: too many requests in flight")]
    Busy,
    /// The link dropped after the request was written. The acquirer may have
    /// acted on it: a candidate for reversal.
    #[error("link dropped with the request in flight")]
    Disconnected,
    /// No link was ready, or the request was still queued when its link
    /// dropped. Nothing was sent; safe to retry.
    #[error("no ready link to the acquirer")]
    NoReadyLink,
    /// A request with the same match key is in flight; nothing was sent.
    #[error("a request with the same match key is already in flight")]
    DuplicateKey,
    /// All 999,999 STANs are in flight.
    #[error("no free STAN")]
    StanExhausted,
    /// The request could not be encoded (nothing was sent).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The pool is shutting down.
    #[error("pool is shut down")]
    Shutdown,
}

impl LinkError {
    /// Whether the request may have reached the acquirer.
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, LinkError::Timeout | LinkError::Disconnected)
    }
}
