//! `/v1/webhooks`: an account's webhooks (owners and admins only, as for its settings), their
//! secrets (shown once, when made or rotated) and their delivery log. Design: `docs/webhooks.md`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_model::webhook::{Delivery, NewWebhook, Webhook, WebhookEventType};
use keyledger_model::{authz, Command, State as LedgerState, Subject, WebhookId};
use keyledger_wire as wire;
use rand_core::RngCore;

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::paging::{page, PageQuery};
use crate::write::{index_header, write, write_no_content, Operation, Target};
use crate::AppState;

fn parse_id(id: &str) -> Result<WebhookId, ApiError> {
    id.parse::<WebhookId>().map_err(|_| ApiError::not_found("no such webhook"))
}

/// Webhooks are the account's owners' and admins' alone: their URLs and delivery log say where
/// the account's events go.
fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    authz::authorize_account_change(&caller.principal).map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only the account's owners and admins manage webhooks",
        )
    })
}

/// The webhook `id` of the caller's account.
fn visible<'s>(state: &'s LedgerState, caller: &Caller, id: &str) -> Result<&'s Webhook, ApiError> {
    let id = parse_id(id)?;
    state.webhook(&id).filter(|w| &w.account == caller.account()).ok_or_else(|| ApiError::not_found("no such webhook"))
}

fn render(webhook: &Webhook) -> wire::Webhook {
    wire::Webhook {
        id: webhook.id.to_string(),
        account: webhook.account.to_string(),
        url: webhook.url.clone(),
        event_types: webhook.event_types.iter().map(|t| t.as_str().to_string()).collect(),
        description: webhook.description.clone(),
        created_at: webhook.created_at.to_string(),
        secret_rotated_at: webhook.secret_rotated_at.map(|t| t.to_string()),
        cursor: webhook.cursor,
    }
}

/// The webhook a write answered about, with its secret derived from the nonce the ledger holds.
fn with_secret(app: &AppState, subject: Subject) -> Result<wire::CreatedWebhook, ApiError> {
    match subject {
        Subject::Webhook(webhook) => Ok(wire::CreatedWebhook {
            secret: app.node.webhook_secret(webhook.id, &webhook.secret_nonce),
            webhook: render(&webhook),
        }),
        other => Err(ApiError::internal(format!("a webhook write answered about {other:?}"))),
    }
}

fn new_nonce(app: &AppState) -> [u8; 16] {
    let mut nonce = [0u8; 16];
    app.node.with_rng(|rng| rng.fill_bytes(&mut nonce));
    nonce
}

/// Creates a webhook of the caller's account; its signing secret is answered this once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body = wire::CreateWebhookRequest,
    responses(
        crate::responses::WebhookCreated,
        crate::responses::CreateErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    // Before resolving anything: a caller who may not make webhooks cannot make the node look
    // up hosts of its choosing either.
    admin_only(&caller)?;
    if req.event_types.is_empty() || req.event_types.len() > 16 {
        return Err(ApiError::invalid("`event_types` must name between 1 and 16 event types"));
    }
    let event_types = req
        .event_types
        .iter()
        .map(|t| t.parse::<WebhookEventType>().map_err(|e| ApiError::invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    app.node.check_webhook_url(&req.url).await.map_err(ApiError::invalid)?;
    let now = app.node.now();
    let id = app.node.with_rng(|rng| WebhookId::generate(now, rng));
    let new = NewWebhook {
        id,
        url: req.url,
        event_types,
        description: req.description.unwrap_or_default(),
        secret_nonce: new_nonce(&app),
    };
    let operation = Operation::new("webhook.create", Target::Named(id.to_string()));
    let (index, subject) = write(&app, &caller, now, operation, Command::CreateWebhook(new)).await?;
    let created = with_secret(&app, subject)?;
    Ok((StatusCode::CREATED, index_header(index), axum::Json(created)).into_response())
}

/// Lists the account's webhooks, oldest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of webhooks; `next_cursor` asks for the next.", body = wire::WebhookList),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::WebhookList>, ApiError> {
    admin_only(&caller)?;
    let request = PageQuery::check(query, |c| c.parse::<WebhookId>().ok())?;
    let state = app.node.ledger().state();
    let all = state.webhooks_after(caller.account(), request.after);
    let (webhooks, next_cursor) = page(all, request.limit, |w| w.id.to_string());
    Ok(axum::Json(wire::WebhookList { webhooks: webhooks.into_iter().map(render).collect(), next_cursor }))
}

/// One webhook of the account.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(crate::responses::WebhookIdPath),
    responses(
        (status = 200, description = "The webhook (never its secret).", body = wire::Webhook),
        crate::responses::RestrictedReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<wire::Webhook>, ApiError> {
    admin_only(&caller)?;
    let state = app.node.ledger().state();
    Ok(axum::Json(render(visible(&state, &caller, &id)?)))
}

/// Deletes a webhook: nothing more is delivered to it, including deliveries being retried.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(crate::responses::WebhookIdPath),
    responses(
        crate::responses::WebhookDeleted,
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
    let operation = Operation::new("webhook.delete", Target::Named(id.to_string()));
    write_no_content(&app, &caller, operation, Command::DeleteWebhook(id)).await
}

/// Replaces the webhook's signing secret; the new one is answered this once and signs every
/// delivery from now on (a delivery being retried is signed with it at its next attempt).
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(crate::responses::WebhookIdPath),
    responses(
        crate::responses::WebhookSecretRotated,
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn rotate_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let webhook = parse_id(&id)?;
    let operation = Operation::new("webhook.rotate_secret", Target::Named(webhook.to_string()));
    let command = Command::RotateWebhookSecret { webhook, secret_nonce: new_nonce(&app) };
    let (index, subject) = write(&app, &caller, app.node.now(), operation, command).await?;
    let rotated = with_secret(&app, subject)?;
    Ok((index_header(index), axum::Json(rotated)).into_response())
}

/// The webhook's recent deliveries, newest first: each delivered (2xx) or given up on after
/// its attempts. The state keeps the latest 500 per webhook; all are in the audit export.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(crate::responses::WebhookIdPath, PageQuery),
    responses(
        (status = 200, description = "One page of deliveries, newest first.", body = wire::WebhookDeliveryList),
        crate::responses::RestrictedReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<wire::WebhookDeliveryList>, ApiError> {
    admin_only(&caller)?;
    let request = PageQuery::check(query, |c| c.parse::<u64>().ok())?;
    let state = app.node.ledger().state();
    let webhook = visible(&state, &caller, &id)?.id;
    let all = state.webhook_deliveries(&webhook, request.after);
    let (deliveries, next_cursor) = page(all, request.limit, |d| d.position.to_string());
    let deliveries = deliveries
        .into_iter()
        .map(|d| wire::WebhookDelivery {
            id: Delivery::id(webhook, d.position),
            position: d.position,
            event_type: d.event_type.as_str().to_string(),
            attempts: d.attempts,
            delivered: d.last.delivered(),
            result: d.last.as_text(),
            at: d.at.to_string(),
        })
        .collect();
    Ok(axum::Json(wire::WebhookDeliveryList { deliveries, next_cursor }))
}
