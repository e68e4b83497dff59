//! Authorization domain <-> ISO 8583, per acquirer dialect, from a mapping
//! file (`specs/*.mapping.toml`). The file says which field or sub-field
//! carries each domain value, for the authorization request (`[request]`)
//! and its reversal (`[reversal]`); this module only interprets it, so
//! adding an acquirer is a dialect file and a mapping file, not code.
//!
//! ```text
//!   "47.02" = { from = "cryptogram" }      field 47, TLV tag labelled "02"
//!   "60.8"  = { from = "eci", default = "07" }   fixed part "8" of field 60
//!   "22"    = { from = "pan_entry_mode", map = { OEMPAY = "812", WALLET = "812" } }
//!   "25"    = { constant = "59" }
//!   "90"    = { from = "original_data_elements" }          (reversal only)
//! ```
//!
//! A mapping is validated once against its dialect ([`Mapping::load`]):
//! unknown keys, unknown domain values, values a message kind does not
//! have (no cryptogram in a reversal: it is never kept), sub-fields the
//! dialect does not define and incomplete `map`s are refused with the key
//! named, then a sample of each message in each mode must encode. Building
//! a message is then pure: no I/O, no clock (the time is passed in).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::domain::{
    AuthorizationRequest, CardBrand, HolderAuthentProgram, OrderChannel, PanEntryMode,
    ReversalReason, ReversalRequest, ThreeDsStatus, Wallet,
};
use crate::civil::transmission_datetime;
use crate::iso8583::{Class, DataEncoding, Message, Mti, Spec, SubValue, Subfields, ValueError};

/// Mapping files shipped with the crate, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("cb2a", include_str!("../../specs/cb2a.mapping.toml")),
    (
        "iso87visa",
        include_str!("../../specs/iso87visa.mapping.toml"),
    ),
];

/// The messages a mapping describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Reversal,
    Refund,
}

impl MessageKind {
    fn section(self) -> &'static str {
        match self {
            MessageKind::Request => "request",
            MessageKind::Reversal => "reversal",
            MessageKind::Refund => "refund",
        }
    }
}

/// A domain value a mapping entry can take (`from = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CardNumber,
    ExpiryYymm,
    ExpiryMmyy,
    Amount,
    Currency,
    TransmissionDatetime,
    LocalTime,
    LocalDate,
    Rrn,
    TerminalId,
    AcceptorId,
    MerchantCategoryCode,
    AcquirerId,
    PanEntryMode,
    OrderChannel,
    Wallet,
    HolderAuthentProgram,
    CardBrand,
    Eci,
    Cryptogram,
    TokenRequestorId,
    TransactionReference,
    OriginalMti,
    OriginalStan,
    OriginalTransmissionDatetime,
    OriginalDataElements,
    ReasonCode,
    ReplacementAmounts,
    ThreeDsVersion,
    ThreeDsDsTransactionId,
    ThreeDsStatus,
}

impl Source {
    const NAMES: [(&'static str, Source); 31] = [
        ("card_number", Source::CardNumber),
        ("expiry_yymm", Source::ExpiryYymm),
        ("expiry_mmyy", Source::ExpiryMmyy),
        ("amount", Source::Amount),
        ("currency", Source::Currency),
        ("transmission_datetime", Source::TransmissionDatetime),
        ("local_time", Source::LocalTime),
        ("local_date", Source::LocalDate),
        ("rrn", Source::Rrn),
        ("terminal_id", Source::TerminalId),
        ("acceptor_id", Source::AcceptorId),
        ("merchant_category_code", Source::MerchantCategoryCode),
        ("acquirer_id", Source::AcquirerId),
        ("pan_entry_mode", Source::PanEntryMode),
        ("order_channel", Source::OrderChannel),
        ("wallet", Source::Wallet),
        ("holder_authent_program", Source::HolderAuthentProgram),
        ("card_brand", Source::CardBrand),
        ("eci", Source::Eci),
        ("cryptogram", Source::Cryptogram),
        ("token_requestor_id", Source::TokenRequestorId),
        ("transaction_reference", Source::TransactionReference),
        ("original_mti", Source::OriginalMti),
        ("original_stan", Source::OriginalStan),
        (
            "original_transmission_datetime",
            Source::OriginalTransmissionDatetime,
        ),
        ("original_data_elements", Source::OriginalDataElements),
        ("reason_code", Source::ReasonCode),
        ("replacement_amounts", Source::ReplacementAmounts),
        ("threeds_version", Source::ThreeDsVersion),
        ("threeds_ds_transaction_id", Source::ThreeDsDsTransactionId),
        ("threeds_status", Source::ThreeDsStatus),
    ];

    fn parse(s: &str) -> Option<Source> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    /// Whether a message of `kind` has this value. The authentication
    /// data (ECI, cryptogram, program) is never kept after the
    /// authorization, so a reversal cannot carry it; the original's
    /// identifiers exist only in a reversal.
    fn available_in(self, kind: MessageKind) -> bool {
        use Source::*;
        match self {
            Eci
            | Cryptogram
            | HolderAuthentProgram
            | ThreeDsVersion
            | ThreeDsDsTransactionId
            | ThreeDsStatus => kind == MessageKind::Request,
            OriginalMti | OriginalStan | OriginalTransmissionDatetime | OriginalDataElements => {
                kind != MessageKind::Request
            }
            ReasonCode | ReplacementAmounts => kind == MessageKind::Reversal,
            _ => true,
        }
    }

    /// The wire names of an enumerated value; `None` for free values.
    fn variants(self) -> Option<Vec<&'static str>> {
        Some(match self {
            Source::PanEntryMode => PanEntryMode::ALL.iter().map(|v| v.as_str()).collect(),
            Source::OrderChannel => OrderChannel::ALL.iter().map(|v| v.as_str()).collect(),
            Source::Wallet => Wallet::ALL.iter().map(|v| v.as_str()).collect(),
            Source::HolderAuthentProgram => HolderAuthentProgram::ALL
                .iter()
                .map(|v| v.as_str())
                .collect(),
            Source::CardBrand => CardBrand::ALL.iter().map(|v| v.as_str()).collect(),
            Source::ReasonCode => ReversalReason::ALL.iter().map(|v| v.as_str()).collect(),
            Source::ThreeDsStatus => ThreeDsStatus::ALL.iter().map(|v| v.as_str()).collect(),
            _ => return None,
        })
    }
}

