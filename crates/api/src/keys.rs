//! `/v1/keys`: create, list, get, enable, disable, delete.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_cluster::Committed;
use keyledger_model::{
    Command, KeyAction, KeyId, KeyRecord, KeyState, NewKey, Owner, Proposal, ServiceAccountId, Span,
    State as LedgerState, Timestamp, UserId,
};
use keyledger_wire as wire;
use serde::Deserialize;

use crate::error::{current_request_id, ApiError};
use crate::extract::{Caller, Json};
use crate::AppState;

/// Lifetime of a key created without any expiry: long enough to be useful, short enough that
/// a forgotten key does not live for the account's whole maximum.
const DEFAULT_LIFETIME_DAYS: i64 = 90;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let now = app.node.now();
    let expires_at = resolve_expiry(&req, now)?;
    let owner = req.owner.as_ref().map(parse_owner).transpose()?;
    let secret = app.node.generate_secret();
    let id = app.node.with_rng(|rng| KeyId::generate(now, rng));
    let new_key = NewKey {
        id,
        owner,
        name: req.name,
        description: req.description.unwrap_or_default(),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    let (index, key) = write(&app, &caller, now, Command::CreateKey(new_key)).await?;
    let state = app.node.ledger().state();
    let body = wire::CreatedKey { key: render_at(&state, &key, now), secret: secret.expose().to_string() };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

/// Turns `expires_in` / `expires_at` / `never_expires` into an expiry time (`None` = never).
fn resolve_expiry(req: &wire::CreateKeyRequest, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    let given = [req.expires_in.is_some(), req.expires_at.is_some(), req.never_expires == Some(true)];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::invalid("give at most one of `expires_in`, `expires_at` and `never_expires`"));
    }
    let span = |s: Span| now.checked_add(s).ok_or_else(|| ApiError::invalid("the expiry is too far in the future"));
    if let Some(text) = &req.expires_in {
        let parsed = Span::parse(text).map_err(|e| ApiError::invalid(format!("`expires_in`: {e}")))?;
        return span(parsed).map(Some);
    }
    if let Some(text) = &req.expires_at {
        return Timestamp::parse_rfc3339(text).map(Some).map_err(|e| ApiError::invalid(format!("`expires_at`: {e}")));
    }
    if req.never_expires == Some(true) {
        return Ok(None);
    }
    span(Span::days(DEFAULT_LIFETIME_DAYS)).map(Some)
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
    owner_kind: Option<wire::OwnerKind>,
    owner_id: Option<String>,
    namespace: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

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
    let now = app.node.now();
    let state = app.node.ledger().state();
    let matches = |key: &&KeyRecord| {
        key.account == *caller.account()
            && state.authorize_key(&caller.principal, key, KeyAction::Read).is_ok()
            && wanted_state.is_none_or(|s| key.state_at(now) == s)
            && query.owner_kind.is_none_or(|kind| owner_kind(&key.owner) == kind)
            && query.owner_id.as_deref().is_none_or(|id| owner_id(&key.owner) == id)
            // Keys are not namespaced yet: a namespace filter matches none.
            && query.namespace.is_none()
    };
    let mut page: Vec<&KeyRecord> = state.keys_after(after).filter(matches).take(limit + 1).collect();
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|k| k.id.to_string())
    } else {
        None
    };
    let keys = page.into_iter().map(|k| render_at(&state, k, now)).collect();
    Ok(axum::Json(wire::KeyList { keys, next_cursor }))
}

fn parse_state(text: &str) -> Result<KeyState, ApiError> {
    match text {
        "enabled" => Ok(KeyState::Enabled),
        "disabled" => Ok(KeyState::Disabled),
        "expired" => Ok(KeyState::Expired),
        "deleted" => Ok(KeyState::Deleted),
        _ => Err(ApiError::invalid("`state` must be one of enabled, disabled, expired, deleted")),
    }
}

pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = app.node.ledger().state();
    let key = visible_key(&state, &caller, &id)?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", key.revision)).map_err(ApiError::internal)?;
    let body = render_at(&state, key, app.node.now());
    Ok(([(header::ETAG, etag)], axum::Json(body)).into_response())
}

