//! `GET /v1/verify/auth-request`: verification in the shape reverse proxies ask for it — nginx
//! `auth_request` and Envoy `ext_authz` (HTTP service). The key comes in a header, the verdict
//! is the status (`200`, `401`, `403`), and a valid key's identity goes back in `X-Keyledger-*`
//! headers for the proxy to hand its upstream (`docs/integrate.md`).
//!
//! Design decisions:
//! - The same verification as `POST /v1/verify` (`verify.rs`): the same membership and
//!   `min_index` checks, the same `State::verify`, the same counters; no disk, no network.
//! - Like `POST /v1/verify` it needs no credential and is not under the per-address limit on
//!   failed authentications: behind a proxy every client shares the proxy's address, so
//!   counting failures here would let one client's bad keys lock every other client out.
//! - Envoy appends the original request's path (and query) to its configured prefix, so any path
//!   below `/v1/verify/auth-request/` answers the same. Query parameters can then come from the
//!   end client; they can only make the check stricter (a second required permission, a wait
//!   for `min_index`), never looser: a permission the proxy sets in `X-Keyledger-Permission`
//!   must hold as well as one in `?permission=`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_model::{Permission, Verdict, Verified};
use keyledger_wire as wire;
use serde::Deserialize;

use crate::error::ApiError;
use crate::metrics::VerifyResult;
use crate::render::{owner_id, owner_kind};
use crate::verify::{ready_to_verify, verify_now};
use crate::AppState;

/// The header a client may send its key in instead of `Authorization: Bearer`.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";
/// A permission the proxy requires, set by the proxy (Envoy's `headers_to_add`).
pub(crate) const PERMISSION_HEADER: &str = "x-keyledger-permission";
/// The verified key's id on a `200`.
pub(crate) const KEY_ID_HEADER: &str = "x-keyledger-key-id";
/// `user` or `service_account`.
pub(crate) const IDENTITY_KIND_HEADER: &str = "x-keyledger-identity-kind";
/// The identity's id.
pub(crate) const IDENTITY_ID_HEADER: &str = "x-keyledger-identity-id";
/// The identity's name, percent-encoded (UTF-8) where it is not plain printable ASCII.
pub(crate) const IDENTITY_NAME_HEADER: &str = "x-keyledger-identity-name";
/// The identity's account.
pub(crate) const ACCOUNT_HEADER: &str = "x-keyledger-account";

/// The query of an auth request. Unknown parameters are ignored: behind Envoy the query is the
/// end client's.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuthRequestQuery {
    /// A permission the key must grant, as in `POST /v1/verify`: `account:<level>` or
    /// `namespace:<name>:<level>`. A permission in `X-Keyledger-Permission` must hold as well.
    permission: Option<String>,
    /// Answer only once this node has applied this ledger position (as in `POST /v1/verify`).
    #[param(value_type = Option<i64>, minimum = 0)]
    min_index: Option<u64>,
}

/// The headers an auth request may carry besides `Authorization` (documented once for the
/// three routes; the handler reads them from the `HeaderMap`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct AuthRequestHeaders {
    /// The key, when not in `Authorization: Bearer`.
    #[param(rename = "X-Api-Key")]
    #[allow(dead_code, reason = "read by the OpenAPI derive only; the handler reads the `HeaderMap`")]
    api_key: Option<String>,
    /// A permission the key must grant, set by the proxy; `?permission=` must hold as well.
    #[param(rename = "X-Keyledger-Permission")]
    #[allow(dead_code, reason = "read by the OpenAPI derive only; the handler reads the `HeaderMap`")]
    permission: Option<String>,
}

