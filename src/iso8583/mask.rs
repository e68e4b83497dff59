//! Masking of sensitive values for logs, the CLI and `Display`.
//!
//! Masking follows the dialect's sensitivity class of each field and TLV
//! tag: PANs keep the first 6 and last 4 digits (PCI DSS 3.4), everything
//! else sensitive is replaced entirely.

use super::spec::Sensitivity;

/// The masked form of a logical value.
pub fn mask(sensitivity: Sensitivity, text: &str) -> String {
    match sensitivity {
        Sensitivity::None => text.to_string(),
        Sensitivity::Pan => mask_pan(text),
        Sensitivity::Track | Sensitivity::Cryptogram | Sensitivity::Pin => {
            "*".repeat(text.chars().count().max(1))
        }
    }
}

/// First 6 / last 4 of a PAN; shorter values are hidden entirely, since
/// showing 10 digits of a 12-digit value would reveal almost all of it.
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    if n < 13 || !pan.is_ascii() {
        return "*".repeat(n.max(1));
    }
    let mut s = String::with_capacity(n);
    s.push_str(&pan[..6]);
    s.extend(std::iter::repeat_n('*', n - 10));
    s.push_str(&pan[n - 4..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_first6_last4() {
        assert_eq!(mask_pan("4761739001010119"), "476173******0119");
        assert_eq!(mask_pan("4111111111111111111"), "411111*********1111");
        assert_eq!(mask_pan("123456789012"), "************");
        assert_eq!(
            mask(Sensitivity::Cryptogram, "AgAAAAAAAIR8CQrXcIhbQAAAAAA="),
            "****************************"
        );
        assert_eq!(mask(Sensitivity::None, "00"), "00");
    }
}
