//! `POST /v1/verify`: answered from this node's memory, never the disk or the network; and
//! `POST /v1/verify/as-of`: the same question about a past moment, answered from the ledger.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use keyledger_ledger::Ledger;
use keyledger_model::{
    as_of, token, visibility, AccountId, Invalid, KeyDigest, KeyId, Permission, State as LedgerState, Timestamp,
    Verdict, Verified,
};
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::metrics::VerifyResult;
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
        crate::responses::PublicBodyErrors,
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
    ready_to_verify(&app, req.min_index).await?;
    let state = app.verifying.read();
    let now = verify_now();
    let answer = match state.verify(&req.key, now, permission.as_ref()) {
        Verdict::Valid(v) => {
            v.note_use(now);
            app.metrics.count_verification(VerifyResult::Valid);
            valid(&state, &v)
        }
        Verdict::Forbidden(v) => {
            v.note_use(now);
            app.metrics.count_verification(VerifyResult::Forbidden);
            forbidden(&state, &v)
        }
        Verdict::Invalid(why) => {
            app.metrics.count_verification(VerifyResult::Invalid(why));
            wire::VerifyResponse { valid: false, code: Some(why.as_str().into()), ..Default::default() }
        }
    };
    Ok(axum::Json(answer))
}

/// Refuses a verification this node must not answer: it is no member of the cluster, or it has
/// not applied `min_index` within [`MIN_INDEX_WAIT`]. Shared by every verifying handler, so they
/// refuse alike.
pub(crate) async fn ready_to_verify(app: &AppState, min_index: Option<u64>) -> Result<(), ApiError> {
    // A node removed from the cluster no longer learns of revocations: it must not answer.
    let member = &app.member;
    if member.removed.load(Relaxed) || !(member.listed.load(Relaxed) || app.node.is_member()) {
        return Err(ApiError::unavailable("this node is not a member of the cluster; ask another node"));
    }
    // The revocation barrier: never answer from a state older than the caller has seen.
    if let Some(index) = min_index {
        // The documented range (an int64): a larger one is no ledger position, not one to wait for.
        if i64::try_from(index).is_err() {
            return Err(ApiError::invalid("`min_index` must be a ledger position (at most 2^63 - 1)"));
        }
        if !app.node.wait_applied(index, MIN_INDEX_WAIT).await {
            return Err(ApiError::unavailable(format!(
                "this node has not yet applied index {index}; try again or ask another node"
            )));
        }
    }
    Ok(())
}

/// The moment a verification is judged at: this node's clock.
pub(crate) fn verify_now() -> Timestamp {
    Timestamp(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
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

/// Would a key have verified at a past moment, and which event decided it? For incident
/// response ("was this key valid at 03:12, and who disabled it?"): owners and admins only,
/// for keys of their own account. The state at that moment is rebuilt from the ledger.
#[utoipa::path(
    post,
    path = "/v1/verify/as-of",
    operation_id = "verify_key_as_of",
    tag = "verification",
    request_body = wire::VerifyAsOfRequest,
    responses(
        (status = 200, description = "The verdict as of `at` and the event that decided it.", body = wire::VerifyAsOfResponse),
        crate::responses::RestrictedReadErrors,
        (status = 404, response = crate::responses::NotFound),
        (status = 413, response = crate::responses::PayloadTooLarge),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn verify_as_of(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::VerifyAsOfRequest>,
) -> Result<axum::Json<wire::VerifyAsOfResponse>, ApiError> {
    if !visibility::may_verify_as_of(&caller.principal) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only an account owner or admin may look into the past",
        ));
    }
    let at = Timestamp::parse_rfc3339(&req.at).map_err(|e| ApiError::invalid(format!("`at`: {e}")))?;
    let permission = req
        .permission
        .as_deref()
        .map(|p| p.parse::<Permission>().map_err(|e| ApiError::invalid(format!("`permission`: {e}"))))
        .transpose()?;
    let digest = match (&req.key, &req.key_id) {
        (Some(key), None) => {
            if token::parse(key).is_err() {
                let verdict =
                    wire::VerifyResponse { valid: false, code: Some("malformed".into()), ..Default::default() };
                return Ok(axum::Json(wire::VerifyAsOfResponse { verdict, at: at.to_string(), decided_by: None }));
            }
            KeyDigest::of(key)
        }
        (None, Some(id)) => {
            let state = app.node.ledger().state();
            let key = id.parse::<KeyId>().ok().and_then(|id| state.key(&id)).filter(|k| k.account == *caller.account());
            key.ok_or_else(|| ApiError::not_found("no such key"))?.digest
        }
        _ => return Err(ApiError::invalid("give exactly one of `key` and `key_id`")),
    };
    let ledger = app.node.ledger().clone();
    let account = caller.account().clone();
    let answer = tokio::task::spawn_blocking(move || as_of(&ledger, &account, &digest, at, permission.as_ref()))
        .await
        .map_err(ApiError::internal)??;
    Ok(axum::Json(answer))
}

/// The verdict for `digest` at `at`, from the ledger prefix up to `at`.
fn as_of(
    ledger: &Ledger,
    account: &AccountId,
    digest: &KeyDigest,
    at: Timestamp,
    permission: Option<&Permission>,
) -> Result<wire::VerifyAsOfResponse, ApiError> {
    let not_found = || wire::VerifyAsOfResponse { verdict: not_found_verdict(), at: at.to_string(), decided_by: None };
    // A key never changes owner, so today's state names the identity whose changes matter.
    let (head, owner) = {
        let state = ledger.state();
        match state.key_by_digest(digest).filter(|k| k.account == *account) {
            Some(key) => (state.head().seq, key.owner),
            None => return Ok(not_found()),
        }
    };
    // One pass over the ledger prefix: rebuild the past state, and note the owner's last
    // disabling or deletion on the way.
    let mut past = LedgerState::new();
    let mut last_seq = 0;
    let mut identity_change = None;
    for entry in ledger.entries(1, head) {
        let entry = entry.map_err(ApiError::internal)?;
        // Times are stamped in log order; the state "as of" a moment is the prefix before it.
        if entry.event.time > at {
            break;
        }
        last_seq = entry.event.seq;
        past.evolve(&entry);
        if as_of::disables(&entry.event.body, &owner) {
            identity_change = Some(entry);
        }
    }
    let Some(record) = past.key_by_digest(digest).cloned() else {
        return Ok(not_found());
    };
    let verdict = past.verify_digest(digest, at, permission);
    let history = ledger.key_history(&record.id).filter_map(Result::ok);
    let decided = as_of::deciding_event(&verdict, identity_change, history, last_seq);
    let verdict = match verdict {
        Verdict::Valid(v) => valid(&past, &v),
        Verdict::Forbidden(v) => forbidden(&past, &v),
        Verdict::Invalid(why) => wire::VerifyResponse {
            valid: false,
            code: Some(why.as_str().into()),
            key_id: Some(record.id.to_string()),
            ..Default::default()
        },
    };
    let decided_by = decided.map(|e| keyledger_audit::to_export(&e.event));
    Ok(wire::VerifyAsOfResponse { verdict, at: at.to_string(), decided_by })
}

fn not_found_verdict() -> wire::VerifyResponse {
    wire::VerifyResponse { valid: false, code: Some(Invalid::NotFound.as_str().into()), ..Default::default() }
}
