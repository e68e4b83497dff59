//! End to end through HTTP: the library server on 127.0.0.1:0, the acquirer
//! simulator in process (the real one, no mock), Google Pay test tokens.
//! Every response-code path of the gateway API, and the ISO 8583 0100 as
//! the simulator decoded it, checked value by value where the mapping file
//! says.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acqswitch::card::Secret;
use acqswitch::config::Config;
use acqswitch::front::{PATH_CARD_ORDER, PATH_CHECK};
use acqswitch::iso8583::{Message, Mti, Spec};
use acqswitch::load_api::{seal_request, ApiClient};
use acqswitch::seal::{self, SealAlgorithm};
use acqswitch::sim::{Faults, SimConfig, Simulator};
use acqswitch::system::{self, Running};
use acqswitch::wallet::googlepay::{
    testkeys, Cryptogram, DecryptedPayment, Pan, PaymentMethodDetails, ProtocolVersion,
};
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const M1: &str = "011223344550000";
const SECRET1: &str = "secret-one";
const M2: &str = "022334455660000";
const SECRET2: &str = "secret-two";
const DPAN: &str = "4895370012003478";
const FPAN: &str = "5413330089020011";
const TAVV: &str = "AgAAAAAABk4DWZ4C28yUQAAAAAA=";
const CAVV: &str = "AAABBEg0VhI0VniQEjRWAAAAAAA=";

fn config(acquirers: &str, simulator: bool) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
threads = 1
body_limit = 65536
header_read_timeout = "300ms"
body_read_timeout = "300ms"
[journal]
backend = "memory"
{sim}
{acquirers}
[[merchants]]
id = "{M1}"
keys = [{{ version = 1, secret = "old" }}, {{ version = 2, secret = "{SECRET1}" }}]
[merchants.googlepay]
test_keys = true
[[merchants.contracts]]
acquirer = "main"
terminal_id = "ACQ00001"
acceptor_id = "MERCHANT0000001"

[[merchants]]
id = "{M2}"
keys = [{{ version = 1, secret = "{SECRET2}" }}]
[merchants.googlepay]
test_keys = true
[[merchants.contracts]]
acquirer = "main"
terminal_id = "ACQ00002"
acceptor_id = "MERCHANT0000002"
brands = ["AMEX"]
"#,
        sim = if simulator {
            "[simulator]\ndialect = \"cb2a\"\nrecord = 16"
        } else {
            ""
        }
    );
    Config::from_toml_str(&text).unwrap()
}

fn cb2a_acquirer(primary: &str) -> String {
    format!(
        r#"
[[acquirers]]
name = "main"
dialect = "cb2a"
mapping = "cb2a"
[acquirers.pool]
primary = "{primary}"
links = 1
request_timeout = "500ms"
connect_timeout = "200ms"
"#
    )
}

async fn start_default() -> Running {
    start_sharded(1).await
}

/// The switch on the embedded simulator with `shards` runtime threads,
/// ready.
async fn start_sharded(shards: usize) -> Running {
    let mut cfg = config(&cb2a_acquirer("simulator"), true);
    cfg.server.threads = shards;
    let running = system::start(cfg).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.wait_ready())
        .await
        .unwrap();
    running
}