/// Why a mapping file is refused. Messages name the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    #[error("mapping syntax: {0}")]
    Syntax(String),
    #[error("mapping {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("unknown built-in mapping {0:?}")]
    UnknownBuiltin(String),
    #[error("mapping is for dialect {mapping:?}, the acquirer uses {dialect:?}")]
    DialectMismatch { mapping: String, dialect: String },
    #[error("{section}.mti: {value:?} is not a four-digit MTI")]
    Mti {
        section: &'static str,
        value: String,
    },
    #[error("{section}.fields.{key:?}: {reason}")]
    Entry {
        section: &'static str,
        key: String,
        reason: String,
    },
    #[error("response.{key}: {reason}")]
    Response { key: &'static str, reason: String },
    #[error("sample {mode} {section} does not encode: {error}")]
    Sample {
        section: &'static str,
        mode: &'static str,
        error: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    dialect: String,
    request: RawMessage,
    reversal: RawMessage,
    /// Optional: without it, refunds to this acquirer are refused.
    refund: Option<RawMessage>,
    response: RawResponse,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    mti: String,
    /// The MTI of a retransmission (default: the MTI's repeat, 0400 ->
    /// 0401).
    repeat_mti: Option<String>,
    fields: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    from: Option<String>,
    constant: Option<String>,
    map: Option<BTreeMap<String, String>>,
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    response_code: String,
    authorisation_id: Option<String>,
}

#[derive(Debug, Clone)]
enum Rule {
    Constant(String),
    From {
        source: Source,
        /// For enumerated sources: wire name -> value, covering every name.
        map: Vec<(&'static str, String)>,
        default: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    rule: Rule,
    /// The target holds binary data: values are written as hex.
    binary: bool,
    /// Fixed numeric target: amounts are zero-padded to this many digits.
    pad_to: Option<usize>,
}

#[derive(Debug, Clone)]
struct Container {
    field: u16,
    /// (sub-field key, dialect order, entry), sorted by dialect order.
    entries: Vec<(String, usize, Entry)>,
}

/// One message of a mapping: its MTI and where each value goes.
#[derive(Debug, Clone)]
struct MessageMap {
    mti: Mti,
    repeat_mti: Mti,
    fields: Vec<(u16, Entry)>,
    containers: Vec<Container>,
}

/// A validated mapping for one dialect.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub dialect: String,
    request: MessageMap,
    reversal: MessageMap,
    refund: Option<MessageMap>,
    response_code: u16,
    authorisation_id: Option<u16>,
}

/// Values of a request that come from the merchant's contract with the
/// acquirer and from the switch, not from the gateway request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    pub terminal_id: &'a str,
    pub acceptor_id: &'a str,
    pub merchant_category_code: &'a str,
    pub acquirer_id: &'a str,
    /// Retrieval reference number, 12 characters.
    pub rrn: &'a str,
    pub now: SystemTime,
}

/// What the acquirer answered, read with the mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquirerAnswer {
    pub response_code: Option<String>,
    pub authorisation_id: Option<String>,
}

/// A value ready to be written: borrowed, or owned in a zeroizing buffer
/// (it may be card data).
enum Val<'a> {
    B(&'a str),
    O(Zeroizing<String>),
}

impl std::ops::Deref for Val<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Val::B(s) => s,
            Val::O(s) => s,
        }
    }
}

/// Where a message's values come from.
trait Values {
    /// A free value, as text for a target of `pad_to` digits (amounts) or
    /// binary (`binary`: the cryptogram as raw bytes in hex).
    fn free(&self, s: Source, pad_to: Option<usize>, binary: bool) -> Option<Val<'_>>;
    /// An enumerated value's wire name.
    fn variant(&self, s: Source) -> Option<&'static str>;
}

/// Date and time strings of one message, computed once.
struct Clock {
    /// MMDDhhmmss, UTC.
    datetime: String,
}

impl Clock {
    fn of(now: SystemTime) -> Clock {
        Clock {
            datetime: transmission_datetime(now),
        }
    }
}

fn amount_text(amount: u64, pad_to: Option<usize>) -> Val<'static> {
    Val::O(Zeroizing::new(match pad_to {
        Some(w) => format!("{amount:0w$}"),
        None => amount.to_string(),
    }))
}

struct RequestValues<'a> {
    req: &'a AuthorizationRequest,
    ctx: &'a RequestContext<'a>,
    clock: Clock,
}

