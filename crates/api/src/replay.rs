//! `GET /v1/audit/replay?at=T`: an account as it was at a past moment — its settings, users,
//! service accounts, namespaces and keys — rebuilt from the ledger alone. The same function
//! serves `keyledger replay --data-dir`, which reads a copied data dir with no server.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use keyledger_ledger::{Ledger, LedgerError};
use keyledger_model::{AccountId, State as LedgerState, Timestamp};
use keyledger_wire as wire;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::{bad_query, blocking, require_admin};
use crate::error::ApiError;
use crate::extract::Caller;
use crate::{render, AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReplayQuery {
    /// The moment, RFC 3339.
    at: String,
}

/// The caller's account as it was at `at` (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/audit/replay",
    operation_id = "replay_account",
    tag = "audit",
    params(ReplayQuery),
    responses(
        (status = 200, description = "The account rebuilt from its events up to `at`.", body = wire::Replay),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn replay(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let at = Timestamp::parse_rfc3339(&query.at).map_err(|e| ApiError::invalid(format!("`at`: {e}")))?;
    let (ledger, account) = (app.node.ledger().clone(), caller.account().clone());
    let replayed = blocking(move || replay_account(&ledger, &account, at).map_err(ApiError::internal)).await?;
    Ok(axum::Json(replayed).into_response())
}

/// `account` rebuilt from its own events up to `at`: the prefix of its chain before the first
/// event stamped later (times are stamped in log order).
pub fn replay_account(ledger: &Ledger, account: &AccountId, at: Timestamp) -> Result<wire::Replay, LedgerError> {
    let mut past = LedgerState::new();
    let mut seq = 0;
    // An account with a good share of the ledger reads faster in one sequential pass than
    // through its index (one point read per event); a small one, the other way round.
    let (total, own) = {
        let state = ledger.state();
        (state.head().seq, state.account_head(account).seq)
    };
    let entries: Box<dyn Iterator<Item = Result<keyledger_model::LedgerEntry, LedgerError>> + '_> =
        if own.saturating_mul(4) > total {
            Box::new(ledger.entries(1, u64::MAX).filter(|e| e.as_ref().map_or(true, |e| e.event.account == *account)))
        } else {
            Box::new(ledger.account_entries(account, 1, u64::MAX))
        };
    for entry in entries {
        let entry = entry?;
        if entry.event.time > at {
            break;
        }
        seq = entry.event.seq;
        past.evolve(&entry);
    }
    let settings = past
        .account(account)
        .map(|a| render::settings(a, &past.limits(account), past.leak_action(account), past.usage_granularity()));
    let users = past.users().filter(|u| u.account == *account).map(render::user).collect();
    let service_accounts =
        past.service_accounts().filter(|sa| sa.account == *account).map(render::service_account).collect();
    let namespaces = past.namespaces_of(account).map(render::namespace).collect();
    let keys = past.keys_after(None).filter(|k| k.account == *account).map(|k| render::key(&past, k, at)).collect();
    Ok(wire::Replay {
        at: at.to_string(),
        seq,
        account: account.to_string(),
        settings,
        users,
        service_accounts,
        namespaces,
        keys,
    })
}
