//! `/v1/service-accounts`: create, list, get, disable, enable, delete.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::visibility::may_see_service_account;
use keyledger_model::{Binding, Command, ServiceAccount, ServiceAccountId, State as LedgerState};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::paging::{page, PageQuery};
use crate::render;
use crate::write::{index_header, into_service_account, write, write_no_content, Operation, Target};
use crate::AppState;

fn parse_id(id: &str) -> Result<ServiceAccountId, ApiError> {
    id.parse::<ServiceAccountId>().map_err(|_| ApiError::not_found("no such service account"))
}

/// `role`, or `namespace` and `permission`: exactly one of the two forms.
fn binding(req: &wire::CreateServiceAccountRequest) -> Result<Binding, ApiError> {
    match (&req.role, &req.namespace, &req.permission) {
        (Some(role), None, None) => render::parse_role("role", role).map(Binding::Account),
        (None, Some(namespace), Some(permission)) => Ok(Binding::Namespace {
            namespace: namespace.clone(),
            level: render::parse_level("permission", permission)?,
        }),
        _ => Err(ApiError::invalid(
            "a service account takes either `role`, or `namespace` and `permission` (admin, write or read)",
        )),
    }
}

/// Creates a service account bound to an account role, or to one namespace with a permission.
#[utoipa::path(
    post,
    path = "/v1/service-accounts",
    operation_id = "create_service_account",
    tag = "service-accounts",
    request_body = wire::CreateServiceAccountRequest,
    responses(
        crate::responses::ServiceAccountCreated,
        crate::responses::CreateErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateServiceAccountRequest>,
) -> Result<Response, ApiError> {
    let binding = binding(&req)?;
    let now = app.node.now();
    let id = app.node.with_rng(|rng| ServiceAccountId::generate(now, rng));
    let command = Command::CreateServiceAccount { id, name: req.name.clone(), binding };
    let operation = Operation::new("service_account.create", Target::Named(req.name));
    let (index, subject) = write(&app, &caller, now, operation, command).await?;
    let sa = into_service_account(subject)?;
    Ok((StatusCode::CREATED, index_header(index), axum::Json(render::service_account(&sa))).into_response())
}

/// Lists the service accounts the caller may see.
#[utoipa::path(
    get,
    path = "/v1/service-accounts",
    operation_id = "list_service_accounts",
    tag = "service-accounts",
    params(PageQuery),
    responses(
        (
            status = 200,
            description = "One page of service accounts, oldest first; `next_cursor` asks for the next.",
            body = wire::ServiceAccountList,
        ),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::ServiceAccountList>, ApiError> {
    let request = PageQuery::check(query, |c| c.parse::<ServiceAccountId>().ok())?;
    let state = app.node.ledger().state();
    let visible = state.service_accounts_after(request.after).filter(|s| may_see_service_account(&caller.principal, s));
    let (service_accounts, next_cursor) = page(visible, request.limit, |s| s.id.to_string());
    let service_accounts = service_accounts.into_iter().map(render::service_account).collect();
    Ok(axum::Json(wire::ServiceAccountList { service_accounts, next_cursor }))
}

/// Reads one service account.
#[utoipa::path(
    get,
    path = "/v1/service-accounts/{id}",
    operation_id = "get_service_account",
    tag = "service-accounts",
    params(crate::responses::ServiceAccountIdPath),
    responses(
        (status = 200, description = "The service account.", body = wire::ServiceAccount),
        crate::responses::ReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<wire::ServiceAccount>, ApiError> {
    let state = app.node.ledger().state();
    let sa = visible_service_account(&state, &caller, &id)?;
    Ok(axum::Json(render::service_account(sa)))
}

fn visible_service_account<'s>(
    state: &'s LedgerState,
    caller: &Caller,
    id: &str,
) -> Result<&'s ServiceAccount, ApiError> {
    let id = parse_id(id)?;
    state
        .service_account(&id)
        .filter(|s| may_see_service_account(&caller.principal, s))
        .ok_or_else(|| ApiError::not_found("no such service account"))
}

/// Disables a service account: its keys stop verifying until it is enabled again.
#[utoipa::path(
    post,
    path = "/v1/service-accounts/{id}/disable",
    operation_id = "disable_service_account",
    tag = "service-accounts",
    params(crate::responses::ServiceAccountIdPath),
    responses(
        crate::responses::ServiceAccountChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn disable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    set_enabled(app, caller, id, false).await
}

/// Enables a disabled service account.
#[utoipa::path(
    post,
    path = "/v1/service-accounts/{id}/enable",
    operation_id = "enable_service_account",
    tag = "service-accounts",
    params(crate::responses::ServiceAccountIdPath),
    responses(
        crate::responses::ServiceAccountChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn enable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    set_enabled(app, caller, id, true).await
}

async fn set_enabled(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    enabled: bool,
) -> Result<Response, ApiError> {
    let service_account = parse_id(&id)?;
    let name = if enabled { "service_account.enable" } else { "service_account.disable" };
    let operation = Operation::new(name, Target::ServiceAccount(service_account));
    let command = Command::SetServiceAccountEnabled { service_account, enabled };
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let sa = into_service_account(subject)?;
    Ok((index_header(index), axum::Json(render::service_account(&sa))).into_response())
}

/// Deletes a service account.
#[utoipa::path(
    delete,
    path = "/v1/service-accounts/{id}",
    operation_id = "delete_service_account",
    tag = "service-accounts",
    params(crate::responses::ServiceAccountIdPath),
    responses(
        crate::responses::ServiceAccountDeleted,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let operation = Operation::new("service_account.delete", Target::ServiceAccount(id));
    write_no_content(&app, &caller, operation, Command::DeleteServiceAccount(id)).await
}
