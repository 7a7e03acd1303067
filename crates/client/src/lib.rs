//! A typed async client for keyledger's HTTP API (`api.md` is the contract).
//!
//! [`Client`] holds a server address, an optional API key and one `reqwest::Client`, whose
//! connection pool is shared by every clone and by [`Client::with_api_key`]. Each method is
//! one request and answers with the [`keyledger_wire`] type of the endpoint; writes come back
//! [`Written`] (with the ledger index the write committed at) and reads of one key come back
//! [`Tagged`] (with its revision from `ETag`). Every failure is a [`ClientError`]: an error
//! answer from the server, a transport failure, or a success answer that does not parse.
//!
//! Design decision: the client never retries on the same address and never interprets error
//! codes beyond failover (`failover.rs`: another node is tried only when the request certainly
//! wrote nothing, or repeating it is harmless). A write that
//! timed out may still commit (`outcome_unknown`), so whether and how to retry is the caller's
//! choice. In turn every non-success answer, even a proxy's HTML page, becomes a uniform
//! [`ClientError::Api`] with a status and a code, so callers match on codes and never on text.

mod audit;
mod error;
mod failover;
mod http;
mod identities;
mod keys;
mod webhooks;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keyledger_wire as wire;
use reqwest::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use audit::{AuditQuery, Export, ExportFormat, ExportRequest, EXPORT_TIMEOUT};
pub use error::{ClientError, UNEXPECTED_RESPONSE};

/// How long one request may take, from sending to the last byte of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an unused pooled connection is kept: less than the server keeps it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on one keyledger server, or on several nodes of one cluster tried in turn (see
/// [`Client::with_addresses`]). Cheap to clone; clones share the connection pool and the
/// preferred address.
///
/// Its `Debug` form never shows the API key.
#[derive(Clone)]
pub struct Client {
    /// The normalized addresses, in the order given; never empty.
    addresses: Arc<[String]>,
    /// Index into `addresses` of the one that answered last: tried first.
    preferred: Arc<AtomicUsize>,
    api_key: Option<String>,
    http: reqwest::Client,
    /// Ask for `consistency=linearizable` on every read.
    linearizable: bool,
    /// Sent as `X-Request-Id`, so the ledger's events name the request that caused them.
    request_id: Option<String>,
}

/// One page of a list (`GET /v1/users`, `/v1/service-accounts`, `/v1/namespaces`,
/// `/v1/accounts`); `None` fields are not sent.
#[derive(Debug, Default, Clone)]
pub struct Page {
    /// Page size (server default 100, max 1000).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters and paging of `GET /v1/keys`; `None` fields are not sent.
#[derive(Debug, Default, Clone)]
pub struct ListKeys {
    /// `enabled`, `disabled`, `expired` or `deleted`.
    pub state: Option<String>,
    /// `user` or `service_account`.
    pub owner_kind: Option<String>,
    /// The owner's id.
    pub owner_id: Option<String>,
    /// Only keys of this namespace.
    pub namespace: Option<String>,
    /// Only keys whose name contains this, ignoring case.
    pub name: Option<String>,
    /// Only keys expiring within this span (`7d`, `12h`).
    pub expiring_within: Option<String>,
    /// Page size (server default 100, max 1000).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The answer to a write, with the ledger position it committed at (`X-Keyledger-Index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// The answer's body.
    pub value: T,
    /// The ledger index of the write; pass it as `min_index` to read your own write elsewhere.
    pub index: u64,
}

/// A read of one object, with its revision (the `ETag` header, unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<T> {
    /// The answer's body.
    pub value: T,
    /// The object's revision, usable as `If-Match`.
    pub revision: u64,
}

