//! `POST /v1/keys/leaked`: anyone holding a key's secret reports it leaked.
//!
//! Possession proves the leak, so no other credential is asked for, and the endpoint must be
//! no oracle for whether a secret names a key: every well-formed report is answered `202 {}`
//! at once, after the same work (parse and hash), and the proposal — only for a key this node
//! knows and that was not reported before — runs after the answer, in the background. The
//! model decides again in log order (one `leaked` event per key; see `decide_leak`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use keyledger_model::{token, Actor, Command, KeyDigest, Proposal};
use keyledger_wire as wire;

use crate::error::{current_request_id, ApiError};
use crate::extract::Json;
use crate::AppState;

/// The client's address, when the server was started with connection info.
pub(crate) struct ClientAddress(pub(crate) Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)))
    }
}

/// Reports a leaked key: `202 {}` for every well-formed report, whether or not it names a key.
/// The account's `action_when_leaked` decides what happens to the key (`disable` by default).
#[utoipa::path(
    post,
    path = "/v1/keys/leaked",
    operation_id = "report_leaked_key",
    tag = "keys",
    request_body = wire::LeakReport,
    responses(
        (status = 202, description = "The report was taken (the same answer for any well-formed key).", body = wire::LeakReportAccepted),
        crate::responses::PublicBodyErrors,
    ),
)]
pub(crate) async fn report(
    State(app): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(req): Json<wire::LeakReport>,
) -> Result<(StatusCode, axum::Json<wire::LeakReportAccepted>), ApiError> {
    // The format is public (docs/secret-scanning.md), so refusing a malformed key tells nothing.
    token::parse(&req.key).map_err(|e| ApiError::invalid(format!("`key` is not a keyledger key: {e}")))?;
    let digest = KeyDigest::of(&req.key);
    let account = {
        let state = app.node.ledger().state();
        state.key_by_digest(&digest).filter(|k| !state.is_leaked(&k.id)).map(|k| k.account.clone())
    };
    if let Some(account) = account {
        let reporter = address.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let proposal = Proposal {
            time: app.node.now(),
            request_id: current_request_id().unwrap_or_default(),
            actor: Actor::System,
            account,
            command: Command::ReportLeak { digest, source: req.source, reporter },
        };
        let node = app.node.clone();
        tokio::spawn(async move {
            if let Err(error) = node.propose(proposal).await {
                // The reporter already has its answer; a report lost here can be sent again.
                tracing::warn!(%error, "a leak report could not be written");
            }
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(wire::LeakReportAccepted {})))
}
