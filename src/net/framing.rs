//! Length-header framing for acquirer links (tokio-util codecs).
//!
//! Every frame on the wire is:
//!
//! ```text
//! +---------------+------------------------+---------------------------+
//! | length (L)    | fixed header (H bytes) | ISO 8583 message          |
//! +---------------+------------------------+---------------------------+
//!  L = 2 or 4      e.g. a 5-byte TPDU
//!
//! length value = H + message length (+ L when `length_includes_self`)
//! ```
//!
//! Length styles ([`LengthStyle`]):
//!
//! | style              | L | encoding               | largest value |
//! |--------------------|---|------------------------|---------------|
//! | `two_byte_binary`  | 2 | big-endian u16         | 0xFFFF        |
//! | `four_byte_ascii`  | 4 | ASCII decimal "0123"   | 9999          |
//! | `two_byte_bcd`     | 2 | packed BCD 0x01 0x23   | 9999          |
//! | `four_byte_binary` | 4 | big-endian u32         | `max_frame`   |
//!
//! Contract of the decoder:
//! - a partial frame is `Ok(None)` ("need more bytes"), never an error;
//! - the announced length is checked against `max_frame` **before** any
//!   buffer space is reserved;
//! - a frame whose payload is empty (length 0, or only the fixed header) is a
//!   keep-alive ([`Frame::KeepAlive`]);
//! - anything else that does not fit the style is a [`FramingError`], after
//!   which the stream cannot be resynchronised and the link must close.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

use super::error::FramingError;

/// How the length in front of each frame is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthStyle {
    /// 2 bytes, binary, big-endian (the default).
    #[default]
    TwoByteBinary,
    /// 4 ASCII decimal digits, e.g. `"0123"`.
    FourByteAscii,
    /// 2 bytes of packed BCD (4 digits), e.g. `0x01 0x23`.
    TwoByteBcd,
    /// 4 bytes, binary, big-endian.
    FourByteBinary,
}

impl LengthStyle {
    /// Size of the length header in bytes.
    pub const fn prefix_len(self) -> usize {
        match self {
            LengthStyle::TwoByteBinary | LengthStyle::TwoByteBcd => 2,
            LengthStyle::FourByteAscii | LengthStyle::FourByteBinary => 4,
        }
    }

    /// Largest value the header can carry.
    pub const fn max_value(self) -> usize {
        match self {
            LengthStyle::TwoByteBinary => 0xFFFF,
            LengthStyle::FourByteAscii | LengthStyle::TwoByteBcd => 9999,
            LengthStyle::FourByteBinary => u32::MAX as usize,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            LengthStyle::TwoByteBinary => "two_byte_binary",
            LengthStyle::FourByteAscii => "four_byte_ascii",
            LengthStyle::TwoByteBcd => "two_byte_bcd",
            LengthStyle::FourByteBinary => "four_byte_binary",
        }
    }

    /// Reads the length value from exactly `prefix_len()` bytes.
    fn read(self, b: &[u8]) -> Result<usize, FramingError> {
        let bad = || {
            let mut header = [0u8; 4];
            let n = b.len().min(4);
            header[..n].copy_from_slice(&b[..n]);
            FramingError::BadLengthHeader {
                style: self.name(),
                header,
            }
        };
        match self {
            LengthStyle::TwoByteBinary => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            LengthStyle::FourByteBinary => {
                Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            }
            LengthStyle::FourByteAscii => b[..4].iter().try_fold(0usize, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + usize::from(c - b'0'))
                } else {
                    Err(bad())
                }
            }),
            LengthStyle::TwoByteBcd => b[..2].iter().try_fold(0usize, |acc, &c| {
                let (hi, lo) = (c >> 4, c & 0x0F);
                if hi > 9 || lo > 9 {
                    Err(bad())
                } else {
                    Ok(acc * 100 + usize::from(hi) * 10 + usize::from(lo))
                }
            }),
        }
    }

    /// Writes `value` into exactly `prefix_len()` bytes. The caller has
    /// checked `value <= max_value()`.
    fn write(self, value: usize, out: &mut [u8]) {
        match self {
            LengthStyle::TwoByteBinary => out[..2].copy_from_slice(&(value as u16).to_be_bytes()),
            LengthStyle::FourByteBinary => out[..4].copy_from_slice(&(value as u32).to_be_bytes()),
            LengthStyle::FourByteAscii => {
                let mut v = value;
                for slot in out[..4].iter_mut().rev() {
                    *slot = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            }
            LengthStyle::TwoByteBcd => {
                let mut v = value;
                for slot in out[..2].iter_mut().rev() {
                    let lo = (v % 10) as u8;
                    let hi = ((v / 10) % 10) as u8;
                    *slot = (hi << 4) | lo;
                    v /= 100;
                }
            }
        }
    }
}