/// A received answer, body read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addresses", &self.addresses)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The certificates of a PEM file, each checked to parse.
fn read_cacert(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let unusable =
        |why: String| ClientError::Tls(format!("cannot use the CA certificate file {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| unusable(e.to_string()))?;
    if certificates.is_empty() {
        return Err(unusable("it holds no PEM certificate".into()));
    }
    Ok(certificates)
}

impl Client {
    /// A client for the server at `address`, e.g. `http://127.0.0.1:7700` (a trailing slash is
    /// tolerated, a bare `host:port` means `http`). Fails with [`ClientError::Transport`] when
    /// the address is not an http(s) URL.
    pub fn new(address: impl Into<String>, api_key: Option<String>) -> Result<Client, ClientError> {
        Client::with_cacert(address, api_key, None)
    }

    /// Like [`Client::new`], also trusting the CA certificate(s) in the PEM file `cacert` for
    /// `https://` addresses (beside the web's usual roots). Fails with [`ClientError::Tls`] when
    /// the file cannot be read or holds no certificate.
    pub fn with_cacert(
        address: impl Into<String>,
        api_key: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<Client, ClientError> {
        Client::with_addresses(&[address.into()], api_key, cacert)
    }

    /// A client for several nodes of one cluster, tried in the order given. A request moves
    /// on to the next address when it certainly reached no node (connection refused or timed
    /// out, a name that does not resolve) or a node answered `503 unavailable` (nothing was
    /// written); when it may have been applied (the connection broke after sending, the
    /// answer timed out, `503 outcome_unknown`) it moves on only if repeating it is harmless:
    /// a read, a verification, or a write with an `Idempotency-Key`. The address that
    /// answered is tried first from then on. When every address fails, the error names each
    /// one and why. Fails like [`Client::with_cacert`], or when `addresses` is empty.
    pub fn with_addresses(
        addresses: &[String],
        api_key: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<Client, ClientError> {
        if addresses.is_empty() {
            return Err(ClientError::Transport("no server address given".into()));
        }
        let addresses: Arc<[String]> =
            addresses.iter().map(|a| http::normalize_address(a)).collect::<Result<Vec<_>, _>>()?.into();
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // Below the server's header-read timeout (10 s by default), which also closes idle
            // connections: a pooled connection is dropped here before the server drops it, so a
            // request is never sent on a connection the server is closing at that moment.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("keyledger-client/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = cacert {
            for certificate in read_cacert(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| ClientError::transport(&e))?;
        Ok(Client {
            addresses,
            preferred: Arc::new(AtomicUsize::new(0)),
            api_key,
            http,
            linearizable: false,
            request_id: None,
        })
    }

    /// The same server and connection pool, authenticating with another key.
    pub fn with_api_key(&self, api_key: impl Into<String>) -> Client {
        Client { api_key: Some(api_key.into()), ..self.clone() }
    }

    /// The same client, asking for linearizable reads (`consistency=linearizable`): every
    /// read, and every verification, reflects all writes acknowledged before it was sent.
    pub fn linearizable(&self) -> Client {
        Client { linearizable: true, ..self.clone() }
    }

    /// The same client, sending `X-Request-Id: id` on every request: the server uses it as the
    /// request's id (it must be 1–128 printable ASCII characters, or the server makes its own),
    /// and a write's ledger events carry it, so a caller can find what its request wrote.
    pub fn with_request_id(&self, id: impl Into<String>) -> Client {
        Client { request_id: Some(id.into()), ..self.clone() }
    }

    /// The normalized address of the server tried first (the one that answered last), without
    /// a trailing slash.
    pub fn address(&self) -> &str {
        &self.addresses[self.preferred_index().min(self.addresses.len() - 1)]
    }

    /// Index of the address tried first.
    fn preferred_index(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    /// Tries the address at `index` first from now on (it just answered).
    fn prefer(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// Every normalized address, in the order given.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// `POST /v1/verify`: whether a key is valid (and allows `permission`). Needs no API key;
    /// the client's key is sent anyway when it has one.
    pub async fn verify(&self, req: &wire::VerifyRequest) -> Result<wire::VerifyResponse, ClientError> {
        let answer = self.send(Method::POST, "/v1/verify".into(), Some(req), &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/keys/leaked`: reports a leaked key's secret. Needs no API key; the answer is
    /// the same `202 {}` whether or not the secret names a key.
    pub async fn report_leaked(&self, req: &wire::LeakReport) -> Result<wire::LeakReportAccepted, ClientError> {
        let answer = self.send(Method::POST, "/v1/keys/leaked".into(), Some(req), &[]).await?;
        decode(&expect(answer, StatusCode::ACCEPTED)?)
    }

    /// `POST /v1/cluster/members`: adds a running node; answers once it is a voter.
    pub async fn add_cluster_member(&self, req: &wire::AddMemberRequest) -> Result<wire::ClusterStatus, ClientError> {
        let answer = self.send(Method::POST, "/v1/cluster/members".into(), Some(req), &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `DELETE /v1/cluster/members/{node_id}`: removes a node, live or dead.
    pub async fn remove_cluster_member(&self, node_id: u64) -> Result<wire::ClusterStatus, ClientError> {
        let path = format!("/v1/cluster/members/{node_id}");
        let answer = self.send(Method::DELETE, path, None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/cluster`: members, leader, term and lag as seen by the answering node.
    pub async fn cluster_status(&self) -> Result<wire::ClusterStatus, ClientError> {
        let answer = self.send(Method::GET, "/v1/cluster".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /healthz`: whether the process is up.
    pub async fn health(&self) -> Result<wire::Health, ClientError> {
        let answer = self.send(Method::GET, "/healthz".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /readyz`: whether the node has a leader and has applied the committed log.
    /// A `503` is a [`ClientError::Api`]; when its body is a health answer rather than an
    /// error body, the error has the code `unavailable` and the health `reason` as message.
    pub async fn ready(&self) -> Result<wire::Health, ClientError> {
        let answer = self.send(Method::GET, "/readyz".into(), None::<&()>, &[]).await?;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(health) = serde_json::from_slice::<wire::Health>(&answer.body) {
                return Err(ClientError::Api {
                    status: answer.status.as_u16(),
                    error: wire::ErrorDetail {
                        code: "unavailable".into(),
                        message: health.reason.unwrap_or_else(|| format!("node is {}", health.status)),
                        request_id: request_id(&answer.headers),
                    },
                });
            }
        }
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// Sends one request and reads the whole answer, whatever its status.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
        query: &[(&str, String)],
    ) -> Result<Answer, ClientError> {
        self.send_with(method, path, body, query, &[]).await
    }

    /// [`Client::send`] with further request headers, on each address in turn as
    /// [`Client::with_addresses`] describes.
    async fn send_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
        query: &[(&str, String)],
        headers: &[(HeaderName, String)],
    ) -> Result<Answer, ClientError> {
        // Encoded once: every attempt sends the same bytes.
        let body = match body {
            Some(body) => Some(Bytes::from(
                serde_json::to_vec(body)
                    .map_err(|e| ClientError::Transport(format!("cannot encode the request: {e}")))?,
            )),
            None => None,
        };
        let idempotent = failover::is_idempotent(&method, &path, headers);
        let mut failures: Vec<(usize, ClientError)> = Vec::new();
        for index in failover::attempt_order(self.preferred_index(), self.addresses.len()) {
            let (attempt, result) =
                self.attempt(&self.addresses[index], &method, &path, body.clone(), query, headers).await;
            // With one address there is nowhere else to go: its answer or error, as it came.
            if self.addresses.len() == 1 || !failover::moves_on(attempt, idempotent) {
                if result.is_ok() {
                    self.prefer(index);
                }
                return result;
            }
            let error = match result {
                Ok(answer) => expect(answer, StatusCode::OK)
                    .err()
                    .unwrap_or_else(|| ClientError::Decode("a 503 answer was taken for a success".into())),
                Err(error) => error,
            };
            tracing::debug!(address = %self.addresses[index], %error, "trying the next address");
            failures.push((index, error));
        }
        Err(self.every_address_failed(failures))
    }

    /// One attempt on the node at `base`: how it ended (for failover) and its answer.
    async fn attempt(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
        query: &[(&str, String)],
        headers: &[(HeaderName, String)],
    ) -> (failover::Attempt, Result<Answer, ClientError>) {
        let url = format!("{base}{path}");
        let mut request: RequestBuilder = self.http.request(method.clone(), &url);
        if !query.is_empty() {
            request = request.query(query);
        }
        let read = *method == Method::GET || path.starts_with("/v1/verify");
        if self.linearizable && read {
            request = request.query(&[("consistency", "linearizable")]);
        }
        if let Some(id) = &self.request_id {
            request = request.header(wire::REQUEST_ID_HEADER, id);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        tracing::debug!(%method, %url, "sending request");
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return (failover::classify_send_error(&e), Err(ClientError::transport(&e))),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            // The node had the request: whether it acted on it is unknown.
            Err(e) => return (failover::Attempt::MaybeProcessed, Err(ClientError::transport(&e))),
        };
        tracing::debug!(%method, %url, status = status.as_u16(), bytes = body.len(), "answer received");
        let code = (status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| serde_json::from_slice::<wire::ErrorBody>(&body).ok())
            .flatten()
            .map(|parsed| parsed.error.code);
        (failover::classify_answer(status, code.as_deref()), Ok(Answer { status, headers, body }))
    }

    /// The error once every one of several addresses failed, naming each and why: a `503`
    /// error if the last answered so, else a transport error.
    pub(crate) fn every_address_failed(&self, mut failures: Vec<(usize, ClientError)>) -> ClientError {
        let each: Vec<String> = failures
            .iter()
            .map(|(index, error)| match error {
                ClientError::Transport(why) => format!("{}: {why}", self.addresses[*index]),
                other => format!("{}: {other}", self.addresses[*index]),
            })
            .collect();
        let message = format!("no address answered; tried {}", each.join("; "));
        match failures.pop() {
            Some((_, ClientError::Api { status, error })) => {
                ClientError::Api { status, error: wire::ErrorDetail { message, ..error } }
            }
            _ => ClientError::Transport(message),
        }
    }
}

/// `{collection}/{id}{suffix}` with the id encoded. An id that cannot stand in a path is
/// answered here as the server would answer an id of the wrong form: `404 not_found`.
pub(crate) fn object_path(collection: &str, what: &str, id: &str, suffix: &str) -> Result<String, ClientError> {
    if !http::usable_segment(id) {
        return Err(ClientError::Api {
            status: StatusCode::NOT_FOUND.as_u16(),
            error: wire::ErrorDetail {
                code: "not_found".into(),
                message: format!("no {what} has the id {id:?}"),
                request_id: None,
            },
        });
    }
    Ok(format!("{collection}/{}{suffix}", http::encode_segment(id)))
}

/// Passes an answer with the expected status on; anything else becomes the fitting error.
fn expect(answer: Answer, expected: StatusCode) -> Result<Answer, ClientError> {
    if answer.status == expected {
        return Ok(answer);
    }
    let status = answer.status.as_u16();
    let request_id = request_id(&answer.headers);
    if answer.status.is_success() {
        let message = format!("expected HTTP {}, the server answered HTTP {status}", expected.as_u16());
        return Err(error::unexpected(status, message, request_id));
    }
    Err(ClientError::from_answer(status, &answer.body, request_id))
}

fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, ClientError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        let quoted = error::snippet(&answer.body).unwrap_or_else(|| "an empty body".into());
        ClientError::Decode(format!("{e} in {quoted}"))
    })
}

fn written<T: DeserializeOwned>(answer: Answer) -> Result<Written<T>, ClientError> {
    let index = http::parse_index(index_header(&answer))?;
    Ok(Written { value: decode(&answer)?, index })
}

/// A `204` write: no body, only the ledger index.
fn written_empty(answer: Answer) -> Result<Written<()>, ClientError> {
    let answer = expect(answer, StatusCode::NO_CONTENT)?;
    let index = http::parse_index(index_header(&answer))?;
    Ok(Written { value: (), index })
}

fn index_header(answer: &Answer) -> Option<&[u8]> {
    answer.headers.get(wire::INDEX_HEADER).map(|v| v.as_bytes())
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get(wire::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer { status: StatusCode::from_u16(status).unwrap(), headers: map, body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn debug_hides_the_key() {
        let client = Client::new("http://127.0.0.1:7700/", Some("klk_secret".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("klk_secret"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(client.address(), "http://127.0.0.1:7700");
        let other = client.with_api_key("klk_other");
        assert_eq!(other.api_key.as_deref(), Some("klk_other"));
        assert_eq!(other.address(), client.address());
    }

    #[test]
    fn object_paths() {
        assert_eq!(object_path("/v1/users", "user", "usr_1", "").unwrap(), "/v1/users/usr_1");
        assert_eq!(object_path("/v1/users", "user", "a b", "/enable").unwrap(), "/v1/users/a%20b/enable");
        let err = object_path("/v1/service-accounts", "service account", ".", "").unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
    }

    #[test]
    fn unexpected_success_status_is_an_api_error() {
        let err = expect(answer(200, &[], "{}"), StatusCode::CREATED).err().unwrap();
        assert_eq!(err.status(), Some(200));
        assert_eq!(err.code(), Some(UNEXPECTED_RESPONSE));
    }

    #[test]
    fn error_answer_carries_request_id_header() {
        let a = answer(503, &[("x-request-id", "req-9")], "Service Unavailable");
        let err = expect(a, StatusCode::OK).err().unwrap();
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.request_id(), Some("req-9"));
    }

    #[test]
    fn written_needs_the_index_header() {
        let body = r#"{"status":"ok"}"#;
        let ok: Written<wire::Health> = written(answer(200, &[("x-keyledger-index", "17")], body)).unwrap();
        assert_eq!(ok.index, 17);
        assert_eq!(ok.value.status, "ok");
        let err = written::<wire::Health>(answer(200, &[], body)).unwrap_err();
        assert!(matches!(err, ClientError::Decode(_)));
    }

    #[test]
    fn bad_success_body_is_decode_error() {
        let err = decode::<wire::KeyList>(&answer(200, &[], "<html>")).unwrap_err();
        assert!(matches!(err, ClientError::Decode(ref m) if m.contains("<html>")), "{err:?}");
    }
}
