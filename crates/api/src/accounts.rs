//! `/v1/accounts`: the cluster operator (an owner of account `default`) creates another account,
//! with its owner and that owner's first key, whose secret is in this answer and nowhere else,
//! and lists the accounts.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::authz::authorize_account_creation;
use keyledger_model::{AccountId, Command, KeyId, NewKey, UserId};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::keys::{add, DEFAULT_LIFETIME};
use crate::paging::{page, PageQuery};
use crate::render;
use crate::write::{index_header, into_key, write, Operation, Target};
use crate::AppState;

/// Creates another account with its owner and the owner's first key (the cluster operator: an
/// owner of account `default`).
#[utoipa::path(
    post,
    path = "/v1/accounts",
    operation_id = "create_account",
    tag = "accounts",
    request_body = wire::CreateAccountRequest,
    responses(
        (
            status = 201,
            description = "The account, its owner, and the first key with its secret (shown this once).",
            body = wire::CreatedAccount,
            headers(("X-Keyledger-Index" = u64, description = "The ledger position the write committed at.")),
        ),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PermissionDenied),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(&req.name).map_err(|_| {
        ApiError::invalid("an account name is 1–63 characters of a-z, 0-9 and `-`, starting with a letter")
    })?;
    let now = app.node.now();
    let lifetime = match req.expires_in.as_deref() {
        Some(text) => render::parse_span("expires_in", text)?,
        None => DEFAULT_LIFETIME,
    };
    let expires_at = Some(add(now, lifetime)?);
    let secret = app.node.generate_secret();
    let (owner, key_id) = app.node.with_rng(|rng| (UserId::generate(now, rng), KeyId::generate(now, rng)));
    let key = NewKey {
        id: key_id,
        owner: None,
        name: "first key".into(),
        description: format!("first key of the owner of account {account}"),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    let command = Command::CreateAccount { account: account.clone(), owner, owner_name: req.owner_name.clone(), key };
    let operation = Operation::new("account.create", Target::Named(account.to_string()));
    let (index, subject) = write(&app, &caller, now, operation, command).await?;
    let key = into_key(subject)?;
    let state = app.node.ledger().state();
    let body = wire::CreatedAccount {
        account: account.to_string(),
        owner: state.user(&owner).map_or_else(|| render::new_owner(owner, &req.owner_name, now), render::user),
        key: render::key(&state, &key, now),
        secret: secret.expose().to_string(),
    };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

/// Lists the cluster's accounts in name order (the cluster operator only).
#[utoipa::path(
    get,
    path = "/v1/accounts",
    operation_id = "list_accounts",
    tag = "accounts",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of accounts; `next_cursor` asks for the next.", body = wire::AccountList),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PermissionDenied),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::AccountList>, ApiError> {
    let request = PageQuery::check(query, |c| AccountId::new(c).ok())?;
    if authorize_account_creation(&caller.principal).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only the cluster operator (an owner of account `default`) lists accounts",
        ));
    }
    let state = app.node.ledger().state();
    let (accounts, next_cursor) =
        page(state.accounts_after(request.after.as_ref()), request.limit, |a| a.id.to_string());
    let accounts = accounts
        .into_iter()
        .map(|a| wire::AccountSummary { name: a.id.to_string(), created_at: a.created_at.to_string() })
        .collect();
    Ok(axum::Json(wire::AccountList { accounts, next_cursor }))
}
