//! Routing: a merchant's contracts, tried in configuration order; the first
//! whose card brands and BIN ranges accept the card names the acquirer.
//!
//! ```toml
//! [[merchants.contracts]]
//! acquirer = "cb2a"
//! terminal_id = "ACQ00001"
//! acceptor_id = "MERCHANT0000001"
//! brands = ["VISA", "MASTERCARD"]      # empty or absent: any brand
//! bins = ["489537", "510000-559999"]   # empty or absent: any card
//! ```

use serde::{Deserialize, Serialize};

use super::domain::{CardBrand, Pan};

/// A merchant's contract with one acquirer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Name of an acquirer in the configuration.
    pub acquirer: String,
    /// DE 41.
    pub terminal_id: String,
    /// DE 42.
    pub acceptor_id: String,
    /// DE 18.
    #[serde(default = "default_mcc")]
    pub merchant_category_code: String,
    /// DE 32.
    #[serde(default = "default_acquirer_id")]
    pub acquirer_id: String,
    /// Brand names (`VISA`, `MASTERCARD`, `CB`, `AMEX`, `OTHER`).
    #[serde(default)]
    pub brands: Vec<String>,
    /// BIN prefixes (`"4895"`) or ranges of equal-length prefixes
    /// (`"510000-559999"`).
    #[serde(default)]
    pub bins: Vec<String>,
}

fn default_mcc() -> String {
    "5999".into()
}

fn default_acquirer_id() -> String {
    "00000000001".into()
}

/// A contract checked once, with parsed brands and ranges.
#[derive(Debug, Clone)]
pub struct Route {
    pub contract: Contract,
    brands: Vec<CardBrand>,
    bins: Vec<BinRange>,
}

/// Prefixes `low..=high` of `len` digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BinRange {
    len: usize,
    low: u64,
    high: u64,
}

impl BinRange {
    fn parse(s: &str) -> Option<BinRange> {
        let digits = |t: &str| {
            (!t.is_empty() && t.len() <= 11 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u64>().ok())
                .flatten()
        };
        match s.split_once('-') {
            Some((a, b)) if a.len() == b.len() => {
                let (low, high) = (digits(a)?, digits(b)?);
                (low <= high).then_some(BinRange {
                    len: a.len(),
                    low,
                    high,
                })
            }
            Some(_) => None,
            None => digits(s).map(|v| BinRange {
                len: s.len(),
                low: v,
                high: v,
            }),
        }
    }

    fn contains(&self, pan: &str) -> bool {
        pan.get(..self.len)
            .and_then(|p| p.parse::<u64>().ok())
            .is_some_and(|p| self.low <= p && p <= self.high)
    }
}

/// A contract the configuration cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract with {acquirer}: {reason}")]
pub struct RouteError {
    pub acquirer: String,
    pub reason: String,
}

impl Route {
    pub fn new(contract: Contract) -> Result<Route, RouteError> {
        let bad = |reason: String| RouteError {
            acquirer: contract.acquirer.clone(),
            reason,
        };
        let brands = contract
            .brands
            .iter()
            .map(|b| CardBrand::parse(b).ok_or_else(|| bad(format!("unknown brand {b:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let bins = contract
            .bins
            .iter()
            .map(|b| BinRange::parse(b).ok_or_else(|| bad(format!("bad BIN range {b:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route {
            contract,
            brands,
            bins,
        })
    }

    pub fn accepts(&self, brand: CardBrand, pan: &Pan) -> bool {
        (self.brands.is_empty() || self.brands.contains(&brand))
            && (self.bins.is_empty() || self.bins.iter().any(|r| r.contains(pan.reveal())))
    }
}

/// The first route accepting the card.
pub fn route<'r>(routes: &'r [Route], brand: CardBrand, pan: &Pan) -> Option<&'r Route> {
    routes.iter().find(|r| r.accepts(brand, pan))
}

/// The index of the first route accepting the card.
pub fn route_index(routes: &[Route], brand: CardBrand, pan: &Pan) -> Option<usize> {
    routes.iter().position(|r| r.accepts(brand, pan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(acquirer: &str, brands: &[&str], bins: &[&str]) -> Contract {
        Contract {
            acquirer: acquirer.into(),
            terminal_id: "T".into(),
            acceptor_id: "A".into(),
            merchant_category_code: default_mcc(),
            acquirer_id: default_acquirer_id(),
            brands: brands.iter().map(|s| s.to_string()).collect(),
            bins: bins.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn first_matching_contract_wins() {
        let routes: Vec<Route> = [
            contract("visa-bin", &["VISA"], &["489537"]),
            contract("mc", &["MASTERCARD"], &["510000-559999"]),
            contract("rest", &[], &[]),
        ]
        .into_iter()
        .map(|c| Route::new(c).unwrap())
        .collect();
        let pick = |brand, pan: &str| {
            route(&routes, brand, &Pan::new(pan).unwrap()).map(|r| r.contract.acquirer.clone())
        };
        assert_eq!(
            pick(CardBrand::Visa, "4895370012003478").as_deref(),
            Some("visa-bin")
        );
        assert_eq!(
            pick(CardBrand::Visa, "4111111111111111").as_deref(),
            Some("rest")
        );
        assert_eq!(
            pick(CardBrand::Mastercard, "5413330089020011").as_deref(),
            Some("mc")
        );
        assert_eq!(
            pick(CardBrand::Mastercard, "2221000000000009").as_deref(),
            Some("rest")
        );
        let only: Vec<Route> = vec![Route::new(contract("x", &["AMEX"], &[])).unwrap()];
        assert!(route(
            &only,
            CardBrand::Visa,
            &Pan::new("4111111111111111").unwrap()
        )
        .is_none());
    }

    #[test]
    fn bad_contracts_are_refused() {
        assert!(Route::new(contract("x", &["DINERS"], &[])).is_err());
        assert!(Route::new(contract("x", &[], &["51-5599"])).is_err());
        assert!(Route::new(contract("x", &[], &["59-51"])).is_err());
        assert!(Route::new(contract("x", &[], &["4a"])).is_err());
    }
}
