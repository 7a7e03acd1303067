//! `/v1/settings`: the caller's account's key policy. Anyone in the account may read it;
//! owners and admins change it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyledger_model::{Command, LeakAction, LimitsPatch, SettingsPatch};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::render;
use crate::write::{index_header, into_account, write, Operation, Target};
use crate::AppState;

/// Reads the account's key policy; every member of the account may.
#[utoipa::path(
    get,
    path = "/v1/settings",
    operation_id = "get_settings",
    tag = "settings",
    responses(
        (status = 200, description = "The settings.", body = wire::Settings),
        crate::responses::ReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<wire::Settings>, ApiError> {
    let state = app.node.ledger().state();
    let account = state.account(caller.account()).ok_or_else(|| ApiError::not_found("no such account"))?;
    let (limits, action) = (state.limits(&account.id), state.leak_action(&account.id));
    Ok(axum::Json(render::settings(account, &limits, action, state.usage_granularity())))
}

/// Changes the account's key policy and caps (owners and admins; `max_accounts` and
/// `last_used_granularity`: an owner of `default`, the cluster operator); fields left out keep
/// their value.
#[utoipa::path(
    patch,
    path = "/v1/settings",
    operation_id = "update_settings",
    tag = "settings",
    request_body = wire::UpdateSettingsRequest,
    responses(
        crate::responses::SettingsChanged,
        crate::responses::ChangeWithBodyErrors,
    ),
    security(("api_key" = [])),
)]
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
    let action_when_leaked = req
        .action_when_leaked
        .as_deref()
        .map(|text| {
            LeakAction::parse(text)
                .ok_or_else(|| ApiError::invalid("`action_when_leaked` must be `disable`, `delete` or `none`"))
        })
        .transpose()?;
    let limits = LimitsPatch {
        max_users: req.max_users,
        max_service_accounts: req.max_service_accounts,
        max_namespaces: req.max_namespaces,
        max_accounts: req.max_accounts,
    };
    let last_used_granularity =
        req.last_used_granularity.as_deref().map(|t| render::parse_span("last_used_granularity", t)).transpose()?;
    let command = Command::Configure { patch, limits, action_when_leaked, last_used_granularity };
    let operation = Operation::new("settings.update", Target::Named(caller.account().to_string()));
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let (account, extra) = into_account(subject)?;
    let state = app.node.ledger().state();
    let (limits, action) = extra.unwrap_or_else(|| (state.limits(&account.id), state.leak_action(&account.id)));
    let settings = render::settings(&account, &limits, action, state.usage_granularity());
    Ok((index_header(index), axum::Json(settings)).into_response())
}