/// Verifies the key of a proxied request: `200` with the identity in `X-Keyledger-*` headers,
/// `401` when there is no valid key, `403` when the key lacks the permission. For nginx
/// `auth_request` and Envoy `ext_authz`; needs no credential of its own. The key is taken from
/// `Authorization: Bearer <key>` (any case) or `X-Api-Key: <key>`; two different keys are refused.
/// Any path below this one answers the same (Envoy appends the original request's path).
#[utoipa::path(
    get,
    path = "/v1/verify/auth-request",
    operation_id = "verify_auth_request",
    tag = "verification",
    params(
        AuthRequestQuery,
        AuthRequestHeaders,
    ),
    responses(
        (status = 200, description = "The key is valid (and grants the permissions asked). Empty body.",
            headers(
                ("X-Keyledger-Key-Id" = String, description = "The key's id."),
                ("X-Keyledger-Identity-Kind" = String, description = "`user` or `service_account`."),
                ("X-Keyledger-Identity-Id" = String, description = "The identity's id."),
                ("X-Keyledger-Identity-Name" = String,
                    description = "The identity's name, percent-encoded (UTF-8) outside printable ASCII."),
                ("X-Keyledger-Account" = String, description = "The identity's account."),
            )),
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, description = "`unauthenticated`: no key, or the key is malformed, unknown, disabled, \
            expired, deleted or its identity disabled (the message says which). Carries `WWW-Authenticate: Bearer`.",
            body = wire::ErrorBody),
        (status = 403, description = "`permission_denied`: the key is valid but does not grant the permission.",
            body = wire::ErrorBody),
        (status = 503, description = "`unavailable`: this node is not a member, or has not applied `min_index` \
            within the wait; ask another node.", body = wire::ErrorBody),
    ),
)]
pub(crate) async fn auth_request(
    State(app): State<AppState>,
    query: Result<Query<AuthRequestQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(&app, query, &headers).await
}

/// The same as `GET /v1/verify/auth-request`, for any path below it: Envoy's `ext_authz` appends
/// the original request's path to its `path_prefix`.
#[utoipa::path(
    get,
    path = "/v1/verify/auth-request/{rest}",
    operation_id = "verify_auth_request_below",
    tag = "verification",
    params(
        ("rest" = String, Path, description = "Anything: the proxied request's path, which is not looked at."),
        AuthRequestQuery,
        AuthRequestHeaders,
    ),
    responses(
        (status = 200, description = "As `GET /v1/verify/auth-request`."),
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
        (status = 403, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
        (status = 503, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
    ),
)]
pub(crate) async fn auth_request_below(
    State(app): State<AppState>,
    query: Result<Query<AuthRequestQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(&app, query, &headers).await
}

/// The same as `GET /v1/verify/auth-request`, with a trailing slash: what Envoy asks before a
/// request for `/` (the wildcard route below needs at least one character).
#[utoipa::path(
    get,
    path = "/v1/verify/auth-request/",
    operation_id = "verify_auth_request_slash",
    tag = "verification",
    params(
        AuthRequestQuery,
        AuthRequestHeaders,
    ),
    responses(
        (status = 200, description = "As `GET /v1/verify/auth-request`."),
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
        (status = 403, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
        (status = 503, description = "As `GET /v1/verify/auth-request`.", body = wire::ErrorBody),
    ),
)]
pub(crate) async fn auth_request_slash(
    State(app): State<AppState>,
    query: Result<Query<AuthRequestQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(&app, query, &headers).await
}

