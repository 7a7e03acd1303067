//! `/v1/settings`: the caller's account's key policy. Anyone in the account may read it;
//! owners and admins change it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyledger_model::{Command, SettingsPatch};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::render;
use crate::write::{index_header, into_account, write, Operation, Target};
use crate::AppState;

pub(crate) async fn get(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<wire::Settings>, ApiError> {
    let state = app.node.ledger().state();
    let account = state.account(caller.account()).ok_or_else(|| ApiError::not_found("no such account"))?;
    Ok(axum::Json(render::settings(account)))
}

pub(crate) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::UpdateSettingsRequest>,
) -> Result<Response, ApiError> {
    let patch = SettingsPatch {
        key_creation_enabled: req.key_creation_enabled,
        max_key_lifetime: req
            .max_key_lifetime
            .as_deref()
            .map(|t| render::parse_span("max_key_lifetime", t))
            .transpose()?,
        allow_never_expiring: req.allow_never_expiring,
        max_keys_per_user: req.max_keys_per_user,
        max_keys_per_service_account: req.max_keys_per_service_account,
    };
    let operation = Operation::new("settings.update", Target::Named(caller.account().to_string()));
    let (index, subject) = write(&app, &caller, app.node.now(), operation, Command::UpdateSettings(patch)).await?;
    let account = into_account(subject)?;
    Ok((index_header(index), axum::Json(render::settings(&account))).into_response())
}
