//! `/v1/users`: create, list, get, change role, disable, enable, delete, namespace permissions.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::visibility::may_see_user;
use keyledger_model::{token, Command, State as LedgerState, User, UserId};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::paging::{page, PageQuery};
use crate::render;
use crate::write::{index_header, into_enrollment, into_user, write, write_no_content, Operation, Target};
use crate::AppState;

fn parse_id(id: &str) -> Result<UserId, ApiError> {
    id.parse::<UserId>().map_err(|_| ApiError::not_found("no such user"))
}

/// Creates a user in the caller's account, with a one-time enrollment code (shown this once)
/// that the user redeems with `POST /v1/enroll` for its own first key.
#[utoipa::path(
    post,
    path = "/v1/users",
    operation_id = "create_user",
    tag = "users",
    request_body = wire::CreateUserRequest,
    responses(
        crate::responses::UserCreated,
        crate::responses::CreateErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateUserRequest>,
) -> Result<Response, ApiError> {
    let role = render::parse_role("role", &req.role)?;
    let now = app.node.now();
    let id = app.node.with_rng(|rng| UserId::generate(now, rng));
    let code = app.node.with_rng(token::generate_enrollment_code);
    let command = Command::CreateEnrolledUser { id, name: req.name.clone(), role, code: code.digest() };
    let operation = Operation::new("user.create", Target::Named(req.name));
    let (index, subject) = write(&app, &caller, now, operation, command).await?;
    let (user, _) = into_enrollment(subject)?;
    let body = wire::CreatedUser { user: render::user(&user), enrollment_code: code.expose().to_string() };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

/// Issues a fresh enrollment code for a user (by an owner or an admin the user does not
/// outrank); the previous code stops working.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/enrollment",
    operation_id = "issue_enrollment",
    tag = "users",
    params(crate::responses::UserIdPath),
    responses(
        crate::responses::EnrollmentIssued,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn issue_enrollment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = parse_id(&id)?;
    let code = app.node.with_rng(token::generate_enrollment_code);
    let command = Command::IssueEnrollment { user, code: code.digest() };
    let operation = Operation::new("user.enrollment", Target::User(user));
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let (_, expires_at) = into_enrollment(subject)?;
    let body = wire::EnrollmentCode { enrollment_code: code.expose().to_string(), expires_at: expires_at.to_string() };
    Ok((StatusCode::CREATED, index_header(index), axum::Json(body)).into_response())
}

/// Lists the users the caller may see: all of the account's for owners and admins, else only itself.
#[utoipa::path(
    get,
    path = "/v1/users",
    operation_id = "list_users",
    tag = "users",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of users, oldest first; `next_cursor` asks for the next.", body = wire::UserList),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::UserList>, ApiError> {
    let request = PageQuery::check(query, |c| c.parse::<UserId>().ok())?;
    let state = app.node.ledger().state();
    let visible = state.users_after(request.after).filter(|u| may_see_user(&caller.principal, u));
    let (users, next_cursor) = page(visible, request.limit, |u| u.id.to_string());
    Ok(axum::Json(wire::UserList { users: users.into_iter().map(render::user).collect(), next_cursor }))
}

/// Reads one user.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    operation_id = "get_user",
    tag = "users",
    params(crate::responses::UserIdPath),
    responses(
        (status = 200, description = "The user.", body = wire::User),
        crate::responses::ReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<wire::User>, ApiError> {
    let state = app.node.ledger().state();
    let user = visible_user(&state, &caller, &id)?;
    Ok(axum::Json(render::user(user)))
}

fn visible_user<'s>(state: &'s LedgerState, caller: &Caller, id: &str) -> Result<&'s User, ApiError> {
    let id = parse_id(id)?;
    state.user(&id).filter(|u| may_see_user(&caller.principal, u)).ok_or_else(|| ApiError::not_found("no such user"))
}

/// Changes a user's role.
#[utoipa::path(
    patch,
    path = "/v1/users/{id}",
    operation_id = "update_user",
    tag = "users",
    params(crate::responses::UserIdPath),
    request_body = wire::UpdateUserRequest,
    responses(
        crate::responses::UserChanged,
        crate::responses::ChangeWithBodyErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<wire::UpdateUserRequest>,
) -> Result<Response, ApiError> {
    let user = parse_id(&id)?;
    let role = render::parse_role("role", &req.role)?;
    user_write(app, caller, "user.update", user, Command::SetUserRole { user, role }).await
}

/// Disables a user: its keys stop verifying until it is enabled again.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/disable",
    operation_id = "disable_user",
    tag = "users",
    params(crate::responses::UserIdPath),
    responses(
        crate::responses::UserChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn disable(app: State<AppState>, caller: Caller, id: Path<String>) -> Result<Response, ApiError> {
    set_enabled(app, caller, id, false).await
}

/// Enables a disabled user.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/enable",
    operation_id = "enable_user",
    tag = "users",
    params(crate::responses::UserIdPath),
    responses(
        crate::responses::UserChanged,
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
    let user = parse_id(&id)?;
    let operation = if enabled { "user.enable" } else { "user.disable" };
    user_write(app, caller, operation, user, Command::SetUserEnabled { user, enabled }).await
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    operation_id = "delete_user",
    tag = "users",
    params(crate::responses::UserIdPath),
    responses(
        crate::responses::UserDeleted,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = parse_id(&id)?;
    let operation = Operation::new("user.delete", Target::User(user));
    write_no_content(&app, &caller, operation, Command::DeleteUser(user)).await
}

/// Gives a user a permission in a namespace (replacing the one it had there).
#[utoipa::path(
    put,
    path = "/v1/users/{id}/namespaces/{namespace}",
    operation_id = "set_user_namespace",
    tag = "users",
    params(
        crate::responses::UserIdPath,
        crate::responses::NamespacePath,
    ),
    request_body = wire::NamespacePermissionRequest,
    responses(
        crate::responses::UserChanged,
        crate::responses::ChangeWithBodyErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn set_namespace(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, namespace)): Path<(String, String)>,
    Json(req): Json<wire::NamespacePermissionRequest>,
) -> Result<Response, ApiError> {
    let user = parse_id(&id)?;
    let level = Some(render::parse_level("permission", &req.permission)?);
    let command = Command::SetUserNamespace { user, namespace, level };
    user_write(app, caller, "user.namespace.set", user, command).await
}

/// Takes a user's permission in a namespace away.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}/namespaces/{namespace}",
    operation_id = "remove_user_namespace",
    tag = "users",
    params(
        crate::responses::UserIdPath,
        crate::responses::NamespacePath,
    ),
    responses(
        crate::responses::UserChanged,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn remove_namespace(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, namespace)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = parse_id(&id)?;
    let command = Command::SetUserNamespace { user, namespace, level: None };
    user_write(app, caller, "user.namespace.remove", user, command).await
}

/// A write about user `id` answered `200 USER`.
async fn user_write(
    app: AppState,
    caller: Caller,
    operation: &'static str,
    id: UserId,
    command: Command,
) -> Result<Response, ApiError> {
    let operation = Operation::new(operation, Target::User(id));
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let user = into_user(subject)?;
    Ok((index_header(index), axum::Json(render::user(&user))).into_response())
}
