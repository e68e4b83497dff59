//! Response codes: the front-end `responseCode` as a type
//! ([`ResponseCode`]), and the table that turns the acquirer's DE 39 into
//! one ([`ResponseCodeTable`], kept in configuration), plus the codes for
//! requests that got no answer at all.
//!
//! Default table (the issue's contract):
//!
//! | acquirer DE 39            | responseCode |
//! |---------------------------|--------------|
//! | 00                        | 00           |
//! | 05, 51, 54, 57, ... (listed) | the same code |
//! | 90-98                     | 90 (technical, retry later) |
//! | 99                        | 99           |
//! | any other                 | 05 (refused) |
//! | no DE 39                  | 99           |
//! | unreachable, timeout      | 99           |
//! | every link busy           | 90           |

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::net::LinkError;

macro_rules! response_codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// A front-end `responseCode`: the codes the switch itself decides
        /// by name, any other two-character code (from the acquirer table)
        /// kept as it is. Serialized as its two characters.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ResponseCode {
            $($(#[$doc])* $name,)*
            /// Another code, two printable ASCII characters.
            Other([u8; 2]),
        }

        impl ResponseCode {
            /// The two characters on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ResponseCode::$name => $code,)*
                    // Two printable ASCII bytes by construction.
                    ResponseCode::Other(b) => std::str::from_utf8(b).unwrap_or("??"),
                }
            }

            /// Two printable ASCII characters; the named variant when there
            /// is one.
            pub fn parse(s: &str) -> Option<ResponseCode> {
                match s {
                    $($code => Some(ResponseCode::$name),)*
                    _ => match s.as_bytes() {
                        [a, b] if a.is_ascii_graphic() && b.is_ascii_graphic() => {
                            Some(ResponseCode::Other([*a, *b]))
                        }
                        _ => None,
                    },
                }
            }
        }
    };
}

response_codes! {
    /// Accepted.
    Approved = "00",
    /// Unknown merchant, or no contract for this card.
    InvalidMerchant = "03",
    /// Refused.
    Refused = "05",
    /// Invalid transaction: a field's value, a replayed token.
    InvalidTransaction = "12",
    /// Invalid card number, or an unknown or expired vault reference.
    InvalidCard = "14",
    /// The operation is not allowed in the transaction's state.
    OperationNotAllowed = "24",
    /// No such transaction.
    UnknownTransaction = "25",
    /// Format error: a field missing or malformed.
    FormatError = "30",
    /// Security: the seal or key version is wrong.
    SecurityError = "34",
    /// Function not supported: the acquirer takes no such message (a
    /// refund to an acquirer whose mapping has no `[refund]`).
    NotSupported = "40",
    /// Card expired.
    CardExpired = "54",
    /// Technical problem, retry later.
    TemporarilyUnavailable = "90",
    /// Duplicate transaction (reference reused, or still in flight).
    Duplicate = "94",
    /// Technical problem: no answer from the acquirer, or none reachable.
    TechnicalProblem = "99",
}

impl ResponseCode {
    /// Whether this answer approves the payment.
    pub fn is_approved(self) -> bool {
        self == ResponseCode::Approved
    }

    /// Technical codes (90-99): the payment was neither accepted nor
    /// refused by the issuer.
    pub fn is_technical(self) -> bool {
        self.as_str().as_bytes().first() == Some(&b'9')
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResponseCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResponseCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResponseCode::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a two-character response code"))
        })
    }
}

/// A code range, both ends included: `{ from = "90", to = "98", code = "90" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRange {
    pub from: String,
    pub to: String,
    pub code: ResponseCode,
}

/// The table. Exact codes win over ranges; ranges are tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseCodeTable {
    /// Acquirer code -> front-end code.
    pub exact: BTreeMap<String, ResponseCode>,
    pub ranges: Vec<CodeRange>,
    /// Any other acquirer code.
    pub other: ResponseCode,
    /// A response without the response code field.
    pub missing: ResponseCode,
    /// No response within the timeout, or the link dropped with the request
    /// in flight (the acquirer may have acted on it).
    pub timeout: ResponseCode,
    /// No link to the acquirer is up (nothing was sent).
    pub unreachable: ResponseCode,
    /// Every link has its maximum in flight (nothing was sent).
    pub busy: ResponseCode,
}

impl Default for ResponseCodeTable {
    fn default() -> Self {
        let same = [
            "00", "03", "04", "05", "12", "13", "14", "15", "30", "33", "34", "41", "43", "51",
            "54", "55", "56", "57", "58", "59", "61", "62", "63", "65", "75", "99",
        ];
        ResponseCodeTable {
            exact: same
                .iter()
                .filter_map(|c| Some(((*c).to_owned(), ResponseCode::parse(c)?)))
                .collect(),
            ranges: vec![CodeRange {
                from: "90".into(),
                to: "98".into(),
                code: ResponseCode::TemporarilyUnavailable,
            }],
            other: ResponseCode::Refused,
            missing: ResponseCode::TechnicalProblem,
            timeout: ResponseCode::TechnicalProblem,
            unreachable: ResponseCode::TechnicalProblem,
            busy: ResponseCode::TemporarilyUnavailable,
        }
    }
}

