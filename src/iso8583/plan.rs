//! Per-field decode plans: each field's spec boiled down, once at load, to
//! the few numbers the decoder's hot loop needs (how to read the length,
//! which check to run), so the loop branches on one small `Copy` value
//! instead of walking the spec's enums per field.
//!
//! A plan only ever *accepts* what [`super::decode::field_value`] accepts:
//! anything it does not handle, and every failure, goes to that function,
//! which gives the precise error. `decode::tests` and the `iso_decode` fuzz
//! target compare both paths.

use super::encoding::{class_table, DataEncoding, Pad};
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
}

impl FieldPlan {
    pub(crate) const ABSENT: FieldPlan = FieldPlan {
        length: LengthPlan::General,
        check: CheckPlan::None,
        max: 0,
        nibbles: false,
        container: false,
    };

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
            DataEncoding::Ascii => CheckPlan::Table(class_table(fs.class)),
            DataEncoding::Bcd if fs.class == super::Class::N && fs.filler <= 9 => {
                CheckPlan::BcdDigits {
                    filler: fs.filler,
                    pad: fs.pad,
                }
            }
            // EBCDIC, other BCD classes: the general path, prefix and all.
            DataEncoding::Bcd | DataEncoding::Ebcdic => {
                return FieldPlan {
                    length: LengthPlan::General,
                    ..FieldPlan::ABSENT
                }
            }
        };
        FieldPlan {
            length,
            check,
            max,
            nibbles,
            container: fs.subfields.is_some(),
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
        Plans(plans)
    }

    /// The plan of field `n` (absent for numbers the dialect lacks).
    #[inline(always)]
    pub(crate) fn get(&self, n: u16) -> &FieldPlan {
        self.0.get(n as usize).unwrap_or(&FieldPlan::ABSENT)
    }
}
