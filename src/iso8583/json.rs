//! The JSON document form used by the CLI, in pyiso8583's shape:
//! `{"t": "0100", "p": "<bitmap hex>", "2": "4761...", "55": {"9F26": "..."}}`.
//!
//! Values are the fields' logical text (uppercase hex for binary data);
//! sub-field containers become nested objects keyed by tag, part id or
//! sub-field number. `"p"` and `"1"` (bitmaps) are informative on output and
//! ignored on input: bitmaps are always computed from the fields present.

use serde_json::{Map, Value};

use super::encoding::DataEncoding;
use super::error::{Location, ValueError};
use super::field::{Field, Message};
use super::mask::mask;
use super::mti::Mti;
use super::spec::{FieldSpec, Sensitivity, Spec, Subfields};
use super::subfield::{ber_objects, bitmap_subfields, fixed_parts, tlv_entries, SubValue};
use super::value::text_of;

fn hex_upper(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    super::encoding::push_hex_upper(&mut s, b);
    s
}

fn shown(sensitivity: Sensitivity, text: String, reveal: bool) -> Value {
    if reveal {
        Value::String(text)
    } else {
        Value::String(mask(sensitivity, &text))
    }
}

fn field_json(spec: &FieldSpec, field: &Field<'_>, reveal: bool) -> Value {
    match &spec.subfields {
        Some(subs) => container_json(subs, field.raw(), reveal),
        None => shown(spec.sensitivity, text_of(spec, field).into_owned(), reveal),
    }
}

fn container_json(subs: &Subfields, data: &[u8], reveal: bool) -> Value {
    let mut map = Map::new();
    match subs {
        Subfields::BerTlv { tags, .. } => ber_json(data, tags, reveal, &mut map),
        Subfields::Tlv(layout) => {
            for e in tlv_entries(layout, data) {
                let known = layout
                    .tags
                    .iter()
                    .find(|(t, _)| t.as_slice() == e.tag)
                    .map(|(_, ts)| ts);
                let key = match known {
                    Some(ts) => ts.label.clone(),
                    None if layout.tag_encoding == super::spec::TlvPartEncoding::Binary => {
                        hex_upper(e.tag)
                    }
                    None => String::from_utf8_lossy(e.tag).into_owned(),
                };
                let (text, sens) = match known {
                    Some(ts) if ts.encoding == DataEncoding::Binary => {
                        (hex_upper(e.value), ts.sensitivity)
                    }
                    Some(ts) => (
                        String::from_utf8_lossy(e.value).into_owned(),
                        ts.sensitivity,
                    ),
                    // A tag the dialect does not list may hold anything:
                    // hidden unless revealed.
                    None if layout.unknown_values == DataEncoding::Binary => {
                        (hex_upper(e.value), UNKNOWN_TAG)
                    }
                    None => (String::from_utf8_lossy(e.value).into_owned(), UNKNOWN_TAG),
                };
                map.insert(key, shown(sens, text, reveal));
            }
        }
        Subfields::Fixed { parts } => {
            for (id, spec, f) in fixed_parts(parts, data) {
                map.insert(id.to_string(), field_json(spec, &f, reveal));
            }
        }
        Subfields::Bitmap {
            bitmap_bytes,
            fields,
        } => {
            for (n, spec, f) in bitmap_subfields(*bitmap_bytes, fields, data) {
                map.insert(n.to_string(), field_json(spec, &f, reveal));
            }
        }
    }
    Value::Object(map)
}

fn ber_json(
    data: &[u8],
    tags: &[(u32, super::spec::TagSpec)],
    reveal: bool,
    map: &mut Map<String, Value>,
) {
    for obj in ber_objects(data) {
        let key = hex_upper(obj.tag_bytes);
        let value = if obj.constructed {
            let mut inner = Map::new();
            ber_json(obj.value, tags, reveal, &mut inner);
            Value::Object(inner)
        } else {
            let sens = tags
                .iter()
                .find(|(t, _)| *t == obj.tag)
                .map_or(UNKNOWN_TAG, |(_, ts)| ts.sensitivity);
            shown(sens, hex_upper(obj.value), reveal)
        };
        map.insert(key, value);
    }
}

/// How values of sub-field tags the dialect does not list are shown: they
/// may hold card data (an EMV PAN or cryptogram), so hidden unless revealed.
const UNKNOWN_TAG: Sensitivity = Sensitivity::Cryptogram;

