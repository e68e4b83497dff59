//! The authorization domain: what a front-end asks the switch to authorize,
//! in types that validate on construction and mask card data in `Debug`.
//!
//! The names follow the gateway API (`orderChannel`, `panEntryMode`,
//! `holderAuthentProgram`, ...); [`super::mapping`] turns a request into an
//! acquirer's ISO 8583 dialect.

pub use crate::card::{Cryptogram, Expiry, Pan};

/// Where the order was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderChannel {
    Internet,
    InApp,
}

impl OrderChannel {
    pub const ALL: [OrderChannel; 2] = [OrderChannel::Internet, OrderChannel::InApp];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderChannel::Internet => "INTERNET",
            OrderChannel::InApp => "INAPP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How the card number was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PanEntryMode {
    /// A wallet device token (DPAN) with its cryptogram (CRYPTOGRAM_3DS).
    OemPay,
    /// A card on file in the wallet (PAN_ONLY); authentication, if any,
    /// comes from 3-D Secure.
    Wallet,
}

impl PanEntryMode {
    pub const ALL: [PanEntryMode; 2] = [PanEntryMode::OemPay, PanEntryMode::Wallet];

    pub fn as_str(self) -> &'static str {
        match self {
            PanEntryMode::OemPay => "OEMPAY",
            PanEntryMode::Wallet => "WALLET",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Who authenticated the cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HolderAuthentProgram {
    /// The wallet, with a network token cryptogram (TAVV).
    GooglePay,
    /// 3-D Secure, with a CAVV.
    ThreeDs,
}

impl HolderAuthentProgram {
    pub const ALL: [HolderAuthentProgram; 2] = [
        HolderAuthentProgram::GooglePay,
        HolderAuthentProgram::ThreeDs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HolderAuthentProgram::GooglePay => "GOOGLEPAY",
            HolderAuthentProgram::ThreeDs => "3DS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The wallet the payment came from (`paymentMeanDataProvider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wallet {
    GooglePay,
}

impl Wallet {
    pub const ALL: [Wallet; 1] = [Wallet::GooglePay];

    pub fn as_str(self) -> &'static str {
        match self {
            Wallet::GooglePay => "GOOGLEPAY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// How the Google Pay guide's logs name the wallet:
    /// `(paymentMeanDataProvider, walletType)`: `GOOGLEPAY` for a network
    /// token (CRYPTOGRAM_3DS), `GOOGLE_WALLET` for a PAN_ONLY card.
    pub fn log_fields(
        wallet: Option<Wallet>,
        mode: PanEntryMode,
    ) -> (Option<&'static str>, Option<&'static str>) {
        match (wallet, mode) {
            (Some(Wallet::GooglePay), PanEntryMode::OemPay) => {
                (Some(Wallet::GooglePay.as_str()), None)
            }
            (Some(Wallet::GooglePay), PanEntryMode::Wallet) => (None, Some("GOOGLE_WALLET")),
            (None, _) => (None, None),
        }
    }
}

/// Card scheme (`paymentMeanBrand`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardBrand {
    Visa,
    Mastercard,
    Cb,
    Amex,
    Other,
}

impl CardBrand {
    pub const ALL: [CardBrand; 5] = [
        CardBrand::Visa,
        CardBrand::Mastercard,
        CardBrand::Cb,
        CardBrand::Amex,
        CardBrand::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CardBrand::Visa => "VISA",
            CardBrand::Mastercard => "MASTERCARD",
            CardBrand::Cb => "CB",
            CardBrand::Amex => "AMEX",
            CardBrand::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The international brand of a card number, from its leading digits
    /// (Visa 4; Mastercard 51-55 and 2221-2720; Amex 34, 37).
    pub fn of_pan(pan: &Pan) -> CardBrand {
        let d = pan.reveal().as_bytes();
        let num = |n: usize| -> u32 {
            d.iter()
                .take(n)
                .fold(0, |acc, c| acc * 10 + u32::from(c - b'0'))
        };
        match (num(1), num(2), num(4)) {
            (4, _, _) => CardBrand::Visa,
            (_, 51..=55, _) | (_, _, 2221..=2720) => CardBrand::Mastercard,
            (_, 34 | 37, _) => CardBrand::Amex,
            _ => CardBrand::Other,
        }
    }

    /// Whether `eci` is an electronic commerce indicator of this brand:
    /// Visa and Amex 05 (authenticated), 06 (attempted), 07 (not
    /// authenticated); Mastercard 00, 01, 02, plus 04 (data only), 06
    /// (acquirer exemption) and 07 (merchant-initiated) of EMV 3-D Secure
    /// 2.2; CB cards are co-badged and carry either set, as do cards of no
    /// known brand.
    pub fn allows_eci(self, eci: Eci) -> bool {
        const VISA: &[&str] = &["05", "06", "07"];
        const MASTERCARD: &[&str] = &["00", "01", "02", "04", "06", "07"];
        let e = eci.as_str();
        match self {
            CardBrand::Visa | CardBrand::Amex => VISA.contains(&e),
            CardBrand::Mastercard => MASTERCARD.contains(&e),
            CardBrand::Cb | CardBrand::Other => VISA.contains(&e) || MASTERCARD.contains(&e),
        }
    }

    /// Google Pay's token requestor id for network tokens of this brand.
    pub fn google_pay_token_requestor_id(self) -> Option<&'static str> {
        match self {
            CardBrand::Visa => Some("40010075001"),
            CardBrand::Mastercard => Some("50110030273"),
            _ => None,
        }
    }
}

/// Electronic commerce indicator: two digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eci([u8; 2]);

impl Eci {
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some(Eci([*a, *b])),
            // Some servers drop the leading zero ("5" for "05").
            [b] if b.is_ascii_digit() => Some(Eci([b'0', *b])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("00")
    }
}

/// Cardholder authentication carried with the authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub program: HolderAuthentProgram,
    pub eci: Option<Eci>,
    pub cryptogram: Option<Cryptogram>,
    /// The 3-D Secure result's identifiers, when the merchant ran 3-D
    /// Secure (PAN_ONLY).
    pub three_ds: Option<ThreeDsResult>,
}

/// What a 3-D Secure authentication done by the merchant says, besides its
/// ECI and authentication value (the 3-D Secure server itself is not the
/// switch's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreeDsResult {
    /// The protocol version (`2.2.0`).
    pub version: String,
    /// The directory server's transaction id (a UUID).
    pub ds_transaction_id: Option<String>,
    pub status: ThreeDsStatus,
}

/// EMV 3-D Secure `transStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreeDsStatus {
    /// Authenticated.
    Y,
    /// Attempted: the issuer or the scheme vouches for it.
    A,
    /// Not authenticated.
    N,
    /// Could not be performed.
    U,
    /// Rejected by the issuer.
    R,
}

