//! The gateway-facing HTTP JSON API (axum), in the style of acquirer
//! "Office" server-to-server interfaces: every request carries `merchantId`,
//! `interfaceVersion`, `keyVersion` and a `seal` that is verified; every
//! response is sealed with the merchant's key.
//!
//! - `POST /rs-services/v2/checkout/paymentDataProviderCheck`: decrypts a
//!   Google Pay token. CRYPTOGRAM_3DS: returns the DPAN as `paymentToken`
//!   and the cryptogram and ECI in `authenticationResult`. PAN_ONLY: keeps
//!   the PAN in the switch's vault and returns an opaque reference.
//! - `POST /rs-services/v2/checkout/cardOrder`: the authorization.
//! - `GET /healthz`, `GET /readyz` (a ready link to every acquirer).
//!
//! Order of checks, each with its code: body size and read time (30,
//! HTTP 413/408), JSON (30), `merchantId` (30; unknown 03), `keyVersion`
//! (30; unknown 34), `seal` (30 missing; 34 wrong), `interfaceVersion` (30),
//! then the operation's own fields (30 malformed or missing, 12 invalid,
//! with `errorFieldName`), routing (03 no contract), duplicate reference
//! (94), the acquirer (table in configuration).
//!
//! Responses to a request whose merchant is unknown carry no seal: there
//! is no key the caller could check it with.

pub mod server;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::seal::{self, SealAlgorithm, SealSecret};
use crate::switch::domain::{
    Authentication, AuthorizationRequest, CardBrand, Expiry, HolderAuthentProgram, Pan,
    PanEntryMode, Wallet,
};
use crate::switch::routing;
use crate::switch::store::{ReferenceWindow, TokenVault, VAULT_PREFIX};
use crate::switch::{AuthorizationService, Merchant};
use crate::wallet::googlepay::AuthMethod;
use wire::Refusal;

pub use server::{start, Running, StartError};

pub const PATH_CHECK: &str = "/rs-services/v2/checkout/paymentDataProviderCheck";
pub const PATH_CARD_ORDER: &str = "/rs-services/v2/checkout/cardOrder";

/// Everything the handlers share. With several runtime threads each
/// shard has its own (its own acquirer pools), and the merchants and the
/// stores are shared by all.
pub struct AppState {
    pub service: AuthorizationService,
    pub merchants: Arc<HashMap<String, Merchant>>,
    pub references: Arc<Mutex<ReferenceWindow>>,
    /// `(merchant, messageId)` of every token decrypted, against replays.
    pub token_ids: Arc<Mutex<ReferenceWindow>>,
    pub vault: Arc<Mutex<TokenVault>>,
    pub body_limit: usize,
    pub body_read_timeout: Duration,
    /// Every shard's state, so `/readyz` answers for the whole switch
    /// whichever shard serves it.
    pub shards: Arc<Mutex<Vec<Weak<AppState>>>>,
}

impl AppState {
    /// Registers this (shard's) state with its peers.
    pub fn register(self: &Arc<Self>) {
        lock(&self.shards).push(Arc::downgrade(self));
    }