#[tokio::test]
async fn an_acquirer_defined_twice_is_refused_at_start() {
    let twice = format!(
        "{}{}",
        cb2a_acquirer("simulator"),
        cb2a_acquirer("simulator")
    );
    let err = match system::start(config(&twice, true)).await {
        Ok(_) => panic!("two acquirers named main were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("main") && err.contains("defined twice"),
        "{err}"
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(pan_only: bool, pan: &str) -> String {
    let pan = Pan::new(pan).unwrap();
    let details = if pan_only {
        PaymentMethodDetails::pan_only(pan, 12, 2030)
    } else {
        PaymentMethodDetails::cryptogram_3ds(
            pan,
            12,
            2030,
            Cryptogram::from_base64(TAVV).expect("test cryptogram"),
            Some("05".into()),
        )
    };
    let payment = DecryptedPayment::card(unique("t"), now_ms() + 600_000, details);
    testkeys::sender(ProtocolVersion::EcV2)
        .unwrap()
        .seal_payment(&payment, &mut rand::thread_rng())
        .unwrap()
}

struct Api {
    client: ApiClient,
}

impl Api {
    async fn new(r: &Running) -> Api {
        Api {
            client: ApiClient::connect(r.addr()).await.unwrap(),
        }
    }

    /// Posts `body` sealed for `merchant`; checks the response's seal with
    /// that merchant's key.
    async fn call(&mut self, path: &str, merchant: &str, body: Value) -> Value {
        let (version, secret) = if merchant == M2 {
            (1, SECRET2)
        } else {
            (2, SECRET1)
        };
        let mut body = body;
        body["merchantId"] = json!(merchant);
        body["interfaceVersion"] = json!("IR_WS_2.55");
        let req = seal_request(body, version, &Secret::new(secret));
        self.raw(path, &req).await
    }

    async fn raw(&mut self, path: &str, req: &Value) -> Value {
        let (status, v) = self.client.post_json(path, req).await.unwrap();
        assert_eq!(status, 200, "{v}");
        let merchant = req["merchantId"].as_str().unwrap_or("");
        if merchant == M1 || merchant == M2 {
            let secret = if merchant == M2 { SECRET2 } else { SECRET1 };
            assert!(
                seal::verify(&v, &Secret::new(secret), SealAlgorithm::HmacSha256),
                "response not sealed with the merchant's key: {v}"
            );
        }
        v
    }
}

fn order(reference: &str, amount: u64) -> Value {
    json!({
        "transactionReference": reference,
        "amount": amount,
        "currencyCode": "978",
        "orderChannel": "INTERNET",
        "paymentMeanDataProvider": "GOOGLEPAY",
    })
}

/// A CRYPTOGRAM_3DS cardOrder on the test DPAN with its TAVV and ECI.
fn dpan_order(reference: &str, amount: u64) -> Value {
    let mut o = order(reference, amount);
    o["cardNumber"] = json!(DPAN);
    o["cardExpiryDate"] = json!("203012");
    o["authenticationResult"] = json!({"holderAuthentProgram": "GOOGLEPAY",
        "googlePay": {"eci": "05", "cavv": TAVV}});
    o
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}x{}", now_ms(), N.fetch_add(1, Ordering::Relaxed))
}

/// The last 0100 the simulator decoded.
fn last_0100(r: &Running) -> Message<'static> {
    r.simulator()
        .unwrap()
        .records()
        .into_iter()
        .rev()
        .find(|m| m.mti() == Mti::AUTHORIZATION_REQUEST)
        .expect("an 0100 reached the simulator")
}

fn hex_of_b64(s: &str) -> String {
    hex::encode_upper(base64::engine::general_purpose::STANDARD.decode(s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryptogram_3ds_end_to_end_and_the_0100_fields() {
    let r = start_default().await;
    let mut api = Api::new(&r).await;
    let check = json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(false, DPAN)});
    let c = api.call(PATH_CHECK, M1, check.clone()).await;
    assert_eq!(c["responseCode"], "00", "{c}");
    // The same token again is a replay: refused, nothing revealed.
    let again = api.call(PATH_CHECK, M1, check).await;
    assert_eq!(again["responseCode"], "12", "{again}");
    assert_eq!(again["errorFieldName"], "paymentData");
    assert!(!again.to_string().contains(DPAN));
    assert_eq!(c["paymentToken"], DPAN);
    assert_eq!(c["cardExpiryDate"], "203012");
    assert_eq!(c["paymentMeanBrand"], "VISA");
    assert_eq!(c["maskedPan"], "489537******3478");
    assert_eq!(
        c["authenticationResult"]["holderAuthentProgram"],
        "GOOGLEPAY"
    );
    assert_eq!(c["authenticationResult"]["googlePay"]["eci"], "05");
    assert_eq!(c["authenticationResult"]["googlePay"]["cavv"], TAVV);

    let reference = unique("A");
    let mut o = order(&reference, 1000);
    o["paymentToken"] = c["paymentToken"].clone();
    o["cardExpiryDate"] = c["cardExpiryDate"].clone();
    o["authenticationResult"] = c["authenticationResult"].clone();
    let v = api.call(PATH_CARD_ORDER, M1, o).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    assert_eq!(v["acquirerResponseCode"], "00");
    assert_eq!(v["authorisationId"].as_str().unwrap().len(), 6);
    assert_eq!(v["transactionReference"], reference.as_str());
    assert_eq!(v["maskedPan"], "489537******3478");
    assert_eq!(v["paymentMeanBrand"], "VISA");
    assert_eq!(v["paymentMeanDataProvider"], "GOOGLEPAY");
    assert!(v["transactionDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(!v.to_string().contains(DPAN));

    // Decoded on the simulator side, where specs/cb2a.mapping.toml says.
    let spec = Spec::builtin("cb2a").unwrap();
    let m = last_0100(&r);
    assert_eq!(spec.text(&m, 2).unwrap(), DPAN);
    assert_eq!(spec.text(&m, 14).unwrap(), "3012");
    assert_eq!(spec.text(&m, 4).unwrap(), "000000001000");
    assert_eq!(spec.text(&m, 22).unwrap(), "812");
    assert_eq!(spec.text(&m, 41).unwrap(), "ACQ00001");
    assert_eq!(spec.subfield_text(&m, 47, "01").unwrap(), "05");
    assert_eq!(spec.subfield_text(&m, 47, "02").unwrap(), hex_of_b64(TAVV));
    assert_eq!(spec.subfield_text(&m, 47, "03").unwrap(), "216");
    assert_eq!(spec.subfield_text(&m, 47, "04").unwrap(), "40010075001");
    assert_eq!(spec.subfield_text(&m, 47, "05").unwrap(), "INTERNET");

    // The TAVV may come as schemeTokenData.tavv instead: same 0100 content.
    let mut o = order(&unique("B"), 1000);
    o["cardNumber"] = json!(DPAN);
    o["cardExpiryDate"] = json!("203012");
    o["holderAuthentProgram"] = json!("GOOGLEPAY");
    o["schemeTokenData"] = json!({"tavv": TAVV, "eci": "05"});
    let v = api.call(PATH_CARD_ORDER, M1, o).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    let m = last_0100(&r);
    assert_eq!(spec.subfield_text(&m, 47, "02").unwrap(), hex_of_b64(TAVV));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pan_only_keeps_the_pan_in_the_vault() {
    let r = start_default().await;
    let mut api = Api::new(&r).await;
    let c = api
        .call(
            PATH_CHECK,
            M1,
            json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(true, FPAN)}),
        )
        .await;
    assert_eq!(c["responseCode"], "00", "{c}");
    let reference = c["paymentToken"].as_str().unwrap().to_owned();
    assert!(reference.starts_with("vlt_"), "{c}");
    assert!(!c.to_string().contains(FPAN));
    assert_eq!(c["maskedPan"], "541333******0011");
    assert_eq!(c["paymentMeanBrand"], "MASTERCARD");
    assert!(c.get("authenticationResult").is_none());

    // 3-D Secure supplies the CAVV and ECI; the switch resolves the PAN.
    let mut o = order(&unique("P"), 2000);
    o["paymentToken"] = json!(reference);
    o["authenticationResult"] =
        json!({"holderAuthentProgram": "3DS", "threeDS": {"eci": "02", "cavv": CAVV}});
    let v = api.call(PATH_CARD_ORDER, M1, o).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    assert_eq!(v["maskedPan"], "541333******0011");
    let spec = Spec::builtin("cb2a").unwrap();
    let m = last_0100(&r);
    assert_eq!(spec.text(&m, 2).unwrap(), FPAN);
    assert_eq!(spec.text(&m, 14).unwrap(), "3012");
    assert_eq!(spec.subfield_text(&m, 47, "01").unwrap(), "02");
    assert_eq!(spec.subfield_text(&m, 47, "02").unwrap(), hex_of_b64(CAVV));
    assert_eq!(spec.subfield_text(&m, 47, "03").unwrap(), "216");
    assert!(
        spec.subfield_text(&m, 47, "04").is_none(),
        "no TRID for a PAN"
    );

    // Without 3-D Secure: no ECI, no cryptogram in the 0100.
    let mut o = order(&unique("Q"), 2000);
    o["paymentToken"] = json!(reference);
    let v = api.call(PATH_CARD_ORDER, M1, o).await;
    assert_eq!(v["responseCode"], "00", "{v}");
    let m = last_0100(&r);
    assert!(spec.subfield_text(&m, 47, "02").is_none());

    // Another merchant cannot use the reference: to it, it is unknown (14).
    let mut o = order(&unique("R"), 2000);
    o["paymentToken"] = json!(reference);
    let v = api.call(PATH_CARD_ORDER, M2, o).await;
    assert_eq!(v["responseCode"], "14", "{v}");
    assert_eq!(v["errorFieldName"], "paymentToken");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_codes_refused_technical_timeout_duplicate() {
    let r = start_default().await;
    let mut api = Api::new(&r).await;
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&unique("C"), 1005))
        .await;
    assert_eq!(
        (
            v["responseCode"].as_str(),
            v["acquirerResponseCode"].as_str()
        ),
        (Some("05"), Some("05"))
    );
    assert!(v.get("authorisationId").is_none());
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&unique("C"), 1099))
        .await;
    assert_eq!(
        (
            v["responseCode"].as_str(),
            v["acquirerResponseCode"].as_str()
        ),
        (Some("90"), Some("96"))
    );

    // The same transactionReference again: with the same content, the
    // same answer (from the journal); with other content, 94. Nothing is
    // sent the second or third time.
    let reference = unique("D");
    let first = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&reference, 1000))
        .await;
    assert_eq!(first["responseCode"], "00");
    let sent = r.simulator().unwrap().counts().received;
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&reference, 1000))
        .await;
    assert_eq!(v, first, "a retry is answered the same");
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&reference, 2000))
        .await;
    assert_eq!(v["responseCode"], "94", "{v}");
    assert_eq!(v["transactionReference"], reference.as_str());
    assert_eq!(r.simulator().unwrap().counts().received, sent);
    // ... per merchant: the same reference is new for another merchant
    // (refused 03 there, no contract for Visa, but not 94).
    let v = api
        .call(PATH_CARD_ORDER, M2, dpan_order(&reference, 1000))
        .await;
    assert_eq!(v["responseCode"], "03", "{v}");

    // No answer within the request timeout: 99.
    r.simulator().unwrap().set_faults(Faults {
        no_response_every: Some(1),
        ..Faults::default()
    });
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&unique("T"), 1000))
        .await;
    assert_eq!(v["responseCode"], "99", "{v}");
    assert!(v.get("acquirerResponseCode").is_none());
    r.simulator().unwrap().set_faults(Faults::default());
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_acquirer() {
    let r = start_default().await;
    let mut api = Api::new(&r).await;
    let check = |t: &str| json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": t});

    // Bad seal: 34, still sealed with the merchant's key.
    let mut req = seal_request(
        json!({"merchantId": M1, "interfaceVersion": "IR_WS_2.55",
               "paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(false, DPAN)}),
        2,
        &Secret::new("wrong"),
    );
    let v = api.raw(PATH_CHECK, &req).await;
    assert_eq!(v["responseCode"], "34", "{v}");
    req["seal"] = json!(null);
    let v = api.raw(PATH_CHECK, &req).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("30"), Some("seal"))
    );
    // Unknown key version: 34 naming keyVersion.
    let req = seal_request(
        json!({"merchantId": M1, "interfaceVersion": "IR_WS_2.55"}),
        9,
        &Secret::new(SECRET1),
    );
    let v = api.raw(PATH_CHECK, &req).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("34"), Some("keyVersion"))
    );
    // The older key still verifies.
    let req = seal_request(
        json!({"merchantId": M1, "interfaceVersion": "IR_WS_2.55",
               "paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(false, DPAN)}),
        1,
        &Secret::new("old"),
    );
    let (_, v) = api.client.post_json(PATH_CHECK, &req).await.unwrap();
    assert_eq!(v["responseCode"], "00", "{v}");
    assert!(seal::verify(
        &v,
        &Secret::new("old"),
        SealAlgorithm::HmacSha256
    ));

    // Unknown merchant: 03, no seal (no key to seal with).
    let req = seal_request(
        json!({"merchantId": "999", "interfaceVersion": "IR_WS_2.55"}),
        1,
        &Secret::new("x"),
    );
    let v = api.raw(PATH_CHECK, &req).await;
    assert_eq!(v["responseCode"], "03");
    assert!(v.get("seal").is_none());

    // Malformed and tampered tokens.
    let v = api.call(PATH_CHECK, M1, check("{not json")).await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("30"), Some("paymentData"))
    );
    let mut t: Value = serde_json::from_str(&token(false, DPAN)).unwrap();
    t["signature"] = json!("MEUCIQDx");
    let v = api.call(PATH_CHECK, M1, check(&t.to_string())).await;
    assert_eq!(v["responseCode"], "12", "{v}");
    assert_eq!(v["errorFieldName"], "paymentData");
    // A well-signed PAN_ONLY token whose card number fails the Luhn check.
    let v = api
        .call(PATH_CHECK, M1, check(&token(true, "4111111111111112")))
        .await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("12"), Some("paymentData")),
        "{v}"
    );
    let v = api
        .call(
            PATH_CHECK,
            M1,
            json!({"paymentMeanDataProvider": "APPLEPAY", "paymentData": "{}"}),
        )
        .await;
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("12"), Some("paymentMeanDataProvider"))
    );

    // Missing and invalid cardOrder data: 30 / 12 with the field name, and
    // never the card number in the answer.
    let base = || dpan_order(&unique("E"), 1000);
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            Box::new(|o| {
                o.as_object_mut().unwrap().remove("amount");
            }),
            "30",
            "amount",
        ),
        (Box::new(|o| o["amount"] = json!("ten")), "30", "amount"),
        (Box::new(|o| o["amount"] = json!(0)), "12", "amount"),
        (
            Box::new(|o| o["currencyCode"] = json!("EUR")),
            "12",
            "currencyCode",
        ),
        (
            Box::new(|o| {
                o.as_object_mut().unwrap().remove("transactionReference");
            }),
            "30",
            "transactionReference",
        ),
        (
            Box::new(|o| o["currencyCode"] = json!("999")),
            "12",
            "currencyCode",
        ),
        (
            // A card number one digit off: the Luhn check fails.
            Box::new(|o| o["cardNumber"] = json!("4895370012003479")),
            "12",
            "cardNumber",
        ),
        (
            Box::new(|o| o["authenticationResult"]["googlePay"]["eci"] = json!("99")),
            "12",
            "authenticationResult.eci",
        ),
        (
            // A Mastercard ECI on a Visa card.
            Box::new(|o| o["authenticationResult"]["googlePay"]["eci"] = json!("02")),
            "12",
            "authenticationResult.eci",
        ),
        (
            Box::new(|o| o["orderChannel"] = json!("MOTO")),
            "12",
            "orderChannel",
        ),
        (
            Box::new(|o| o["cardNumber"] = json!("48953700120034780000")),
            "12",
            "cardNumber",
        ),
        (
            Box::new(|o| {
                o.as_object_mut().unwrap().remove("cardNumber");
            }),
            "30",
            "cardNumber",
        ),
        (
            Box::new(|o| o["cardExpiryDate"] = json!("201901")),
            "12",
            "cardExpiryDate",
        ),
        (
            Box::new(|o| o["authenticationResult"]["googlePay"]["cavv"] = json!("AAAA")),
            "12",
            "authenticationResult.cavv",
        ),
        (Box::new(|o| o["panEntryMode"] = json!("OEMPAY")), "00", ""),
        (
            Box::new(|o| {
                o.as_object_mut().unwrap().remove("authenticationResult");
                o["panEntryMode"] = json!("OEMPAY");
            }),
            "12",
            "authenticationResult",
        ),
        (
            Box::new(|o| o["paymentMeanBrand"] = json!("DINERS")),
            "12",
            "paymentMeanBrand",
        ),
    ];
    for (change, code, field) in cases {
        let mut o = base();
        change(&mut o);
        let v = api.call(PATH_CARD_ORDER, M1, o).await;
        assert_eq!(v["responseCode"], code, "{field}: {v}");
        if !field.is_empty() {
            assert_eq!(v["errorFieldName"], field, "{v}");
        }
        assert!(!v.to_string().contains(DPAN));
    }
    // No contract for the card: 03.
    let v = api.call(PATH_CARD_ORDER, M2, base()).await;
    assert_eq!(v["responseCode"], "03");
    // Missing interfaceVersion.
    let req = seal_request(json!({"merchantId": M1}), 2, &Secret::new(SECRET1));
    let v = api.raw(PATH_CARD_ORDER, &req).await;
    assert_eq!(v["errorFieldName"], "interfaceVersion");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_slow_clients_do_not_harm_others() {
    let r = start_default().await;
    let mut api = Api::new(&r).await;
    // Bad JSON: 30 naming the body, HTTP 200.
    let (status, body) = api
        .client
        .call(
            "POST",
            PATH_CARD_ORDER,
            bytes::Bytes::from_static(b"{\"merchantId\": "),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["responseCode"].as_str(), v["errorFieldName"].as_str()),
        (Some("30"), Some("body"))
    );
    // Not JSON by its Content-Type: 415 with a 30 naming the header,
    // whatever the body.
    for content_type in [
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/jsonx\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
        let body = "{}";
        s.write_all(
            format!(
                "POST {PATH_CARD_ORDER} HTTP/1.1\r\nHost: x\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut answer)
            .await
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 415"),
            "{content_type:?}: {answer}"
        );
        assert!(
            answer.ends_with(r#"{"responseCode":"30","errorFieldName":"Content-Type"}"#),
            "{answer}"
        );
    }
    // Oversized: 413 with a 30, on a fresh connection.
    let mut big = ApiClient::connect(r.addr()).await.unwrap();
    let (status, body) = big
        .call(
            "POST",
            PATH_CARD_ORDER,
            bytes::Bytes::from(vec![b' '; 70 * 1024]),
        )
        .await
        .unwrap();
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("\"30\""));

    // A client that never finishes its headers, one that never sends its
    // body: both cut off, while a normal client is served meanwhile.
    let mut slow_head = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    slow_head
        .write_all(b"POST /rs-services/v2/checkout/cardOrder HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut slow_body = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    slow_body
        .write_all(b"POST /rs-services/v2/checkout/cardOrder HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let v = api
        .call(
            PATH_CHECK,
            M1,
            json!({"paymentMeanDataProvider": "GOOGLEPAY", "paymentData": token(false, DPAN)}),
        )
        .await;
    assert_eq!(v["responseCode"], "00");
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), slow_head.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "header read timeout closes the connection");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), slow_body.read_to_end(&mut buf))
        .await
        .expect("body read timeout answers and closes");
    assert!(
        String::from_utf8_lossy(&buf).contains("408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    // Health and readiness, on a fresh connection: `api`'s has been idle
    // longer than the header read timeout, which closes idle connections too.
    let mut api = Api::new(&r).await;
    let (status, v) = api.client.get_json("/healthz").await.unwrap();
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")));
    let (status, v) = api.client.get_json("/readyz").await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["readyLinks"]["main"], 1);
    assert!(v.get("lastErrors").is_none(), "{v}");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_down_is_99_and_not_ready() {
    // A closed port: nothing listens there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let r = system::start(config(&cb2a_acquirer(&addr.to_string()), false))
        .await
        .unwrap();
    let mut api = Api::new(&r).await;
    let (status, v) = api.client.get_json("/readyz").await.unwrap();
    assert_eq!((status, v["ready"].as_bool()), (503, Some(false)));
    // Once a connection attempt has failed, readiness says why.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, v) = api.client.get_json("/readyz").await.unwrap();
        if let Some(why) = v["lastErrors"]["main"].as_str() {
            assert!(why.contains(&addr.to_string()), "{v}");
            break;
        }
        assert!(std::time::Instant::now() < until, "no lastErrors: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&unique("U"), 1000))
        .await;
    assert_eq!(v["responseCode"], "99", "{v}");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso87visa_acquirer_gets_cavv_in_126_9_and_eci_in_60_8() {
    let spec = Arc::new(Spec::builtin("iso87visa").unwrap());
    let sim = Simulator::start(SimConfig::new(Arc::clone(&spec)))
        .await
        .unwrap();
    let acquirer = format!(
        r#"
[[acquirers]]
name = "main"
dialect = "iso87visa"
mapping = "iso87visa"
[acquirers.pool]
primary = "{}"
links = 1
"#,
        sim.addr()
    );
    let r = system::start(config(&acquirer, false)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), r.wait_ready())
        .await
        .unwrap();
    let mut api = Api::new(&r).await;
    let v = api
        .call(PATH_CARD_ORDER, M1, dpan_order(&unique("V"), 1234))
        .await;
    assert_eq!(v["responseCode"], "00", "{v}");
    let m = sim
        .records()
        .into_iter()
        .rev()
        .find(|m| m.mti() == Mti::AUTHORIZATION_REQUEST)
        .unwrap();
    assert_eq!(spec.text(&m, 2).unwrap(), DPAN);
    assert_eq!(spec.text(&m, 14).unwrap(), "3012");
    assert_eq!(spec.subfield_text(&m, 60, "8").unwrap(), "05");
    assert_eq!(spec.subfield_text(&m, 126, "9").unwrap(), hex_of_b64(TAVV));
    r.shutdown().await;
    sim.shutdown().await;
}

/// Several shards (runtime threads) on one address: every connection is
/// served whichever shard accepts it, RRNs and STANs stay unique across
/// shards, and a reference used on one shard is a duplicate on the other.
#[tokio::test]
async fn shards_share_the_address_the_stores_and_the_numbering() {
    let r = start_sharded(3).await;
    // Many connections: the accept loop deals them out to the shards in turn.
    let mut apis = Vec::new();
    for _ in 0..24 {
        apis.push(Api::new(&r).await);
    }
    let reference = unique("S");
    let mut codes = Vec::new();
    for api in &mut apis {
        let v = api
            .call(PATH_CARD_ORDER, M1, dpan_order(&reference, 1000))
            .await;
        codes.push(v["responseCode"].as_str().unwrap_or("").to_owned());
    }
    // The first approves; the retries on every shard get that answer back.
    assert!(codes.iter().all(|c| c == "00"), "{codes:?}");
    let v = apis[5]
        .call(PATH_CARD_ORDER, M1, dpan_order(&reference, 2000))
        .await;
    assert_eq!(v["responseCode"], "94", "other content: {v}");
    for api in &mut apis {
        let v = api
            .call(PATH_CARD_ORDER, M1, dpan_order(&unique("S"), 1000))
            .await;
        assert_eq!(v["responseCode"], "00", "{v}");
    }
    // Readiness is the whole switch's, whichever shard answers. `links`
    // counts an acquirer's links in all: one link, run by shard 0, which
    // shards 1 and 2 send on.
    for api in apis.iter_mut().take(3) {
        let (status, v) = api.client.get_json("/readyz").await.unwrap();
        assert_eq!(
            (status, v["readyLinks"]["main"].as_u64()),
            (200, Some(1)),
            "{v}"
        );
    }
    let sim = r.simulator().unwrap();
    // 25 approvals (the 23 duplicates never left the switch).
    assert_eq!(sim.ledger().len(), 25);
    // One connection for the three shards.
    assert_eq!(sim.connections_accepted(), 1);
    let records = sim.records();
    let spec = acqswitch::iso8583::Spec::builtin("cb2a").unwrap();
    let mut rrns: Vec<String> = records
        .iter()
        .filter(|m| m.mti() == acqswitch::iso8583::Mti::AUTHORIZATION_REQUEST)
        .filter_map(|m| spec.text(m, 37).map(|t| t.into_owned()))
        .collect();
    let n = rrns.len();
    assert!(n >= 10, "{n}");
    rrns.sort();
    rrns.dedup();
    assert_eq!(rrns.len(), n, "RRNs repeat across shards");
    r.shutdown().await;
}

/// Shutting down answers the requests already in flight on every shard:
/// connections finish (gracefully) before the links close.
#[tokio::test]
async fn shutdown_answers_requests_in_flight_on_every_shard() {
    let r = start_sharded(2).await;
    // Answers take 300 ms: the shutdown below starts while all are pending.
    r.simulator().unwrap().set_faults(Faults {
        latency: acqswitch::sim::Latency::Fixed(Duration::from_millis(300)),
        ..Faults::default()
    });
    let mut calls = Vec::new();
    for _ in 0..6 {
        let mut api = Api::new(&r).await;
        calls.push(tokio::spawn(async move {
            api.call(PATH_CARD_ORDER, M1, dpan_order(&unique("Z"), 1000))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.shutdown().await;
    for c in calls {
        let v = c.await.unwrap();
        assert_eq!(v["responseCode"], "00", "{v}");
    }
}

/// The cut-off goes through more due transactions than one page (256),
/// through SQLite's index of open transactions, captures each once, and a
/// second run finds nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_off_pages_through_everything_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&cb2a_acquirer("simulator"), true);
    cfg.journal.backend = "sqlite".into();
    cfg.journal.path = dir.path().join("journal.db");
    let r = system::start(cfg).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), r.wait_ready())
        .await
        .unwrap();
    let mut api = Api::new(&r).await;
    let n = 600;
    for _ in 0..n {
        let v = api
            .call(PATH_CARD_ORDER, M1, dpan_order(&unique("C"), 1000))
            .await;
        assert_eq!(v["responseCode"], "00", "{v}");
    }
    let later = r.switch().now() + Duration::from_secs(2 * 86_400);
    let run = r.switch().run_cut_off(later).await.unwrap();
    assert_eq!((run.captured, run.expired), (n, 0));
    let again = r.switch().run_cut_off(later).await.unwrap();
    assert_eq!((again.captured, again.expired), (0, 0));
    r.shutdown().await;
}
