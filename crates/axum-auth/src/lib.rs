//! A tower layer for axum services whose callers authenticate with keyledger API keys.
//!
//! [`KeyledgerAuth`] holds clients for the addresses of a keyledger cluster, a small local
//! cache of positive verdicts and the revocation barrier. [`KeyledgerAuth::layer`] (any valid
//! key) and [`KeyledgerAuth::require`] (a key granting one permission) give an [`AuthLayer`] to
//! mount on a router. A request without a valid `Authorization: Bearer <key>` is answered
//! `401`, one whose key lacks the permission `403`, both in keyledger's JSON error shape; the
//! handler of an accepted request extracts the key's identity with [`Authenticated`].
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use keyledger_axum::{Authenticated, Config, KeyledgerAuth};
//!
//! # fn app() -> Result<Router, keyledger_axum::SetupError> {
//! let auth = KeyledgerAuth::new(Config::new(["http://10.0.0.1:7700", "http://10.0.0.2:7700"]))?;
//! let app = Router::new()
//!     .route("/whoami", get(|who: Authenticated| async move { who.identity.name.clone() }))
//!     .layer(auth.require("namespace:payments:read")?);
//! # Ok(app) }
//! ```
//!
//! Design decisions:
//! - **Fail closed.** When no address answers, requests are refused `503`, never let through.
//! - **Cache only what is safe to cache.** Positive verdicts are kept for at most
//!   [`Config::cache_ttl`] (default 1 s, capped at [`MAX_CACHE_TTL`]), keyed by the key's
//!   SHA3-256 digest and the permission, never the key itself; refusals are never cached, so a
//!   key that starts working (re-enabled) does so at once. The cost: a revoked key may still be
//!   accepted here for up to the TTL — unless the revoker raises the barrier.
//! - **The revocation barrier.** A write to keyledger answers with its ledger index
//!   (`X-Keyledger-Index`, `Written::index` in `keyledger-client`). After
//!   [`KeyledgerAuth::barrier`]`(index)` no verdict fetched before that index is used, and every
//!   verification asks keyledger for `min_index = index`, so the node answering has applied the
//!   revocation: a key disabled by this application is refused from the next request on.

mod cache;
mod service;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_client::{Client, ClientError};
use keyledger_wire as wire;

use cache::{KeyDigest, VerdictCache};
pub use service::{AuthLayer, AuthService, Authenticated};

/// How long a positive verdict is cached unless configured otherwise.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(1);
/// The longest a positive verdict may be cached: a revoked key must not live on for long.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30);
/// How many verdicts the cache holds unless configured otherwise.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// How long one node may take to answer unless configured otherwise; then the next is asked.
/// Above the few milliseconds a verification takes, below the 5 s a node waits for `min_index`.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys longer than this are refused without asking keyledger (its keys are far shorter).
const MAX_KEY_LEN: usize = 512;

/// Where the cluster is and how long to trust an answer.
#[derive(Debug, Clone)]
pub struct Config {
    /// The nodes' addresses, e.g. `http://10.0.0.1:7700`; any node answers a verification.
    /// Tried in turn; one that cannot be reached or is unavailable passes to the next.
    pub addresses: Vec<String>,
    /// How long a positive verdict is reused; at most [`MAX_CACHE_TTL`]; zero caches nothing.
    pub cache_ttl: Duration,
    /// How many verdicts are kept; the least recently used goes first.
    pub cache_entries: usize,
    /// How long one node may take to answer before the next is asked (a hung node must not
    /// hold requests for the client's 30 s).
    pub node_timeout: Duration,
}