impl Values for RequestValues<'_> {
    fn free(&self, s: Source, pad_to: Option<usize>, binary: bool) -> Option<Val<'_>> {
        let req = self.req;
        let auth = req.authentication.as_ref();
        let three_ds = auth.and_then(|a| a.three_ds.as_ref());
        match s {
            Source::CardNumber => Some(Val::B(req.card_number.reveal())),
            Source::ExpiryYymm => Some(Val::O(Zeroizing::new(req.expiry.yymm()))),
            Source::ExpiryMmyy => Some(Val::O(Zeroizing::new(req.expiry.mmyy()))),
            Source::Amount => Some(amount_text(req.amount, pad_to)),
            Source::Currency => Some(Val::B(req.currency.code())),
            Source::TransmissionDatetime => Some(Val::B(&self.clock.datetime)),
            Source::LocalTime => self.clock.datetime.get(4..10).map(Val::B),
            Source::LocalDate => self.clock.datetime.get(..4).map(Val::B),
            Source::Rrn => Some(Val::B(self.ctx.rrn)),
            Source::TerminalId => Some(Val::B(self.ctx.terminal_id)),
            Source::AcceptorId => Some(Val::B(self.ctx.acceptor_id)),
            Source::MerchantCategoryCode => Some(Val::B(self.ctx.merchant_category_code)),
            Source::AcquirerId => Some(Val::B(self.ctx.acquirer_id)),
            Source::Eci => auth
                .and_then(|a| a.eci.as_ref())
                .map(|e| Val::B(e.as_str())),
            Source::Cryptogram => auth.and_then(|a| a.cryptogram.as_ref()).map(|c| {
                let mut s = Zeroizing::new(String::with_capacity(40));
                if binary {
                    for b in c.reveal() {
                        let _ = write!(s, "{b:02X}");
                    }
                } else {
                    STANDARD.encode_string(c.reveal(), &mut s);
                }
                Val::O(s)
            }),
            Source::TokenRequestorId => {
                token_requestor_id(req.pan_entry_mode, req.wallet, req.brand)
            }
            Source::TransactionReference => Some(Val::B(&req.transaction_reference)),
            Source::ThreeDsVersion => three_ds.map(|t| Val::B(&t.version)),
            Source::ThreeDsDsTransactionId => three_ds
                .and_then(|t| t.ds_transaction_id.as_deref())
                .map(Val::B),
            _ => None,
        }
    }

    fn variant(&self, s: Source) -> Option<&'static str> {
        let req = self.req;
        match s {
            Source::PanEntryMode => Some(req.pan_entry_mode.as_str()),
            Source::OrderChannel => Some(req.order_channel.as_str()),
            Source::Wallet => req.wallet.map(Wallet::as_str),
            Source::HolderAuthentProgram => req.authentication.as_ref().map(|a| a.program.as_str()),
            Source::CardBrand => Some(req.brand.as_str()),
            Source::ThreeDsStatus => req
                .authentication
                .as_ref()
                .and_then(|a| a.three_ds.as_ref())
                .map(|t| t.status.as_str()),
            _ => None,
        }
    }
}

/// Google Pay's token requestor id, for a wallet network token.
fn token_requestor_id(
    mode: PanEntryMode,
    wallet: Option<Wallet>,
    brand: CardBrand,
) -> Option<Val<'static>> {
    (mode == PanEntryMode::OemPay && wallet == Some(Wallet::GooglePay))
        .then(|| brand.google_pay_token_requestor_id())
        .flatten()
        .map(Val::B)
}

struct ReversalValues<'a> {
    rev: &'a ReversalRequest,
    clock: Clock,
    original: Clock,
}

impl Values for ReversalValues<'_> {
    fn free(&self, s: Source, pad_to: Option<usize>, _binary: bool) -> Option<Val<'_>> {
        let r = self.rev;
        match s {
            Source::CardNumber => Some(Val::B(r.card_number.reveal())),
            Source::ExpiryYymm => Some(Val::O(Zeroizing::new(r.expiry.yymm()))),
            Source::ExpiryMmyy => Some(Val::O(Zeroizing::new(r.expiry.mmyy()))),
            Source::Amount => Some(amount_text(r.amount, pad_to)),
            Source::Currency => Some(Val::B(r.currency.code())),
            Source::TransmissionDatetime => Some(Val::B(&self.clock.datetime)),
            Source::LocalTime => self.clock.datetime.get(4..10).map(Val::B),
            Source::LocalDate => self.clock.datetime.get(..4).map(Val::B),
            Source::Rrn => Some(Val::B(&r.rrn)),
            Source::TerminalId => Some(Val::B(&r.terminal_id)),
            Source::AcceptorId => Some(Val::B(&r.acceptor_id)),
            Source::MerchantCategoryCode => Some(Val::B(&r.merchant_category_code)),
            Source::AcquirerId => Some(Val::B(&r.acquirer_id)),
            Source::TokenRequestorId => token_requestor_id(r.pan_entry_mode, r.wallet, r.brand),
            Source::TransactionReference => Some(Val::B(&r.transaction_reference)),
            Source::OriginalMti => Some(Val::B(r.original_mti.as_str())),
            Source::OriginalStan => Some(Val::B(&r.original_stan)),
            Source::OriginalTransmissionDatetime => Some(Val::B(&self.original.datetime)),
            // ISO 8583:1987 DE 95: the actual transaction and settlement
            // amounts (12 digits each), then the two fees (sign and 8
            // digits each, none here): 42 characters.
            Source::ReplacementAmounts => r
                .replacement
                .map(|a| Val::O(Zeroizing::new(format!("{a:012}{a:012}C00000000C00000000")))),
            // ISO 8583:1987 DE 90: original MTI (4), STAN (6),
            // transmission date and time (10), acquiring institution (11)
            // and forwarding institution (11), zero-filled.
            Source::OriginalDataElements => Some(Val::O(Zeroizing::new(format!(
                "{}{:0>6}{}{:0>11}{:0>11}",
                r.original_mti, r.original_stan, self.original.datetime, r.acquirer_id, ""
            )))),
            _ => None,
        }
    }

    fn variant(&self, s: Source) -> Option<&'static str> {
        let r = self.rev;
        match s {
            Source::PanEntryMode => Some(r.pan_entry_mode.as_str()),
            Source::OrderChannel => Some(r.order_channel.as_str()),
            Source::Wallet => r.wallet.map(Wallet::as_str),
            Source::CardBrand => Some(r.brand.as_str()),
            Source::ReasonCode => Some(r.reason.as_str()),
            _ => None,
        }
    }
}