fn visible_key<'s>(state: &'s LedgerState, caller: &Caller, id: &str) -> Result<&'s KeyRecord, ApiError> {
    id.parse::<KeyId>()
        .ok()
        .and_then(|id| state.key(&id))
        .filter(|k| state.authorize_key(&caller.principal, k, KeyAction::Read).is_ok())
        .ok_or_else(|| ApiError::not_found("no such key"))
}

pub(crate) async fn enable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    change_state(app, caller, id, Command::EnableKey).await
}

pub(crate) async fn disable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    change_state(app, caller, id, Command::DisableKey).await
}

pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id.parse::<KeyId>().map_err(|_| ApiError::not_found("no such key"))?;
    let (index, _) = write(&app, &caller, app.node.now(), Command::DeleteKey(id)).await?;
    Ok((StatusCode::NO_CONTENT, index_header(index)).into_response())
}

async fn change_state(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    command: fn(KeyId) -> Command,
) -> Result<Response, ApiError> {
    let id = id.parse::<KeyId>().map_err(|_| ApiError::not_found("no such key"))?;
    let now = app.node.now();
    let (index, key) = write(&app, &caller, now, command(id)).await?;
    let state = app.node.ledger().state();
    Ok((index_header(index), axum::Json(render_at(&state, &key, now))).into_response())
}

/// Proposes a command as `caller` and waits for its outcome: the commit index and the key.
async fn write(
    app: &AppState,
    caller: &Caller,
    now: Timestamp,
    command: Command,
) -> Result<(u64, KeyRecord), ApiError> {
    let proposal = Proposal {
        time: now,
        request_id: current_request_id().unwrap_or_default(),
        actor: caller.actor(),
        account: caller.account().clone(),
        command,
    };
    let Committed { index, outcome } = app.node.propose(proposal).await?;
    if let keyledger_model::Outcome::Rejected(rejection) = outcome {
        return Err(rejection.into());
    }
    match outcome.key() {
        Some(key) => Ok((index, key.clone())),
        None => Err(ApiError::internal(format!("unexpected outcome {outcome:?} at index {index}"))),
    }
}

fn index_header(index: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(wire::INDEX_HEADER, HeaderValue::from(index));
    headers
}

fn owner_kind(owner: &Owner) -> wire::OwnerKind {
    match owner {
        Owner::User(_) => wire::OwnerKind::User,
        Owner::ServiceAccount(_) => wire::OwnerKind::ServiceAccount,
    }
}

fn owner_id(owner: &Owner) -> String {
    match owner {
        Owner::User(id) => id.to_string(),
        Owner::ServiceAccount(id) => id.to_string(),
    }
}

pub(crate) fn identity(state: &LedgerState, owner: &Owner) -> wire::Identity {
    wire::Identity {
        kind: owner_kind(owner),
        id: owner_id(owner),
        name: state.owner_name(owner).unwrap_or_default().to_string(),
    }
}

/// KEY as the API shows it, with the state as of `now` (an expired key shows `expired`).
fn render_at(state: &LedgerState, key: &KeyRecord, now: Timestamp) -> wire::Key {
    let created_by = match key.created_by.identity() {
        None => wire::Actor { kind: "system".into(), id: None, key_id: None },
        Some(identity) => wire::Actor {
            kind: owner_kind(&identity).as_str().into(),
            id: Some(owner_id(&identity)),
            key_id: key.created_by.key().map(|k| k.to_string()),
        },
    };
    wire::Key {
        id: key.id.to_string(),
        name: key.name.clone(),
        description: key.description.clone(),
        owner: identity(state, &key.owner),
        account: key.account.to_string(),
        namespace: None,
        scope: None,
        state: key.state_at(now).as_str().to_string(),
        locked: key.locked,
        hint: key.hint.clone(),
        created_at: key.created_at.to_string(),
        created_by,
        expires_at: key.expires_at.map(|t| t.to_string()),
        last_used_at: key.last_used_at.map(|t| t.to_string()),
        revision: key.revision,
    }
}
