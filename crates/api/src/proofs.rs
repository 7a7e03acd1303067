//! Checkpoints and Merkle proofs: `GET /v1/audit/public-key` (the signing keys, public),
//! `GET /v1/audit/checkpoints`, `GET /v1/audit/proof/inclusion` and
//! `GET /v1/audit/proof/consistency` (owners and admins). Proofs carry whole exported events,
//! so `keyledger audit verify-proof` checks them with nothing but the file and the keys.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyledger_audit::to_export;
use keyledger_ledger::Ledger;
use keyledger_model::{AccountId, Checkpoint, Event, EventBody};
use keyledger_wire as wire;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::{bad_query, blocking, into_page, page_limit, require_admin};
use crate::error::ApiError;
use crate::extract::Caller;
use crate::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Every registered checkpoint-signing key: what an auditor pins to check checkpoints.
#[utoipa::path(
    get,
    path = "/v1/audit/public-key",
    operation_id = "get_audit_public_keys",
    tag = "audit",
    responses(
        (status = 200, description = "The public keys checkpoints are signed with, one per node that has led.", body = wire::SigningKeys),
    ),
)]
pub(crate) async fn public_key(State(app): State<AppState>) -> Response {
    let mut keys: Vec<wire::SigningKey> = app
        .node
        .ledger()
        .state()
        .signers()
        .map(|(key, node)| wire::SigningKey { node_id: node, public_key: key.to_hex() })
        .collect();
    keys.sort_by(|a, b| (a.node_id, &a.public_key).cmp(&(b.node_id, &b.public_key)));
    axum::Json(wire::SigningKeys { algorithm: "ed25519".into(), keys }).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointsQuery {
    /// Only checkpoints at a larger `seq`; `0` (the default) is the start.
    after: Option<u64>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
}

/// The ledger's signed checkpoints, oldest first (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    operation_id = "list_audit_checkpoints",
    tag = "audit",
    params(CheckpointsQuery),
    responses(
        (status = 200, description = "One page of `checkpoint` events.", body = wire::CheckpointList),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn checkpoints(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<CheckpointsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query.after.unwrap_or(0);
    let ledger = app.node.ledger().clone();
    let page = blocking(move || {
        let mut found = Vec::new();
        for entry in ledger.account_entries(&AccountId::cluster(), after.saturating_add(1), u64::MAX) {
            let event = entry.map_err(ApiError::internal)?.event;
            if matches!(event.body, EventBody::Checkpoint(_)) {
                found.push(event);
                if found.len() > limit {
                    break;
                }
            }
        }
        let (checkpoints, next) = into_page(found, limit);
        Ok(wire::CheckpointList { checkpoints, next })
    })
    .await?;
    Ok(axum::Json(page).into_response())
}

/// The latest signed checkpoint (owners and admins): what a dashboard shows as the ledger's last
/// signed state, and how old it is.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints/latest",
    operation_id = "latest_audit_checkpoint",
    tag = "audit",
    responses(
        (status = 200, description = "The latest `checkpoint` event.", body = wire::AuditEvent),
        crate::responses::RestrictedReadErrors,
        (status = 404, description = "`not_found`: the ledger has no checkpoint yet.", body = wire::ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn latest_checkpoint(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<wire::AuditEvent>, ApiError> {
    require_admin(&caller)?;
    let latest = app.node.ledger().state().last_checkpoint().map(|c| c.seq);
    let seq = latest.ok_or_else(|| ApiError::not_found("the ledger has no checkpoint yet"))?;
    let ledger = app.node.ledger().clone();
    let (event, _) = blocking(move || checkpoint_at(&ledger, seq)).await?;
    Ok(axum::Json(to_export(&event)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The event to prove.
    seq: u64,
    /// The `seq` of the checkpoint event to prove it against; the latest one by default.
    checkpoint: Option<u64>,
}

/// Proof that an event is in the tree a checkpoint signed (owners and admins; the event must
/// be the caller's account's or the cluster chain's).
#[utoipa::path(
    get,
    path = "/v1/audit/proof/inclusion",
    operation_id = "get_inclusion_proof",
    tag = "audit",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The event, the checkpoint and the audit path between them.", body = wire::InclusionProof),
        crate::responses::RestrictedReadErrors,
        (status = 404, response = crate::responses::NotFound),
        (status = 409, response = crate::responses::Conflict),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn inclusion(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let account = caller.account().clone();
    let ledger = app.node.ledger().clone();
    let latest = app.node.ledger().state().last_checkpoint().map(|c| c.seq);
    let proof = blocking(move || {
        let event = stored_event(&ledger, query.seq)?
            .filter(|e| e.account == account || e.account.is_cluster())
            .ok_or_else(|| ApiError::not_found(format!("no event {} in this account's trail", query.seq)))?;
        let checkpoint_seq = query.checkpoint.or(latest).ok_or_else(no_checkpoint_yet)?;
        let (checkpoint_event, checkpoint) = checkpoint_at(&ledger, checkpoint_seq)?;
        if event.seq > checkpoint.tree_size {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "checkpoint {} covers events 1 to {}; event {} comes later (checkpoints follow every few seconds)",
                    checkpoint_event.seq, checkpoint.tree_size, event.seq
                ),
            ));
        }
        let path = ledger.inclusion_proof(event.seq, checkpoint.tree_size).map_err(ApiError::internal)?;
        Ok(wire::InclusionProof {
            event: to_export(&event),
            checkpoint: to_export(&checkpoint_event),
            proof: path.iter().map(|h| h.to_hex()).collect(),
        })
    })
    .await?;
    Ok(axum::Json(proof).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The `seq` of the older checkpoint event (the one the auditor holds).
    from: u64,
    /// The `seq` of the newer checkpoint event; the latest one by default.
    to: Option<u64>,
}

/// Proof that a later checkpoint's tree only appended to an earlier one's (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/audit/proof/consistency",
    operation_id = "get_consistency_proof",
    tag = "audit",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "Both checkpoints and the consistency path between their trees.", body = wire::ConsistencyProof),
        crate::responses::RestrictedReadErrors,
        (status = 404, response = crate::responses::NotFound),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn consistency(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let ledger = app.node.ledger().clone();
    let latest = app.node.ledger().state().last_checkpoint().map(|c| c.seq);
    let proof = blocking(move || {
        let (from_event, from) = checkpoint_at(&ledger, query.from)?;
        let (to_event, to) = checkpoint_at(&ledger, query.to.or(latest).ok_or_else(no_checkpoint_yet)?)?;
        if from.tree_size > to.tree_size {
            return Err(ApiError::invalid("`from` must be the older checkpoint"));
        }
        let path = ledger.consistency_proof(from.tree_size, to.tree_size).map_err(ApiError::internal)?;
        Ok(wire::ConsistencyProof {
            from: to_export(&from_event),
            to: to_export(&to_event),
            proof: path.iter().map(|h| h.to_hex()).collect(),
        })
    })
    .await?;
    Ok(axum::Json(proof).into_response())
}

fn no_checkpoint_yet() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", "the ledger has no checkpoint yet")
}

fn stored_event(ledger: &Ledger, seq: u64) -> Result<Option<Event>, ApiError> {
    let entry = ledger.entry(seq).map_err(ApiError::internal)?;
    Ok(entry.map(|e| e.event))
}

/// The checkpoint event at `seq`, and what it states.
fn checkpoint_at(ledger: &Ledger, seq: u64) -> Result<(Event, Checkpoint), ApiError> {
    let not_a_checkpoint = || ApiError::not_found(format!("no checkpoint at seq {seq}"));
    let event = stored_event(ledger, seq)?.ok_or_else(not_a_checkpoint)?;
    match event.body {
        EventBody::Checkpoint(checkpoint) => Ok((event, checkpoint)),
        _ => Err(not_a_checkpoint()),
    }
}
