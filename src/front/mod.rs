//! The gateway-facing HTTP JSON API (axum), in the style of acquirer
//! "Office" server-to-server interfaces: every request carries `merchantId`,
//! `interfaceVersion`, `keyVersion` and a `seal` that is verified; every
//! response is sealed with the merchant's key.
//!
//! The handlers hold no business decision and no store: each reads the
//! body, checks the seal, reads the JSON into a typed request (serde), calls
//! one operation of the [`Switch`] and writes its typed answer, sealed.
//!
//! - `POST /rs-services/v2/checkout/paymentDataProviderCheck`: decrypts a
//!   Google Pay token ([`Switch::check_token`]).
//! - `POST /rs-services/v2/checkout/cardOrder`: the authorization
//!   ([`Switch::card_order`]).
//! - `POST /rs-services/v2/checkout/cardValidateAuthenticationAndOrder`:
//!   the authorization of a PAN_ONLY card kept in the vault, with the
//!   merchant's 3-D Secure result ([`Switch::card_order`]).
//! - `POST /rs-services/v2/cashManagement/{cancel,validate,refund}`
//!   ([`Switch::operate`]).
//! - `POST /rs-services/v2/diagnostic/getTransactionData`
//!   ([`Switch::transaction_data`]).
//! - `GET /healthz`, `GET /readyz` (a ready link to every acquirer).
//! - `GET /metrics`: Prometheus's text format ([`crate::telemetry`]).
//!
//! Order of checks, each with its code: `Content-Type: application/json`
//! (30 with `errorFieldName` `Content-Type`, HTTP 415), body size and read
//! time (30,
//! HTTP 413/408), JSON (30), `merchantId` (30; unknown 03), `keyVersion`
//! (30; unknown 34), `seal` (30 missing; 34 wrong), `interfaceVersion` (30),
//! then the operation's own fields (30 malformed or missing, 12 invalid,
//! with `errorFieldName`), then the switch's answer.
//!
//! Responses to a request whose merchant is unknown carry no seal: there
//! is no key the caller could check it with.

pub mod server;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::card::Secret;
use crate::seal::{self, SealAlgorithm};
use crate::switch::lifecycle::OperationKind;
use crate::switch::{Merchant, Refusal, ResponseCode, Switch};
use crate::telemetry;
use wire::{
    CardOrderRequest, CardOrderResponse, CashManagementRequest, CashManagementResponse,
    CheckRequest, CheckResponse, Envelope, RefusalResponse, TransactionDataRequest,
    TransactionDataResponse,
};

pub const PATH_CHECK: &str = "/rs-services/v2/checkout/paymentDataProviderCheck";
pub const PATH_CARD_ORDER: &str = "/rs-services/v2/checkout/cardOrder";
pub const PATH_VALIDATE_AND_ORDER: &str =
    "/rs-services/v2/checkout/cardValidateAuthenticationAndOrder";
pub const PATH_CANCEL: &str = "/rs-services/v2/cashManagement/cancel";
pub const PATH_VALIDATE: &str = "/rs-services/v2/cashManagement/validate";
pub const PATH_REFUND: &str = "/rs-services/v2/cashManagement/refund";
pub const PATH_TRANSACTION_DATA: &str = "/rs-services/v2/diagnostic/getTransactionData";

/// What one shard's handlers share: its view of the switch and the body
/// limits.
#[derive(Debug)]
pub struct Api {
    pub switch: Switch,
    pub body_limit: usize,
    pub body_read_timeout: Duration,
}

/// The API router over `api`.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route(PATH_CHECK, post(payment_data_provider_check))
        .route(PATH_CARD_ORDER, post(|s, r| card_order(s, r, false)))
        .route(PATH_VALIDATE_AND_ORDER, post(|s, r| card_order(s, r, true)))
        .route(
            PATH_CANCEL,
            post(|s, r| cash_management(s, r, OperationKind::Cancel)),
        )
        .route(
            PATH_VALIDATE,
            post(|s, r| cash_management(s, r, OperationKind::Validate)),
        )
        .route(
            PATH_REFUND,
            post(|s, r| cash_management(s, r, OperationKind::Refund)),
        )
        .route(PATH_TRANSACTION_DATA, post(transaction_data))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(api)
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when every acquirer has a ready link in every shard; the counts
/// are summed over the shards; an acquirer with none says why its last
/// connection failed (`lastErrors`).
async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let r = api.switch.readiness();
    let links: Map<String, Value> = r.links.into_iter().map(|(k, n)| (k, json!(n))).collect();
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"ready": r.ready, "readyLinks": Value::Object(links)});
    if !r.errors.is_empty() {
        let errors: Map<String, Value> = r.errors.into_iter().map(|(k, e)| (k, json!(e))).collect();
        body["lastErrors"] = Value::Object(errors);
    }
    json_response(status, &body)
}

