//! The `acqswitch iso` commands, through the real binary.

mod common;
use common::run;

const DOC: &str = r#"{"t":"0100","2":"4895370012003478","4":"000000001000","11":"000123","14":"2812","47":{"01":"05","02":"00112233445566778899AABBCCDDEEFF00112233","03":"216"}}"#;

#[test]
fn encode_then_decode_masked_and_revealed() {
    let enc = run(
        &["iso", "encode", "--spec", "cb2a", "--hex"],
        DOC.as_bytes(),
    );
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    let hex = String::from_utf8(enc.stdout).unwrap();
    assert!(hex.starts_with("0100"), "{hex}");

    let dec = run(
        &["iso", "decode", "--spec", "cb2a", "--hex"],
        hex.as_bytes(),
    );
    assert!(dec.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&dec.stdout).unwrap();
    assert_eq!(doc["t"], "0100");
    assert_eq!(doc["2"], "489537******3478");
    assert_eq!(doc["47"]["01"], "05");
    assert_eq!(doc["47"]["02"], "*".repeat(40));
    let text = String::from_utf8_lossy(&dec.stdout);
    assert!(!text.contains("4895370012003478") && !text.contains("00112233445566778899"));

    let rev = run(
        &["iso", "decode", "--spec", "cb2a", "--hex", "--reveal"],
        hex.as_bytes(),
    );
    let doc: serde_json::Value = serde_json::from_slice(&rev.stdout).unwrap();
    assert_eq!(doc["2"], "4895370012003478");
    assert_eq!(doc["47"]["02"], "00112233445566778899AABBCCDDEEFF00112233");

    // Raw bytes in, raw bytes out.
    let raw = run(&["iso", "encode", "--spec", "cb2a"], DOC.as_bytes());
    assert_eq!(hex::encode_upper(&raw.stdout), hex.trim());
    let dec_raw = run(&["iso", "decode", "--spec", "cb2a"], &raw.stdout);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&dec_raw.stdout).unwrap()["11"],
        "000123"
    );
}

#[test]
fn bad_input_names_field_and_offset_and_prints_nothing() {
    // iso87ascii: MTI, bitmap with field 2, then LL "25" over the maximum 19.
    let wire = b"01004000000000000000254895370012003478";
    let out = run(&["iso", "decode", "--spec", "iso87ascii"], wire);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "error: field 2 at byte 20: length 25 over maximum 19"
    );

    let out = run(
        &["iso", "encode", "--spec", "cb2a"],
        br#"{"t":"0100","2":"48953700120034781234567"}"#,
    );
    assert!(!out.status.success() && out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("field 2") && !err.contains("4895370012003478"),
        "{err}"
    );

    let out = run(&["iso", "decode", "--spec", "cb2a", "--hex"], b"01ZZ");
    assert!(!out.status.success() && out.stdout.is_empty());

    let out = run(&["iso", "decode", "--spec", "/nonexistent.toml"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read dialect file"));
}

#[test]
fn decode_output_matches_pyiso8583_document_shape() {
    let doc = r#"{"t":"0800","7":"1123174500","11":"000001","70":"301"}"#;
    let enc = run(
        &["iso", "encode", "--spec", "iso87binary", "--hex"],
        doc.as_bytes(),
    );
    let dec = run(
        &["iso", "decode", "--spec", "iso87binary", "--hex"],
        &enc.stdout,
    );
    let v: serde_json::Value = serde_json::from_slice(&dec.stdout).unwrap();
    assert_eq!(v["t"], "0800");
    assert_eq!(v["p"], "8220000000000000");
    assert_eq!(v["1"], "0400000000000000");
    assert_eq!(v["70"], "301");
}

#[test]
fn demo_runs_and_masks() {
    let out = run(&["demo"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2=489537******3478"), "{text}");
    assert!(!text.contains("4895370012003478"));
    // Each row's answer is what its amount asks of the simulator, in
    // both modes.
    for mode in ["CRYPTOGRAM_3DS", "PAN_ONLY"] {
        for (amount, rc, meaning) in [
            ("10.00", "00", "approved"),
            ("10.05", "05", "refused"),
            ("10.99", "90", "technical failure"),
        ] {
            let row = text
                .lines()
                .find(|l| l.starts_with(mode) && l.contains(amount))
                .unwrap_or_else(|| panic!("no {mode} {amount} row: {text}"));
            let rc_col = row.split('|').nth(2).unwrap().split_whitespace().next();
            assert_eq!(rc_col, Some(rc), "{row}");
            assert!(row.ends_with(meaning), "{row}");
        }
    }
    // After the authorization: the partial cancel, the cut-off, the refund.
    assert!(
        text.contains("responseCode 00 -> TO_CAPTURE 7.50"),
        "{text}"
    );
    assert!(text.contains("2 captured, 0 expired"), "{text}");
    assert!(text.contains("responseCode 00 -> CREDITED 4.50"), "{text}");
}
