//! Message type indicator: four decimal digits (version, class, function,
//! origin). Kept as its digits so unknown MTIs still parse and round-trip.

use std::fmt;

/// A message type indicator such as `0100`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    pub const AUTHORIZATION_REQUEST: Mti = Mti(*b"0100");
    pub const AUTHORIZATION_RESPONSE: Mti = Mti(*b"0110");
    pub const REVERSAL_REQUEST: Mti = Mti(*b"0400");
    pub const REVERSAL_RESPONSE: Mti = Mti(*b"0410");
    pub const NETWORK_REQUEST: Mti = Mti(*b"0800");
    pub const NETWORK_RESPONSE: Mti = Mti(*b"0810");

    /// An MTI from four ASCII digits.
    ///
    /// # Panics
    /// When a byte is not a decimal digit (a programming error for
    /// constants); use [`Mti::parse`] for data from outside.
    pub const fn new(digits: [u8; 4]) -> Mti {
        let mut i = 0;
        while i < 4 {
            assert!(digits[i].is_ascii_digit(), "MTI digits must be 0-9");
            i += 1;
        }
        Mti(digits)
    }

    /// An MTI from text, if it is four decimal digits.
    pub fn parse(text: &str) -> Option<Mti> {
        let b = text.as_bytes();
        if b.len() == 4 && b.iter().all(u8::is_ascii_digit) {
            Some(Mti([b[0], b[1], b[2], b[3]]))
        } else {
            None
        }
    }

    pub(crate) fn from_digits_unchecked(d: [u8; 4]) -> Mti {
        Mti(d)
    }

    pub fn digits(&self) -> &[u8; 4] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Always four ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The message function digit (third): 0 request, 1 response, 2 advice,
    /// 3 advice response, 4 notification...
    pub fn function(&self) -> u8 {
        self.0[2] - b'0'
    }

    /// Whether this MTI expects a response (request or advice).
    pub fn is_request(&self) -> bool {
        matches!(self.function(), 0 | 2 | 4)
    }

    /// The response MTI for a request or advice (0100 -> 0110,
    /// 0120 -> 0130, 0800 -> 0810); a repeat is answered as the original
    /// (0401 -> 0410, 0121 -> 0130). `None` for responses.
    pub fn response(&self) -> Option<Mti> {
        if !self.is_request() {
            return None;
        }
        let mut d = self.0;
        d[2] += 1;
        if self.is_repeat() {
            d[3] -= 1;
        }
        Some(Mti(d))
    }

    /// Whether the origin digit (fourth) marks a repeat (odd: 0401, 0121).
    pub fn is_repeat(&self) -> bool {
        self.0[3].is_ascii_digit() && (self.0[3] - b'0') % 2 == 1
    }

    /// The repeat of this MTI (0400 -> 0401); itself when it is one.
    pub fn repeat(&self) -> Mti {
        let mut d = self.0;
        if !self.is_repeat() && d[3] < b'9' {
            d[3] += 1;
        }
        Mti(d)
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_mapping() {
        assert_eq!(
            Mti::AUTHORIZATION_REQUEST.response(),
            Some(Mti::AUTHORIZATION_RESPONSE)
        );
        assert_eq!(Mti::NETWORK_REQUEST.response(), Some(Mti::NETWORK_RESPONSE));
        assert_eq!(Mti::new(*b"0120").response(), Some(Mti::new(*b"0130")));
        assert_eq!(Mti::AUTHORIZATION_RESPONSE.response(), None);
        assert_eq!(Mti::new(*b"0401").response(), Some(Mti::REVERSAL_RESPONSE));
        assert_eq!(Mti::REVERSAL_REQUEST.repeat(), Mti::new(*b"0401"));
        assert_eq!(Mti::new(*b"0401").repeat(), Mti::new(*b"0401"));
        assert!(Mti::new(*b"0121").is_repeat() && !Mti::REVERSAL_REQUEST.is_repeat());
        assert_eq!(Mti::parse("0100"), Some(Mti::AUTHORIZATION_REQUEST));
        assert_eq!(Mti::parse("01a0"), None);
        assert_eq!(Mti::parse("100"), None);
        assert_eq!(Mti::new(*b"9999").to_string(), "9999");
    }
}
