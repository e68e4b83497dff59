//! The link protocol without I/O: the life of one TCP connection to an
//! acquirer, from "TCP is up" to "down, and why".
//!
//! [`Connection`] never touches a socket, never sleeps and never reads a
//! clock: the driver (the tokio task of [`super::link`], or a
//! deterministic simulation) tells it what happened, with `now` as an
//! argument, and asks it what to do, in the shape of quinn-proto:
//!
//! ```text
//!  driver                            Connection<T>
//!  TCP is up          -> handle_connected(now)     sign-on 0800 queued, or Ready
//!  frame decoded      -> handle_frame(now, frame)  response matched, stray, or acquirer 0800 answered
//!  timer fired        -> handle_timeout(now)       request timeouts, echo test, network timeouts
//!  caller request     -> submit(now, req, token)   Err(NotReady | Busy | DuplicateKey) at once
//!  shutdown, failback -> begin_drain(now, why)     in flight finish, sign-off, Down
//!  socket closed      -> handle_closed(now)        everything in flight fails at once
//!  corrupt stream     -> handle_corrupt(now, e)    the same, the reason says why
//!  before writing     <- poll_transmit(&mut buf)   every queued frame's bytes
//!  before sleeping    <- poll_timeout()            when to call handle_timeout next
//!  after every call   <- poll_event()              until None
//! ```
//!
//! Life of a connection (each move is an [`Event::StateChanged`]; the last
//! event is always one [`Event::Down`] with its [`DownReason`]):
//!
//! ```text
//!  Connecting ─connected─► SigningOn ─0810 DE39=00─► Ready ─begin_drain─► Draining
//!                  │           │                       │                    │ in flight = 0
//!                  │ no        │ refused, timeout      │ echo timeout       ▼
//!                  │ sign-on   ▼                       ▼ closed, corrupt   sign-off 0800 DE70=002
//!                  └────► Ready            Down ◄──────────────────────────  0810 or timeout
//! ```
//!
//! How a caller's request ends (`T` is the caller's token: a oneshot
//! sender in the tokio driver, a plain id in a simulation):
//!
//! | what happened                                   | outcome                      | may have reached the acquirer |
//! |-------------------------------------------------|------------------------------|-------------------------------|
//! | not Ready, full, or its key in flight           | `submit` returns the token   | no                            |
//! | answered                                        | [`Event::Answered`]          | yes                           |
//! | no answer within the request timeout            | `Failed(Timeout)`            | yes                           |
//! | connection ended after its bytes were handed to the driver by `poll_transmit` | `Failed(Disconnected)` | yes |
//! | connection ended before that                    | `Failed(NotSent)`            | no                            |
//!
//! A response is decoded once, here, into a [`Message`] that shares the
//! frame's buffer ([`Spec::decode_shared`]); the caller gets that message.
//! Anything no caller waits for (late, duplicate, unknown responses,
//! unsolicited requests, undecodable frames) is an [`Event::Stray`] with
//! its frame, never dropped silently: a reversal layer acts on `Late` ones.
//!
//! Network management (sign-on DE 70 = 001, echo 301, sign-off 002) takes
//! its STANs from the acquirer's shared [`StanAllocator`]; the acquirer's
//! own 0800s are answered with an 0810 carrying their fields and a
//! response code of 00.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::error::{CodecError, FramingError, LinkError};
use super::framing::{Frame, FrameCodec};
use super::key::{KeyHasherBuilder, MatchKey, MatchKeyConfig};
use super::matcher::{InsertError, Match, Matcher, StrayKind};
use super::stan::{StanAllocator, StanLease};
use crate::civil::transmission_datetime;
use crate::iso8583::{Message, Mti, Spec};

/// DE 70 network management information codes.
pub const NMIC_SIGN_ON: &str = "001";
pub const NMIC_SIGN_OFF: &str = "002";
pub const NMIC_ECHO: &str = "301";

/// The response code of an accepted network management request, and of
/// our answers to the acquirer's.
const APPROVED: &str = "00";

/// Network management requests in flight at once at most (an echo and a
/// sign-on or sign-off), on top of the callers' `max_in_flight`.
const NETWORK_SLOTS: usize = 2;

/// What one connection needs to know, whatever drives it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// How long a caller's request waits for its response.
    pub request_timeout: Duration,
    /// How long a sign-on, echo or sign-off waits for its 0810.
    pub network_timeout: Duration,
    /// Echo test (0800, DE 70 = 301) after this long without a frame
    /// received.
    pub echo_interval: Option<Duration>,
    /// Sign on (0800, DE 70 = 001) before taking requests, and sign off
    /// (DE 70 = 002) when draining, if the dialect has DE 70.
    pub sign_on: bool,
    /// Callers' requests in flight at most.
    pub max_in_flight: usize,
    /// Finished keys remembered to tell late and duplicate responses from
    /// unknown ones.
    pub remember_finished: usize,
    pub match_key: MatchKeyConfig,
    /// Field of the response code in network management answers, read to
    /// accept a sign-on and written in our answers to the acquirer's 0800s.
    pub response_code_field: u16,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            request_timeout: Duration::from_secs(5),
            network_timeout: Duration::from_secs(5),
            echo_interval: Some(Duration::from_secs(30)),
            sign_on: true,
            max_in_flight: 256,
            remember_finished: 4096,
            match_key: MatchKeyConfig::default(),
            response_code_field: 39,
        }
    }
}

/// What every connection to one acquirer shares: configuration, dialect,
/// framing and the STAN allocator.
#[derive(Debug)]
pub struct Context {
    pub cfg: LinkConfig,
    pub spec: Arc<Spec>,
    pub codec: FrameCodec,
    pub stans: Arc<StanAllocator>,
}

impl Context {
    /// Encodes and frames a caller's request, and builds the key its
    /// response will carry. Meant for the caller's own task, so the CPU
    /// work of encoding is spread over the callers rather than done by
    /// the one task that owns the connection.
    pub fn encode_request(&self, msg: &Message<'_>) -> Result<EncodedRequest, CodecError> {
        let key = self.cfg.match_key.request_key(msg)?;
        let mut buf = BytesMut::with_capacity(256);
        let start = self.codec.begin(&mut buf);
        self.spec.encode(msg, &mut buf)?;
        self.codec.finish(&mut buf, start)?;
        Ok(EncodedRequest {
            key,
            frame: buf.freeze(),
        })
    }
}

