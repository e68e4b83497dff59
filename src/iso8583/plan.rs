//! Per-field decode plans: each field's spec boiled down, once at load, to
//! the few numbers the decoder's hot loop needs (how to read the length,
//! which check to run), so the loop branches on one small `Copy` value
//! instead of walking the spec's enums per field.
//!
//! A plan only ever *accepts* what [`super::decode::field_value`] accepts:
//! anything it does not handle, and every failure, goes to that function,
//! which gives the precise error. `decode::tests` and the `iso_decode` fuzz
//! target compare both paths.

use super::encoding::{
    all_bcd_digit_pairs, all_in, all_in_range, class_range, class_table, Class, DataEncoding, Pad,
};
use super::spec::{FieldSpec, LengthType, PrefixEncoding, Unit, MAX_FIELD};

/// How the length of a field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthPlan {
    /// Fixed length: `units` long, `wire` bytes.
    Fixed { units: u16, wire: u16 },
    /// ASCII decimal prefix of `digits` characters.
    Ascii { digits: u8 },
    /// Packed decimal prefix of `bytes` bytes.
    Bcd { bytes: u8 },
    /// Big-endian binary prefix of `bytes` bytes.
    Binary { bytes: u8 },
    /// The general path decides: fields not in the dialect, EBCDIC
    /// prefixes, and fields whose content check the plan does not cover
    /// (so their prefix is not parsed twice).
    General,
}

/// Which content check the data gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckPlan {
    /// Binary data: none.
    None,
    /// One ASCII character class table lookup per byte.
    Table(&'static [bool; 256]),
    /// ASCII bytes in one range (digits, printable): eight at a time.
    Range { lo: u8, hi: u8 },
    /// Packed digits with a decimal filler nibble (`filler`) on the `pad`
    /// side of an odd length.
    BcdDigits { filler: u8, pad: Pad },
}

/// Everything the hot loop needs about one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldPlan {
    pub length: LengthPlan,
    pub check: CheckPlan,
    /// Maximum length in the field's unit.
    pub max: u16,
    /// The length counts nibbles (wire bytes = half, rounded up).
    pub nibbles: bool,
    /// The field has sub-fields to validate.
    pub container: bool,
    /// The fixed-length fields of this field's bitmap word that share its
    /// content check (itself included), as bits of the decoder's bitmap
    /// word (bit `i` of word `w` is field `64 * w + i + 1`); 0 when the
    /// field is decoded on its own. Consecutive present fields of one such
    /// group are contiguous on the wire with no length prefix, so the
    /// decoder takes them as one run and checks their bytes in one pass.
    pub run_members: u64,
    /// The check a run starting at this field gets.
    pub run_check: RunCheck,
    /// Wire bytes of a fixed-length field.
    pub wire: u16,
    /// For an odd-length packed field: where its filler nibble is, and
    /// what it must be.
    pub filler: Option<(Pad, u8)>,
}

/// A content check over a stretch of bytes: a run of fixed-length fields,
/// or a TLV value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunCheck {
    /// Binary data: none.
    None,
    /// Packed decimal digits (filler nibbles checked per field).
    BcdDigits,
    /// One character class table.
    Table(&'static [bool; 256]),
    /// One byte range.
    Range { lo: u8, hi: u8 },
}

impl RunCheck {
    /// The check of ASCII (or binary) data of `class`.
    pub(crate) fn of_text(encoding: DataEncoding, class: Class) -> RunCheck {
        match (encoding, class_range(class)) {
            (DataEncoding::Binary, _) => RunCheck::None,
            (_, Some((lo, hi))) => RunCheck::Range { lo, hi },
            (_, None) => RunCheck::Table(class_table(class)),
        }
    }

    /// Whether `bytes` pass.
    #[inline(always)]
    pub(crate) fn passes(self, bytes: &[u8]) -> bool {
        match self {
            RunCheck::BcdDigits => all_bcd_digit_pairs(bytes),
            RunCheck::Table(table) => all_in(bytes, table),
            RunCheck::Range { lo, hi } => all_in_range(bytes, lo, hi),
            RunCheck::None => true,
        }
    }
}

impl FieldPlan {
    pub(crate) const ABSENT: FieldPlan = FieldPlan {
        length: LengthPlan::General,
        check: CheckPlan::None,
        max: 0,
        nibbles: false,
        container: false,
        run_members: 0,
        run_check: RunCheck::None,
        wire: 0,
        filler: None,
    };

    /// The run check a field would share with its group, if it can be in
    /// one: fixed length, a check the plan covers, no sub-fields.
    fn run_check(&self) -> Option<RunCheck> {
        if self.container {
            return None;
        }
        let LengthPlan::Fixed { .. } = self.length else {
            return None;
        };
        Some(match self.check {
            CheckPlan::None => RunCheck::None,
            CheckPlan::BcdDigits { .. } => RunCheck::BcdDigits,
            CheckPlan::Table(t) => RunCheck::Table(t),
            CheckPlan::Range { lo, hi } => RunCheck::Range { lo, hi },
        })
    }

