//! The switch: the authorization domain and the service that ties the
//! front-end to the acquirers.
//!
//! # Layout
//! - [`domain`]: the typed authorization request (masking, validating types).
//! - [`mapping`]: domain <-> ISO 8583 per dialect, from `specs/*.mapping.toml` (pure).
//! - [`codes`]: acquirer DE 39 -> front-end `responseCode` table (pure).
//! - [`routing`]: merchant contracts, card brand and BIN ranges -> acquirer (pure).
//! - [`store`]: duplicate-reference window and PAN_ONLY token vault, `now`
//!   passed in (pure; the caller holds the lock).
//! - [`service`]: the async shell: route, build, send on the pool, map.
//! - [`Merchant`]: one merchant's seal keys, Google Pay recipient and routes.

pub mod codes;
pub mod domain;
pub mod mapping;
pub mod routing;
pub mod service;
pub mod store;

use std::fmt;
use std::sync::Arc;

pub use codes::ResponseCodeTable;
pub use domain::AuthorizationRequest;
pub use mapping::Mapping;
pub use routing::{Contract, Route};
pub use service::{Acquirer, AuthorizationService, Outcome};

use crate::seal::{SealAlgorithm, SealSecret};
use crate::wallet::googlepay::GooglePayRecipient;

/// A merchant as the switch knows it.
pub struct Merchant {
    pub id: String,
    /// Seal secrets by key version.
    pub keys: Vec<(u32, SealSecret)>,
    pub seal_algorithm: SealAlgorithm,
    pub googlepay: Option<Arc<GooglePayRecipient>>,
    /// Contracts in routing order.
    pub routes: Vec<Route>,
}

impl Merchant {
    pub fn key(&self, version: u32) -> Option<&SealSecret> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
    }

    /// The newest key, for sealing responses when the request named none.
    pub fn current_key(&self) -> Option<(u32, &SealSecret)> {
        self.keys
            .iter()
            .max_by_key(|(v, _)| *v)
            .map(|(v, k)| (*v, k))
    }
}

impl fmt::Debug for Merchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merchant")
            .field("id", &self.id)
            .field(
                "key_versions",
                &self.keys.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            )
            .field("googlepay", &self.googlepay.is_some())
            .field("routes", &self.routes.len())
            .finish()
    }
}