impl Mapping {
    /// A built-in mapping name (`cb2a`) or a path to a mapping file,
    /// validated against `spec`.
    pub fn load(name_or_path: &str, spec: &Spec) -> Result<Mapping, MappingError> {
        let name = name_or_path
            .strip_suffix(".mapping.toml")
            .unwrap_or(name_or_path);
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Mapping::from_toml_str(text, spec),
            None if name_or_path.ends_with(".toml") || name_or_path.contains('/') => {
                let text = std::fs::read_to_string(name_or_path).map_err(|e| MappingError::Io {
                    path: name_or_path.into(),
                    reason: e.to_string(),
                })?;
                Mapping::from_toml_str(&text, spec)
            }
            None => Err(MappingError::UnknownBuiltin(name_or_path.into())),
        }
    }

    /// Parses and validates mapping text against `spec`.
    pub fn from_toml_str(text: &str, spec: &Spec) -> Result<Mapping, MappingError> {
        let raw: RawMapping =
            toml::from_str(text).map_err(|e| MappingError::Syntax(e.to_string()))?;
        if raw.dialect != spec.name {
            return Err(MappingError::DialectMismatch {
                mapping: raw.dialect,
                dialect: spec.name.clone(),
            });
        }
        let request = message_map(raw.request, MessageKind::Request, spec)?;
        let reversal = message_map(raw.reversal, MessageKind::Reversal, spec)?;
        let refund = raw
            .refund
            .map(|r| message_map(r, MessageKind::Refund, spec))
            .transpose()?;
        let field_of = |key: &'static str, text: &str| -> Result<u16, MappingError> {
            let n: u16 = text.parse().map_err(|_| MappingError::Response {
                key,
                reason: "not a field number".into(),
            })?;
            spec.field(n).map(|_| n).ok_or(MappingError::Response {
                key,
                reason: format!("field {n} is not in the dialect"),
            })
        };
        let mapping = Mapping {
            dialect: raw.dialect,
            request,
            reversal,
            refund,
            response_code: field_of("response_code", &raw.response.response_code)?,
            authorisation_id: raw
                .response
                .authorisation_id
                .as_deref()
                .map(|t| field_of("authorisation_id", t))
                .transpose()?,
        };
        mapping.check_samples(spec)?;
        Ok(mapping)
    }

    /// Builds the acquirer request for `req`. DE 11 is left to the caller.
    pub fn build_request(
        &self,
        spec: &Spec,
        req: &AuthorizationRequest,
        ctx: &RequestContext<'_>,
    ) -> Result<Message<'static>, ValueError> {
        let values = RequestValues {
            req,
            ctx,
            clock: Clock::of(ctx.now),
        };
        build(&self.request, self.request.mti, spec, &values)
    }

    /// Builds the reversal of `rev` at `now`: the first one, or a
    /// retransmission (`repeat`: the repeat MTI, 0401). DE 11 (the
    /// reversal's own STAN, the same for every retransmission) is left to
    /// the caller.
    pub fn build_reversal(
        &self,
        spec: &Spec,
        rev: &ReversalRequest,
        now: SystemTime,
        repeat: bool,
    ) -> Result<Message<'static>, ValueError> {
        let values = ReversalValues {
            rev,
            clock: Clock::of(now),
            original: Clock::of(rev.original_sent),
        };
        let mti = if repeat {
            self.reversal.repeat_mti
        } else {
            self.reversal.mti
        };
        build(&self.reversal, mti, spec, &values)
    }

    /// Builds the refund of `rev.amount` (of the authorization `rev`
    /// describes) at `now`; `None` when the mapping has no `[refund]`.
    pub fn build_refund(
        &self,
        spec: &Spec,
        rev: &ReversalRequest,
        now: SystemTime,
        repeat: bool,
    ) -> Option<Result<Message<'static>, ValueError>> {
        let map = self.refund.as_ref()?;
        let values = ReversalValues {
            rev,
            clock: Clock::of(now),
            original: Clock::of(rev.original_sent),
        };
        let mti = if repeat { map.repeat_mti } else { map.mti };
        Some(build(map, mti, spec, &values))
    }

    /// The field of a response that carries its code (`[response]
    /// response_code`), network-management answers included.
    pub fn response_code_field(&self) -> u16 {
        self.response_code
    }

    /// Whether refunds can be sent (the mapping has a `[refund]`).
    pub fn has_refund(&self) -> bool {
        self.refund.is_some()
    }

    /// The MTIs of the reversal: first, and repeat.
    pub fn reversal_mtis(&self) -> (Mti, Mti) {
        (self.reversal.mti, self.reversal.repeat_mti)
    }

    /// Reads the acquirer's answer (to a request or a reversal).
    pub fn read_response(&self, spec: &Spec, msg: &Message<'_>) -> AcquirerAnswer {
        AcquirerAnswer {
            response_code: spec
                .text(msg, self.response_code)
                .map(|t| t.trim().to_owned()),
            authorisation_id: self
                .authorisation_id
                .and_then(|n| spec.text(msg, n))
                .map(|t| t.trim().to_owned()),
        }
    }

    /// Where a domain value goes in the request: `"2"`, `"47.02"`, ...
    /// (for tests and docs).
    pub fn placement(&self, source_name: &str) -> Option<&str> {
        placement(&self.request, source_name)
    }

    /// Where a domain value goes in the reversal.
    pub fn reversal_placement(&self, source_name: &str) -> Option<&str> {
        placement(&self.reversal, source_name)
    }

    /// Every optional value present, in each mode; then every optional
    /// value absent; and a reversal for every reason. Each must encode.
    fn check_samples(&self, spec: &Spec) -> Result<(), MappingError> {
        let ctx = RequestContext {
            terminal_id: "TERM0001",
            acceptor_id: "ACCEPTOR0000001",
            merchant_category_code: "5999",
            acquirer_id: "12345678901",
            rrn: "000000000001",
            now: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        };
        let sample =
            |section: &'static str, mode: &'static str, r: Result<Message<'_>, ValueError>| {
                let err = |error: String| MappingError::Sample {
                    section,
                    mode,
                    error,
                };
                let msg = r.map_err(|e| err(e.to_string()))?;
                spec.encode_to_bytes(&msg)
                    .map(|_| ())
                    .map_err(|e| err(e.to_string()))
            };
        for (mode, req) in sample_requests() {
            sample("request", mode, self.build_request(spec, &req, &ctx))?;
            for reason in ReversalReason::ALL {
                let rev = ReversalRequest::of_request(&req, &ctx, "000042", reason);
                sample(
                    "reversal",
                    mode,
                    self.build_reversal(spec, &rev, ctx.now, false),
                )?;
                sample(
                    "reversal",
                    mode,
                    self.build_reversal(spec, &rev, ctx.now, true),
                )?;
            }
            let mut partial =
                ReversalRequest::of_request(&req, &ctx, "000042", ReversalReason::Cancellation);
            partial.replacement = Some(req.amount / 2);
            sample(
                "reversal",
                mode,
                self.build_reversal(spec, &partial, ctx.now, false),
            )?;
            for repeat in [false, true] {
                if let Some(r) = self.build_refund(spec, &partial, ctx.now, repeat) {
                    sample("refund", mode, r)?;
                }
            }
        }
        Ok(())
    }
}