/// A caller's request, framed, with the key of its expected response
/// (see [`Context::encode_request`]).
#[derive(Clone)]
pub struct EncodedRequest {
    key: MatchKey,
    frame: Bytes,
}

impl fmt::Debug for EncodedRequest {
    // The frame holds card data: its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedRequest")
            .field("frame_bytes", &self.frame.len())
            .finish_non_exhaustive()
    }
}

/// State of one link, as seen by the pool and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LinkState {
    Connecting = 0,
    SigningOn = 1,
    Ready = 2,
    Draining = 3,
    Down = 4,
}

impl LinkState {
    /// The inverse of `state as u8` (anything unknown is `Down`).
    pub fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Connecting,
            1 => LinkState::SigningOn,
            2 => LinkState::Ready,
            3 => LinkState::Draining,
            _ => LinkState::Down,
        }
    }
}

/// Why a frame went to no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedKind {
    /// Answer to a request that had already timed out.
    Late,
    /// Second answer to a request already answered.
    Duplicate,
    /// Answer to nothing this link remembers.
    Unknown,
    /// A request from the acquirer other than network management.
    UnsolicitedRequest,
    /// A frame whose message does not decode with the dialect.
    Undecodable,
}

impl From<StrayKind> for UnmatchedKind {
    fn from(k: StrayKind) -> Self {
        match k {
            StrayKind::Late => UnmatchedKind::Late,
            StrayKind::Duplicate => UnmatchedKind::Duplicate,
            StrayKind::Unknown => UnmatchedKind::Unknown,
        }
    }
}

/// A frame no caller was waiting for.
#[derive(Clone)]
pub struct Stray {
    pub kind: UnmatchedKind,
    /// Fixed framing header as received (for example the TPDU).
    pub header: Bytes,
    /// The encoded message.
    pub body: Bytes,
}

impl fmt::Debug for Stray {
    // The body may hold card data: its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stray")
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A response matched to its request: the message, decoded once, sharing
/// the read buffer.
#[derive(Clone)]
pub struct Response {
    message: Box<Message<'static>>,
}

impl Response {
    /// The decoded message. Which field holds the response code is the
    /// caller's business (its dialect mapping names it).
    pub fn message(&self) -> &Message<'static> {
        &self.message
    }

    /// The encoded message (no framing).
    pub fn body(&self) -> &Bytes {
        static EMPTY: Bytes = Bytes::new();
        self.message.shared_frame().unwrap_or(&EMPTY)
    }
}

impl fmt::Debug for Response {
    // Message's Debug shows the MTI and field numbers, never data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Response").field(&self.message).finish()
    }
}

/// Why a caller's request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Written, not answered within the request timeout.
    Timeout,
    /// The connection ended after the request's bytes were handed to the
    /// driver for writing.
    Disconnected,
    /// The connection ended before the request's bytes were handed to the
    /// driver: they never left.
    NotSent,
}

impl Failure {
    /// Whether the request may have reached the acquirer (a candidate for
    /// reversal): the rule of the [`LinkError`] it becomes, kept in one
    /// place.
    pub fn maybe_delivered(self) -> bool {
        LinkError::from(self).maybe_delivered()
    }
}

impl From<Failure> for LinkError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Timeout => LinkError::Timeout,
            Failure::Disconnected => LinkError::Disconnected,
            Failure::NotSent => LinkError::NoReadyLink,
        }
    }
}

/// Why [`Connection::submit`] refused a request (nothing was queued); the
/// token is handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError<T> {
    /// Not ready: signing on, draining or down.
    NotReady(T),
    /// `max_in_flight` requests are in flight.
    Busy(T),
    /// A request with the same match key is in flight.
    DuplicateKey(T),
}

impl<T> SubmitError<T> {
    pub fn into_token(self) -> T {
        match self {
            SubmitError::NotReady(t) | SubmitError::Busy(t) | SubmitError::DuplicateKey(t) => t,
        }
    }

    /// The caller's view of it.
    pub fn link_error(&self) -> LinkError {
        match self {
            SubmitError::NotReady(_) => LinkError::NoReadyLink,
            SubmitError::Busy(_) => LinkError::Busy,
            SubmitError::DuplicateKey(_) => LinkError::DuplicateKey,
        }
    }
}

/// Why a drain began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DrainReason {
    Shutdown,
    /// The primary endpoint answers again: leave the secondary.
    Failback,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownReason {
    #[error("connection lost")]
    ConnectionLost,
    #[error("corrupt frame: {0}")]
    CorruptFrame(FramingError),
    #[error("sign-on refused with response code {0:?}")]
    SignOnRefused(Option<String>),
    #[error("no answer to sign-on")]
    SignOnTimeout,
    #[error("no answer to echo test")]
    EchoTimeout,
    #[error("cannot build network management message: {0}")]
    Network(CodecError),
    #[error("no free STAN for network management")]
    StanExhausted,
    #[error("shut down")]
    Shutdown,
    #[error("primary endpoint reachable again: moving back to it")]
    Failback,
}

impl From<DrainReason> for DownReason {
    fn from(d: DrainReason) -> Self {
        match d {
            DrainReason::Shutdown => DownReason::Shutdown,
            DrainReason::Failback => DownReason::Failback,
        }
    }
}

/// What the driver must act on; see [`Connection::poll_event`].
// A response carries its decoded message (its field table is inline):
// boxing it would cost an allocation per response.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event<T> {
    Answered {
        token: T,
        response: Response,
    },
    Failed {
        token: T,
        failure: Failure,
    },
    Stray(Stray),
    StateChanged(LinkState),
    /// The connection is over (always the last event): close the socket.
    Down(DownReason),
}

/// Counters of what the connection did on its own (the driver counts the
/// rest from events and `submit` results).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Zero-length frames received.
    pub keep_alives: u64,
    /// Echo tests sent.
    pub echoes_sent: u64,
    /// Acquirer network management requests answered.
    pub network_answered: u64,
    /// Sign-ons accepted.
    pub sign_ons: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    SignOn,
    Echo,
    SignOff,
}

