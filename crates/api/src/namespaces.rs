//! `/v1/namespaces`: create and list (paged). Every member of an account may list its namespaces.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::permissions::valid_namespace_name;
use keyledger_model::Command;
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::paging::{page, PageQuery};
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
        crate::responses::NamespaceCreated,
        crate::responses::CreateErrors,
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
    params(PageQuery),
    responses(
        (
            status = 200,
            description = "One page of namespaces, in name order; `next_cursor` asks for the next.",
            body = wire::NamespaceList,
        ),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::NamespaceList>, ApiError> {
    let request = PageQuery::check(query, |c| valid_namespace_name(c).then(|| c.to_string()))?;
    let state = app.node.ledger().state();
    let all = state.namespaces_after(caller.account(), request.after.as_deref());
    let (namespaces, next_cursor) = page(all, request.limit, |n| n.name.clone());
    Ok(axum::Json(wire::NamespaceList {
        namespaces: namespaces.into_iter().map(render::namespace).collect(),
        next_cursor,
    }))
}