/// A table whose acquirer codes are not two characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("response_codes.{key}: {value:?} is not a two-character code")]
pub struct CodeTableError {
    pub key: String,
    pub value: String,
}

impl ResponseCodeTable {
    /// Checks every acquirer code is two printable ASCII characters (the
    /// front-end codes are checked when the table is read).
    pub fn validate(&self) -> Result<(), CodeTableError> {
        let check = |key: String, value: &str| {
            if ResponseCode::parse(value).is_some() {
                Ok(())
            } else {
                Err(CodeTableError {
                    key,
                    value: value.to_owned(),
                })
            }
        };
        for k in self.exact.keys() {
            check(format!("exact.{k}"), k)?;
        }
        for (i, r) in self.ranges.iter().enumerate() {
            check(format!("ranges[{i}].from"), &r.from)?;
            check(format!("ranges[{i}].to"), &r.to)?;
        }
        Ok(())
    }

    /// The front-end code for the acquirer's response code.
    pub fn map(&self, acquirer: Option<&str>) -> ResponseCode {
        let Some(code) = acquirer else {
            return self.missing;
        };
        if let Some(c) = self.exact.get(code) {
            return *c;
        }
        self.ranges
            .iter()
            .find(|r| r.from.as_str() <= code && code <= r.to.as_str())
            .map_or(self.other, |r| r.code)
    }

    /// The front-end code for a request that got no response.
    pub fn for_link_error(&self, e: &LinkError) -> ResponseCode {
        match e {
            LinkError::Busy | LinkError::StanExhausted => self.busy,
            LinkError::NoReadyLink | LinkError::Shutdown => self.unreachable,
            LinkError::Timeout | LinkError::Disconnected => self.timeout,
            // Encoding failures and key clashes are ours, not the acquirer's.
            _ => self.missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(s: &str) -> ResponseCode {
        ResponseCode::parse(s).unwrap()
    }

    #[test]
    fn codes_are_open() {
        assert_eq!(rc("00"), ResponseCode::Approved);
        assert_eq!(rc("94").as_str(), "94");
        assert_eq!(rc("N7"), ResponseCode::Other(*b"N7"));
        assert_eq!(rc("N7").to_string(), "N7");
        assert!(ResponseCode::parse("5").is_none());
        assert!(ResponseCode::parse("0 ").is_none());
        assert!(rc("96").is_technical() && !rc("05").is_technical());
        assert_eq!(serde_json::to_string(&rc("05")).unwrap(), "\"05\"");
        assert_eq!(
            serde_json::from_str::<ResponseCode>("\"12\"").unwrap(),
            ResponseCode::InvalidTransaction
        );
    }

    #[test]
    fn default_table_follows_the_contract() {
        let t = ResponseCodeTable::default();
        t.validate().unwrap();
        assert_eq!(t.map(Some("00")), ResponseCode::Approved);
        for c in ["05", "51", "54", "57"] {
            assert_eq!(t.map(Some(c)).as_str(), c);
        }
        for c in ["90", "91", "94", "96", "98"] {
            assert_eq!(t.map(Some(c)), ResponseCode::TemporarilyUnavailable, "{c}");
        }
        assert_eq!(t.map(Some("99")), ResponseCode::TechnicalProblem);
        assert_eq!(t.map(Some("N7")), ResponseCode::Refused);
        assert_eq!(t.map(Some("01")), ResponseCode::Refused);
        assert_eq!(t.map(None), ResponseCode::TechnicalProblem);
        assert_eq!(
            t.for_link_error(&LinkError::Timeout),
            ResponseCode::TechnicalProblem
        );
        assert_eq!(
            t.for_link_error(&LinkError::NoReadyLink),
            ResponseCode::TechnicalProblem
        );
        assert_eq!(
            t.for_link_error(&LinkError::Disconnected),
            ResponseCode::TechnicalProblem
        );
        assert_eq!(
            t.for_link_error(&LinkError::Busy),
            ResponseCode::TemporarilyUnavailable
        );
    }

    #[test]
    fn table_from_configuration() {
        let t: ResponseCodeTable = toml::from_str(
            r#"
            exact = { "00" = "00", "51" = "05" }
            ranges = [{ from = "90", to = "99", code = "90" }]
            other = "05"
            unreachable = "90"
            "#,
        )
        .unwrap();
        t.validate().unwrap();
        assert_eq!(t.map(Some("51")), ResponseCode::Refused);
        assert_eq!(t.map(Some("99")), ResponseCode::TemporarilyUnavailable);
        assert_eq!(
            t.for_link_error(&LinkError::NoReadyLink),
            ResponseCode::TemporarilyUnavailable
        );
        let bad = toml::from_str::<ResponseCodeTable>("other = \"5\"").unwrap_err();
        assert!(bad.to_string().contains("two-character"), "{bad}");
        let bad: ResponseCodeTable = toml::from_str("exact = { \"5\" = \"05\" }").unwrap();
        assert_eq!(bad.validate().unwrap_err().key, "exact.5");
        assert!(toml::from_str::<ResponseCodeTable>("colour = 1").is_err());
    }
}
