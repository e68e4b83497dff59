//! Sample and random messages for a dialect: the bundled example, the
//! interoperability and property tests, the fuzz seeds and the benchmarks
//! all draw from here, so "a valid message" means one thing everywhere.

use rand::Rng;

use super::encoding::{Class, DataEncoding};
use super::field::Message;
use super::mti::Mti;
use super::spec::{FieldSpec, LengthType, Spec, Subfields};
use super::subfield::SubValue;

/// A random value of `units` length that `spec` accepts, in logical form.
pub fn random_text(spec: &FieldSpec, units: usize, rng: &mut impl Rng) -> String {
    const HEX: &[u8] = b"0123456789ABCDEF";
    match spec.encoding {
        DataEncoding::Binary => (0..units * 2)
            .map(|_| HEX[rng.gen_range(0..16)] as char)
            .collect(),
        DataEncoding::Bcd => (0..units)
            .map(|_| match spec.class {
                Class::Z if rng.gen_ratio(1, 8) => 'D',
                Class::B => HEX[rng.gen_range(0..16)] as char,
                _ => char::from(b'0' + rng.gen_range(0..10u8)),
            })
            .collect(),
        DataEncoding::Ascii | DataEncoding::Ebcdic => {
            (0..units).map(|_| random_char(spec.class, rng)).collect()
        }
    }
}

fn random_char(class: Class, rng: &mut impl Rng) -> char {
    loop {
        let c = rng.gen_range(0x20u8..0x7F);
        if class.allows_char(c) {
            return c as char;
        }
    }
}

/// A random length the field accepts (its maximum capped at `cap`).
fn random_units(spec: &FieldSpec, cap: usize, rng: &mut impl Rng) -> usize {
    match spec.length {
        LengthType::Fixed => spec.max,
        _ => rng.gen_range(0..=spec.max.min(cap)),
    }
}

/// Random container entries that fit in `budget` bytes.
fn random_entries(subs: &Subfields, budget: usize, rng: &mut impl Rng) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut used = 0;
    match subs {
        Subfields::BerTlv { tags, .. } => {
            for (tag, ts) in tags {
                let len = rng.gen_range(1..=ts.max.min(16));
                let size = tag_len(*tag) + 1 + len;
                if rng.gen_bool(0.5) && used + size <= budget {
                    used += size;
                    out.push((ts.label.clone(), hex_of(rng, len)));
                }
            }
            // An unknown tag, which must survive the round trip.
            if used + 4 <= budget && rng.gen_bool(0.5) {
                out.push(("DF51".into(), "00".into()));
            }
        }
        Subfields::Tlv(layout) => {
            for (_, ts) in &layout.tags {
                let len = rng.gen_range(1..=ts.max.min(24));
                let size = layout.tag_width + layout.length_width + len;
                if rng.gen_bool(0.6) && used + size <= budget {
                    used += size;
                    let v = match ts.encoding {
                        DataEncoding::Binary => hex_of(rng, len),
                        _ => (0..len).map(|_| random_char(ts.class, rng)).collect(),
                    };
                    out.push((ts.label.clone(), v));
                }
            }
        }
        Subfields::Fixed { parts } => {
            for (id, spec) in parts {
                out.push((id.clone(), random_text(spec, spec.max, rng)));
            }
        }
        Subfields::Bitmap { fields, .. } => {
            for (n, spec) in fields.iter().enumerate() {
                if let Some(spec) = spec {
                    if rng.gen_bool(0.5) {
                        let units = random_units(spec, 16, rng);
                        out.push((n.to_string(), random_text(spec, units, rng)));
                    }
                }
            }
        }
    }
    out
}

fn tag_len(tag: u32) -> usize {
    match tag {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 3,
    }
}

fn hex_of(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| format!("{:02X}", rng.gen::<u8>()))
        .collect()
}

