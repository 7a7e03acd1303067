//! `POST /v1/verify`: answered from this node's memory, never the disk or the network.

use std::time::Duration;

use axum::extract::State;
use keyledger_model::{Permission, Verdict, Verified};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::Json;
use crate::render::identity;
use crate::AppState;

/// How long a verify with `min_index` may wait for this node to catch up.
const MIN_INDEX_WAIT: Duration = Duration::from_secs(5);

/// Verifies a presented key, optionally for one permission. Needs no authentication.
#[utoipa::path(
    post,
    path = "/v1/verify",
    operation_id = "verify_key",
    tag = "verification",
    request_body = wire::VerifyRequest,
    responses(
        (status = 200, description = "The verdict: `valid` with the identity and its permissions, or `valid: false` \
            with a `code` saying why.", body = wire::VerifyResponse),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 503, description = "`unavailable`: this node has not applied `min_index` within the wait; try \
            again or ask another node.", body = wire::ErrorBody),
    ),
)]
pub(crate) async fn verify(
    State(app): State<AppState>,
    Json(req): Json<wire::VerifyRequest>,
) -> Result<axum::Json<wire::VerifyResponse>, ApiError> {
    let permission = req
        .permission
        .as_deref()
        .map(|p| p.parse::<Permission>().map_err(|e| ApiError::invalid(format!("`permission`: {e}"))))
        .transpose()?;
    // The revocation barrier: never answer from a state older than the caller has seen.
    if let Some(index) = req.min_index {
        if !app.node.wait_applied(index, MIN_INDEX_WAIT).await {
            return Err(ApiError::unavailable(format!(
                "this node has not yet applied index {index}; try again or ask another node"
            )));
        }
    }
    let state = app.node.ledger().state();
    let now = app.node.now();
    let answer = match state.verify(&req.key, now, permission.as_ref()) {
        Verdict::Valid(v) => {
            app.node.record_use(v.key, now);
            valid(&state, &v)
        }
        Verdict::Forbidden(v) => {
            app.node.record_use(v.key, now);
            forbidden(&state, &v)
        }
        Verdict::Invalid(why) => {
            wire::VerifyResponse { valid: false, code: Some(why.as_str().into()), ..Default::default() }
        }
    };
    Ok(axum::Json(answer))
}

fn forbidden(state: &keyledger_model::State, v: &Verified<'_>) -> wire::VerifyResponse {
    wire::VerifyResponse {
        valid: false,
        code: Some("forbidden".into()),
        key_id: Some(v.key.to_string()),
        identity: Some(identity(state, &v.owner)),
        account: Some(v.account().to_string()),
        ..Default::default()
    }
}

fn valid(state: &keyledger_model::State, v: &Verified<'_>) -> wire::VerifyResponse {
    wire::VerifyResponse {
        valid: true,
        code: None,
        key_id: Some(v.key.to_string()),
        identity: Some(identity(state, &v.owner)),
        account: Some(v.account().to_string()),
        permissions: Some(v.effective().permissions()),
        expires_at: Some(v.expires_at.map(|t| t.to_string())),
    }
}