/// Prometheus's text format (see [`crate::telemetry`] for the metrics).
async fn metrics_text(State(api): State<Arc<Api>>) -> Response {
    api.switch.export_metrics();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
        .into_response()
}

/// The API's metric handles, registered once (after the recorder is
/// installed: the first request comes after `system::start`).
struct FrontMetrics {
    in_flight: metrics::Gauge,
    card_order: metrics::Histogram,
}

fn front_metrics() -> &'static FrontMetrics {
    static M: std::sync::OnceLock<FrontMetrics> = std::sync::OnceLock::new();
    M.get_or_init(|| FrontMetrics {
        in_flight: metrics::gauge!(telemetry::HTTP_IN_FLIGHT),
        card_order: metrics::histogram!(telemetry::CARD_ORDER_SECONDS),
    })
}

/// Counts a request in `acqswitch_http_requests_in_flight` while it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        front_metrics().in_flight.increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        front_metrics().in_flight.decrement(1.0);
    }
}

/// Whether the request says its body is JSON (`application/json`, any
/// parameters, any case).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"}))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The key a response is sealed with.
type SealWith<'s> = Option<(&'s Merchant, (u32, &'s Secret))>;

/// A typed answer, sealed with the merchant's key when it is known.
fn sealed(status: StatusCode, body: &impl Serialize, with: SealWith<'_>) -> Response {
    let mut fields = match serde_json::to_value(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some((m, (version, secret))) = with {
        fields.insert("keyVersion".into(), json!(version));
        let v = Value::Object(fields);
        let seal = seal::compute(&v, secret, m.seal_algorithm);
        let Value::Object(mut f) = v else {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({}));
        };
        if m.seal_algorithm != SealAlgorithm::HmacSha256 {
            f.insert("sealAlgorithm".into(), json!(m.seal_algorithm.as_str()));
        }
        f.insert("seal".into(), json!(seal));
        fields = f;
    }
    json_response(status, &Value::Object(fields))
}

fn refused(r: Refusal, with: SealWith<'_>) -> Response {
    sealed(StatusCode::OK, &RefusalResponse::of(r), with)
}

/// A verified request: its JSON object, its merchant and the key to seal
/// the response with.
struct Sealed<'s> {
    body: Value,
    merchant: &'s Arc<Merchant>,
    key: (u32, &'s Secret),
}

impl<'s> Sealed<'s> {
    fn with(&self) -> SealWith<'s> {
        Some((self.merchant.as_ref(), self.key))
    }
}

/// Reads the body within the size and time limits, parses it and checks
/// its envelope and seal; a refusal comes back as the finished response.
async fn receive(api: &Api, request: Request) -> Result<Sealed<'_>, Response> {
    // The request itself, not a `HeaderMap` extractor: that one copies
    // every header.
    if !is_json(request.headers()) {
        return Err(sealed(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &RefusalResponse::of(Refusal::format("Content-Type")),
            None,
        ));
    }
    let limited = axum::body::to_bytes(request.into_body(), api.body_limit);
    let bytes: Bytes = match tokio::time::timeout(api.body_read_timeout, limited).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(sealed(
                StatusCode::PAYLOAD_TOO_LARGE,
                &RefusalResponse::of(Refusal::format("body")),
                None,
            ))
        }
        Err(_) => {
            return Err(sealed(
                StatusCode::REQUEST_TIMEOUT,
                &RefusalResponse::of(Refusal::format("body")),
                None,
            ))
        }
    };
    open(&api.switch, &bytes).map_err(|(r, m)| {
        let with = m.and_then(|m| m.current_key().map(|k| (m.as_ref(), k)));
        refused(r, with)
    })
}

fn open<'s>(
    switch: &'s Switch,
    body: &[u8],
) -> Result<Sealed<'s>, (Refusal, Option<&'s Arc<Merchant>>)> {
    let unknown = |r: Refusal| (r, None);
    let value: Value =
        serde_json::from_slice(body).map_err(|_| unknown(Refusal::format("body")))?;
    if !value.is_object() {
        return Err(unknown(Refusal::format("body")));
    }
    let env: Envelope<'_> = wire::typed_ref(&value).map_err(unknown)?;
    let merchant_id = env
        .merchant_id
        .ok_or(unknown(Refusal::format("merchantId")))?;
    let merchant = switch
        .merchant(merchant_id)
        .ok_or(unknown(Refusal::code(ResponseCode::InvalidMerchant)))?;
    let known = |r: Refusal| (r, Some(merchant));
    let version = match env.key_version {
        Some(wire::Amount::Minor(v)) => v,
        _ => return Err(known(Refusal::format("keyVersion"))),
    };
    let key = u32::try_from(version)
        .ok()
        .and_then(|v| merchant.key(v).map(|k| (v, k)))
        .ok_or(known(Refusal {
            code: ResponseCode::SecurityError,
            field: Some("keyVersion"),
        }))?;
    if env.seal.is_none() {
        return Err(known(Refusal::format("seal")));
    }
    // The merchant's configured algorithm, not the message's choice: a
    // message naming another one is refused.
    let algorithm_ok = env
        .seal_algorithm
        .is_none_or(|s| SealAlgorithm::from_wire(s) == Some(merchant.seal_algorithm));
    if !algorithm_ok || !seal::verify(&value, key.1, merchant.seal_algorithm) {
        metrics::counter!(telemetry::SEAL_FAILURES).increment(1);
        return Err(known(Refusal::code(ResponseCode::SecurityError)));
    }
    if env.interface_version.is_none() {
        return Err(known(Refusal::format("interfaceVersion")));
    }
    Ok(Sealed {
        body: value,
        merchant,
        key,
    })
}