impl ThreeDsStatus {
    pub const ALL: [ThreeDsStatus; 5] = [
        ThreeDsStatus::Y,
        ThreeDsStatus::A,
        ThreeDsStatus::N,
        ThreeDsStatus::U,
        ThreeDsStatus::R,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThreeDsStatus::Y => "Y",
            ThreeDsStatus::A => "A",
            ThreeDsStatus::N => "N",
            ThreeDsStatus::U => "U",
            ThreeDsStatus::R => "R",
        }
    }

    pub fn parse(s: &str) -> Option<ThreeDsStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether an authorization may go on: authenticated or attempted.
    pub fn is_success(self) -> bool {
        matches!(self, ThreeDsStatus::Y | ThreeDsStatus::A)
    }
}

pub use super::currency::Currency;

/// A typed authorization request. `Debug` masks the card number and hides
/// the cryptogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub merchant_id: String,
    /// Minor units.
    pub amount: u64,
    pub currency: Currency,
    pub transaction_reference: String,
    pub order_channel: OrderChannel,
    pub pan_entry_mode: PanEntryMode,
    /// DPAN (OEMPAY) or PAN (WALLET).
    pub card_number: Pan,
    pub expiry: Expiry,
    pub brand: CardBrand,
    pub wallet: Option<Wallet>,
    pub authentication: Option<Authentication>,
}