impl Network {
    fn code(self) -> &'static str {
        match self {
            Network::SignOn => NMIC_SIGN_ON,
            Network::Echo => NMIC_ECHO,
            Network::SignOff => NMIC_SIGN_OFF,
        }
    }
}

/// What is waited for per pending key.
enum Pending<T> {
    /// `seq`: its place in submission order, to tell at the end whether
    /// its bytes were handed to the driver.
    Caller {
        token: T,
        seq: u64,
    },
    Network {
        what: Network,
        _lease: StanLease,
    },
}

/// One connection's protocol state. See the module documentation.
pub struct Connection<T> {
    ctx: Arc<Context>,
    matcher: Matcher<MatchKey, Pending<T>, KeyHasherBuilder>,
    /// Frames queued for the driver.
    out: BytesMut,
    events: VecDeque<Event<T>>,
    state: LinkState,
    /// Callers' requests in flight (the matcher also holds network ones).
    callers: usize,
    /// Sequence number of the last caller request submitted, and of the
    /// last one whose bytes `poll_transmit` handed over.
    submitted: u64,
    transmitted: u64,
    last_rx: Instant,
    echo_pending: bool,
    drain: Option<DrainReason>,
    sign_off_sent: bool,
    /// A wall-clock reading and the instant it was taken, for DE 7.
    wall: (Instant, SystemTime),
    stats: ConnectionStats,
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("state", &self.state)
            .field("in_flight", &self.callers)
            .field("queued_bytes", &self.out.len())
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

impl<T> Connection<T> {
    /// A connection not yet up. `wall` is the wall-clock time at `now`:
    /// network messages carry it in DE 7, moved on by the instants given
    /// later (the connection reads no clock).
    pub fn new(ctx: Arc<Context>, now: Instant, wall: SystemTime) -> Self {
        let matcher = Matcher::new(
            ctx.cfg.max_in_flight + NETWORK_SLOTS,
            ctx.cfg.remember_finished,
        );
        Connection {
            ctx,
            matcher,
            out: BytesMut::new(),
            events: VecDeque::new(),
            state: LinkState::Connecting,
            callers: 0,
            submitted: 0,
            transmitted: 0,
            last_rx: now,
            echo_pending: false,
            drain: None,
            sign_off_sent: false,
            wall: (now, wall),
            stats: ConnectionStats::default(),
        }
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Callers' requests in flight.
    pub fn in_flight(&self) -> usize {
        self.callers
    }

    /// Whether [`submit`](Self::submit) would take a request now (ready,
    /// fewer than `max_in_flight` in flight).
    pub fn can_submit(&self) -> bool {
        self.state == LinkState::Ready && self.callers < self.ctx.cfg.max_in_flight
    }

    /// Bytes queued and not yet handed over by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    pub fn stats(&self) -> ConnectionStats {
        self.stats
    }

