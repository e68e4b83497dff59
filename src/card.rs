//! Card data: the types that carry it, masking, and nothing else. Every
//! layer (wallet, switch, journal, API) uses these, so masking follows the
//! type: `Debug` and `Display` show a PAN as first 6 / last 4, and the
//! digits zeroize on drop.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A card number (FPAN or DPAN): 12 to 19 ASCII digits. `Debug` and `Display`
/// show the first 6 and last 4 digits only; the digits zeroize on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pan(String);

impl Pan {
    /// Validates the length and that every character is a digit.
    pub fn new(digits: &str) -> Option<Pan> {
        let ok = (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Pan(digits.to_owned()))
    }

    /// The full number. Call only where the clear PAN is needed (an
    /// authorisation message), never for logging.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// First 6 and last 4 digits with the rest as `*`; a PAN under 13
    /// digits is hidden entirely (the engine's one PAN masking rule).
    pub fn masked(&self) -> String {
        crate::iso8583::mask::mask_pan(&self.0)
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Card expiry, month precision.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiry {
    year: u16,
    month: u8,
}

impl Expiry {
    /// A four-digit year and a month 1..=12.
    pub fn new(year: u16, month: u8) -> Option<Self> {
        ((2000..=2099).contains(&year) && (1..=12).contains(&month))
            .then_some(Expiry { year, month })
    }

    /// `YYYYMM`, as the gateway API writes it.
    pub fn parse_yyyymm(s: &str) -> Option<Self> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Expiry::new(s.get(..4)?.parse().ok()?, s.get(4..)?.parse().ok()?)
    }

    pub fn yyyymm(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }

    pub fn yymm(self) -> String {
        format!("{:02}{:02}", self.year % 100, self.month)
    }

    pub fn mmyy(self) -> String {
        format!("{:02}{:02}", self.month, self.year % 100)
    }

    /// Whether the card is still valid in the month of (`year`, `month`).
    pub fn valid_in(self, year: u16, month: u8) -> bool {
        (self.year, self.month) >= (year, month)
    }
}

impl fmt::Debug for Expiry {
    // Expiry dates are not secret under PCI DSS when the PAN is masked, but
    // there is no need to print them in full either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Expiry(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_is_masked_everywhere() {
        let pan = Pan::new("4111111111111111").unwrap();
        assert_eq!(pan.masked(), "411111******1111");
        assert_eq!(format!("{pan:?}"), "Pan(411111******1111)");
        assert_eq!(pan.to_string(), "411111******1111");
        assert_eq!(Pan::new("411111111111").unwrap().masked(), "************");
        assert!(Pan::new("41111111111").is_none());
        assert!(Pan::new("4111a11111111111").is_none());
    }

    #[test]
    fn expiry_forms() {
        let e = Expiry::parse_yyyymm("202812").unwrap();
        assert_eq!(e.yymm(), "2812");
        assert_eq!(e.mmyy(), "1228");
        assert_eq!(e.yyyymm(), "202812");
        assert!(Expiry::parse_yyyymm("202813").is_none());
        assert!(Expiry::parse_yyyymm("2028-1").is_none());
        assert!(e.valid_in(2028, 12) && !e.valid_in(2029, 1));
        assert_eq!(format!("{e:?}"), "Expiry(****)");
    }
}
