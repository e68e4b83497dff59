//! Card data and secrets: the types that carry them, and nothing else.
//! Every layer (wallet, switch, journal, API, configuration) uses these, so
//! masking follows the type: `Debug` and `Display` show a PAN as first 6 /
//! last 4 and never a cryptogram or a secret, and all of them zeroize on
//! drop.
//!
//! - [`Pan`]: a card number (FPAN or DPAN), with the Luhn check.
//! - [`Expiry`]: month precision.
//! - [`Cryptogram`]: TAVV, CAVV, UCAF (bytes; base64 on the wire).
//! - [`Secret`]: a secret string (seal secrets, keys) from configuration,
//!   a file or an environment variable.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

    /// Whether the last digit is the Luhn check digit of the others
    /// (ISO/IEC 7812-1): true of every real PAN and DPAN.
    pub fn luhn_valid(&self) -> bool {
        luhn(&self.0)
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

/// The Luhn (mod 10) check of a string of digits.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// A TAVV, CAVV or UCAF (the schemes' e-commerce cryptograms are 20 bytes;
/// a wallet may hand over another length, checked where it matters). Never
/// shown by `Debug` or `Display`; zeroizes on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Cryptogram {
    bytes: Vec<u8>,
}

impl Cryptogram {
    /// Length of every cryptogram the schemes use for e-commerce.
    pub const SCHEME_LEN: usize = 20;
    /// Longest accepted.
    pub const MAX_LEN: usize = 64;

    /// From the base64 text wallets and 3-D Secure servers send (standard
    /// alphabet, padded): 1 to 64 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 4 * Self::MAX_LEN.div_ceil(3) {
            return None;
        }
        let bytes = STANDARD.decode(text).ok()?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (1..=Self::MAX_LEN)
            .contains(&bytes.len())
            .then(|| Cryptogram {
                bytes: bytes.to_vec(),
            })
    }

    /// Whether it has the schemes' 20 bytes.
    pub fn is_scheme_length(&self) -> bool {
        self.bytes.len() == Self::SCHEME_LEN
    }

    /// The raw bytes, for the authorization message only.
    pub fn reveal(&self) -> &[u8] {
        &self.bytes
    }

    /// The base64 text, for the merchant's copy of a wallet's cryptogram.
    pub fn to_base64(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(4 * self.bytes.len().div_ceil(3)));
        STANDARD.encode_string(&self.bytes, &mut s);
        s
    }
}

impl fmt::Debug for Cryptogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cryptogram(****)")
    }
}

impl fmt::Display for Cryptogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A secret string (a merchant's seal secret, a key in text form). Masked
/// in `Debug`, zeroized on drop; read from configuration text, a file or
/// an environment variable, never echoed by an error.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(Zeroizing::new(secret.into()))
    }

    /// A secret file's text without one final line ending (`\n` or `\r\n`);
    /// anything else, spaces included, is the secret. The error names the
    /// file, never its content.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        );
        let line = text
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&text);
        Ok(Secret::new(line))
    }

    /// An environment variable's value.
    pub fn from_env(var: &str) -> Result<Self, String> {
        std::env::var(var)
            .map(Secret::new)
            .map_err(|_| format!("environment variable {var} is not set"))
    }

    /// The secret itself: for the seal or key derivation only.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Written as `****`: a configuration printed back never shows a secret.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(Zeroizing::new(String::deserialize(d)?)))
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
    fn luhn() {
        for p in [
            "4895370012003478",
            "5413330089020011",
            "371449635398431",
            "4111111111111111",
        ] {
            assert!(Pan::new(p).unwrap().luhn_valid(), "{p}");
        }
        assert!(!Pan::new("4895370012003479").unwrap().luhn_valid());
        assert!(!super::luhn(""));
        assert!(!super::luhn("12a4"));
    }

    #[test]
    fn cryptograms_and_secrets_never_show() {
        let c = Cryptogram::from_base64("AgAAAAAABk4DWZ4C28yUQAAAAAA=").unwrap();
        assert!(c.is_scheme_length());
        assert_eq!(c.to_base64().as_str(), "AgAAAAAABk4DWZ4C28yUQAAAAAA=");
        assert_eq!(format!("{c:?} {c}"), "Cryptogram(****) ****");
        assert!(!Cryptogram::from_base64("AAAA").unwrap().is_scheme_length());
        assert!(Cryptogram::from_base64("not base64!").is_none());
        assert!(Cryptogram::from_base64("").is_none());
        assert!(Cryptogram::from_base64(&"A".repeat(200)).is_none());
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "a secret \r\n").unwrap();
        assert_eq!(Secret::from_file(&f).unwrap().reveal(), "a secret ");
        let e = Secret::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("missing"), "{e}");
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