fn placement<'m>(m: &'m MessageMap, source_name: &str) -> Option<&'m str> {
    let source = Source::parse(source_name)?;
    let is = |e: &Entry| matches!(e.rule, Rule::From { source: s, .. } if s == source);
    m.fields
        .iter()
        .map(|(_, e)| e)
        .chain(
            m.containers
                .iter()
                .flat_map(|c| c.entries.iter().map(|(_, _, e)| e)),
        )
        .find(|e| is(e))
        .map(|e| e.key.as_str())
}

fn build(
    m: &MessageMap,
    mti: Mti,
    spec: &Spec,
    values: &dyn Values,
) -> Result<Message<'static>, ValueError> {
    // Room for a wallet authorization's fields without reallocating.
    let mut msg = Message::with_data_capacity(mti, 256);
    for (n, entry) in &m.fields {
        if let Some(v) = entry.value(values) {
            spec.set_text(&mut msg, *n, &v)?;
        }
    }
    for c in &m.containers {
        let vals: Vec<(&str, Val<'_>)> = c
            .entries
            .iter()
            .filter_map(|(sub, _, e)| e.value(values).map(|v| (sub.as_str(), v)))
            .collect();
        if vals.is_empty() {
            continue;
        }
        let entries: Vec<(&str, SubValue<'_>)> =
            vals.iter().map(|(k, v)| (*k, SubValue::Text(v))).collect();
        spec.set_subfields(&mut msg, c.field, &entries)?;
    }
    Ok(msg)
}

/// One `[request]` or `[reversal]` section, checked against `spec`.
fn message_map(
    raw: RawMessage,
    kind: MessageKind,
    spec: &Spec,
) -> Result<MessageMap, MappingError> {
    let section = kind.section();
    let mti = Mti::parse(&raw.mti).ok_or(MappingError::Mti {
        section,
        value: raw.mti.clone(),
    })?;
    let repeat_mti = match raw.repeat_mti {
        Some(t) => Mti::parse(&t).ok_or(MappingError::Mti { section, value: t })?,
        None => mti.repeat(),
    };
    let mut fields = Vec::new();
    let mut containers: Vec<Container> = Vec::new();
    for (key, raw_entry) in raw.fields {
        let bad = |reason: String| MappingError::Entry {
            section,
            key: key.clone(),
            reason,
        };
        let (field_text, sub) = match key.split_once('.') {
            Some((f, s)) => (f, Some(s)),
            None => (key.as_str(), None),
        };
        let n: u16 = field_text
            .parse()
            .map_err(|_| bad("not a field number".into()))?;
        if n == 11 {
            return Err(bad("DE 11 (STAN) is set by the switch".into()));
        }
        let fs = spec
            .field(n)
            .ok_or_else(|| bad(format!("field {n} is not in dialect {}", spec.name)))?;
        let rule = rule_of(raw_entry).map_err(&bad)?;
        if let Rule::From { source, .. } = &rule {
            if !source.available_in(kind) {
                return Err(bad(format!("a {section} has no such value")));
            }
        }
        match sub {
            None => {
                if fs.subfields.is_some() {
                    return Err(bad(format!(
                        "field {n} is a sub-field container: map its sub-fields (\"{n}.x\")"
                    )));
                }
                let binary = fs.encoding == DataEncoding::Binary;
                let pad_to = (fs.is_fixed() && fs.class == Class::N).then_some(fs.max);
                fields.push((
                    n,
                    Entry {
                        key: key.clone(),
                        rule,
                        binary,
                        pad_to,
                    },
                ));
            }
            Some(sub) => {
                let subs = fs
                    .subfields
                    .as_deref()
                    .ok_or_else(|| bad(format!("field {n} has no sub-fields in the dialect")))?;
                let (order, binary, pad_to) = sub_target(subs, sub)
                    .ok_or_else(|| bad(format!("sub-field {sub:?} is not defined in field {n}")))?;
                let entry = Entry {
                    key: key.clone(),
                    rule,
                    binary,
                    pad_to,
                };
                match containers.iter_mut().find(|c| c.field == n) {
                    Some(c) => c.entries.push((sub.to_owned(), order, entry)),
                    None => containers.push(Container {
                        field: n,
                        entries: vec![(sub.to_owned(), order, entry)],
                    }),
                }
            }
        }
    }
    for c in &mut containers {
        c.entries.sort_by_key(|(_, order, _)| *order);
    }
    Ok(MessageMap {
        mti,
        repeat_mti,
        fields,
        containers,
    })
}

fn rule_of(raw: RawEntry) -> Result<Rule, String> {
    match (raw.from, raw.constant) {
        (Some(_), Some(_)) => Err("give `from` or `constant`, not both".into()),
        (None, None) => Err("give `from` or `constant`".into()),
        (None, Some(c)) => {
            if raw.map.is_some() || raw.default.is_some() {
                return Err("`map` and `default` go with `from`".into());
            }
            Ok(Rule::Constant(c))
        }
        (Some(from), None) => {
            let source =
                Source::parse(&from).ok_or_else(|| format!("unknown domain value {from:?}"))?;
            let map = match (source.variants(), raw.map) {
                (None, Some(_)) => return Err(format!("{from} takes no `map`")),
                (None, None) => Vec::new(),
                (Some(variants), None) => variants.into_iter().map(|v| (v, v.to_owned())).collect(),
                (Some(variants), Some(mut m)) => {
                    let mut out = Vec::new();
                    for v in variants {
                        let value = m
                            .remove(v)
                            .ok_or_else(|| format!("`map` has no value for {v}"))?;
                        out.push((v, value));
                    }
                    if let Some(k) = m.keys().next() {
                        return Err(format!("`map` key {k:?} is not a value of {from}"));
                    }
                    out
                }
            };
            Ok(Rule::From {
                source,
                map,
                default: raw.default,
            })
        }
    }
}

/// (dialect order, binary target, zero-pad length) of sub-field `key`.
fn sub_target(subs: &Subfields, key: &str) -> Option<(usize, bool, Option<usize>)> {
    match subs {
        Subfields::Tlv(layout) => layout
            .tags
            .iter()
            .position(|(_, ts)| ts.label == key)
            .map(|i| (i, layout.tags[i].1.encoding == DataEncoding::Binary, None)),
        Subfields::Fixed { parts } => parts.iter().position(|(id, _)| id == key).map(|i| {
            let fs = &parts[i].1;
            (
                i,
                fs.encoding == DataEncoding::Binary,
                (fs.class == Class::N).then_some(fs.max),
            )
        }),
        Subfields::Bitmap { fields, .. } => {
            let n: usize = key.parse().ok()?;
            let fs = fields.get(n)?.as_ref()?;
            Some((
                n,
                fs.encoding == DataEncoding::Binary,
                (fs.is_fixed() && fs.class == Class::N).then_some(fs.max),
            ))
        }
        Subfields::BerTlv { .. } => {
            let tag = u32::from_str_radix(key, 16).ok()?;
            Some((tag as usize, true, None))
        }
    }
}

impl Entry {
    fn value<'a>(&'a self, values: &'a dyn Values) -> Option<Val<'a>> {
        let (source, map, default) = match &self.rule {
            Rule::Constant(c) => return Some(Val::B(c)),
            Rule::From {
                source,
                map,
                default,
            } => (*source, map, default),
        };
        let v = if map.is_empty() {
            values.free(source, self.pad_to, self.binary)
        } else {
            values.variant(source).and_then(|name| {
                map.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| Val::B(v.as_str()))
            })
        };
        v.or_else(|| default.as_deref().map(Val::B))
    }
}

