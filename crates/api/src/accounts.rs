//! `/v1/accounts`: the cluster operator (an owner of account `default`) creates another account
//! with its owner, who gets a one-time enrollment code (never a key: the operator holds no
//! credential of the new account), and lists the accounts.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::authz::authorize_account_creation;
use keyledger_model::{token, AccountId, Command, UserId};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::paging::{page, PageQuery};
use crate::render;
use crate::write::{index_header, into_enrollment, write, Operation, Target};
use crate::AppState;

/// Creates another account with its owner (the cluster operator: an owner of account
/// `default`). The owner gets a one-time enrollment code, redeemed with `POST /v1/enroll` for
/// its own first key; no key is created here.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    operation_id = "create_account",
    tag = "accounts",
    request_body = wire::CreateAccountRequest,
    responses(
        crate::responses::AccountCreated,
        crate::responses::CreateErrors,
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
    let owner = app.node.with_rng(|rng| UserId::generate(now, rng));
    // Generated here; only its digest goes into the proposal, and so into the log.
    let code = app.node.with_rng(token::generate_enrollment_code);
    let command = Command::CreateAccountWithEnrollment {
        account: account.clone(),
        owner,
        owner_name: req.owner_name.clone(),
        code: code.digest(),
    };
    let operation = Operation::new("account.create", Target::Named(account.to_string()));
    let (index, subject) = write(&app, &caller, now, operation, command).await?;
    let (user, expires_at) = into_enrollment(subject)?;
    let body = wire::CreatedAccount {
        account: account.to_string(),
        owner: render::user(&user),
        enrollment_code: code.expose().to_string(),
        expires_at: expires_at.to_string(),
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
        crate::responses::RestrictedReadErrors,
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