    /// The states of every running shard (this one included once it is
    /// registered).
    pub fn all_shards(&self) -> Vec<Arc<AppState>> {
        lock(&self.shards)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// The state of another shard, on the current runtime: pools of its
    /// own (see [`AuthorizationService::shard`]), everything else shared.
    pub fn shard(&self) -> AppState {
        AppState {
            service: self.service.shard(),
            merchants: Arc::clone(&self.merchants),
            references: Arc::clone(&self.references),
            token_ids: Arc::clone(&self.token_ids),
            vault: Arc::clone(&self.vault),
            body_limit: self.body_limit,
            body_read_timeout: self.body_read_timeout,
            shards: Arc::clone(&self.shards),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The stores stay consistent across a panic in another request (each
    // operation is a few map updates); keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps a card in the vault for `merchant` (used by `serve` to print a
/// ready-to-paste example without printing a card number).
pub fn vault_put(
    state: &AppState,
    merchant: &str,
    pan: Pan,
    expiry: Expiry,
    now: Instant,
) -> String {
    lock(&state.vault).put(merchant, pan, expiry, now, &mut rand::thread_rng())
}

/// The API router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(PATH_CHECK, post(payment_data_provider_check))
        .route(PATH_CARD_ORDER, post(card_order))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when every acquirer has a ready link in every shard; the counts
/// are summed over the shards.
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let mut shards = st.all_shards();
    // A router built on an unregistered state (the public `router`): itself.
    if shards.is_empty() {
        shards.push(Arc::clone(&st));
    }
    let mut acquirers = Map::new();
    for a in st.service.acquirers() {
        let links: usize = shards
            .iter()
            .filter_map(|s| s.service.acquirer(&a.name))
            .map(|a| a.pool.ready_links())
            .sum();
        acquirers.insert(a.name.clone(), json!(links));
    }
    let ready = shards.iter().all(|s| s.service.ready());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({"ready": ready, "readyLinks": Value::Object(acquirers)}),
    )
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"}))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A verified request: its JSON object, its merchant and the key to seal
/// the response with.
struct Sealed<'s> {
    obj: Map<String, Value>,
    merchant: &'s Merchant,
    key: (u32, &'s SealSecret),
}

/// A response on its way out: fields, then sealed when the merchant is known.
struct Reply {
    status: StatusCode,
    fields: Map<String, Value>,
}

impl Reply {
    fn refusal(r: Refusal) -> Reply {
        let mut fields = Map::new();
        fields.insert("responseCode".into(), json!(r.code));
        if let Some(f) = r.field {
            fields.insert("errorFieldName".into(), json!(f));
        }
        Reply {
            status: StatusCode::OK,
            fields,
        }
    }

    fn with_status(mut self, status: StatusCode) -> Reply {
        self.status = status;
        self
    }

    fn finish(
        mut self,
        merchant: Option<(&Merchant, (u32, &SealSecret))>,
        echo: &[(&str, Option<&Value>)],
    ) -> Response {
        for (k, v) in echo {
            if let Some(v) = v {
                self.fields.entry(*k).or_insert_with(|| (*v).clone());
            }
        }
        if let Some((m, (version, secret))) = merchant {
            self.fields.insert("keyVersion".into(), json!(version));
            let v = Value::Object(std::mem::take(&mut self.fields));
            let seal = seal::compute(&v, secret, m.seal_algorithm);
            if let Value::Object(mut f) = v {
                if m.seal_algorithm != SealAlgorithm::HmacSha256 {
                    f.insert("sealAlgorithm".into(), json!(m.seal_algorithm.as_str()));
                }
                f.insert("seal".into(), json!(seal));
                self.fields = f;
            }
        }
        json_response(self.status, &Value::Object(self.fields))
    }
}

/// Reads the body within the size and time limits.
async fn read_body(st: &AppState, body: Body) -> Result<Bytes, Reply> {
    let limited = axum::body::to_bytes(body, st.body_limit);
    match tokio::time::timeout(st.body_read_timeout, limited).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => {
            Err(Reply::refusal(Refusal::format("body")).with_status(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Err(_) => {
            Err(Reply::refusal(Refusal::format("body")).with_status(StatusCode::REQUEST_TIMEOUT))
        }
    }
}

/// JSON, merchant, key version, seal, interface version.
/// Reads, parses and unseals a request; a refusal comes back as the
/// finished (sealed, when the merchant is known) response.
async fn receive<'s>(st: &'s AppState, body: Body) -> Result<Sealed<'s>, Response> {
    let bytes = read_body(st, body).await.map_err(|r| r.finish(None, &[]))?;
    open(st, &bytes)
        .map_err(|(reply, m)| reply.finish(m.and_then(|m| m.current_key().map(|k| (m, k))), &[]))
}

fn open<'s>(st: &'s AppState, body: &[u8]) -> Result<Sealed<'s>, (Reply, Option<&'s Merchant>)> {
    let unknown = |r: Refusal| (Reply::refusal(r), None);
    let value: Value =
        serde_json::from_slice(body).map_err(|_| unknown(Refusal::format("body")))?;
    let Value::Object(obj) = value else {
        return Err(unknown(Refusal::format("body")));
    };
    let merchant_id = wire::req_str(&obj, "merchantId").map_err(unknown)?;
    let merchant = st
        .merchants
        .get(merchant_id)
        .ok_or_else(|| unknown(Refusal::code("03")))?;
    let known = |r: Refusal| (Reply::refusal(r), Some(merchant));
    let version = wire::opt_u64(&obj, "keyVersion")
        .map_err(|_| known(Refusal::format("keyVersion")))?
        .ok_or_else(|| known(Refusal::format("keyVersion")))?;
    let key = u32::try_from(version)
        .ok()
        .and_then(|v| merchant.key(v).map(|k| (v, k)))
        .ok_or_else(|| {
            known(Refusal {
                code: "34",
                field: Some("keyVersion"),
            })
        })?;
    if wire::opt_str(&obj, "seal").map_err(known)?.is_none() {
        return Err(known(Refusal::format("seal")));
    }
    // The merchant's configured algorithm, not the message's choice: a
    // message naming another one is refused.
    let algorithm_ok = match obj.get("sealAlgorithm") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => SealAlgorithm::from_wire(s) == Some(merchant.seal_algorithm),
        Some(_) => false,
    };
    // The seal is computed over the object as a `Value`; moved in and out,
    // not copied.
    let value = Value::Object(obj);
    if !algorithm_ok || !seal::verify(&value, key.1, merchant.seal_algorithm) {
        return Err(known(Refusal::code("34")));
    }
    let Value::Object(obj) = value else {
        return Err(known(Refusal::format("body")));
    };
    wire::req_str(&obj, "interfaceVersion").map_err(known)?;
    Ok(Sealed { obj, merchant, key })
}

fn now_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn payment_data_provider_check(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let req = match receive(&st, body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let reply = check_token(&st, &req).unwrap_or_else(Reply::refusal);
    reply.finish(Some((req.merchant, req.key)), &[])
}

fn check_token(st: &AppState, req: &Sealed<'_>) -> Result<Reply, Refusal> {
    const PROVIDER: &str = "paymentMeanDataProvider";
    match wire::req_str(&req.obj, PROVIDER)? {
        "GOOGLEPAY" => {}
        _ => return Err(Refusal::invalid(PROVIDER)),
    }
    let token = wire::req_str(&req.obj, "paymentData")?;
    let recipient = req.merchant.googlepay.as_ref().ok_or(Refusal::code("03"))?;
    let now = SystemTime::now();
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let payment = recipient.unseal(token, now_ms).map_err(|e| {
        tracing::info!(merchant = %req.merchant.id, error = %e, "token refused");
        Refusal {
            code: e.response_code(),
            field: Some("paymentData"),
        }
    })?;
    // A token is good for one use: the same messageId again is a replay
    // (checked after the signatures, so only Google's own ids get here).
    if !lock(&st.token_ids).insert(&req.merchant.id, &payment.message_id, Instant::now()) {
        tracing::info!(merchant = %req.merchant.id, "token replayed");
        return Err(Refusal {
            code: "12",
            field: Some("paymentData"),
        });
    }
    let d = &payment.details;
    let expiry = Expiry::new(d.expiration_year, d.expiration_month)
        .ok_or(Refusal::invalid("paymentData"))?;
    let brand = CardBrand::of_pan(&d.pan);
    let mut f = Map::new();
    f.insert("responseCode".into(), json!("00"));
    f.insert("paymentMeanDataProvider".into(), json!("GOOGLEPAY"));
    f.insert("paymentMeanBrand".into(), json!(brand.as_str()));
    f.insert("maskedPan".into(), json!(d.pan.masked()));
    f.insert("cardExpiryDate".into(), json!(expiry.yyyymm()));
    match d.auth_method {
        AuthMethod::Cryptogram3ds => {
            // The contract: the network token itself, and its
            // cryptogram, go back to the merchant for the cardOrder.
            f.insert("panEntryMode".into(), json!(PanEntryMode::OemPay.as_str()));
            f.insert("paymentToken".into(), json!(d.pan.reveal()));
            let mut gp = Map::new();
            if let Some(eci) = &d.eci_indicator {
                gp.insert("eci".into(), json!(eci));
            }
            if let Some(c) = &d.cryptogram {
                gp.insert("cavv".into(), json!(c.reveal()));
            }
            f.insert(
                "authenticationResult".into(),
                json!({"holderAuthentProgram": "GOOGLEPAY", "googlePay": Value::Object(gp)}),
            );
        }
        AuthMethod::PanOnly => {
            // The real PAN stays here; the merchant gets a reference.
            let reference = lock(&st.vault).put(
                &req.merchant.id,
                d.pan.clone(),
                expiry,
                Instant::now(),
                &mut rand::thread_rng(),
            );
            f.insert("panEntryMode".into(), json!(PanEntryMode::Wallet.as_str()));
            f.insert("paymentToken".into(), json!(reference));
        }
    }
    Ok(Reply {
        status: StatusCode::OK,
        fields: f,
    })
}

async fn card_order(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let req = match receive(&st, body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let reply = match authorize(&st, &req).await {
        Ok(r) => r,
        Err(r) => Reply::refusal(r),
    };
    reply.finish(
        Some((req.merchant, req.key)),
        &[("transactionReference", req.obj.get("transactionReference"))],
    )
}

/// Reads the card: a vault reference (PAN_ONLY) or card digits.
fn card(
    st: &AppState,
    req: &Sealed<'_>,
    now: Instant,
) -> Result<(Pan, Option<Expiry>, bool), Refusal> {
    let token = wire::opt_str(&req.obj, "paymentToken")?;
    let number = wire::opt_str(&req.obj, "cardNumber")?;
    let (text, field) = match (token, number) {
        (Some(t), None) => (t, "paymentToken"),
        (None, Some(n)) => (n, "cardNumber"),
        (Some(_), Some(_)) => return Err(Refusal::invalid("cardNumber")),
        (None, None) => return Err(Refusal::format("cardNumber")),
    };
    if text.starts_with(VAULT_PREFIX) {
        let (pan, expiry) = lock(&st.vault)
            .get(&req.merchant.id, text, now)
            .ok_or(Refusal::invalid(field))?;
        return Ok((pan, Some(expiry), true));
    }
    let pan = Pan::new(text).ok_or(Refusal::invalid(field))?;
    Ok((pan, None, false))
}

async fn authorize(st: &AppState, req: &Sealed<'_>) -> Result<Reply, Refusal> {
    let now = SystemTime::now();
    let instant = Instant::now();
    let obj = &req.obj;
    let reference = wire::transaction_reference(obj)?;
    let amount = wire::amount(obj)?;
    let currency = wire::currency(obj)?;
    let order_channel = wire::order_channel(obj)?;
    let wallet = wire::wallet(obj)?;
    let authentication = wire::authentication(obj)?;
    let (pan, vault_expiry, from_vault) = card(st, req, instant)?;
    let expiry = match (wire::expiry(obj)?, vault_expiry) {
        (Some(e), Some(v)) if e != v => return Err(Refusal::invalid("cardExpiryDate")),
        (Some(e), _) | (None, Some(e)) => e,
        (None, None) => return Err(Refusal::format("cardExpiryDate")),
    };
    let (year, month) = wire::year_month(now_secs(now));
    if !expiry.valid_in(year, month) {
        return Err(Refusal::invalid("cardExpiryDate"));
    }
    let pan_entry_mode = match wire::pan_entry_mode(obj)? {
        Some(PanEntryMode::OemPay) if from_vault => return Err(Refusal::invalid("panEntryMode")),
        Some(m) => m,
        None if from_vault => PanEntryMode::Wallet,
        None => match &authentication {
            Some(Authentication {
                program: HolderAuthentProgram::GooglePay,
                ..
            }) => PanEntryMode::OemPay,
            _ => PanEntryMode::Wallet,
        },
    };
    let brand = match wire::brand(obj)? {
        Some(b) => b,
        None => CardBrand::of_pan(&pan),
    };
    let request = AuthorizationRequest {
        merchant_id: req.merchant.id.clone(),
        amount,
        currency,
        transaction_reference: reference.to_owned(),
        order_channel,
        pan_entry_mode,
        card_number: pan,
        expiry,
        brand,
        wallet: wallet.or((pan_entry_mode == PanEntryMode::OemPay).then_some(Wallet::GooglePay)),
        authentication,
    };
    request.check().map_err(|e| Refusal::invalid(e.field))?;
    let route = routing::route(&req.merchant.routes, brand, &request.card_number)
        .ok_or(Refusal::code("03"))?;
    if !lock(&st.references).insert(&req.merchant.id, reference, instant) {
        return Err(Refusal::code("94"));
    }
    let outcome = st.service.authorize(route, &request, now).await;
    let mut f = Map::new();
    f.insert("responseCode".into(), json!(outcome.response_code));
    if let Some(c) = &outcome.acquirer_response_code {
        f.insert("acquirerResponseCode".into(), json!(c));
    }
    if let Some(a) = &outcome.authorisation_id {
        f.insert("authorisationId".into(), json!(a));
    }
    f.insert("transactionReference".into(), json!(reference));
    f.insert(
        "transactionDateTime".into(),
        json!(wire::iso8601(now_secs(now))),
    );
    f.insert("maskedPan".into(), json!(request.card_number.masked()));
    f.insert("paymentMeanBrand".into(), json!(brand.as_str()));
    if let Some(w) = request.wallet {
        f.insert("paymentMeanDataProvider".into(), json!(w.as_str()));
    }
    f.insert("panEntryMode".into(), json!(pan_entry_mode.as_str()));
    Ok(Reply {
        status: StatusCode::OK,
        fields: f,
    })
}