/// A message as a JSON document; sensitive values masked unless `reveal`.
pub fn to_document(spec: &Spec, msg: &Message<'_>, reveal: bool) -> Value {
    let mut doc = Map::new();
    if spec.header_len > 0 {
        let h = msg.header();
        let text = if spec.header_ascii {
            String::from_utf8_lossy(h).into_owned()
        } else {
            hex_upper(h)
        };
        doc.insert("h".into(), Value::String(text));
    }
    doc.insert("t".into(), Value::String(msg.mti().to_string()));
    let bitmap = msg.bitmap(spec.tertiary);
    doc.insert(
        "p".into(),
        Value::String(format!("{:016X}", bitmap.word(0))),
    );
    if bitmap.get(1) {
        doc.insert(
            "1".into(),
            Value::String(format!("{:016X}", bitmap.word(1))),
        );
    }
    if spec.tertiary && bitmap.get(65) {
        doc.insert(
            "65".into(),
            Value::String(format!("{:016X}", bitmap.word(2))),
        );
    }
    for (n, field) in msg.fields() {
        if let Some(fs) = spec.field(n) {
            doc.insert(n.to_string(), field_json(fs, &field, reveal));
        }
    }
    Value::Object(doc)
}

/// Builds a message from a JSON document, validating every value.
pub fn from_document(spec: &Spec, doc: &Value) -> Result<Message<'static>, ValueError> {
    let obj = doc.as_object().ok_or(ValueError::Invalid {
        location: Location::Mti,
        reason: "a message document is a JSON object",
    })?;
    let mti = obj
        .get("t")
        .and_then(Value::as_str)
        .and_then(Mti::parse)
        .ok_or(ValueError::BadMti)?;
    let mut msg = Message::new(mti);
    for (key, value) in obj {
        match key.as_str() {
            "t" | "p" | "1" => continue,
            "h" => {
                let text = value
                    .as_str()
                    .ok_or(ValueError::NeedsString(Location::Header))?;
                let bytes = if spec.header_ascii {
                    if let Some(index) = super::encoding::first_non_printable(text.as_bytes()) {
                        return Err(ValueError::BadChar {
                            location: Location::Header,
                            index,
                            class: "ans",
                        });
                    }
                    text.as_bytes().to_vec()
                } else {
                    hex::decode(text).map_err(|_| ValueError::BadHex(Location::Header))?
                };
                msg.set_header(bytes);
            }
            "65" if spec.tertiary => continue,
            _ => {
                let n: u16 = key.parse().map_err(|_| ValueError::Invalid {
                    location: Location::Mti,
                    reason: "document keys are \"t\", \"h\", \"p\" or field numbers",
                })?;
                let location = Location::Field(n);
                let fs = spec.field(n).ok_or(ValueError::NotInDialect(location))?;
                match (value, &fs.subfields) {
                    (Value::String(s), None) => spec.set_text(&mut msg, n, s)?,
                    (Value::Object(m), Some(_)) => {
                        let entries = entries_of(m, location)?;
                        spec.set_subfields(&mut msg, n, &entries)?;
                    }
                    // A container given as flat text: its raw logical value.
                    (Value::String(s), Some(_)) => spec.set_text(&mut msg, n, s)?,
                    (_, None) => return Err(ValueError::NeedsString(location)),
                    (_, Some(_)) => return Err(ValueError::NeedsObject(location)),
                }
            }
        }
    }
    if spec.header_len > 0 && msg.header().is_empty() {
        msg.set_header(vec![
            if spec.header_ascii { b' ' } else { 0 };
            spec.header_len
        ]);
    }
    if msg.header().len() != spec.header_len {
        return Err(ValueError::Invalid {
            location: Location::Header,
            reason: "header has the wrong length",
        });
    }
    Ok(msg)
}

fn entries_of(
    map: &Map<String, Value>,
    location: Location,
) -> Result<Vec<(&str, SubValue<'_>)>, ValueError> {
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.as_str(), SubValue::Text(s))),
            Value::Object(inner) => {
                Ok((k.as_str(), SubValue::Nested(entries_of(inner, location)?)))
            }
            _ => Err(ValueError::NeedsString(location)),
        })
        .collect()
}
