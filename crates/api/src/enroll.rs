//! `POST /v1/enroll`: a user redeems its one-time enrollment code for its own key. The code is
//! the only credential; it is checked again, with every rule a key must meet, at apply time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::defaults::DEFAULT_KEY_LIFETIME;
use keyledger_model::{token, Command, KeyDigest, KeyId, NewKey, ENROLLMENT_REFUSED};
use keyledger_wire as wire;

use crate::abuse::AuthGate;
use crate::error::ApiError;
use crate::extract::Json;
use crate::keys::{add, resolve_expiry};
use crate::leaked::ClientAddress;
use crate::render;
use crate::write::{index_header, into_key, write_without_key};
use crate::AppState;

/// Redeems an enrollment code for the user's own key: `201 {"key", "secret"}`. A code that is
/// malformed, unknown, used, replaced or expired gets one and the same `401`.
#[utoipa::path(
    post,
    path = "/v1/enroll",
    operation_id = "enroll",
    tag = "users",
    request_body = wire::EnrollRequest,
    responses(
        crate::responses::KeyEnrolled,
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, response = crate::responses::Unauthenticated),
        (status = 409, response = crate::responses::Conflict),
        (status = 429, response = crate::responses::RateLimited),
        (status = 413, response = crate::responses::PayloadTooLarge),
        (status = 503, response = crate::responses::Unavailable),
    ),
)]
pub(crate) async fn enroll(
    State(app): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(req): Json<wire::EnrollRequest>,
) -> Result<Response, ApiError> {
    // A code is a credential like a key: a refused one counts against its address's failed
    // authentications, and an address over them is refused before its code is looked at.
    let gate = AuthGate::open(app.guards.auth_failures.as_ref(), address.map(|a| a.ip()), &app.metrics)?;
    let refused = || {
        gate.failed();
        ApiError::unauthenticated(ENROLLMENT_REFUSED)
    };
    token::parse_enrollment_code(&req.code).map_err(|_| refused())?;
    let code = KeyDigest::of(&req.code);
    // The account the code belongs to, to propose in; the model checks the code again in log
    // order (a code just used or replaced elsewhere is refused there with the same answer).
    let account = {
        let state = app.node.ledger().state();
        state.enrollment(&code).and_then(|e| state.user(&e.user)).map(|u| u.account.clone()).ok_or_else(refused)?
    };
    let now = app.node.now();
    let expires_at = match resolve_expiry(req.expires_in.as_deref(), req.expires_at.as_deref(), req.never_expires, now)?
    {
        Some(asked) => asked,
        None => Some(add(now, DEFAULT_KEY_LIFETIME)?),
    };
    let secret = app.node.generate_secret();
    let id = app.node.with_rng(|rng| KeyId::generate(now, rng));
    let key = NewKey {
        id,
        owner: None,
        name: req.name,
        description: req.description.unwrap_or_default(),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    let (index, subject) = write_without_key(&app, account, now, Command::Enroll { code, key }).await?;
    let key = into_key(subject)?;
    let body = wire::CreatedKey {
        key: render::key(&app.node.ledger().state(), &key, now),
        secret: secret.expose().to_string(),
    };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}
