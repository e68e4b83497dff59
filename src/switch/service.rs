//! The authorization service: the thin async shell that routes a typed
//! request, builds the acquirer message with the mapping (pure), sends it
//! on the acquirer's pool and maps the answer with the response code table
//! (pure).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::codes::ResponseCodeTable;
use super::domain::AuthorizationRequest;
use super::mapping::{Mapping, RequestContext};
use super::routing::Route;
use crate::iso8583::Spec;
use crate::net::Pool;

/// One acquirer: its dialect, mapping and pool.
#[derive(Debug)]
pub struct Acquirer {
    pub name: String,
    pub spec: Arc<Spec>,
    pub mapping: Mapping,
    pub pool: Pool,
}

/// The result of one authorization, for the front-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Front-end response code, from the table.
    pub response_code: String,
    /// The acquirer's own code, when it answered.
    pub acquirer_response_code: Option<String>,
    pub authorisation_id: Option<String>,
}

/// Routes and sends authorizations. Share it behind an `Arc`.
#[derive(Debug)]
pub struct AuthorizationService {
    acquirers: HashMap<String, Acquirer>,
    codes: ResponseCodeTable,
    /// Shared by the shards: RRNs stay unique across them.
    rrn: Arc<AtomicU64>,
}

/// RRNs are 12 digits; the counter wraps below this.
const RRN_MODULUS: u64 = 1_000_000_000_000;

impl AuthorizationService {
    pub fn new(acquirers: Vec<Acquirer>, codes: ResponseCodeTable) -> Self {
        // Start the RRN sequence from the clock so a restart does not
        // reuse the previous run's numbers (ms resolution, 12 digits wrap
        // after about 31 years).
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            % RRN_MODULUS;
        AuthorizationService {
            acquirers: acquirers.into_iter().map(|a| (a.name.clone(), a)).collect(),
            codes,
            rrn: Arc::new(AtomicU64::new(start)),
        }
    }

    /// The same service with pools of its own on the current runtime (see
    /// [`Pool::shard`]): same acquirers, mappings, response codes, and the
    /// same RRN sequence and STAN allocators.
    pub fn shard(&self) -> AuthorizationService {
        AuthorizationService {
            acquirers: self
                .acquirers
                .iter()
                .map(|(k, a)| {
                    let shard = Acquirer {
                        name: a.name.clone(),
                        spec: Arc::clone(&a.spec),
                        mapping: a.mapping.clone(),
                        pool: a.pool.shard(),
                    };
                    (k.clone(), shard)
                })
                .collect(),
            codes: self.codes.clone(),
            rrn: Arc::clone(&self.rrn),
        }
    }

    pub fn acquirers(&self) -> impl Iterator<Item = &Acquirer> {
        self.acquirers.values()
    }

    pub fn acquirer(&self, name: &str) -> Option<&Acquirer> {
        self.acquirers.get(name)
    }

    /// Whether every acquirer has at least one ready link.
    pub fn ready(&self) -> bool {
        self.acquirers.values().all(|a| a.pool.ready_links() > 0)
    }

    /// Authorizes `req` with the acquirer of `route`.
    pub async fn authorize(
        &self,
        route: &Route,
        req: &AuthorizationRequest,
        now: SystemTime,
    ) -> Outcome {
        let c = &route.contract;
        let outcome = |code: &str, acq: Option<String>, auth: Option<String>| Outcome {
            response_code: code.to_owned(),
            acquirer_response_code: acq,
            authorisation_id: auth,
        };
        let Some(acq) = self.acquirers.get(&c.acquirer) else {
            // Configuration is checked at start; this would be a bug.
            return outcome(&self.codes.unreachable, None, None);
        };
        let rrn = format!(
            "{:012}",
            self.rrn.fetch_add(1, Ordering::Relaxed) % RRN_MODULUS
        );
        let ctx = RequestContext {
            terminal_id: &c.terminal_id,
            acceptor_id: &c.acceptor_id,
            merchant_category_code: &c.merchant_category_code,
            acquirer_id: &c.acquirer_id,
            rrn: &rrn,
            now,
        };
        let msg = match acq.mapping.build_request(&acq.spec, req, &ctx) {
            Ok(m) => m,
            Err(e) => {
                // The value error names the field, never its content.
                tracing::warn!(acquirer = %c.acquirer, error = %e, "cannot build the request");
                return outcome("12", None, None);
            }
        };
        match acq.pool.send(msg).await {
            Ok(resp) => {
                let answer = acq.mapping.read_response(&acq.spec, resp.message());
                let code = self.codes.map(answer.response_code.as_deref());
                outcome(code, answer.response_code, answer.authorisation_id)
            }
            Err(e) => {
                tracing::debug!(acquirer = %c.acquirer, error = %e, "no answer");
                outcome(self.codes.for_link_error(&e), None, None)
            }
        }
    }
}
