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
    /// The length header is not valid for its style (non-digit ASCII, bad BCD nibble).
    #[error("invalid {style} length header {header:02x?}")]
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