    /// The plan for a validated field spec (max <= 9999, prefix width
    /// consistent with the length type).
    pub(crate) fn of(fs: &FieldSpec) -> FieldPlan {
        let nibbles = fs.unit == Unit::Nibbles;
        let max = u16::try_from(fs.max).unwrap_or(u16::MAX);
        let length = match (fs.length, fs.prefix) {
            (LengthType::Fixed, _) => LengthPlan::Fixed {
                units: max,
                wire: u16::try_from(fs.wire_len(fs.max)).unwrap_or(u16::MAX),
            },
            (_, PrefixEncoding::Ascii) => LengthPlan::Ascii {
                digits: fs.length.digits() as u8,
            },
            (_, PrefixEncoding::Bcd) => LengthPlan::Bcd {
                bytes: fs.prefix_bytes as u8,
            },
            (_, PrefixEncoding::Binary) => LengthPlan::Binary {
                bytes: fs.prefix_bytes as u8,
            },
            (_, PrefixEncoding::Ebcdic) => LengthPlan::General,
        };
        let check = match fs.encoding {
            DataEncoding::Binary => CheckPlan::None,
            DataEncoding::Ascii => match RunCheck::of_text(fs.encoding, fs.class) {
                RunCheck::Range { lo, hi } => CheckPlan::Range { lo, hi },
                _ => CheckPlan::Table(class_table(fs.class)),
            },
            DataEncoding::Bcd if fs.class == Class::N && fs.filler <= 9 => CheckPlan::BcdDigits {
                filler: fs.filler,
                pad: fs.pad,
            },
            // EBCDIC, other BCD classes: the general path, prefix and all.
            DataEncoding::Bcd | DataEncoding::Ebcdic => {
                return FieldPlan {
                    length: LengthPlan::General,
                    ..FieldPlan::ABSENT
                }
            }
        };
        let wire = match length {
            LengthPlan::Fixed { wire, .. } => wire,
            _ => 0,
        };
        let filler = match check {
            CheckPlan::BcdDigits { filler, pad } if max % 2 == 1 => Some((pad, filler)),
            _ => None,
        };
        FieldPlan {
            length,
            check,
            max,
            nibbles,
            container: fs.subfields.is_some(),
            run_members: 0,
            run_check: RunCheck::None,
            wire,
            filler,
        }
    }
}

/// Plans for every field number 0..=192.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plans(Box<[FieldPlan; MAX_FIELD as usize + 1]>);

impl Plans {
    pub(crate) fn new(fields: &[Option<FieldSpec>]) -> Plans {
        let mut plans = Box::new([FieldPlan::ABSENT; MAX_FIELD as usize + 1]);
        for (plan, fs) in plans.iter_mut().zip(fields) {
            if let Some(fs) = fs {
                *plan = FieldPlan::of(fs);
            }
        }
        // Field 1 is the secondary bitmap's bit, never a data element.
        let checks: Vec<Option<RunCheck>> = (0..plans.len())
            .map(|n| plans[n].run_check().filter(|_| n >= 2))
            .collect();
        for (n, check) in checks.iter().enumerate() {
            let Some(check) = check else { continue };
            let word = (n - 1) / 64;
            let members = (0..64)
                .filter(|i| checks.get(64 * word + i + 1) == Some(&Some(*check)))
                .fold(0u64, |m, i| m | 1 << i);
            plans[n].run_members = members;
            plans[n].run_check = *check;
        }
        Plans(plans)
    }

    /// The plan of field `n` (absent for numbers the dialect lacks).
    #[inline(always)]
    pub(crate) fn get(&self, n: u16) -> &FieldPlan {
        self.0.get(n as usize).unwrap_or(&FieldPlan::ABSENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::Spec;

    /// Every field that starts a run is a member of its own run, and every
    /// member has the same check and a fixed length (so runs are contiguous
    /// on the wire and one check covers them).
    #[test]
    fn run_members_share_a_fixed_layout_and_check() {
        for name in ["cb2a", "iso87ascii", "iso87binary", "iso87visa"] {
            let spec = Spec::builtin(name).unwrap();
            let mut runs = 0;
            for n in 2..=MAX_FIELD {
                let plan = spec.plans.get(n);
                if plan.run_members == 0 {
                    continue;
                }
                runs += 1;
                let w = (n - 1) / 64;
                assert_ne!(plan.run_members & 1 << ((n - 1) % 64), 0, "{name} {n}");
                for i in 0..64u16 {
                    if plan.run_members & 1 << i != 0 {
                        let m = spec.plans.get(64 * w + i + 1);
                        assert_eq!(m.run_check, plan.run_check, "{name} {n}/{}", 64 * w + i + 1);
                        assert!(matches!(m.length, LengthPlan::Fixed { .. }));
                        assert!(!m.container);
                    }
                }
            }
            assert!(runs > 10, "{name}: {runs}");
        }
        // cb2a: the fixed packed fields 3 to 25 share one run check.
        let cb2a = Spec::builtin("cb2a").unwrap();
        let p3 = cb2a.plans.get(3);
        assert_eq!(p3.run_check, RunCheck::BcdDigits);
        for n in [4u16, 7, 11, 12, 13, 14, 18, 22, 25, 49] {
            assert_ne!(p3.run_members & 1 << (n - 1), 0, "{n}");
        }
        assert_eq!(p3.run_members & 1 << 1, 0, "DE 2 is LLVAR");
        assert_eq!(cb2a.plans.get(22).filler, Some((Pad::Left, 0)));
    }
}