/// The answer of every auth-request route; every `401` with `WWW-Authenticate: Bearer` (RFC 6750 §3).
async fn answer(
    app: &AppState,
    query: Result<Query<AuthRequestQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Response {
    let mut response = verdict(app, query, headers).await.unwrap_or_else(IntoResponse::into_response);
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

async fn verdict(
    app: &AppState,
    query: Result<Query<AuthRequestQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("the query cannot be read: {}", e.body_text())))?;
    let asked = parse_permission(query.permission.as_deref(), "`permission`")?;
    let set_by_proxy = match headers.get(PERMISSION_HEADER) {
        None => None,
        Some(value) => {
            let text =
                value.to_str().map_err(|_| ApiError::invalid("`X-Keyledger-Permission` is not printable ASCII"))?;
            parse_permission(Some(text), "`X-Keyledger-Permission`")?
        }
    };
    ready_to_verify(app, query.min_index).await?;
    let presented = presented_key(headers)?;

    let state = app.verifying.read();
    let now = verify_now();
    // An absent key is verified as the empty one: `malformed`, counted as `POST /v1/verify`
    // counts an empty `key`.
    let first = asked.as_ref().or(set_by_proxy.as_ref());
    let verdict = match state.verify(presented.unwrap_or(""), now, first) {
        Verdict::Valid(v) if set_by_proxy.as_ref().zip(asked.as_ref()).is_some_and(|(p, _)| !v.grants(p)) => {
            Verdict::Forbidden(v)
        }
        verdict => verdict,
    };
    match verdict {
        Verdict::Valid(v) => {
            v.note_use(now);
            app.metrics.count_verification(VerifyResult::Valid);
            Ok(identity_headers(&v))
        }
        Verdict::Forbidden(v) => {
            v.note_use(now);
            app.metrics.count_verification(VerifyResult::Forbidden);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "the API key does not grant the permission this request needs",
            ))
        }
        Verdict::Invalid(why) => {
            app.metrics.count_verification(VerifyResult::Invalid(why));
            Err(ApiError::unauthenticated(match (presented, why) {
                (None, _) => "send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`".into(),
                (Some(_), why) => format!("the API key is not valid: {}", why.as_str()),
            }))
        }
    }
}

/// A permission read exactly as `POST /v1/verify` reads its `permission`.
fn parse_permission(text: Option<&str>, name: &str) -> Result<Option<Permission>, ApiError> {
    text.map(|p| p.parse::<Permission>().map_err(|e| ApiError::invalid(format!("{name}: {e}")))).transpose()
}

/// The key of the request: `Authorization: Bearer <key>` (any case), else `X-Api-Key`. Two
/// different keys are refused rather than one picked, so the proxy's upstream, which may read
/// either header, never acts on a key other than the one verified.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| crate::extract::bearer_token(v.as_bytes()));
    let api_key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::unauthenticated("`Authorization` and `X-Api-Key` carry different keys; send one"))
        }
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

/// The `200` of a valid key: the identity in headers, no body.
fn identity_headers(v: &Verified<'_>) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        headers.insert(HeaderName::from_static(name), header_safe(value));
    };
    put(KEY_ID_HEADER, &v.key.to_string());
    put(IDENTITY_KIND_HEADER, owner_kind(&v.owner).as_str());
    put(IDENTITY_ID_HEADER, &owner_id(&v.owner));
    put(IDENTITY_NAME_HEADER, v.identity_name());
    put(ACCOUNT_HEADER, v.account().as_str());
    response
}

/// `text` as a header value: printable ASCII as is, every other byte (controls, `%`, UTF-8)
/// percent-encoded, so a name can neither break the header nor be mistaken for another one.
pub(crate) fn header_safe(text: &str) -> HeaderValue {
    let plain = |b: u8| (b' '..=b'~').contains(&b) && b != b'%';
    if text.bytes().all(plain) {
        if let Ok(value) = HeaderValue::from_str(text) {
            return value;
        }
    }
    let mut encoded = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if plain(b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    // Only printable ASCII is left, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::header_safe;

    #[test]
    fn header_values_are_printable_ascii_and_names_are_percent_encoded() {
        assert_eq!(header_safe("ci-deployer"), "ci-deployer");
        assert_eq!(header_safe("with space"), "with space");
        assert_eq!(header_safe("50%"), "50%25");
        assert_eq!(header_safe("a\r\nX-Keyledger-Account: other"), "a%0D%0AX-Keyledger-Account: other");
        assert_eq!(header_safe("Zoë"), "Zo%C3%AB");
        assert_eq!(header_safe("tab\there"), "tab%09here");
    }
}
