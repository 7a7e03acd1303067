//! Extractors whose every failure is an [`ApiError`], so a malformed body or a missing key
//! gets the same JSON error shape as everything else.

use axum::extract::rejection::JsonRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use keyledger_model::{AccountId, Actor, KeyId, Owner, Principal, Verdict};
use serde::de::DeserializeOwned;

use crate::abuse::AuthGate;
use crate::error::ApiError;
use crate::metrics::AuthFailure;
use crate::AppState;

/// `axum::Json` with our error shape: 400 for bad JSON or unknown fields, 413 over the limit.
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

/// `axum::extract::Path` with our error shape. A segment that cannot be read (invalid UTF-8
/// after percent-decoding) names no object that exists: `404 not_found`, as for an id of the
/// wrong form.
pub(crate) struct Path<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::not_found(format!("no such object: {}", rejection.body_text()))),
        }
    }
}

/// Like [`Json`] for a body whose every field is optional: no body at all reads as `{}`.
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        Json::<T>::from_request(req, state).await.map(|Json(value)| OptionalJson(value))
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is larger than 1 MiB")
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("the request body must be JSON with `Content-Type: application/json`")
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid(format!("the request body does not fit: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::invalid(format!("the request body is not valid JSON: {}", e.body_text()))
        }
        other => ApiError::invalid(format!("the request body cannot be read: {}", other.body_text())),
    }
}

/// The authenticated caller: the identity behind a valid bearer key and its effective rights,
/// as of this moment. The same check runs again when a write is applied.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) key: KeyId,
    pub(crate) principal: Principal,
}

impl Caller {
    pub(crate) fn account(&self) -> &AccountId {
        &self.principal.account
    }

    pub(crate) fn actor(&self) -> Actor {
        match self.principal.identity {
            Owner::User(id) => Actor::User { id, key: self.key },
            Owner::ServiceAccount(id) => Actor::ServiceAccount { id, key: self.key },
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Every refusal here is counted, never written: a flood of bad keys must not grow
        // the ledger (domain.md), but an operator should see it.
        let metrics = &state.metrics;
        // An address over its failed authentications is refused before its key is looked at
        // (`abuse.rs` says why a valid key is refused too). Without `ConnectInfo` (a router
        // driven in process) there is no address to count.
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let gate = AuthGate::open(state.guards.auth_failures.as_ref(), client, metrics)?;
        let refuse = |why, message: &str| {
            metrics.count_unauthenticated(why);
            gate.failed();
            ApiError::unauthenticated(message)
        };
        let Some(presented) = parts.headers.get(header::AUTHORIZATION).and_then(|value| bearer_token(value.as_bytes()))
        else {
            return Err(refuse(AuthFailure::Missing, "send an API key as `Authorization: Bearer <key>`"));
        };
        let node = &state.node;
        let ledger_state = node.ledger().state();
        let now = node.now();
        let invalid = |why| refuse(why, "the API key is not valid");
        let key = match ledger_state.verify(presented, now, None) {
            Verdict::Valid(v) => {
                v.note_use(now);
                v.key
            }
            Verdict::Invalid(why) => return Err(invalid(AuthFailure::Invalid(why))),
            // Not answered without a permission to check; counted as `other` all the same.
            Verdict::Forbidden(_) => return Err(invalid(AuthFailure::Other)),
        };
        let principal = ledger_state.principal(&key, now).ok_or_else(|| invalid(AuthFailure::Other))?;
        crate::access::note_caller(key);
        Ok(Caller { key, principal })
    }
}

/// The key of an `Authorization: Bearer <key>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work too.
pub(crate) fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer klk_x", "bearer klk_x", "BEARER klk_x", "  bEaReR   klk_x "] {
            assert_eq!(bearer_token(header.as_bytes()), Some("klk_x"), "{header:?}");
        }
        for header in ["Basic klk_x", "Bearer", "Bearer ", "Bearerklk_x", "klk_x"] {
            assert_eq!(bearer_token(header.as_bytes()), None, "{header:?}");
        }
    }
}
