//! `/v1/namespaces`: create and list. Every member of an account may list its namespaces.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::Command;
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::render;
use crate::write::{index_header, into_namespace, write, Operation, Target};
use crate::AppState;

/// Creates a namespace in the caller's account.
#[utoipa::path(
    post,
    path = "/v1/namespaces",
    operation_id = "create_namespace",
    tag = "namespaces",
    request_body = wire::CreateNamespaceRequest,
    responses(
        (
            status = 201,
            description = "The new namespace.",
            body = wire::Namespace,
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
    Json(req): Json<wire::CreateNamespaceRequest>,
) -> Result<Response, ApiError> {
    let operation = Operation::new("namespace.create", Target::Named(req.name.clone()));
    let command = Command::CreateNamespace { name: req.name };
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let namespace = into_namespace(subject)?;
    Ok((StatusCode::CREATED, index_header(index), axum::Json(render::namespace(&namespace))).into_response())
}

/// Lists the account's namespaces; every member of the account may.
#[utoipa::path(
    get,
    path = "/v1/namespaces",
    operation_id = "list_namespaces",
    tag = "namespaces",
    responses(
        (status = 200, description = "The namespaces.", body = wire::NamespaceList),
        (status = 401, response = crate::openapi::Unauthenticated),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(State(app): State<AppState>, caller: Caller) -> axum::Json<wire::NamespaceList> {
    let state = app.node.ledger().state();
    let namespaces = state.namespaces_of(caller.account()).map(render::namespace).collect();
    axum::Json(wire::NamespaceList { namespaces })
}
