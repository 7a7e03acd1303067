//! `Idempotency-Key` on writes: the header and a fingerprint of the request (method, path,
//! body) ride with the handler as a task-local, and [`crate::write::write`] wraps the command
//! so the state machine can answer a retry from its table (see `keyledger_model::idempotency`).

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use keyledger_model::idempotency::MAX_KEY_LEN;
use sha3::{Digest, Sha3_256};

use crate::error::ApiError;
use crate::BODY_LIMIT;

pub(crate) const HEADER: &str = "idempotency-key";

/// The retry identity of the current request.
#[derive(Debug, Clone)]
pub(crate) struct Idempotency {
    pub(crate) key: String,
    pub(crate) fingerprint: [u8; 32],
}

impl Idempotency {
    /// The retry identity of item `index` of a batch (`POST /v1/keys/batch`): the batch's key
    /// with `#<index>` appended, and the batch's fingerprint. A retried batch so finds each of
    /// its items' first answers, and the same key on another batch is refused item by item.
    pub(crate) fn for_item(&self, index: usize) -> Idempotency {
        Idempotency { key: format!("{}#{index}", self.key), fingerprint: self.fingerprint }
    }
}

tokio::task_local! {
    static CURRENT: Option<Idempotency>;
}

/// The current request's `Idempotency-Key`, if it sent one.
pub(crate) fn current() -> Option<Idempotency> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Runs `future` with `idempotency` as its request's retry identity (the request's own, or one
/// item's of a batch), which [`crate::write::write`] wraps its proposal with.
pub(crate) async fn scope<F: std::future::Future>(idempotency: Option<Idempotency>, future: F) -> F::Output {
    CURRENT.scope(idempotency, future).await
}

/// The request's retry identity (none without the header or on a read), and the request with
/// its body read back in; or the answer refusing a bad header or a body too large.
pub(crate) async fn prepare(request: Request) -> Result<(Option<Idempotency>, Request), Response> {
    let is_write = matches!(*request.method(), Method::POST | Method::PATCH | Method::PUT | Method::DELETE);
    let Some(value) = request.headers().get(HEADER).filter(|_| is_write).cloned() else {
        return Ok((None, request));
    };
    let key = match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()) => {
            key.to_string()
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "`Idempotency-Key` must be 1 to {MAX_KEY_LEN} printable ASCII characters"
            ))
            .into_response())
        }
    };
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than 1 MiB",
            )
            .into_response())
        }
    };
    let mut hasher = Sha3_256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let idempotency = Idempotency { key, fingerprint: hasher.finalize().into() };
    let request = Request::from_parts(parts, Body::from(bytes));
    Ok((Some(idempotency), request))
}