async fn payment_data_provider_check(State(api): State<Arc<Api>>, request: Request) -> Response {
    let _in_flight = InFlight::enter();
    let req = match receive(&api, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let with = req.with();
    let check = match wire::typed_ref::<CheckRequest<'_>>(&req.body) {
        Ok(c) => c,
        Err(r) => return refused(r, with),
    };
    const PROVIDER: &str = "paymentMeanDataProvider";
    match check.payment_mean_data_provider {
        Some("GOOGLEPAY") => {}
        Some(_) => return refused(Refusal::invalid(PROVIDER), with),
        None => return refused(Refusal::format(PROVIDER), with),
    }
    let Some(token) = check.payment_data else {
        return refused(Refusal::format("paymentData"), with);
    };
    match api
        .switch
        .check_token(api.switch.now(), req.merchant, token)
        .await
    {
        Ok(c) => sealed(StatusCode::OK, &CheckResponse::from(c), with),
        Err(r) => refused(r, with),
    }
}

/// cardOrder, or (`validated`) cardValidateAuthenticationAndOrder.
async fn card_order(State(api): State<Arc<Api>>, request: Request, validated: bool) -> Response {
    let _in_flight = InFlight::enter();
    let started = Instant::now();
    let response = order_response(&api, request, validated).await;
    front_metrics().card_order.record(started.elapsed());
    response
}

async fn order_response(api: &Api, request: Request, validated: bool) -> Response {
    let req = match receive(api, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let order = wire::typed_ref::<CardOrderRequest<'_>>(&req.body).and_then(|o| {
        if validated {
            o.into_validated_order()
        } else {
            o.into_order()
        }
    });
    let order = match order {
        Ok(o) => o,
        Err(r) => return refuse_echoing(&req, r),
    };
    match api
        .switch
        .card_order(api.switch.now(), req.merchant, order)
        .await
    {
        Ok(a) => sealed(StatusCode::OK, &CardOrderResponse::from(a), req.with()),
        Err(r) => refuse_echoing(&req, r),
    }
}

/// Refusals of an order or an operation echo its reference, when it is
/// one.
fn refuse_echoing(req: &Sealed<'_>, r: Refusal) -> Response {
    let mut body = RefusalResponse::of(r);
    // Only a well-formed one: a rejected value is never echoed.
    body.transaction_reference =
        wire::transaction_reference(req.body.get("transactionReference").and_then(Value::as_str))
            .ok();
    sealed(StatusCode::OK, &body, req.with())
}

async fn cash_management(
    State(api): State<Arc<Api>>,
    request: Request,
    kind: OperationKind,
) -> Response {
    let _in_flight = InFlight::enter();
    let req = match receive(&api, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let op = match wire::typed_ref::<CashManagementRequest<'_>>(&req.body)
        .and_then(|r| r.into_request(kind))
    {
        Ok(o) => o,
        Err(r) => return refuse_echoing(&req, r),
    };
    match api.switch.operate(api.switch.now(), req.merchant, op).await {
        Ok(a) => sealed(StatusCode::OK, &CashManagementResponse::from(a), req.with()),
        Err(r) => refuse_echoing(&req, r),
    }
}

async fn transaction_data(State(api): State<Arc<Api>>, request: Request) -> Response {
    let _in_flight = InFlight::enter();
    let req = match receive(&api, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let reference = match wire::typed_ref::<TransactionDataRequest<'_>>(&req.body)
        .and_then(|r| wire::transaction_reference(r.transaction_reference))
    {
        Ok(r) => r,
        Err(r) => return refuse_echoing(&req, r),
    };
    match api
        .switch
        .transaction_data(api.switch.now(), req.merchant, &reference)
        .await
    {
        Ok(d) => sealed(
            StatusCode::OK,
            &TransactionDataResponse::from(d),
            req.with(),
        ),
        Err(r) => refuse_echoing(&req, r),
    }
}
