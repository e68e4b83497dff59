//! The acquirer's DE 39 -> the front-end `responseCode`, as a table kept in
//! configuration (`[response_codes]`), plus the codes for requests that got
//! no answer at all.
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

use serde::{Deserialize, Serialize};

use crate::net::LinkError;

/// A code range, both ends included: `{ from = "90", to = "98", code = "90" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRange {
    pub from: String,
    pub to: String,
    pub code: String,
}

/// The table. Exact codes win over ranges; ranges are tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseCodeTable {
    /// Acquirer code -> front-end code.
    pub exact: BTreeMap<String, String>,
    pub ranges: Vec<CodeRange>,
    /// Any other acquirer code.
    pub other: String,
    /// A response without the response code field.
    pub missing: String,
    /// No response within the timeout, or the link dropped with the request
    /// in flight (the acquirer may have acted on it).
    pub timeout: String,
    /// No link to the acquirer is up (nothing was sent).
    pub unreachable: String,
    /// Every link has its maximum in flight (nothing was sent).
    pub busy: String,
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
                .map(|c| ((*c).to_owned(), (*c).to_owned()))
                .collect(),
            ranges: vec![CodeRange {
                from: "90".into(),
                to: "98".into(),
                code: "90".into(),
            }],
            other: "05".into(),
            missing: "99".into(),
            timeout: "99".into(),
            unreachable: "99".into(),
            busy: "90".into(),
        }
    }
}

/// A table whose codes are not two characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("response_codes.{key}: {value:?} is not a two-character code")]
pub struct CodeTableError {
    pub key: String,
    pub value: String,
}

impl ResponseCodeTable {
    /// Checks every code is two printable ASCII characters.
    pub fn validate(&self) -> Result<(), CodeTableError> {
        let ok = |c: &str| c.len() == 2 && c.bytes().all(|b| b.is_ascii_graphic());
        let check = |key: String, value: &str| {
            if ok(value) {
                Ok(())
            } else {
                Err(CodeTableError {
                    key,
                    value: value.to_owned(),
                })
            }
        };
        for (k, v) in &self.exact {
            check(format!("exact.{k}"), k)?;
            check(format!("exact.{k}"), v)?;
        }
        for (i, r) in self.ranges.iter().enumerate() {
            check(format!("ranges[{i}].from"), &r.from)?;
            check(format!("ranges[{i}].to"), &r.to)?;
            check(format!("ranges[{i}].code"), &r.code)?;
        }
        check("other".into(), &self.other)?;
        check("missing".into(), &self.missing)?;
        check("timeout".into(), &self.timeout)?;
        check("unreachable".into(), &self.unreachable)?;
        check("busy".into(), &self.busy)
    }

    /// The front-end code for the acquirer's response code.
    pub fn map(&self, acquirer: Option<&str>) -> &str {
        let Some(code) = acquirer else {
            return &self.missing;
        };
        if let Some(c) = self.exact.get(code) {
            return c;
        }
        self.ranges
            .iter()
            .find(|r| r.from.as_str() <= code && code <= r.to.as_str())
            .map_or(&self.other, |r| &r.code)
    }

    /// The front-end code for a request that got no response.
    pub fn for_link_error(&self, e: &LinkError) -> &str {
        match e {
            LinkError::Busy | LinkError::StanExhausted => &self.busy,
            LinkError::NoReadyLink | LinkError::Shutdown => &self.unreachable,
            LinkError::Timeout | LinkError::Disconnected => &self.timeout,
            // Encoding failures and key clashes are ours, not the acquirer's.
            _ => &self.missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_follows_the_contract() {
        let t = ResponseCodeTable::default();
        t.validate().unwrap();
        assert_eq!(t.map(Some("00")), "00");
        for c in ["05", "51", "54", "57"] {
            assert_eq!(t.map(Some(c)), c);
        }
        for c in ["90", "91", "94", "96", "98"] {
            assert_eq!(t.map(Some(c)), "90", "{c}");
        }
        assert_eq!(t.map(Some("99")), "99");
        assert_eq!(t.map(Some("N7")), "05");
        assert_eq!(t.map(Some("01")), "05");
        assert_eq!(t.map(None), "99");
        assert_eq!(t.for_link_error(&LinkError::Timeout), "99");
        assert_eq!(t.for_link_error(&LinkError::NoReadyLink), "99");
        assert_eq!(t.for_link_error(&LinkError::Disconnected), "99");
        assert_eq!(t.for_link_error(&LinkError::Busy), "90");
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
        assert_eq!(t.map(Some("51")), "05");
        assert_eq!(t.map(Some("99")), "90");
        assert_eq!(t.for_link_error(&LinkError::NoReadyLink), "90");
        let bad: ResponseCodeTable = toml::from_str("other = \"5\"").unwrap();
        assert_eq!(bad.validate().unwrap_err().key, "other");
        assert!(toml::from_str::<ResponseCodeTable>("colour = 1").is_err());
    }
}