/// One request per mode with every optional value present, and a PAN_ONLY
/// one with none, for load-time validation.
fn sample_requests() -> Vec<(&'static str, AuthorizationRequest)> {
    use super::domain::{Authentication, Cryptogram, Currency, Eci, Expiry, Pan};
    let (Some(dpan), Some(pan), Some(cur), Some(exp)) = (
        Pan::new("4895370012003478"),
        Pan::new("5413330089020011"),
        Currency::parse("978"),
        Expiry::new(2030, 12),
    ) else {
        return Vec::new();
    };
    let cryptogram = Cryptogram::from_bytes(&[0xA5; Cryptogram::SCHEME_LEN]);
    let base = AuthorizationRequest {
        merchant_id: "sample".into(),
        amount: 999_999_999_999,
        currency: cur,
        transaction_reference: "SAMPLE0000000000000000000000000000001".into(),
        order_channel: OrderChannel::InApp,
        pan_entry_mode: PanEntryMode::OemPay,
        card_number: dpan,
        expiry: exp,
        brand: CardBrand::Visa,
        wallet: Some(Wallet::GooglePay),
        authentication: Some(Authentication {
            program: HolderAuthentProgram::GooglePay,
            eci: Eci::parse("05"),
            cryptogram: cryptogram.clone(),
            three_ds: None,
        }),
    };
    let wallet_3ds = AuthorizationRequest {
        pan_entry_mode: PanEntryMode::Wallet,
        card_number: pan.clone(),
        brand: CardBrand::Mastercard,
        order_channel: OrderChannel::Internet,
        authentication: Some(Authentication {
            program: HolderAuthentProgram::ThreeDs,
            eci: Eci::parse("02"),
            cryptogram,
            three_ds: None,
        }),
        ..base.clone()
    };
    let bare = AuthorizationRequest {
        pan_entry_mode: PanEntryMode::Wallet,
        card_number: pan,
        brand: CardBrand::Other,
        wallet: None,
        authentication: None,
        amount: 1,
        ..base.clone()
    };
    vec![
        ("OEMPAY", base),
        ("WALLET 3DS", wallet_3ds),
        ("WALLET", bare),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::domain::{Authentication, Cryptogram, Currency, Eci, Expiry, Pan};

    fn spec(name: &str) -> Spec {
        Spec::builtin(name).unwrap()
    }

    fn request() -> AuthorizationRequest {
        AuthorizationRequest {
            merchant_id: "m".into(),
            amount: 1234,
            currency: Currency::parse("978").unwrap(),
            transaction_reference: "ref1".into(),
            order_channel: OrderChannel::Internet,
            pan_entry_mode: PanEntryMode::OemPay,
            card_number: Pan::new("4895370012003478").unwrap(),
            expiry: Expiry::new(2028, 12).unwrap(),
            brand: CardBrand::Visa,
            wallet: Some(Wallet::GooglePay),
            authentication: Some(Authentication {
                program: HolderAuthentProgram::GooglePay,
                eci: Eci::parse("05"),
                cryptogram: Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA="),
                three_ds: None,
            }),
        }
    }

    fn ctx() -> RequestContext<'static> {
        RequestContext {
            terminal_id: "ACQ00001",
            acceptor_id: "MERCHANT0000001",
            merchant_category_code: "5999",
            acquirer_id: "12345678901",
            rrn: "000000000042",
            now: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn cb2a_places_wallet_data_in_de47() {
        let spec = spec("cb2a");
        let m = Mapping::load("cb2a", &spec).unwrap();
        let msg = m.build_request(&spec, &request(), &ctx()).unwrap();
        let wire = spec.encode_to_bytes(&msg).unwrap();
        let d = spec.decode(&wire).unwrap();
        assert_eq!(d.mti(), Mti::AUTHORIZATION_REQUEST);
        assert_eq!(spec.text(&d, 2).unwrap(), "4895370012003478");
        assert_eq!(spec.text(&d, 4).unwrap(), "000000001234");
        assert_eq!(spec.text(&d, 7).unwrap(), "1114221320");
        assert_eq!(spec.text(&d, 12).unwrap(), "221320");
        assert_eq!(spec.text(&d, 13).unwrap(), "1114");
        assert_eq!(spec.text(&d, 14).unwrap(), "2812");
        assert_eq!(spec.text(&d, 22).unwrap(), "812");
        assert_eq!(spec.text(&d, 49).unwrap(), "978");
        assert_eq!(spec.subfield_text(&d, 47, "01").unwrap(), "05");
        let tavv = STANDARD.decode("AgAAAAAABk4DWZ4C28yUQAAAAAA=").unwrap();
        assert_eq!(
            spec.subfield_text(&d, 47, "02").unwrap(),
            hex::encode_upper(tavv)
        );
        assert_eq!(spec.subfield_text(&d, 47, "03").unwrap(), "216");
        assert_eq!(spec.subfield_text(&d, 47, "04").unwrap(), "40010075001");
        assert_eq!(spec.subfield_text(&d, 47, "05").unwrap(), "INTERNET");
        assert!(spec.text(&d, 11).is_none(), "the pool sets the STAN");
        assert_eq!(m.placement("cryptogram"), Some("47.02"));
    }

    #[test]
    fn iso87visa_places_cavv_in_126_and_eci_in_60() {
        let spec = spec("iso87visa");
        let m = Mapping::load("iso87visa", &spec).unwrap();
        let mut req = request();
        req.pan_entry_mode = PanEntryMode::Wallet;
        req.authentication = Some(Authentication {
            program: HolderAuthentProgram::ThreeDs,
            eci: Eci::parse("06"),
            cryptogram: Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA="),
            three_ds: None,
        });
        let msg = m.build_request(&spec, &req, &ctx()).unwrap();
        let wire = spec.encode_to_bytes(&msg).unwrap();
        let d = spec.decode(&wire).unwrap();
        assert_eq!(spec.subfield_text(&d, 60, "8").unwrap(), "06");
        assert_eq!(spec.subfield_text(&d, 126, "9").unwrap().len(), 40);
        assert_eq!(spec.subfield_text(&d, 126, "13").unwrap(), "I");
        assert_eq!(spec.text(&d, 22).unwrap(), "010");
        // No authentication: the ECI default, no cryptogram.
        req.authentication = None;
        let msg = m.build_request(&spec, &req, &ctx()).unwrap();
        assert_eq!(spec.subfield_text(&msg, 60, "8").unwrap(), "07");
        assert!(spec.subfield_text(&msg, 126, "9").is_none());
    }

    #[test]
    fn bad_files_name_the_key() {
        let spec = spec("cb2a");
        let base = "dialect = \"cb2a\"\n[response]\nresponse_code = \"39\"\n[reversal]\nmti = \"0400\"\nfields = {}\n[request]\nmti = \"0100\"\n[request.fields]\n";
        let cases = [
            ("\"2\" = { from = \"pan\" }", "\"2\": unknown domain value"),
            ("\"47.09\" = { from = \"eci\" }", "\"47.09\": sub-field"),
            ("\"300\" = { from = \"eci\" }", "\"300\": field 300 is not"),
            (
                "\"47\" = { from = \"eci\" }",
                "\"47\": field 47 is a sub-field container",
            ),
            (
                "\"22\" = { from = \"pan_entry_mode\", map = { OEMPAY = \"812\" } }",
                "no value for WALLET",
            ),
            (
                "\"4\" = { from = \"amount\", colour = 1 }",
                "unknown field `colour`",
            ),
            ("\"11\" = { constant = \"000001\" }", "STAN"),
            ("\"4\" = { constant = \"12\" }", "sample OEMPAY request"),
            (
                "\"90\" = { from = \"original_data_elements\" }",
                "request.fields.\"90\": a request has no such value",
            ),
        ];
        for (entry, want) in cases {
            let e = Mapping::from_toml_str(&format!("{base}{entry}\n"), &spec)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{entry}: {e}");
        }
        let e = Mapping::load("iso87visa", &spec).unwrap_err();
        assert!(matches!(e, MappingError::DialectMismatch { .. }));
    }

    #[test]
    fn reversals_carry_the_original_and_the_reason() {
        use crate::switch::domain::{ReversalReason, ReversalRequest};
        for dialect in ["cb2a", "iso87visa"] {
            let spec = spec(dialect);
            let m = Mapping::load(dialect, &spec).unwrap();
            let rev =
                ReversalRequest::of_request(&request(), &ctx(), "000123", ReversalReason::Timeout);
            let later = ctx().now + std::time::Duration::from_secs(3);
            for (repeat, mti) in [(false, "0400"), (true, "0401")] {
                let mut msg = m.build_reversal(&spec, &rev, later, repeat).unwrap();
                spec.set_text(&mut msg, 11, "000124").unwrap();
                let wire = spec.encode_to_bytes(&msg).unwrap();
                let d = spec.decode(&wire).unwrap();
                assert_eq!(d.mti().as_str(), mti, "{dialect}");
                assert_eq!(spec.text(&d, 2).unwrap(), "4895370012003478");
                assert_eq!(spec.text(&d, 4).unwrap(), "000000001234");
                assert_eq!(
                    spec.text(&d, 7).unwrap(),
                    "1114221323",
                    "the reversal's own time"
                );
                assert_eq!(
                    spec.text(&d, 37).unwrap(),
                    "000000000042",
                    "the original's RRN"
                );
                assert_eq!(spec.text(&d, 39).unwrap(), "68");
                assert_eq!(spec.text(&d, 41).unwrap(), "ACQ00001");
                assert_eq!(
                    spec.text(&d, 90).unwrap(),
                    format!(
                        "0100000123{}{}{}",
                        "1114221320",
                        "12345678901",
                        "0".repeat(11)
                    )
                );
            }
            assert_eq!(m.reversal_placement("original_data_elements"), Some("90"));
            let c = ReversalRequest::of_request(
                &request(),
                &ctx(),
                "000123",
                ReversalReason::Cancellation,
            );
            let msg = m.build_reversal(&spec, &c, later, false).unwrap();
            assert_eq!(spec.text(&msg, 39).unwrap(), "17");
            assert!(
                spec.text(&msg, 95).is_none(),
                "a full reversal has no DE 95"
            );
        }
    }

    #[test]
    fn partial_reversals_carry_what_stays_and_refunds_go_as_0220() {
        use crate::switch::domain::{ReversalReason, ReversalRequest};
        for dialect in ["cb2a", "iso87visa"] {
            let spec = spec(dialect);
            let m = Mapping::load(dialect, &spec).unwrap();
            let mut rev = ReversalRequest::of_request(
                &request(),
                &ctx(),
                "000123",
                ReversalReason::Cancellation,
            );
            rev.replacement = Some(700);
            let later = ctx().now + std::time::Duration::from_secs(3);
            let msg = m.build_reversal(&spec, &rev, later, false).unwrap();
            let wire = spec.encode_to_bytes(&msg).unwrap();
            let d = spec.decode(&wire).unwrap();
            assert_eq!(
                spec.text(&d, 4).unwrap(),
                "000000001234",
                "the original amount"
            );
            assert_eq!(
                spec.text(&d, 95).unwrap(),
                "000000000700000000000700C00000000C00000000",
                "{dialect}"
            );
            rev.replacement = None;
            rev.amount = 2500;
            assert!(m.has_refund());
            for (repeat, mti) in [(false, "0220"), (true, "0221")] {
                let msg = m.build_refund(&spec, &rev, later, repeat).unwrap().unwrap();
                let wire = spec.encode_to_bytes(&msg).unwrap();
                let d = spec.decode(&wire).unwrap();
                assert_eq!(d.mti().as_str(), mti);
                assert_eq!(spec.text(&d, 3).unwrap(), "200000");
                assert_eq!(
                    spec.text(&d, 4).unwrap(),
                    "000000002500",
                    "the refund's amount"
                );
                assert_eq!(spec.text(&d, 37).unwrap(), "000000000042");
                assert!(spec.text(&d, 90).unwrap().starts_with("0100000123"));
                assert!(spec.text(&d, 39).is_none() && spec.text(&d, 95).is_none());
            }
        }
    }

    #[test]
    fn cb2a_places_a_3ds_result_in_de47_tags_06_to_08() {
        use crate::switch::domain::{ThreeDsResult, ThreeDsStatus};
        let spec = spec("cb2a");
        let m = Mapping::load("cb2a", &spec).unwrap();
        let mut req = request();
        req.pan_entry_mode = PanEntryMode::Wallet;
        req.authentication = Some(Authentication {
            program: HolderAuthentProgram::ThreeDs,
            eci: crate::switch::domain::Eci::parse("05"),
            cryptogram: Cryptogram::from_base64("AAABBEg0VhI0VniQEjRWAAAAAAA="),
            three_ds: Some(ThreeDsResult {
                version: "2.2.0".into(),
                ds_transaction_id: Some("f25084f0-5b16-4c0a-ae5d-b24808a95e4b".into()),
                status: ThreeDsStatus::A,
            }),
        });
        let msg = m.build_request(&spec, &req, &ctx()).unwrap();
        let wire = spec.encode_to_bytes(&msg).unwrap();
        let d = spec.decode(&wire).unwrap();
        assert_eq!(spec.subfield_text(&d, 47, "06").unwrap(), "2.2.0");
        assert_eq!(
            spec.subfield_text(&d, 47, "07").unwrap(),
            "f25084f0-5b16-4c0a-ae5d-b24808a95e4b"
        );
        assert_eq!(spec.subfield_text(&d, 47, "08").unwrap(), "A");
        assert_eq!(m.placement("threeds_status"), Some("47.08"));
    }

    #[test]
    fn response_fields() {
        let spec = spec("cb2a");
        let m = Mapping::load("cb2a", &spec).unwrap();
        let mut r = Message::new(Mti::AUTHORIZATION_RESPONSE);
        spec.set_text(&mut r, 39, "51").unwrap();
        spec.set_text(&mut r, 38, "A1B2C3").unwrap();
        let a = m.read_response(&spec, &r);
        assert_eq!(a.response_code.as_deref(), Some("51"));
        assert_eq!(a.authorisation_id.as_deref(), Some("A1B2C3"));
    }
}