    /// TCP is up: sign on, or be ready at once.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != LinkState::Connecting {
            return;
        }
        self.last_rx = now;
        if self.ctx.cfg.sign_on {
            self.set_state(LinkState::SigningOn);
            self.send_network(Network::SignOn, now);
        } else {
            self.set_state(LinkState::Ready);
        }
    }

    /// A caller's request: queued for writing and awaited until `now` plus
    /// the request timeout, or refused at once.
    pub fn submit(
        &mut self,
        now: Instant,
        req: EncodedRequest,
        token: T,
    ) -> Result<(), SubmitError<T>> {
        if self.state != LinkState::Ready {
            return Err(SubmitError::NotReady(token));
        }
        if self.callers >= self.ctx.cfg.max_in_flight {
            return Err(SubmitError::Busy(token));
        }
        let seq = self.submitted + 1;
        let deadline = now + self.ctx.cfg.request_timeout;
        let wrap = |token| Pending::Caller { token, seq };
        match self.matcher.insert_with(req.key, token, deadline, wrap) {
            Ok(()) => {}
            Err(InsertError::Duplicate(token)) => return Err(SubmitError::DuplicateKey(token)),
            Err(InsertError::Full(token)) => return Err(SubmitError::Busy(token)),
        }
        self.submitted = seq;
        self.callers += 1;
        self.out.extend_from_slice(&req.frame);
        Ok(())
    }

    /// One frame cut by the framing codec.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        if matches!(self.state, LinkState::Down | LinkState::Connecting) {
            return;
        }
        self.last_rx = now;
        let (header, body) = match frame {
            Frame::KeepAlive => {
                self.stats.keep_alives += 1;
                return;
            }
            Frame::Message { header, body } => (header, body),
        };
        // The message keeps the frame (no reference taken); a stray gets
        // it back from the message.
        let msg = match self.ctx.spec.decode_shared(body) {
            Ok(m) => m,
            Err((e, body)) => {
                tracing::warn!(error = %e, "undecodable message");
                self.stray(UnmatchedKind::Undecodable, header, body);
                return;
            }
        };
        let mti = msg.mti();
        if mti.is_request() {
            if mti.digits()[1] == b'8' {
                self.answer_network(&msg, &header);
            } else {
                self.stray(UnmatchedKind::UnsolicitedRequest, header, frame_of(&msg));
            }
            return;
        }
        let outcome = match self.ctx.cfg.match_key.response_key(&msg) {
            Ok(key) => self.matcher.on_response(&key),
            Err(_) => Match::Stray(StrayKind::Unknown),
        };
        match outcome {
            Match::Matched(Pending::Caller { token, .. }) => {
                self.callers -= 1;
                let response = Response { message: msg };
                self.events.push_back(Event::Answered { token, response });
                self.check_drained(now);
            }
            Match::Matched(Pending::Network { what, .. }) => {
                self.on_network_answer(now, what, &msg)
            }
            Match::Stray(kind) => self.stray(kind.into(), header, frame_of(&msg)),
        }
    }

    /// The stream is corrupt (a bad length header): it cannot be
    /// resynchronised, the connection is over.
    pub fn handle_corrupt(&mut self, _now: Instant, e: FramingError) {
        self.close(DownReason::CorruptFrame(e));
    }

    /// The connection was lost (peer closed, I/O error): everything in
    /// flight fails at once.
    pub fn handle_closed(&mut self, _now: Instant) {
        self.close(DownReason::ConnectionLost);
    }

    /// Timers due at `now`: request timeouts, network management
    /// timeouts, the echo test.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, LinkState::Down | LinkState::Connecting) {
            return;
        }
        while let Some((_, p)) = self.matcher.poll_timeout(now) {
            match p {
                Pending::Caller { token, .. } => {
                    self.callers -= 1;
                    self.events.push_back(Event::Failed {
                        token,
                        failure: Failure::Timeout,
                    });
                }
                Pending::Network { what, .. } => {
                    let reason = match what {
                        Network::SignOn => DownReason::SignOnTimeout,
                        Network::Echo => DownReason::EchoTimeout,
                        // Leaving anyway: the acquirer's silence changes nothing.
                        Network::SignOff => self.drain_reason().into(),
                    };
                    self.close(reason);
                    return;
                }
            }
        }
        if let Some(at) = self.echo_due() {
            if now >= at {
                self.send_network(Network::Echo, now);
            }
        }
        self.check_drained(now);
    }

    /// Stop taking requests; once those in flight are finished (answered
    /// or timed out), sign off if the link signs on, then go down with
    /// `why`. A shutdown overrides a failback drain already under way.
    /// Before the link is ready there is nothing to finish: down at once.
    pub fn begin_drain(&mut self, now: Instant, why: DrainReason) {
        match self.state {
            LinkState::Connecting | LinkState::SigningOn => self.close(why.into()),
            LinkState::Ready => {
                self.drain = Some(why);
                self.set_state(LinkState::Draining);
                self.check_drained(now);
            }
            LinkState::Draining => {
                if why == DrainReason::Shutdown {
                    self.drain = Some(why);
                }
            }
            LinkState::Down => {}
        }
    }

    /// Appends every queued frame's bytes to `buf`; how many.
    pub fn poll_transmit(&mut self, buf: &mut BytesMut) -> usize {
        let n = self.out.len();
        if n > 0 {
            if buf.is_empty() {
                // The usual case: the driver's buffer was written out, so
                // it takes this one whole, no copy.
                std::mem::swap(buf, &mut self.out);
            } else {
                buf.extend_from_slice(&self.out);
                self.out.clear();
            }
        }
        self.transmitted = self.submitted;
        n
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if matches!(self.state, LinkState::Down | LinkState::Connecting) {
            return None;
        }
        match (self.matcher.next_deadline(), self.echo_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing the driver must act on.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    fn set_state(&mut self, s: LinkState) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::StateChanged(s));
        }
    }

    fn stray(&mut self, kind: UnmatchedKind, header: Bytes, body: Bytes) {
        self.events
            .push_back(Event::Stray(Stray { kind, header, body }));
    }

    fn drain_reason(&self) -> DrainReason {
        self.drain.unwrap_or(DrainReason::Shutdown)
    }

    /// When the echo test is due: ready, none pending, `echo_interval`
    /// after the last frame received.
    fn echo_due(&self) -> Option<Instant> {
        match self.ctx.cfg.echo_interval {
            Some(iv) if self.state == LinkState::Ready && !self.echo_pending => {
                Some(self.last_rx + iv)
            }
            _ => None,
        }
    }

    /// Ends the connection: every caller in flight fails (maybe delivered
    /// if its bytes were handed over), then `Down`.
    fn close(&mut self, reason: DownReason) {
        if self.state == LinkState::Down {
            return;
        }
        self.set_state(LinkState::Down);
        let transmitted = self.transmitted;
        for (_, p) in self.matcher.drain() {
            if let Pending::Caller { token, seq } = p {
                let failure = if seq <= transmitted {
                    Failure::Disconnected
                } else {
                    Failure::NotSent
                };
                self.events.push_back(Event::Failed { token, failure });
            }
        }
        self.callers = 0;
        self.echo_pending = false;
        self.out.clear();
        self.events.push_back(Event::Down(reason));
    }

    /// Draining, nothing left in flight: sign off, or go down.
    fn check_drained(&mut self, now: Instant) {
        if self.state != LinkState::Draining || self.sign_off_sent || !self.matcher.is_empty() {
            return;
        }
        if self.ctx.cfg.sign_on && self.ctx.spec.field(70).is_some() {
            self.sign_off_sent = true;
            self.send_network(Network::SignOff, now);
        } else {
            self.close(self.drain_reason().into());
        }
    }

    fn on_network_answer(&mut self, now: Instant, what: Network, msg: &Message<'_>) {
        let code = self.ctx.spec.text(msg, self.ctx.cfg.response_code_field);
        match what {
            Network::SignOn if code.as_deref() == Some(APPROVED) => {
                self.stats.sign_ons += 1;
                self.set_state(LinkState::Ready);
            }
            Network::SignOn => self.close(DownReason::SignOnRefused(code.map(|c| c.into_owned()))),
            Network::Echo => {
                self.echo_pending = false;
                self.check_drained(now);
            }
            Network::SignOff => {
                if code.as_deref() != Some(APPROVED) {
                    tracing::debug!(code = ?code, "sign-off answered with a refusal; leaving anyway");
                }
                self.close(self.drain_reason().into());
            }
        }
    }

    /// Answers the acquirer's own 08xx (echo, sign-on...) with its
    /// response MTI, its fields, and a response code of 00.
    fn answer_network(&mut self, req: &Message<'_>, header: &[u8]) {
        let ctx = &*self.ctx;
        let mut resp = req.clone();
        resp.set_mti(req.mti().response().unwrap_or(Mti::NETWORK_RESPONSE));
        let mark = self.out.len();
        let result = ctx
            .spec
            .set_text(&mut resp, ctx.cfg.response_code_field, APPROVED)
            .map_err(CodecError::from)
            .and_then(|()| {
                let start = ctx.codec.begin_with_header(&mut self.out, header);
                ctx.spec.encode(&resp, &mut self.out)?;
                Ok(ctx.codec.finish(&mut self.out, start)?)
            });
        match result {
            Ok(()) => self.stats.network_answered += 1,
            Err(e) => {
                // No half-written frame left behind.
                self.out.truncate(mark);
                tracing::warn!(error = %e, mti = %req.mti(), "cannot answer network message");
            }
        }
    }

    /// Queues an 0800 with DE 70 for `what`, awaited for the network
    /// timeout; a failure to build it ends the connection.
    fn send_network(&mut self, what: Network, now: Instant) {
        let Some(lease) = self.ctx.stans.allocate() else {
            self.close(DownReason::StanExhausted);
            return;
        };
        let wall = self.wall_at(now);
        let ctx = &*self.ctx;
        let build = |out: &mut BytesMut| -> Result<MatchKey, CodecError> {
            let spec = &*ctx.spec;
            let mut m = Message::new(Mti::NETWORK_REQUEST);
            if spec.field(7).is_some() {
                spec.set_text(&mut m, 7, &transmission_datetime(wall))?;
            }
            spec.set_text(&mut m, 11, &lease.stan().to_string())?;
            spec.set_text(&mut m, 70, what.code())?;
            let key = ctx.cfg.match_key.request_key(&m)?;
            let start = ctx.codec.begin(out);
            spec.encode(&m, out)?;
            ctx.codec.finish(out, start)?;
            Ok(key)
        };
        let mark = self.out.len();
        let key = match build(&mut self.out) {
            Ok(k) => k,
            Err(e) => {
                self.out.truncate(mark);
                self.close(DownReason::Network(e));
                return;
            }
        };
        let deadline = now + self.ctx.cfg.network_timeout;
        let pending = Pending::Network {
            what,
            _lease: lease,
        };
        // NETWORK_SLOTS keeps room for these; a clash with a caller's key
        // (a caller's 0800 with the same STAN) leaves it unawaited, and the
        // matching answer goes to the caller.
        if self.matcher.insert(key, pending, deadline).is_ok() && what == Network::Echo {
            self.stats.echoes_sent += 1;
            self.echo_pending = true;
        }
    }

    fn wall_at(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall;
        match now.checked_duration_since(at) {
            Some(d) => wall + d,
            None => wall - at.duration_since(now),
        }
    }
}