/// Sets a random valid value in field `n` (containers get valid entries).
pub fn set_random_field(
    spec: &Spec,
    msg: &mut Message<'_>,
    n: u16,
    cap: usize,
    rng: &mut impl Rng,
) {
    let Some(fs) = spec.field(n) else { return };
    if let Some(subs) = &fs.subfields {
        let budget = fs.max.min(cap.max(8));
        let entries = random_entries(subs, budget, rng);
        let borrowed: Vec<(&str, SubValue<'_>)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), SubValue::Text(v)))
            .collect();
        // A fixed-length container its random parts did not fill stays absent.
        let _ = spec.set_subfields(msg, n, &borrowed);
        return;
    }
    let units = random_units(fs, cap, rng);
    let text = random_text(fs, units, rng);
    // Generated values always fit the field: a failure is a bug here.
    if let Err(e) = spec.set_text(msg, n, &text) {
        panic!("sample generator made a bad value for field {n}: {e}");
    }
}

/// A random valid message: each field present with probability `density`,
/// variable lengths up to `cap` units.
pub fn random_message(
    spec: &Spec,
    density: f64,
    cap: usize,
    rng: &mut impl Rng,
) -> Message<'static> {
    let mtis = [*b"0100", *b"0110", *b"0200", *b"0400", *b"0800", *b"0810"];
    let mut msg = Message::new(Mti::new(mtis[rng.gen_range(0..mtis.len())]));
    if spec.header_len > 0 {
        msg.set_header(vec![b'0'; spec.header_len]);
    }
    let numbers: Vec<u16> = spec.field_numbers().collect();
    for n in numbers {
        if rng.gen_bool(density) {
            set_random_field(spec, &mut msg, n, cap, rng);
        }
    }
    msg
}

/// Every field of the dialect present (the benchmarks' "large message").
pub fn full_message(spec: &Spec, rng: &mut impl Rng) -> Message<'static> {
    let mut msg = Message::new(Mti::AUTHORIZATION_REQUEST);
    if spec.header_len > 0 {
        msg.set_header(vec![b'0'; spec.header_len]);
    }
    let numbers: Vec<u16> = spec.field_numbers().collect();
    for n in numbers {
        set_random_field(spec, &mut msg, n, 64, rng);
    }
    msg
}

/// A realistic e-commerce Google Pay (CRYPTOGRAM_3DS) authorization 0100
/// for the cb2a dialect: DPAN, expiry, amount, STAN, RRN, ids, and ECI,
/// TAVV and wallet id in the national TLV field.
pub fn wallet_authorization_cb2a(spec: &Spec) -> Result<Message<'static>, super::ValueError> {
    let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
    spec.set_text(&mut m, 2, "4895370012003478")?;
    spec.set_text(&mut m, 3, "000000")?;
    spec.set_text(&mut m, 4, "000000001000")?;
    spec.set_text(&mut m, 7, "1123174500")?;
    spec.set_text(&mut m, 11, "000123")?;
    spec.set_text(&mut m, 12, "174500")?;
    spec.set_text(&mut m, 13, "1123")?;
    spec.set_text(&mut m, 14, "2812")?;
    spec.set_text(&mut m, 18, "5999")?;
    spec.set_text(&mut m, 22, "812")?;
    spec.set_text(&mut m, 25, "59")?;
    spec.set_text(&mut m, 32, "12345678901")?;
    spec.set_text(&mut m, 37, "632717450012")?;
    spec.set_text(&mut m, 41, "ACQ00001")?;
    spec.set_text(&mut m, 42, "MERCHANT0000001")?;
    spec.set_text(&mut m, 49, "978")?;
    spec.set_subfields(
        &mut m,
        47,
        &[
            ("01", SubValue::Text("05")),
            (
                "02",
                SubValue::Text("0200000000008A9F4F0B0A3C5B2E1D000000000000"),
            ),
            ("03", SubValue::Text("216")),
            ("04", SubValue::Text("50110030273")),
            ("05", SubValue::Text("INTERNET")),
        ],
    )?;
    Ok(m)
}

/// The same authorization for the iso87 dialects (ASCII numerics), with
/// the cryptogram in DE 55-free form: DE 48 carries nothing card-related.
pub fn wallet_authorization_iso87(spec: &Spec) -> Result<Message<'static>, super::ValueError> {
    let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
    for (n, v) in [
        (2, "4895370012003478"),
        (3, "000000"),
        (4, "000000001000"),
        (7, "1123174500"),
        (11, "000123"),
        (12, "174500"),
        (13, "1123"),
        (14, "2812"),
        (18, "5999"),
        (22, "812"),
        (25, "59"),
        (32, "12345678901"),
        (37, "632717450012"),
        (41, "ACQ00001"),
        (42, "MERCHANT0000001"),
        (49, "978"),
        (126, "0200000000008A9F4F0B0A3C5B2E1D00000000000005"),
    ] {
        spec.set_text(&mut m, n, v)?;
    }
    Ok(m)
}
