//! Changes to one key: `PATCH /v1/keys/{id}`, `enable`, `disable`, `lock`, `unlock`, `rotate`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_model::defaults::{successor_never_expires, DEFAULT_KEY_LIFETIME, DEFAULT_ROTATION_GRACE};
use keyledger_model::{Command, KeyId, NewKey, Span};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json, OptionalJson, Path};
use crate::keys::{add, parse_key_id, resolve_expiry};
use crate::render;
use crate::write::{index_header, into_key, write, Operation, Target};
use crate::AppState;

/// Changes a key's name or description; fields left out keep their value.
#[utoipa::path(
    patch,
    path = "/v1/keys/{id}",
    operation_id = "update_key",
    tag = "keys",
    params(
        crate::responses::KeyIdPath,
        (
            "If-Match" = Option<String>,
            Header,
            description = "The revision the caller last saw, as `\"<revision>\"` (the `ETag` of `GET /v1/keys/{id}`) \
                or `<revision>`; `*` or no header asks for no check.",
        ),
    ),
    request_body = wire::UpdateKeyRequest,
    responses(
        crate::responses::KeyChanged,
        crate::responses::ChangeWithBodyErrors,
        (status = 412, response = crate::responses::RevisionMismatch),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<wire::UpdateKeyRequest>,
) -> Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    let if_revision = if_match(&headers)?;
    let command = Command::UpdateKey { key: id, name: req.name, description: req.description, if_revision };
    key_write(app, caller, "key.update", id, command).await
}

/// `If-Match: "<revision>"` (or a bare number): the revision the caller last saw. `*` and no
/// header at all ask for no check. Anything else is refused rather than ignored, since an
/// ignored precondition would let a stale update through.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let mut values = headers.get_all(header::IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("`If-Match` must be one revision, as `\"<revision>\"` or `<revision>`");
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let unquoted = match text.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(bad)?,
        None => text,
    };
    if unquoted.is_empty() || !unquoted.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    unquoted.parse::<u64>().map(Some).map_err(|_| bad())
}

/// Enables a disabled key.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/enable",
    operation_id = "enable_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        crate::responses::KeyChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn enable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    simple(app, caller, id, "key.enable", Command::EnableKey).await
}

/// Disables a key: it stops verifying until enabled again.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/disable",
    operation_id = "disable_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        crate::responses::KeyChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn disable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    simple(app, caller, id, "key.disable", Command::DisableKey).await
}

/// Locks a key: it keeps working, but cannot be changed, disabled, rotated or deleted until unlocked.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/lock",
    operation_id = "lock_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        crate::responses::KeyChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn lock(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    simple(app, caller, id, "key.lock", Command::LockKey).await
}

/// Unlocks a locked key.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/unlock",
    operation_id = "unlock_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        crate::responses::KeyChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn unlock(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    simple(app, caller, id, "key.unlock", Command::UnlockKey).await
}

async fn simple(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    operation: &'static str,
    command: fn(KeyId) -> Command,
) -> Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    key_write(app, caller, operation, id, command(id)).await
}

/// A write about key `id` answered `200 KEY`.
async fn key_write(
    app: AppState,
    caller: Caller,
    operation: &'static str,
    id: KeyId,
    command: Command,
) -> Result<Response, ApiError> {
    let now = app.node.now();
    let (index, subject) = write(&app, &caller, now, Operation::new(operation, Target::Key(id)), command).await?;
    let key = into_key(subject)?;
    let body = render::key(&app.node.ledger().state(), &key, now);
    Ok((index_header(index), axum::Json(body)).into_response())
}

/// Replaces a key with a new one of the same name, owner and scope; the old key keeps working for the grace period.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/rotate",
    operation_id = "rotate_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    request_body(
        content = Option<wire::RotateKeyRequest>,
        description = "Optional: no body at all takes every default.",
    ),
    responses(
        crate::responses::KeyRotated,
        crate::responses::ChangeWithBodyErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn rotate(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<wire::RotateKeyRequest>,
) -> Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    let now = app.node.now();
    let grace = match req.grace.as_deref().map(str::trim) {
        None => DEFAULT_ROTATION_GRACE,
        Some("0") => Span::ZERO,
        Some(text) => render::parse_span("grace", text)?,
    };
    // The replacement inherits name, description, owner and scope from the old key (the model
    // copies them at apply); the old key's expiry here only decides the default lifetime.
    let (keep_never_expiring, name) = {
        let state = app.node.ledger().state();
        let old = state.key(&id);
        let settings = state.account(caller.account()).map(|a| &a.settings);
        (successor_never_expires(old, settings), old.map(|k| k.name.clone()).unwrap_or_default())
    };
    let expires_at = match resolve_expiry(req.expires_in.as_deref(), req.expires_at.as_deref(), None, now)? {
        Some(asked) => asked,
        None if keep_never_expiring => None,
        None => Some(add(now, DEFAULT_KEY_LIFETIME)?),
    };
    let secret = app.node.generate_secret();
    let new_id = app.node.with_rng(|rng| KeyId::generate(now, rng));
    let new = NewKey {
        id: new_id,
        owner: None,
        name,
        description: String::new(),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    let command = Command::RotateKey { key: id, new, grace };
    let (index, subject) = write(&app, &caller, now, Operation::new("key.rotate", Target::Key(id)), command).await?;
    let key = into_key(subject)?;
    let body = wire::RotatedKey {
        key: render::key(&app.node.ledger().state(), &key, now),
        secret: secret.expose().to_string(),
        replaces: id.to_string(),
    };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&with(&[])).unwrap(), None);
        assert_eq!(if_match(&with(&["\"12\""])).unwrap(), Some(12));
        assert_eq!(if_match(&with(&["12"])).unwrap(), Some(12));
        assert_eq!(if_match(&with(&[" 7 "])).unwrap(), Some(7));
        assert_eq!(if_match(&with(&["*"])).unwrap(), None);
        for bad in ["", "\"\"", "abc", "W/\"12\"", "\"12", "-1", "+1", "\"1\", \"2\"", "99999999999999999999999"] {
            assert!(if_match(&with(&[bad])).is_err(), "{bad:?}");
        }
        assert!(if_match(&with(&["1", "2"])).is_err());
    }
}
