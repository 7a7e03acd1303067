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

pub(crate) async fn list(State(app): State<AppState>, caller: Caller) -> axum::Json<wire::NamespaceList> {
    let state = app.node.ledger().state();
    let namespaces = state.namespaces_of(caller.account()).map(render::namespace).collect();
    axum::Json(wire::NamespaceList { namespaces })
}