/// Why a request cannot be authorized as given: the gateway field at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct DomainError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl AuthorizationRequest {
    /// The rules that tie the fields together, checked before routing.
    pub fn check(&self) -> Result<(), DomainError> {
        let err = |field, reason| Err(DomainError { field, reason });
        if self.amount == 0 || self.amount > 999_999_999_999 {
            return err("amount", "out of range");
        }
        match (self.pan_entry_mode, &self.authentication) {
            (PanEntryMode::OemPay, Some(a))
                if a.program == HolderAuthentProgram::GooglePay && a.cryptogram.is_some() => {}
            (PanEntryMode::OemPay, _) => {
                return err(
                    "authenticationResult",
                    "OEMPAY needs holderAuthentProgram GOOGLEPAY and a cryptogram",
                )
            }
            (PanEntryMode::Wallet, Some(a)) if a.program != HolderAuthentProgram::ThreeDs => {
                return err(
                    "holderAuthentProgram",
                    "a WALLET (PAN_ONLY) card is authenticated by 3DS",
                )
            }
            (PanEntryMode::Wallet, _) => {}
        }
        if let Some(a) = &self.authentication {
            if a.program == HolderAuthentProgram::ThreeDs && a.cryptogram.is_none() {
                return err("authenticationResult", "3DS needs a CAVV");
            }
            if a.eci.is_some_and(|e| !self.brand.allows_eci(e)) {
                return err("authenticationResult.eci", "not an ECI of the card's brand");
            }
        }
        Ok(())
    }
}

/// Why an authorization is reversed (`reason_code` in a mapping's
/// `[reversal]` section, mapped to the dialect's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReversalReason {
    /// No answer within the request timeout.
    Timeout,
    /// The link dropped with the request written and unanswered.
    LinkDropped,
    /// Found without an outcome when the switch started (it stopped with
    /// the request in flight).
    UnknownAtStart,
    /// Answered, but the outcome could not be journaled, so the merchant
    /// was not told an approval.
    NotRecorded,
    /// The merchant cancelled it.
    Cancellation,
}