impl Config {
    /// The cluster at `addresses`, with the default cache.
    pub fn new<A: Into<String>>(addresses: impl IntoIterator<Item = A>) -> Config {
        Config {
            addresses: addresses.into_iter().map(Into::into).collect(),
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            node_timeout: DEFAULT_NODE_TIMEOUT,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// The identity behind a verified key, as keyledger's `POST /v1/verify` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    /// The key's id (never its secret).
    pub key_id: String,
    /// The user or service account the key belongs to.
    pub identity: wire::Identity,
    /// The identity's account.
    pub account: String,
    /// The key's effective permissions, e.g. `namespace:payments:read`.
    pub permissions: Vec<String>,
}

/// Why a request was not let through; its response is keyledger's JSON error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `401`: no key, or a key that is not valid (the code says why: `disabled`, `expired`, …).
    Unauthenticated(String),
    /// `403`: a valid key without the permission.
    Forbidden,
    /// `503`: no keyledger node could answer.
    Unavailable(String),
    /// `500`: keyledger refused the question itself (e.g. a malformed permission in the layer).
    Misconfigured(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Refusal::Unauthenticated(why) => (StatusCode::UNAUTHORIZED, "unauthenticated", why),
            Refusal::Forbidden => (
                StatusCode::FORBIDDEN,
                "permission_denied",
                "the API key does not grant the permission this request needs".to_string(),
            ),
            Refusal::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", why),
            // The detail was logged; the caller learns nothing of the configuration.
            Refusal::Misconfigured(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed to handle the request".to_string())
            }
        };
        let body = wire::ErrorBody { error: wire::ErrorDetail { code: code.into(), message, request_id: None } };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Verifies keys against a keyledger cluster. Cheap to clone; clones share the clients, the
/// cache and the barrier.
#[derive(Clone)]
pub struct KeyledgerAuth {
    shared: Arc<Shared>,
}

struct Shared {
    clients: Vec<Client>,
    node_timeout: Duration,
    /// Which address the next verification tries first.
    next: AtomicUsize,
    cache: Mutex<VerdictCache<Arc<VerifiedKey>>>,
    /// The highest ledger index passed to [`KeyledgerAuth::barrier`].
    barrier: AtomicU64,
}

impl KeyledgerAuth {
    /// Clients for every address of `config`. Fails when there is none, when one is not an
    /// http(s) URL, or when the TTL is over [`MAX_CACHE_TTL`].
    pub fn new(config: Config) -> Result<KeyledgerAuth, SetupError> {
        if config.addresses.is_empty() {
            return Err(SetupError("give at least one keyledger address".into()));
        }
        if config.cache_ttl > MAX_CACHE_TTL {
            return Err(SetupError(format!(
                "the cache TTL is {:?}; at most {MAX_CACHE_TTL:?}, so a revoked key is not accepted for long",
                config.cache_ttl
            )));
        }
        let clients = config
            .addresses
            .iter()
            .map(|address| {
                Client::new(address.as_str(), None).map_err(|e| SetupError(format!("keyledger address {address}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cache = VerdictCache::new(config.cache_ttl, config.cache_entries);
        Ok(KeyledgerAuth {
            shared: Arc::new(Shared {
                clients,
                node_timeout: config.node_timeout,
                next: AtomicUsize::new(0),
                cache: Mutex::new(cache),
                barrier: AtomicU64::new(0),
            }),
        })
    }

    /// A layer that lets through requests with any valid key.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone(), None)
    }

    /// A layer that lets through requests whose key grants `permission`: `account:<level>` or
    /// `namespace:<name>:<level>`, as keyledger's `POST /v1/verify` takes it.
    pub fn require(&self, permission: &str) -> Result<AuthLayer, SetupError> {
        if !plausible_permission(permission) {
            return Err(SetupError(format!(
                "permission {permission:?}: expected `account:<level>` or `namespace:<name>:<level>`"
            )));
        }
        Ok(AuthLayer::new(self.clone(), Some(permission.into())))
    }

    /// The revocation barrier: from now on no verdict fetched before ledger index `index` is
    /// used, and verifications ask for `min_index = index`. Pass the index a revoking write
    /// answered with. Barriers only move forward.
    pub fn barrier(&self, index: u64) {
        self.shared.barrier.fetch_max(index, Ordering::AcqRel);
    }

    /// Verifies `key` (for `permission`, if given), from the cache when it may.
    pub async fn verify(&self, key: &str, permission: Option<&Arc<str>>) -> Result<Arc<VerifiedKey>, Refusal> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refusal::Unauthenticated("the API key is not valid: malformed".into()));
        }
        let barrier = self.shared.barrier.load(Ordering::Acquire);
        let cache_key = (KeyDigest::of(key), permission.cloned());
        if let Some(hit) = self.cache().get(&cache_key, Instant::now(), barrier) {
            return Ok(hit);
        }
        let request = wire::VerifyRequest {
            key: key.to_string(),
            permission: permission.map(|p| p.to_string()),
            min_index: (barrier > 0).then_some(barrier),
        };
        let answer = self.ask(&request).await?;
        match (answer.valid, answer.code.as_deref()) {
            (true, _) => {
                let verified = Arc::new(VerifiedKey {
                    key_id: answer.key_id.unwrap_or_default(),
                    identity: answer.identity.ok_or_else(|| unexpected("a valid answer without an identity"))?,
                    account: answer.account.unwrap_or_default(),
                    permissions: answer.permissions.unwrap_or_default(),
                });
                self.cache().insert(cache_key, verified.clone(), Instant::now(), barrier);
                Ok(verified)
            }
            (false, Some("forbidden")) => Err(Refusal::Forbidden),
            (false, code) => {
                Err(Refusal::Unauthenticated(format!("the API key is not valid: {}", code.unwrap_or("unknown"))))
            }
        }
    }

    /// How many verdicts the cache holds now.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, VerdictCache<Arc<VerifiedKey>>> {
        // The cache is only ever left consistent (no panics while held), so a poisoned lock
        // still holds a usable cache.
        self.shared.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /v1/verify` on each address in turn, starting from the next in rotation, until one
    /// answers.
    async fn ask(&self, request: &wire::VerifyRequest) -> Result<wire::VerifyResponse, Refusal> {
        let clients = &self.shared.clients;
        let start = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..clients.len() {
            let client = &clients[(start + i) % clients.len()];
            let answer = match tokio::time::timeout(self.shared.node_timeout, client.verify(request)).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(
                        address = client.address(),
                        "keyledger node did not answer in time; trying the next"
                    );
                    last = Some(format!("{} did not answer within {:?}", client.address(), self.shared.node_timeout));
                    continue;
                }
            };
            match answer {
                Ok(answer) => return Ok(answer),
                Err(ClientError::Api { status: 400, error }) => {
                    tracing::error!(address = client.address(), code = %error.code, message = %error.message,
                        "keyledger refused the verification request");
                    return Err(Refusal::Misconfigured(error.message));
                }
                Err(error) => {
                    tracing::warn!(address = client.address(), %error, "keyledger node could not verify; trying the next");
                    last = Some(error.to_string());
                }
            }
        }
        let why = last.unwrap_or_default();
        Err(Refusal::Unavailable(format!("no keyledger node could verify the key: {why}")))
    }
}

fn unexpected(what: &str) -> Refusal {
    tracing::error!("keyledger answered {what}");
    Refusal::Misconfigured(what.into())
}

/// The shape of a keyledger permission; keyledger checks the names and levels.
fn plausible_permission(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    let named = |s: &&str| !s.is_empty();
    match parts.as_slice() {
        ["account", level] => named(level),
        ["namespace", name, level] => named(name) && named(level),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_that_cannot_work_is_refused() {
        assert!(KeyledgerAuth::new(Config::new(Vec::<String>::new())).is_err());
        let mut config = Config::new(["http://127.0.0.1:1"]);
        config.cache_ttl = Duration::from_secs(31);
        assert!(KeyledgerAuth::new(config.clone()).is_err());
        config.cache_ttl = MAX_CACHE_TTL;
        let auth = KeyledgerAuth::new(config).unwrap();
        assert!(auth.require("namespace:payments:read").is_ok());
        assert!(auth.require("account:write").is_ok());
        for bad in ["payments:read", "namespace:payments", "account:", ""] {
            assert!(auth.require(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn nothing_answering_is_a_refusal_not_a_pass() {
        // A port nobody listens on: connection refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let auth = KeyledgerAuth::new(Config::new([address])).unwrap();
        let refused = auth.verify("klk_anything", None).await.unwrap_err();
        assert!(matches!(refused, Refusal::Unavailable(_)), "{refused:?}");
        let malformed = auth.verify("klk_\nx", None).await.unwrap_err();
        assert!(matches!(malformed, Refusal::Unauthenticated(_)), "{malformed:?}");
        assert_eq!(auth.cached(), 0);
    }

    #[tokio::test]
    async fn a_node_that_does_not_answer_is_given_up_on() {
        // Accepts connections (the kernel's backlog) but never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = Config::new([format!("http://{}", silent.local_addr().unwrap())]);
        config.node_timeout = Duration::from_millis(200);
        let auth = KeyledgerAuth::new(config).unwrap();
        let refused = auth.verify("klk_anything", None).await.unwrap_err();
        assert!(matches!(&refused, Refusal::Unavailable(why) if why.contains("did not answer")), "{refused:?}");
    }
}
