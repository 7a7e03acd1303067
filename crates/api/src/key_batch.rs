//! `POST /v1/keys/batch`: many keys in one request, for an admin provisioning service accounts.
//!
//! Each item is exactly a `POST /v1/keys` (`keys::prepare_create`, then `keys::commit_create`):
//! the same checks, the same proposal, the same events. Every item is read first, so a request
//! with an item the server cannot read is refused whole and proposes nothing. Then all the
//! proposals are submitted at once, so the node's batcher (`keyledger_cluster`'s `batch.rs`)
//! packs them into a few Raft entries instead of one round trip each. An item can still fail
//! alone at apply time, in log order, as a single create would (a key limit, a permission).
//!
//! `Idempotency-Key`: item `i` is proposed with the key `<Idempotency-Key>#<i>` and the
//! fingerprint of the whole batch request. A retried batch therefore creates nothing twice:
//! an item already applied answers as a retried single create does (`409 conflict` naming the
//! key, never the secret again), an item refused the first time answers the same refusal, and
//! an item whose first proposal never committed is created now. Each item takes one record of
//! the idempotency table, like a single write.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use keyledger_wire as wire;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::idempotency;
use crate::keys::{commit_create, prepare_create, PreparedCreate};
use crate::write::index_header;
use crate::AppState;

/// Creates up to 1000 keys, each as `POST /v1/keys` would, and answers every outcome.
#[utoipa::path(
    post,
    path = "/v1/keys/batch",
    operation_id = "create_keys",
    tag = "keys",
    request_body = wire::CreateKeysRequest,
    responses(
        (
            status = 200,
            description = "One result per requested key, in request order: `201` with the key and its secret \
                (shown this once), or the status and error a single `POST /v1/keys` would have answered. With an \
                `Idempotency-Key`, item `i` is retried as a single create with the key `<Idempotency-Key>#<i>`: \
                an item created before answers `409 conflict` naming its key.",
            body = wire::CreatedKeys,
            headers((
                "X-Keyledger-Index" = u64,
                description = "The highest ledger position a created key committed at (this node's applied \
                    position when none was created)."
            )),
        ),
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, response = crate::responses::Unauthenticated),
        (status = 413, response = crate::responses::PayloadTooLarge),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create_batch(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<wire::CreateKeysRequest>,
) -> Result<Response, ApiError> {
    let count = req.keys.len();
    if !(1..=wire::MAX_KEYS_PER_BATCH).contains(&count) {
        return Err(ApiError::invalid(format!("`keys` must hold 1 to {} keys", wire::MAX_KEYS_PER_BATCH)));
    }
    let mut prepared: Vec<Result<PreparedCreate, ApiError>> = Vec::with_capacity(count);
    for (i, item) in req.keys.into_iter().enumerate() {
        match prepare_create(&app, &caller, item) {
            // Nothing is proposed before every item has been read.
            Err(e) if e.status() == StatusCode::BAD_REQUEST => return Err(e.about(&format!("`keys[{i}]`"))),
            // An owner id of the wrong form names no identity: that item alone fails, as one
            // that names no existing identity does at apply time.
            other => prepared.push(other),
        }
    }
    let batch_key = idempotency::current();
    let (app, caller) = (&app, &caller);
    let items = prepared.into_iter().enumerate().map(|(i, item)| {
        let item_key = batch_key.as_ref().map(|key| key.for_item(i));
        idempotency::scope(item_key, async move { commit_create(app, caller, item?).await })
    });
    let outcomes = join_all(items).await;
    let index = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().map(|(index, _)| *index))
        .max()
        .unwrap_or_else(|| app.node.applied_index());
    let results = outcomes.into_iter().map(result).collect();
    Ok((StatusCode::OK, index_header(index), axum::Json(wire::CreatedKeys { results })).into_response())
}

fn result(outcome: Result<(u64, wire::CreatedKey), ApiError>) -> wire::KeyBatchResult {
    match outcome {
        Ok((_, created)) => wire::KeyBatchResult {
            status: StatusCode::CREATED.as_u16(),
            key: Some(created.key),
            secret: Some(created.secret),
            error: None,
        },
        Err(e) => {
            wire::KeyBatchResult { status: e.status().as_u16(), key: None, secret: None, error: Some(e.detail()) }
        }
    }
}
