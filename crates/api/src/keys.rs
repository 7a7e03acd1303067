//! `/v1/keys`: create, list, get, delete. Changes to one key (update, enable, disable, lock,
//! unlock, rotate) are in `key_ops.rs`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_model::defaults::DEFAULT_KEY_LIFETIME;
use keyledger_model::{
    Command, KeyAction, KeyId, KeyRecord, KeyState, NewKey, Owner, SecretToken, ServiceAccountId, Span,
    State as LedgerState, Timestamp, UserId,
};
use keyledger_wire as wire;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::render;
use crate::write::{index_header, into_key, write, write_no_content, Operation, Target};
use crate::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Creates a key and answers its secret, shown this once and never again.
#[utoipa::path(
    post,
    path = "/v1/keys",
    operation_id = "create_key",
    tag = "keys",
    request_body = wire::CreateKeyRequest,
    responses(
        crate::responses::KeyCreated,
        crate::responses::ChangeWithBodyErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let prepared = prepare_create(&app, &caller, req)?;
    let (index, body) = commit_create(&app, &caller, prepared).await?;
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

/// A create checked as far as it can be before proposing, with everything nondeterministic
/// fixed on this node: the time, the key id and the secret (only its digest is proposed).
pub(crate) struct PreparedCreate {
    now: Timestamp,
    new_key: NewKey,
    secret: SecretToken,
    target: Target,
}

/// Reads one create request: its expiry, owner and scope. Every rule that depends on the
/// ledger's state (limits, authorization, names) is the model's, at apply time.
pub(crate) fn prepare_create(
    app: &AppState,
    caller: &Caller,
    req: wire::CreateKeyRequest,
) -> Result<PreparedCreate, ApiError> {
    let now = app.node.now();
    let expires_at = match resolve_expiry(req.expires_in.as_deref(), req.expires_at.as_deref(), req.never_expires, now)?
    {
        Some(asked) => asked,
        None => Some(add(now, DEFAULT_KEY_LIFETIME)?),
    };
    let owner = req.owner.as_ref().map(parse_owner).transpose()?;
    let scope = req.scope.as_ref().map(render::parse_scope).transpose()?;
    let secret = app.node.generate_secret();
    let id = app.node.with_rng(|rng| KeyId::generate(now, rng));
    let new_key = NewKey {
        id,
        owner,
        name: req.name,
        description: req.description.unwrap_or_default(),
        scope,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    let target = Target::Identity(owner.unwrap_or(caller.principal.identity));
    Ok(PreparedCreate { now, new_key, secret, target })
}

/// Proposes a prepared create as `caller` and answers the index it committed at and the
/// `201` body: the key and its secret.
pub(crate) async fn commit_create(
    app: &AppState,
    caller: &Caller,
    prepared: PreparedCreate,
) -> Result<(u64, wire::CreatedKey), ApiError> {
    let PreparedCreate { now, new_key, secret, target } = prepared;
    let operation = Operation::new("key.create", target);
    let (index, subject) = write(app, caller, now, operation, Command::CreateKey(new_key)).await?;
    let key = into_key(subject)?;
    let body = wire::CreatedKey {
        key: render::key(&app.node.ledger().state(), &key, now),
        secret: secret.expose().to_string(),
    };
    Ok((index, body))
}

/// The expiry a request asks for: `Some(Some(t))` at `t`, `Some(None)` never, `None` when it
/// names none (the caller picks the default).
pub(crate) fn resolve_expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
    never_expires: Option<bool>,
    now: Timestamp,
) -> Result<Option<Option<Timestamp>>, ApiError> {
    let never = never_expires == Some(true);
    if [expires_in.is_some(), expires_at.is_some(), never].iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::invalid("give at most one of `expires_in`, `expires_at` and `never_expires`"));
    }
    if let Some(text) = expires_in {
        return add(now, render::parse_span("expires_in", text)?).map(|t| Some(Some(t)));
    }
    if let Some(text) = expires_at {
        return Timestamp::parse_rfc3339(text)
            .map(|t| Some(Some(t)))
            .map_err(|e| ApiError::invalid(format!("`expires_at`: {e}")));
    }
    Ok(never.then_some(None))
}

pub(crate) fn add(now: Timestamp, span: Span) -> Result<Timestamp, ApiError> {
    now.checked_add(span).ok_or_else(|| ApiError::invalid("the expiry is too far in the future"))
}

fn parse_owner(owner: &wire::OwnerRef) -> Result<Owner, ApiError> {
    let not_found = || ApiError::not_found("the key's owner does not exist");
    match owner.kind {
        wire::OwnerKind::User => owner.id.parse::<UserId>().map(Owner::User).map_err(|_| not_found()),
        wire::OwnerKind::ServiceAccount => {
            owner.id.parse::<ServiceAccountId>().map(Owner::ServiceAccount).map_err(|_| not_found())
        }
    }
}