/// The frame a message from `decode_shared` keeps.
fn frame_of(msg: &Message<'_>) -> Bytes {
    msg.shared_frame().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    //! The protocol on literal frames: messages built with the real cb2a
    //! dialect, framed and cut by the real codec, no socket, instants
    //! built as `t0 + offset`.

    use super::*;
    use crate::net::framing::FramingConfig;
    use rand::{Rng, SeedableRng};
    use std::time::UNIX_EPOCH;

    const NET_TIMEOUT: Duration = Duration::from_secs(5);
    const REQ_TIMEOUT: Duration = Duration::from_secs(10);

    fn cfg() -> LinkConfig {
        LinkConfig {
            request_timeout: REQ_TIMEOUT,
            network_timeout: NET_TIMEOUT,
            echo_interval: None,
            sign_on: true,
            max_in_flight: 8,
            remember_finished: 64,
            ..LinkConfig::default()
        }
    }

    /// One connection, and the acquirer's end of its wire.
    struct Harness {
        ctx: Arc<Context>,
        conn: Connection<u32>,
        t0: Instant,
    }

    impl Harness {
        fn new(cfg: LinkConfig) -> Harness {
            let ctx = Arc::new(Context {
                cfg,
                spec: Arc::new(Spec::builtin("cb2a").unwrap()),
                codec: FramingConfig::default().codec().unwrap(),
                stans: StanAllocator::new(),
            });
            let t0 = Instant::now();
            let conn = Connection::new(Arc::clone(&ctx), t0, UNIX_EPOCH);
            Harness { ctx, conn, t0 }
        }

        /// Connected, signed on (if configured), nothing left to read.
        fn ready(cfg: LinkConfig) -> Harness {
            let mut h = Harness::new(cfg);
            h.conn.handle_connected(h.t0);
            if h.ctx.cfg.sign_on {
                let sign_on = h.sent().pop().unwrap();
                h.conn.handle_frame(h.t0, h.answer(&sign_on, "00"));
            }
            assert_eq!(h.conn.state(), LinkState::Ready);
            h.events();
            h
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn spec(&self) -> &Spec {
            &self.ctx.spec
        }

        /// What the connection wrote, cut into frames and decoded.
        fn sent(&mut self) -> Vec<Message<'static>> {
            let mut wire = BytesMut::new();
            self.conn.poll_transmit(&mut wire);
            let mut out = Vec::new();
            while let Some(frame) = self.ctx.codec.decode_frame(&mut wire).unwrap() {
                match frame {
                    Frame::Message { body, .. } => {
                        out.push(*self.spec().decode_shared(body).unwrap())
                    }
                    Frame::KeepAlive => panic!("keep-alive written"),
                }
            }
            assert!(wire.is_empty());
            out
        }

        /// `msg` as the acquirer sends it: framed, then cut by the codec.
        fn frame(&self, msg: &Message<'_>) -> Frame {
            let mut wire = BytesMut::new();
            let body = self.spec().encode_to_bytes(msg).unwrap();
            self.ctx.codec.encode_message(&body, &mut wire).unwrap();
            self.ctx.codec.decode_frame(&mut wire).unwrap().unwrap()
        }

        /// The acquirer's answer to `req`: its fields, the response MTI,
        /// DE 39 = `rc`.
        fn answer(&self, req: &Message<'_>, rc: &str) -> Frame {
            let mut m = req.clone();
            m.set_mti(req.mti().response().unwrap());
            self.spec().set_text(&mut m, 39, rc).unwrap();
            self.frame(&m)
        }

        fn auth(&self, stan: u32) -> Message<'static> {
            let s = self.spec();
            let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
            s.set_text(&mut m, 2, "4761739001010119").unwrap();
            s.set_text(&mut m, 4, &format!("{:012}", 100 * stan))
                .unwrap();
            s.set_text(&mut m, 11, &format!("{stan:06}")).unwrap();
            s.set_text(&mut m, 41, "TERM0001").unwrap();
            m
        }

        /// Submits the authorization numbered `stan` with token `stan`.
        fn submit(&mut self, at: Instant, stan: u32) -> Result<(), SubmitError<u32>> {
            let req = self.ctx.encode_request(&self.auth(stan)).unwrap();
            self.conn.submit(at, req, stan)
        }

        /// The events so far, as short strings.
        fn events(&mut self) -> Vec<String> {
            let events: Vec<Event<u32>> = std::iter::from_fn(|| self.conn.poll_event()).collect();
            events
                .into_iter()
                .map(|e| match e {
                    Event::Answered { token, response } => {
                        let rc = self.spec().text(response.message(), 39).unwrap();
                        format!("answered {token} {rc}")
                    }
                    Event::Failed { token, failure } => format!("failed {token} {failure:?}"),
                    Event::Stray(s) => format!("stray {:?}", s.kind),
                    Event::StateChanged(s) => format!("state {s:?}"),
                    Event::Down(r) => format!("down {r:?}"),
                })
                .collect()
        }

        fn text(&self, msg: &Message<'_>, n: u16) -> String {
            self.spec().text(msg, n).unwrap().into_owned()
        }
    }

    #[test]
    fn sign_on_accepted() {
        let mut h = Harness::new(cfg());
        assert_eq!(h.conn.state(), LinkState::Connecting);
        h.conn.handle_connected(h.t0);
        assert_eq!(h.events(), ["state SigningOn"]);
        // Not ready yet: callers are refused, nothing queued for them.
        assert_eq!(h.submit(h.t0, 1), Err(SubmitError::NotReady(1)));
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        let sign_on = &sent[0];
        assert_eq!(sign_on.mti(), Mti::NETWORK_REQUEST);
        assert_eq!(h.text(sign_on, 70), NMIC_SIGN_ON);
        assert_eq!(h.text(sign_on, 11), "000001");
        // DE 7 from the wall clock given at creation (the epoch here).
        assert_eq!(h.text(sign_on, 7), "0101000000");
        assert_eq!(h.conn.poll_timeout(), Some(h.t0 + NET_TIMEOUT));
        h.conn.handle_frame(h.at(10), h.answer(sign_on, "00"));
        assert_eq!(h.events(), ["state Ready"]);
        assert_eq!(h.conn.stats().sign_ons, 1);
        assert_eq!(h.conn.poll_timeout(), None);
        // Its STAN went back to the allocator.
        assert_eq!(h.ctx.stans.in_flight(), 0);
        h.submit(h.at(20), 2).unwrap();
    }

    #[test]
    fn sign_on_refused() {
        let mut h = Harness::new(cfg());
        h.conn.handle_connected(h.t0);
        let sign_on = h.sent().pop().unwrap();
        h.conn.handle_frame(h.at(10), h.answer(&sign_on, "91"));
        assert_eq!(
            h.events(),
            [
                "state SigningOn",
                "state Down",
                "down SignOnRefused(Some(\"91\"))"
            ]
        );
        assert_eq!(h.conn.poll_timeout(), None);
    }

    #[test]
    fn sign_on_timed_out() {
        let mut h = Harness::new(cfg());
        h.conn.handle_connected(h.t0);
        h.sent();
        h.events();
        h.conn.handle_timeout(h.at(4_999));
        assert_eq!(h.events(), Vec::<String>::new());
        h.conn.handle_timeout(h.t0 + NET_TIMEOUT);
        assert_eq!(h.events(), ["state Down", "down SignOnTimeout"]);
        // A late answer to a closed connection changes nothing.
        assert!(h.sent().is_empty());
    }

    #[test]
    fn without_sign_on_ready_at_once() {
        let mut h = Harness::new(LinkConfig {
            sign_on: false,
            ..cfg()
        });
        h.conn.handle_connected(h.t0);
        assert_eq!(h.events(), ["state Ready"]);
        assert!(h.sent().is_empty());
    }

    #[test]
    fn echo_when_idle_then_echo_timeout() {
        let mut h = Harness::ready(LinkConfig {
            echo_interval: Some(Duration::from_secs(30)),
            ..cfg()
        });
        assert_eq!(h.conn.poll_timeout(), Some(h.at(30_000)));
        // Traffic received (a keep-alive counts) moves the echo on.
        h.conn.handle_frame(h.at(10_000), Frame::KeepAlive);
        assert_eq!(h.conn.stats().keep_alives, 1);
        assert_eq!(h.conn.poll_timeout(), Some(h.at(40_000)));
        h.conn.handle_timeout(h.at(39_999));
        assert!(h.sent().is_empty());
        h.conn.handle_timeout(h.at(40_000));
        let echo = h.sent().pop().unwrap();
        assert_eq!(echo.mti(), Mti::NETWORK_REQUEST);
        assert_eq!(h.text(&echo, 70), NMIC_ECHO);
        assert_eq!(h.conn.stats().echoes_sent, 1);
        // One echo at a time, awaited for the network timeout.
        assert_eq!(h.conn.poll_timeout(), Some(h.at(45_000)));
        h.conn.handle_frame(h.at(41_000), h.answer(&echo, "00"));
        assert_eq!(h.events(), Vec::<String>::new());
        assert_eq!(h.conn.poll_timeout(), Some(h.at(71_000)));
        h.conn.handle_timeout(h.at(71_000));
        assert_eq!(h.sent().len(), 1);
        h.conn.handle_timeout(h.at(76_000));
        assert_eq!(h.events(), ["state Down", "down EchoTimeout"]);
    }

    #[test]
    fn answers_the_acquirers_0800() {
        let mut h = Harness::ready(cfg());
        let s = h.spec();
        let mut req = Message::new(Mti::NETWORK_REQUEST);
        s.set_text(&mut req, 11, "424242").unwrap();
        s.set_text(&mut req, 70, NMIC_ECHO).unwrap();
        let frame = h.frame(&req);
        h.conn.handle_frame(h.at(5), frame);
        assert_eq!(h.events(), Vec::<String>::new());
        let answer = h.sent().pop().unwrap();
        assert_eq!(answer.mti(), Mti::NETWORK_RESPONSE);
        assert_eq!(h.text(&answer, 39), "00");
        assert_eq!(h.text(&answer, 11), "424242");
        assert_eq!(h.text(&answer, 70), NMIC_ECHO);
        assert_eq!(h.conn.stats().network_answered, 1);
    }

    #[test]
    fn out_of_order_responses_matched() {
        let mut h = Harness::ready(cfg());
        for stan in [11, 12, 13] {
            h.submit(h.at(1), stan).unwrap();
        }
        assert_eq!(h.conn.in_flight(), 3);
        let sent = h.sent();
        assert_eq!(sent.len(), 3);
        for (i, rc) in [(2, "00"), (0, "05"), (1, "51")] {
            let frame = h.answer(&sent[i], rc);
            h.conn.handle_frame(h.at(2), frame);
        }
        assert_eq!(
            h.events(),
            ["answered 13 00", "answered 11 05", "answered 12 51"]
        );
        assert_eq!(h.conn.in_flight(), 0);
    }

    #[test]
    fn the_response_is_decoded_once_and_shares_the_frame() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 7).unwrap();
        let req = h.sent().pop().unwrap();
        let frame = h.answer(&req, "00");
        let Frame::Message { body, .. } = &frame else {
            unreachable!()
        };
        let at = body.as_ptr();
        h.conn.handle_frame(h.at(2), frame);
        match h.conn.poll_event() {
            Some(Event::Answered { token: 7, response }) => {
                assert_eq!(response.body().as_ptr(), at);
                let m = response.message();
                assert_eq!(m.shared_frame().unwrap().as_ptr(), at);
                assert_eq!(h.text(m, 4), "000000000700");
                assert!(!format!("{response:?}").contains("4761739001010119"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeout_then_late_answer_is_a_stray_with_its_frame() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(100), 5).unwrap();
        let req = h.sent().pop().unwrap();
        assert_eq!(h.conn.poll_timeout(), Some(h.at(100) + REQ_TIMEOUT));
        h.conn.handle_timeout(h.at(100) + REQ_TIMEOUT);
        assert_eq!(h.events(), ["failed 5 Timeout"]);
        assert!(Failure::Timeout.maybe_delivered());
        let frame = h.answer(&req, "00");
        h.conn.handle_frame(h.at(20_000), frame);
        match h.conn.poll_event() {
            Some(Event::Stray(s)) => {
                assert_eq!(s.kind, UnmatchedKind::Late);
                // The frame is there for a reversal layer to act on.
                let late = h.spec().decode(&s.body).unwrap();
                assert_eq!(h.text(&late, 11), "000005");
                assert_eq!(h.text(&late, 39), "00");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_and_unknown_answers_are_strays() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 21).unwrap();
        let req = h.sent().pop().unwrap();
        h.conn.handle_frame(h.at(2), h.answer(&req, "00"));
        h.conn.handle_frame(h.at(3), h.answer(&req, "00"));
        let never_sent = h.auth(99);
        h.conn.handle_frame(h.at(4), h.answer(&never_sent, "00"));
        assert_eq!(
            h.events(),
            ["answered 21 00", "stray Duplicate", "stray Unknown"]
        );
        assert_eq!(h.conn.state(), LinkState::Ready);
    }

    #[test]
    fn undecodable_frames_and_unsolicited_requests_are_strays() {
        let mut h = Harness::ready(cfg());
        let garbage = Frame::Message {
            header: Bytes::new(),
            body: Bytes::from_static(b"\xFF\xFFgarbage\x00"),
        };
        h.conn.handle_frame(h.at(1), garbage);
        let unsolicited = h.frame(&h.auth(3));
        h.conn.handle_frame(h.at(2), unsolicited);
        assert_eq!(
            h.events(),
            ["stray Undecodable", "stray UnsolicitedRequest"]
        );
        // Neither closes the link nor gets an answer.
        assert_eq!(h.conn.state(), LinkState::Ready);
        assert!(h.sent().is_empty());
    }

    #[test]
    fn connection_lost_fails_in_flight_by_whether_it_left() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        h.submit(h.at(1), 2).unwrap();
        assert_eq!(h.sent().len(), 2);
        // Accepted, never handed to the driver.
        h.submit(h.at(2), 3).unwrap();
        h.conn.handle_closed(h.at(3));
        let mut events = h.events();
        assert_eq!(events.first().map(String::as_str), Some("state Down"));
        assert_eq!(
            events.last().map(String::as_str),
            Some("down ConnectionLost")
        );
        events[1..4].sort();
        assert_eq!(
            events[1..4],
            [
                "failed 1 Disconnected",
                "failed 2 Disconnected",
                "failed 3 NotSent"
            ]
        );
        assert!(Failure::Disconnected.maybe_delivered());
        assert!(!Failure::NotSent.maybe_delivered());
        assert!(matches!(
            LinkError::from(Failure::NotSent),
            LinkError::NoReadyLink
        ));
        // Nothing more once down.
        h.conn.handle_timeout(h.at(60_000));
        assert!(h.events().is_empty() && h.conn.poll_timeout().is_none());
        assert_eq!(h.submit(h.at(4), 4), Err(SubmitError::NotReady(4)));
    }

    #[test]
    fn corrupt_stream_takes_the_link_down() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        h.sent();
        let e = FramingError::FrameTooLarge {
            len: 0xFFFF,
            max: 8192,
        };
        h.conn.handle_corrupt(h.at(2), e);
        let events = h.events();
        assert_eq!(events[..2], ["state Down", "failed 1 Disconnected"]);
        assert!(events[2].starts_with("down CorruptFrame"), "{events:?}");
    }

    #[test]
    fn drain_for_shutdown_finishes_in_flight_then_signs_off() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        let req = h.sent().pop().unwrap();
        h.conn.begin_drain(h.at(2), DrainReason::Shutdown);
        assert_eq!(h.events(), ["state Draining"]);
        assert_eq!(h.submit(h.at(3), 2), Err(SubmitError::NotReady(2)));
        // Nothing goes out while a request is in flight.
        assert!(h.sent().is_empty());
        h.conn.handle_frame(h.at(4), h.answer(&req, "00"));
        assert_eq!(h.events(), ["answered 1 00"]);
        let sign_off = h.sent().pop().unwrap();
        assert_eq!(sign_off.mti(), Mti::NETWORK_REQUEST);
        assert_eq!(h.text(&sign_off, 70), NMIC_SIGN_OFF);
        assert_eq!(h.conn.poll_timeout(), Some(h.at(4) + NET_TIMEOUT));
        h.conn.handle_frame(h.at(5), h.answer(&sign_off, "00"));
        assert_eq!(h.events(), ["state Down", "down Shutdown"]);
    }

    #[test]
    fn unanswered_sign_off_ends_the_drain_at_the_network_timeout() {
        let mut h = Harness::ready(cfg());
        h.conn.begin_drain(h.at(1), DrainReason::Shutdown);
        let sign_off = h.sent().pop().unwrap();
        assert_eq!(h.text(&sign_off, 70), NMIC_SIGN_OFF);
        h.conn.handle_timeout(h.at(1) + NET_TIMEOUT);
        assert_eq!(
            h.events(),
            ["state Draining", "state Down", "down Shutdown"]
        );
    }

    #[test]
    fn in_flight_requests_time_out_during_a_drain() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(0), 1).unwrap();
        h.sent();
        h.conn.begin_drain(h.at(1), DrainReason::Shutdown);
        h.conn.handle_timeout(h.at(0) + REQ_TIMEOUT);
        assert_eq!(h.events(), ["state Draining", "failed 1 Timeout"]);
        let sign_off = h.sent().pop().unwrap();
        assert_eq!(h.text(&sign_off, 70), NMIC_SIGN_OFF);
    }

    #[test]
    fn drain_for_failback() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        let req = h.sent().pop().unwrap();
        h.conn.begin_drain(h.at(2), DrainReason::Failback);
        h.conn.handle_frame(h.at(3), h.answer(&req, "00"));
        let sign_off = h.sent().pop().unwrap();
        assert_eq!(h.text(&sign_off, 70), NMIC_SIGN_OFF);
        h.conn.handle_frame(h.at(4), h.answer(&sign_off, "00"));
        assert_eq!(
            h.events(),
            [
                "state Draining",
                "answered 1 00",
                "state Down",
                "down Failback"
            ]
        );

        // A shutdown during a failback drain wins.
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        let req = h.sent().pop().unwrap();
        h.conn.begin_drain(h.at(2), DrainReason::Failback);
        h.conn.begin_drain(h.at(3), DrainReason::Shutdown);
        h.conn.handle_frame(h.at(4), h.answer(&req, "00"));
        let sign_off = h.sent().pop().unwrap();
        h.conn.handle_frame(h.at(5), h.answer(&sign_off, "00"));
        assert_eq!(h.events().last().unwrap(), "down Shutdown");
    }

    #[test]
    fn without_sign_on_a_drain_ends_without_sign_off() {
        let mut h = Harness::ready(LinkConfig {
            sign_on: false,
            ..cfg()
        });
        h.submit(h.at(1), 1).unwrap();
        let req = h.sent().pop().unwrap();
        h.conn.begin_drain(h.at(2), DrainReason::Failback);
        h.conn.handle_frame(h.at(3), h.answer(&req, "00"));
        assert!(h.sent().is_empty());
        assert_eq!(
            h.events(),
            [
                "state Draining",
                "answered 1 00",
                "state Down",
                "down Failback"
            ]
        );
    }

    #[test]
    fn drain_before_ready_is_down_at_once() {
        let mut h = Harness::new(cfg());
        h.conn.handle_connected(h.t0);
        h.conn.begin_drain(h.at(1), DrainReason::Shutdown);
        assert_eq!(
            h.events(),
            ["state SigningOn", "state Down", "down Shutdown"]
        );
    }

    #[test]
    fn busy_when_full() {
        let mut h = Harness::ready(LinkConfig {
            max_in_flight: 2,
            ..cfg()
        });
        h.submit(h.at(1), 1).unwrap();
        h.submit(h.at(1), 2).unwrap();
        assert!(!h.conn.can_submit());
        assert_eq!(h.submit(h.at(1), 3), Err(SubmitError::Busy(3)));
        assert!(matches!(SubmitError::Busy(3).link_error(), LinkError::Busy));
        let sent = h.sent();
        assert_eq!(sent.len(), 2);
        h.conn.handle_frame(h.at(2), h.answer(&sent[0], "00"));
        assert!(h.conn.can_submit());
        h.submit(h.at(3), 3).unwrap();
    }

    #[test]
    fn duplicate_key_in_flight_is_refused() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 4).unwrap();
        let req = h.ctx.encode_request(&h.auth(4)).unwrap();
        assert_eq!(
            h.conn.submit(h.at(1), req.clone(), 40),
            Err(SubmitError::DuplicateKey(40))
        );
        // Only one copy went out; once answered the key is free again.
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        h.conn.handle_frame(h.at(2), h.answer(&sent[0], "00"));
        h.conn.submit(h.at(3), req, 41).unwrap();
    }

    #[test]
    fn poll_transmit_hands_over_queued_bytes_without_copy_when_empty() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        let queued = h.conn.queued_bytes();
        assert!(queued > 0);
        let mut buf = BytesMut::new();
        assert_eq!(h.conn.poll_transmit(&mut buf), queued);
        assert_eq!(h.conn.queued_bytes(), 0);
        // A partly written buffer is appended to.
        h.submit(h.at(1), 2).unwrap();
        let before = buf.len();
        h.conn.poll_transmit(&mut buf);
        assert_eq!(buf.len(), before + queued);
    }

    /// No input to `handle_frame` panics: random bodies, and every prefix
    /// and one-byte corruption of a real response.
    #[test]
    fn arbitrary_frames_never_panic() {
        let mut h = Harness::ready(cfg());
        h.submit(h.at(1), 1).unwrap();
        let req = h.sent().pop().unwrap();
        let Frame::Message { body, .. } = h.answer(&req, "00") else {
            unreachable!()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(8583);
        for i in 0..body.len() {
            let cut = body.slice(..i);
            h.conn.handle_frame(
                h.at(2),
                Frame::Message {
                    header: Bytes::new(),
                    body: cut,
                },
            );
            let mut bent = body.to_vec();
            bent[i] ^= 1 << rng.gen_range(0..8);
            let bent = Bytes::from(bent);
            h.conn.handle_frame(
                h.at(2),
                Frame::Message {
                    header: Bytes::new(),
                    body: bent,
                },
            );
        }
        for _ in 0..2_000 {
            let len = rng.gen_range(0..64);
            let random: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            h.conn.handle_frame(
                h.at(3),
                Frame::Message {
                    header: Bytes::new(),
                    body: Bytes::from(random),
                },
            );
        }
        h.events();
        h.sent();
        assert!(matches!(h.conn.state(), LinkState::Ready | LinkState::Down));
    }

    #[test]
    fn de7_format() {
        // 2024-02-29T13:45:07Z
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        assert_eq!(transmission_datetime(t), "0229134507");
        assert_eq!(transmission_datetime(UNIX_EPOCH), "0101000000");
    }
}