/// Framing of one acquirer, as written in configuration.
///
/// ```toml
/// [acquirer.framing]
/// style = "two_byte_bcd"
/// header = "6000010000"      # 5-byte TPDU written on every outbound frame
/// length_includes_self = false
/// max_frame = 8192
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramingConfig {
    pub style: LengthStyle,
    /// Length of the fixed header after the length (0 = none, 5 = TPDU).
    /// Implied by `header` when that is set.
    pub header_len: usize,
    /// Fixed header written on outbound frames, in hex. When absent and
    /// `header_len > 0`, zero bytes are written.
    #[serde(with = "opt_hex")]
    pub header: Option<Vec<u8>>,
    /// Whether the length value counts the length header's own bytes.
    pub length_includes_self: bool,
    /// Largest payload (fixed header + message) accepted or sent, in bytes.
    pub max_frame: usize,
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            style: LengthStyle::TwoByteBinary,
            header_len: 0,
            header: None,
            length_includes_self: false,
            max_frame: 8192,
        }
    }
}

impl FramingConfig {
    /// The configuration for `style` with no fixed header.
    pub fn new(style: LengthStyle) -> Self {
        FramingConfig {
            style,
            ..Self::default()
        }
    }

    /// Builder: a fixed header (for example a TPDU) after the length.
    pub fn with_header(mut self, header: &[u8]) -> Self {
        self.header_len = header.len();
        self.header = Some(header.to_vec());
        self
    }

    /// Checks that the configuration can work and returns the codec.
    pub fn codec(&self) -> Result<FrameCodec, FramingError> {
        FrameCodec::new(self.clone())
    }

    /// Parses the command-line form `STYLE[+self][,header=HEX][,max=N]`,
    /// e.g. `two_byte_bcd,header=6000010000` or `four_byte_ascii+self`.
    pub fn parse_cli(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let head = parts.next().unwrap_or_default();
        let (style, includes_self) = match head.strip_suffix("+self") {
            Some(st) => (st, true),
            None => (head, false),
        };
        let style = match style {
            "two_byte_binary" | "2b" => LengthStyle::TwoByteBinary,
            "four_byte_ascii" | "4a" => LengthStyle::FourByteAscii,
            "two_byte_bcd" | "2bcd" => LengthStyle::TwoByteBcd,
            "four_byte_binary" | "4b" => LengthStyle::FourByteBinary,
            other => return Err(format!("unknown framing style {other:?}")),
        };
        let mut cfg = FramingConfig::new(style);
        cfg.length_includes_self = includes_self;
        for part in parts {
            match part.split_once('=') {
                Some(("header", h)) => {
                    let bytes = hex::decode(h).map_err(|e| format!("header: {e}"))?;
                    cfg = cfg.with_header(&bytes);
                }
                Some(("header_len", n)) => {
                    cfg.header_len = n.parse().map_err(|e| format!("header_len: {e}"))?
                }
                Some(("max", n)) => cfg.max_frame = n.parse().map_err(|e| format!("max: {e}"))?,
                _ => return Err(format!("unknown framing option {part:?}")),
            }
        }
        cfg.codec().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode_upper(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// One decoded frame. `Debug` shows sizes only: a message may hold card data.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// An empty frame (length 0, or only the fixed header): keep the link alive.
    KeepAlive,
    /// A message. `header` is the fixed header as received (empty if none);
    /// both share the read buffer's allocation.
    Message { header: Bytes, body: Bytes },
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::KeepAlive => f.write_str("KeepAlive"),
            Frame::Message { header, body } => f
                .debug_struct("Message")
                .field("header_bytes", &header.len())
                .field("body_bytes", &body.len())
                .finish(),
        }
    }
}