impl ReversalReason {
    pub const ALL: [ReversalReason; 5] = [
        ReversalReason::Timeout,
        ReversalReason::LinkDropped,
        ReversalReason::UnknownAtStart,
        ReversalReason::NotRecorded,
        ReversalReason::Cancellation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReversalReason::Timeout => "TIMEOUT",
            ReversalReason::LinkDropped => "LINK_DROPPED",
            ReversalReason::UnknownAtStart => "UNKNOWN_AT_START",
            ReversalReason::NotRecorded => "NOT_RECORDED",
            ReversalReason::Cancellation => "CANCELLATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A reversal of an authorization, from what the journal kept of it (no
/// cryptogram: it is never kept). `Debug` masks the card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    pub card_number: Pan,
    pub expiry: Expiry,
    /// Minor units: the original amount (full reversal).
    pub amount: u64,
    pub currency: Currency,
    pub brand: CardBrand,
    pub pan_entry_mode: PanEntryMode,
    pub wallet: Option<Wallet>,
    pub order_channel: OrderChannel,
    pub transaction_reference: String,
    pub terminal_id: String,
    pub acceptor_id: String,
    pub acquirer_id: String,
    pub merchant_category_code: String,
    /// The original's RRN, STAN, MTI and transmission time.
    pub rrn: String,
    pub original_stan: String,
    pub original_mti: crate::iso8583::Mti,
    pub original_sent: std::time::SystemTime,
    pub reason: ReversalReason,
    /// A partial reversal: what stays authorized (DE 95 where the dialect
    /// carries it). `None`: a full reversal.
    pub replacement: Option<u64>,
}

impl ReversalRequest {
    /// The reversal of `req`, sent with `ctx` and STAN `original_stan`.
    pub fn of_request(
        req: &AuthorizationRequest,
        ctx: &super::mapping::RequestContext<'_>,
        original_stan: &str,
        reason: ReversalReason,
    ) -> ReversalRequest {
        ReversalRequest {
            card_number: req.card_number.clone(),
            expiry: req.expiry,
            amount: req.amount,
            currency: req.currency,
            brand: req.brand,
            pan_entry_mode: req.pan_entry_mode,
            wallet: req.wallet,
            order_channel: req.order_channel,
            transaction_reference: req.transaction_reference.clone(),
            terminal_id: ctx.terminal_id.into(),
            acceptor_id: ctx.acceptor_id.into(),
            acquirer_id: ctx.acquirer_id.into(),
            merchant_category_code: ctx.merchant_category_code.into(),
            rrn: ctx.rrn.into(),
            original_stan: original_stan.into(),
            original_mti: crate::iso8583::Mti::AUTHORIZATION_REQUEST,
            original_sent: ctx.now,
            reason,
            replacement: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan(s: &str) -> Pan {
        Pan::new(s).unwrap()
    }

    #[test]
    fn brands_by_bin() {
        assert_eq!(CardBrand::of_pan(&pan("4895370012003478")), CardBrand::Visa);
        assert_eq!(
            CardBrand::of_pan(&pan("5413330089020011")),
            CardBrand::Mastercard
        );
        assert_eq!(
            CardBrand::of_pan(&pan("2221000000000009")),
            CardBrand::Mastercard
        );
        assert_eq!(CardBrand::of_pan(&pan("371449635398431")), CardBrand::Amex);
        assert_eq!(
            CardBrand::of_pan(&pan("6011000990139424")),
            CardBrand::Other
        );
    }

    #[test]
    fn eci_parse() {
        assert_eq!(Eci::parse("05").unwrap().as_str(), "05");
        assert_eq!(Eci::parse("7").unwrap().as_str(), "07");
        assert!(Eci::parse("x1").is_none());
    }

    #[test]
    fn mode_rules() {
        let mut r = AuthorizationRequest {
            merchant_id: "m".into(),
            amount: 1000,
            currency: Currency::parse("978").unwrap(),
            transaction_reference: "r".into(),
            order_channel: OrderChannel::Internet,
            pan_entry_mode: PanEntryMode::OemPay,
            card_number: pan("4895370012003478"),
            expiry: Expiry::new(2030, 12).unwrap(),
            brand: CardBrand::Visa,
            wallet: Some(Wallet::GooglePay),
            authentication: None,
        };
        assert_eq!(r.check().unwrap_err().field, "authenticationResult");
        r.authentication = Some(Authentication {
            program: HolderAuthentProgram::GooglePay,
            eci: Eci::parse("05"),
            cryptogram: Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA="),
            three_ds: None,
        });
        assert!(r.check().is_ok());
        let with_eci = |r: &mut AuthorizationRequest, brand, eci| {
            r.brand = brand;
            if let Some(a) = r.authentication.as_mut() {
                a.eci = Eci::parse(eci);
            }
            r.check().map_err(|e| e.field)
        };
        assert_eq!(
            with_eci(&mut r, CardBrand::Visa, "99"),
            Err("authenticationResult.eci")
        );
        assert_eq!(
            with_eci(&mut r, CardBrand::Visa, "02"),
            Err("authenticationResult.eci")
        );
        assert_eq!(with_eci(&mut r, CardBrand::Mastercard, "02"), Ok(()));
        assert_eq!(
            with_eci(&mut r, CardBrand::Mastercard, "05"),
            Err("authenticationResult.eci")
        );
        assert_eq!(with_eci(&mut r, CardBrand::Cb, "02"), Ok(()));
        assert_eq!(with_eci(&mut r, CardBrand::Cb, "05"), Ok(()));
        assert_eq!(with_eci(&mut r, CardBrand::Amex, "07"), Ok(()));
        assert_eq!(with_eci(&mut r, CardBrand::Visa, "05"), Ok(()));
        r.pan_entry_mode = PanEntryMode::Wallet;
        assert_eq!(r.check().unwrap_err().field, "holderAuthentProgram");
        r.authentication = None;
        assert!(r.check().is_ok());
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("4895370012003478"), "{dbg}");
    }
}