/// The query of `GET /v1/keys`: every filter is optional, and they combine.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only keys in this state now: `enabled`, `disabled`, `expired` or `deleted`.
    state: Option<String>,
    /// Only keys owned by this kind of identity.
    owner_kind: Option<wire::OwnerKind>,
    /// Only keys owned by this user or service account.
    owner_id: Option<String>,
    /// Only keys of service accounts bound to this namespace.
    namespace: Option<String>,
    /// Only keys whose name contains this text, ignoring case.
    name: Option<String>,
    /// Only keys that will expire within this span from now (`7d`, `12h`, `30d`): enabled or
    /// disabled keys whose expiry is still ahead. Combine with `state=enabled` for the keys
    /// about to stop working.
    #[param(value_type = Option<String>, example = "7d")]
    expiring_within: Option<String>,
    /// The most keys in one answer.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists the keys the caller may see, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "list_keys",
    tag = "keys",
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "One page of keys; `next_cursor` asks for the next.", body = wire::KeyList),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<wire::KeyList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_PAGE}")));
    }
    let wanted_state = query.state.as_deref().map(parse_state).transpose()?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<KeyId>().map_err(|_| ApiError::invalid("`cursor` is not one this server gave out")))
        .transpose()?;
    let name = query.name.as_deref().map(str::to_lowercase).filter(|n| !n.is_empty());
    let now = app.node.now();
    let expiring_until = query.expiring_within.as_deref().map(|text| expiry_window_end(now, text)).transpose()?;
    let state = app.node.ledger().state();
    let matches = |key: &&KeyRecord| {
        key.account == *caller.account()
            && state.authorize_key(&caller.principal, key, KeyAction::Read).is_ok()
            && wanted_state.is_none_or(|s| key.state_at(now) == s)
            && query.owner_kind.is_none_or(|kind| render::owner_kind(&key.owner) == kind)
            && query.owner_id.as_deref().is_none_or(|id| render::owner_id(&key.owner) == id)
            && query.namespace.as_deref().is_none_or(|ns| state.key_namespace(key) == Some(ns))
            && name.as_deref().is_none_or(|part| key.name.to_lowercase().contains(part))
    };
    let mut page: Vec<&KeyRecord> = match expiring_until {
        // The expiry queue holds just the keys in the window; sorted by id they page like the rest.
        Some(until) => {
            let mut expiring: Vec<&KeyRecord> =
                state.keys_expiring(now, until).filter(|k| after.is_none_or(|a| k.id > a)).filter(matches).collect();
            expiring.sort_unstable_by_key(|k| k.id);
            expiring.truncate(limit + 1);
            expiring
        }
        None => state.keys_after(after).filter(matches).take(limit + 1).collect(),
    };
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|k| k.id.to_string())
    } else {
        None
    };
    let keys = page.into_iter().map(|k| render::key(&state, k, now)).collect();
    Ok(axum::Json(wire::KeyList { keys, next_cursor }))
}

/// Counts the keys the caller may see by state, and the enabled ones expiring within 7 and 30
/// days: what a dashboard shows without listing every key.
#[utoipa::path(
    get,
    path = "/v1/keys/summary",
    operation_id = "summarize_keys",
    tag = "keys",
    responses(
        (status = 200, description = "The counts, as of now.", body = wire::KeySummary),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn summary(State(app): State<AppState>, caller: Caller) -> axum::Json<wire::KeySummary> {
    let counts = app.node.ledger().state().key_summary(&caller.principal, app.node.now());
    axum::Json(wire::KeySummary {
        enabled: counts.enabled,
        disabled: counts.disabled,
        expired: counts.expired,
        deleted: counts.deleted,
        expiring_within_7d: counts.expiring_within_7d,
        expiring_within_30d: counts.expiring_within_30d,
    })
}

/// The end of the `expiring_within` window: `now` plus a positive span.
fn expiry_window_end(now: Timestamp, text: &str) -> Result<Timestamp, ApiError> {
    let bad = || ApiError::invalid("`expiring_within` must be a positive span such as `7d`, `12h` or `30d`");
    let span = Span::parse(text).map_err(|_| bad())?;
    if span.0 <= 0 {
        return Err(bad());
    }
    Ok(now.checked_add(span).unwrap_or(Timestamp(i64::MAX)))
}

fn parse_state(text: &str) -> Result<KeyState, ApiError> {
    KeyState::parse(text).ok_or_else(|| ApiError::invalid("`state` must be one of enabled, disabled, expired, deleted"))
}

/// Reads one key.
#[utoipa::path(
    get,
    path = "/v1/keys/{id}",
    operation_id = "get_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        (
            status = 200,
            description = "The key.",
            body = wire::Key,
            headers((
                "ETag" = String,
                description = "The key's revision, quoted: `\"<revision>\"`; send it back as `If-Match`."
            )),
        ),
        crate::responses::ReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = app.node.ledger().state();
    let key = visible_key(&state, &caller, &id)?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", key.revision)).map_err(ApiError::internal)?;
    let body = render::key(&state, key, app.node.now());
    Ok(([(header::ETAG, etag)], axum::Json(body)).into_response())
}

pub(crate) fn visible_key<'s>(state: &'s LedgerState, caller: &Caller, id: &str) -> Result<&'s KeyRecord, ApiError> {
    id.parse::<KeyId>()
        .ok()
        .and_then(|id| state.key(&id))
        .filter(|k| state.authorize_key(&caller.principal, k, KeyAction::Read).is_ok())
        .ok_or_else(|| ApiError::not_found("no such key"))
}

/// A key id from the path; one of the wrong form is a key that does not exist.
pub(crate) fn parse_key_id(id: &str) -> Result<KeyId, ApiError> {
    id.parse::<KeyId>().map_err(|_| ApiError::not_found("no such key"))
}

/// Deletes a key: it stops verifying at once, and its history stays.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    operation_id = "delete_key",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        crate::responses::KeyDeleted,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_key_id(&id)?;
    let operation = Operation::new("key.delete", Target::Key(id));
    write_no_content(&app, &caller, operation, Command::DeleteKey(id)).await
}