/// Where an in-place encoded frame starts; returned by [`FrameCodec::begin`].
#[derive(Debug, Clone, Copy)]
#[must_use = "pass it to FrameCodec::finish"]
pub struct FrameStart(usize);

/// Decoder and encoder for one [`FramingConfig`].
#[derive(Debug, Clone)]
pub struct FrameCodec {
    style: LengthStyle,
    prefix_len: usize,
    header: Bytes,
    includes_self: bool,
    max_frame: usize,
}

impl FrameCodec {
    pub fn new(cfg: FramingConfig) -> Result<Self, FramingError> {
        let header = match &cfg.header {
            Some(h) if h.len() != cfg.header_len && cfg.header_len != 0 => {
                return Err(FramingError::HeaderLength {
                    expected: cfg.header_len,
                    got: h.len(),
                })
            }
            Some(h) => Bytes::copy_from_slice(h),
            None => Bytes::from(vec![0u8; cfg.header_len]),
        };
        let prefix_len = cfg.style.prefix_len();
        let self_len = if cfg.length_includes_self {
            prefix_len
        } else {
            0
        };
        if cfg.max_frame == 0 {
            return Err(FramingError::InvalidConfig("max_frame must be positive"));
        }
        if cfg.max_frame + self_len > cfg.style.max_value() {
            return Err(FramingError::InvalidConfig(
                "max_frame is larger than the length style can express",
            ));
        }
        if header.len() >= cfg.max_frame {
            return Err(FramingError::InvalidConfig(
                "header does not fit in max_frame",
            ));
        }
        Ok(FrameCodec {
            style: cfg.style,
            prefix_len,
            header,
            includes_self: cfg.length_includes_self,
            max_frame: cfg.max_frame,
        })
    }

    /// Bytes in front of the message on every frame (length + fixed header).
    pub fn overhead(&self) -> usize {
        self.prefix_len + self.header.len()
    }

    pub fn header_len(&self) -> usize {
        self.header.len()
    }

    fn self_len(&self) -> usize {
        if self.includes_self {
            self.prefix_len
        } else {
            0
        }
    }

    /// Starts an in-place frame: writes a placeholder length and the
    /// configured fixed header. Encode the message straight into `dst`, then
    /// call [`finish`](Self::finish). This avoids an intermediate buffer on
    /// the hot path.
    pub fn begin(&self, dst: &mut BytesMut) -> FrameStart {
        self.begin_with_header(dst, &self.header)
    }

    /// Like [`begin`](Self::begin) with an explicit fixed header, for example
    /// the simulator echoing the TPDU it received. `header` must have
    /// `header_len()` bytes ([`finish`](Self::finish) checks).
    pub fn begin_with_header(&self, dst: &mut BytesMut, header: &[u8]) -> FrameStart {
        let start = dst.len();
        dst.reserve(self.prefix_len + header.len());
        dst.put_bytes(0, self.prefix_len);
        dst.put_slice(header);
        FrameStart(start)
    }

    /// Completes a frame started with [`begin`](Self::begin): checks the size
    /// and writes the length. On error the partial frame is removed from `dst`.
    pub fn finish(&self, dst: &mut BytesMut, start: FrameStart) -> Result<(), FramingError> {
        let FrameStart(start) = start;
        let payload = dst.len() - start - self.prefix_len;
        if payload < self.header.len() {
            dst.truncate(start);
            return Err(FramingError::HeaderLength {
                expected: self.header.len(),
                got: payload,
            });
        }
        if payload > self.max_frame {
            dst.truncate(start);
            return Err(FramingError::FrameTooLarge {
                len: payload,
                max: self.max_frame,
            });
        }
        let value = payload + self.self_len();
        self.style
            .write(value, &mut dst[start..start + self.prefix_len]);
        Ok(())
    }

    /// Appends a complete frame around an already-encoded message.
    pub fn encode_message(&self, body: &[u8], dst: &mut BytesMut) -> Result<(), FramingError> {
        if body.len() + self.header.len() > self.max_frame {
            return Err(FramingError::FrameTooLarge {
                len: body.len() + self.header.len(),
                max: self.max_frame,
            });
        }
        dst.reserve(self.overhead() + body.len());
        let start = self.begin(dst);
        dst.put_slice(body);
        self.finish(dst, start)
    }

    /// Appends a keep-alive (a zero-length frame: no fixed header either).
    pub fn encode_keep_alive(&self, dst: &mut BytesMut) {
        let start = dst.len();
        dst.put_bytes(0, self.prefix_len);
        self.style
            .write(self.self_len(), &mut dst[start..start + self.prefix_len]);
    }
}

impl FrameCodec {
    /// Cuts the next frame from the front of `src`: `Ok(None)` when it is
    /// not complete yet. The [`Decoder`] implementation, callable without
    /// tokio-util (the I/O-free link protocol's tests, a simulation).
    pub fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        if src.len() < self.prefix_len {
            return Ok(None);
        }
        let value = self.style.read(&src[..self.prefix_len])?;
        let payload = value
            .checked_sub(self.self_len())
            .ok_or(FramingError::LengthTooSmall {
                len: value,
                min: self.self_len(),
            })?;
        if payload == 0 {
            src.advance(self.prefix_len);
            return Ok(Some(Frame::KeepAlive));
        }
        // Checked before reserving: a hostile length never costs memory.
        if payload > self.max_frame {
            return Err(FramingError::FrameTooLarge {
                len: payload,
                max: self.max_frame,
            });
        }
        let hlen = self.header.len();
        if payload < hlen {
            return Err(FramingError::LengthTooSmall {
                len: value,
                min: hlen + self.self_len(),
            });
        }
        let total = self.prefix_len + payload;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(self.prefix_len);
        let mut body = src.split_to(payload).freeze();
        if body.len() == hlen {
            return Ok(Some(Frame::KeepAlive));
        }
        let header = body.split_to(hlen);
        Ok(Some(Frame::Message { header, body }))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        self.decode_frame(src)
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), FramingError> {
        self.encode_message(body, dst)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        self.encode_message(&body, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexb(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn encode(cfg: &FramingConfig, body: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        cfg.codec().unwrap().encode_message(body, &mut dst).unwrap();
        dst.to_vec()
    }

    fn decode_all(cfg: &FramingConfig, wire: &[u8]) -> Vec<Frame> {
        let mut codec = cfg.codec().unwrap();
        let mut src = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut src).unwrap() {
            out.push(f);
        }
        assert!(src.is_empty(), "left over: {src:02x?}");
        out
    }

    fn msg(body: &[u8]) -> Frame {
        Frame::Message {
            header: Bytes::new(),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn vectors_per_style() {
        let body = b"0800\x82\x00";
        let cases = [
            (LengthStyle::TwoByteBinary, false, "0006"),
            (LengthStyle::TwoByteBinary, true, "0008"),
            (LengthStyle::FourByteAscii, false, "30303036"),
            (LengthStyle::FourByteAscii, true, "30303130"),
            (LengthStyle::TwoByteBcd, false, "0006"),
            (LengthStyle::TwoByteBcd, true, "0008"),
            (LengthStyle::FourByteBinary, false, "00000006"),
            (LengthStyle::FourByteBinary, true, "0000000a"),
        ];
        for (style, includes_self, prefix) in cases {
            let cfg = FramingConfig {
                length_includes_self: includes_self,
                ..FramingConfig::new(style)
            };
            let mut expected = hexb(prefix);
            expected.extend_from_slice(body);
            assert_eq!(
                encode(&cfg, body),
                expected,
                "{style:?} self={includes_self}"
            );
            assert_eq!(decode_all(&cfg, &expected), vec![msg(body)]);
        }
    }

    #[test]
    fn bcd_and_ascii_use_decimal_digits() {
        let body = vec![b'x'; 1234];
        let bcd = encode(&FramingConfig::new(LengthStyle::TwoByteBcd), &body);
        assert_eq!(&bcd[..2], &hexb("1234")[..]);
        let asc = encode(&FramingConfig::new(LengthStyle::FourByteAscii), &body);
        assert_eq!(&asc[..4], b"1234");
    }

    #[test]
    fn tpdu_header_is_written_counted_and_returned() {
        let cfg = FramingConfig::new(LengthStyle::TwoByteBcd).with_header(&hexb("6000010000"));
        let wire = encode(&cfg, b"ABC");
        assert_eq!(wire, hexb("0008 6000010000 414243"));
        assert_eq!(
            decode_all(&cfg, &wire),
            vec![Frame::Message {
                header: Bytes::from(hexb("6000010000")),
                body: Bytes::from_static(b"ABC"),
            }]
        );
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let cfg = FramingConfig::new(LengthStyle::FourByteAscii);
        let wire = encode(&cfg, b"hello");
        let mut codec = cfg.codec().unwrap();
        let mut src = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            src.put_u8(*b);
            let got = codec.decode(&mut src).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None, "after {} bytes", i + 1);
            } else {
                assert_eq!(got, Some(msg(b"hello")));
            }
        }
    }

    #[test]
    fn zero_length_is_keep_alive() {
        assert_eq!(
            decode_all(&FramingConfig::default(), &hexb("0000 0001 41 0000")),
            vec![Frame::KeepAlive, msg(b"A"), Frame::KeepAlive]
        );
        let with_self = FramingConfig {
            length_includes_self: true,
            ..FramingConfig::new(LengthStyle::FourByteAscii)
        };
        assert_eq!(decode_all(&with_self, b"0004"), vec![Frame::KeepAlive]);
        let mut dst = BytesMut::new();
        with_self.codec().unwrap().encode_keep_alive(&mut dst);
        assert_eq!(&dst[..], b"0004");
        // A header-only frame carries no message either.
        let tpdu = FramingConfig::default().with_header(&[0x60, 0, 1, 0, 0]);
        assert_eq!(
            decode_all(&tpdu, &hexb("0005 6000010000")),
            vec![Frame::KeepAlive]
        );
    }

    #[test]
    fn oversize_is_rejected_before_reserving() {
        let cfg = FramingConfig {
            max_frame: 100,
            ..FramingConfig::new(LengthStyle::FourByteBinary)
        };
        let mut codec = cfg.codec().unwrap();
        let mut src = BytesMut::from(&hexb("7fffffff")[..]);
        let cap = src.capacity();
        match codec.decode(&mut src) {
            Err(FramingError::FrameTooLarge { len, max: 100 }) => assert_eq!(len, 0x7fff_ffff),
            other => panic!("{other:?}"),
        }
        assert_eq!(src.capacity(), cap);
        let mut dst = BytesMut::new();
        assert!(matches!(
            codec.encode_message(&[0u8; 101], &mut dst),
            Err(FramingError::FrameTooLarge { len: 101, .. })
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let ascii = FramingConfig::new(LengthStyle::FourByteAscii);
        assert!(matches!(
            ascii
                .codec()
                .unwrap()
                .decode(&mut BytesMut::from(&b"00x1abc"[..])),
            Err(FramingError::BadLengthHeader { .. })
        ));
        let bcd = FramingConfig::new(LengthStyle::TwoByteBcd);
        assert!(matches!(
            bcd.codec()
                .unwrap()
                .decode(&mut BytesMut::from(&hexb("0a01")[..])),
            Err(FramingError::BadLengthHeader { .. })
        ));
        let with_self = FramingConfig {
            length_includes_self: true,
            ..FramingConfig::default()
        };
        assert!(matches!(
            with_self
                .codec()
                .unwrap()
                .decode(&mut BytesMut::from(&hexb("0001")[..])),
            Err(FramingError::LengthTooSmall { len: 1, min: 2 })
        ));
        let tpdu = FramingConfig::default().with_header(&[0x60, 0, 1, 0, 0]);
        assert!(matches!(
            tpdu.codec()
                .unwrap()
                .decode(&mut BytesMut::from(&hexb("0003 600001")[..])),
            Err(FramingError::LengthTooSmall { .. })
        ));
    }

    #[test]
    fn config_validation() {
        let too_big = FramingConfig {
            max_frame: 10_000,
            ..FramingConfig::new(LengthStyle::TwoByteBcd)
        };
        assert!(matches!(
            too_big.codec(),
            Err(FramingError::InvalidConfig(_))
        ));
        let mismatch = FramingConfig {
            header_len: 3,
            header: Some(vec![1, 2]),
            ..FramingConfig::default()
        };
        assert!(matches!(
            mismatch.codec(),
            Err(FramingError::HeaderLength {
                expected: 3,
                got: 2
            })
        ));
    }

    #[test]
    fn config_from_toml_and_cli() {
        let cfg: FramingConfig = toml::from_str(
            "style = \"two_byte_bcd\"\nheader = \"6000010000\"\nheader_len = 5\nmax_frame = 4096",
        )
        .unwrap();
        assert_eq!(cfg.style, LengthStyle::TwoByteBcd);
        assert_eq!(cfg.header.as_deref(), Some(&hexb("6000010000")[..]));
        assert_eq!(
            FramingConfig::parse_cli("two_byte_bcd,header=6000010000,max=4096").unwrap(),
            cfg
        );
        let asc = FramingConfig::parse_cli("four_byte_ascii+self").unwrap();
        assert!(asc.length_includes_self);
        assert!(FramingConfig::parse_cli("three_byte").is_err());
    }

    #[test]
    fn in_place_encoding_matches_encode_message() {
        let cfg = FramingConfig::new(LengthStyle::TwoByteBcd).with_header(b"TPDU!");
        let codec = cfg.codec().unwrap();
        let mut dst = BytesMut::from(&b"prev"[..]);
        let start = codec.begin(&mut dst);
        dst.put_slice(b"0110");
        codec.finish(&mut dst, start).unwrap();
        let mut expected = b"prev".to_vec();
        expected.extend(encode(&cfg, b"0110"));
        assert_eq!(&dst[..], &expected[..]);
    }

    proptest::proptest! {
        #[test]
        fn round_trip_any_body(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600),
            style in 0usize..4,
            includes_self: bool,
            split in 0usize..700,
        ) {
            let style = [LengthStyle::TwoByteBinary, LengthStyle::FourByteAscii,
                         LengthStyle::TwoByteBcd, LengthStyle::FourByteBinary][style];
            let cfg = FramingConfig { length_includes_self: includes_self, ..FramingConfig::new(style) };
            let wire = encode(&cfg, &body);
            let mut codec = cfg.codec().unwrap();
            let split = split.min(wire.len());
            let mut src = BytesMut::from(&wire[..split]);
            let first = codec.decode(&mut src).unwrap();
            let got = match first {
                Some(f) => f,
                None => {
                    src.extend_from_slice(&wire[split..]);
                    codec.decode(&mut src).unwrap().unwrap()
                }
            };
            proptest::prop_assert_eq!(got, msg(&body));
        }

        #[test]
        fn decoder_never_panics(wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            for style in [LengthStyle::TwoByteBinary, LengthStyle::FourByteAscii,
                          LengthStyle::TwoByteBcd, LengthStyle::FourByteBinary] {
                let cfg = FramingConfig { max_frame: 32, ..FramingConfig::new(style) }.with_header(&[1, 2]);
                let mut codec = cfg.codec().unwrap();
                let mut src = BytesMut::from(&wire[..]);
                while let Ok(Some(_)) = codec.decode(&mut src) {}
            }
        }
    }
}
