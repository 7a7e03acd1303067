//! `GET /v1/audit/stream?after=SEQ`: the account's events as server-sent events, for SIEM
//! pipelines. Each SSE message carries one EVENT as `data` and its `seq` as `id`, so a client
//! resumes from any point with `after` (or the standard `Last-Event-ID` header). It first sends
//! what is already in the ledger, then follows new events as this node applies them. Feeds are
//! capped per caller and per node, and end when the node shuts down (`abuse.rs`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use keyledger_audit::to_export;
use keyledger_model::AccountId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::AppState;

/// Events read from the ledger per step.
const STEP: u64 = 500;
/// With nothing new, look again at least this often (new events also wake the stream at once).
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Start after this seq (`0`, the default, is the start). `Last-Event-ID` works too.
    after: Option<u64>,
}

/// One server-sent message of the feed, as the OpenAPI document describes it (the fields of a
/// `text/event-stream` message; never built, the stream writes the text itself).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct SseMessage {
    /// The event's seq (resume with `Last-Event-ID` or `after`).
    id: String,
    /// Always `message`.
    event: Option<String>,
    /// The EVENT as JSON.
    data: String,
}

/// The account's events as server-sent events, resumable from any seq (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/audit/stream",
    operation_id = "stream_audit_events",
    tag = "audit",
    params(StreamQuery),
    responses(
        (
            status = 200,
            description = "`text/event-stream`: one message per event, `id` = its seq, `data` = the EVENT as JSON; \
                the stream stays open and follows new events.",
            content((SseMessage = "text/event-stream")),
        ),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))?;
    crate::audit::require_admin(&caller)?;
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let after = match (query.after, last_event_id) {
        (Some(after), _) => after,
        (None, Some(id)) => id.trim().parse().map_err(|_| ApiError::invalid("`Last-Event-ID` must be a seq"))?,
        (None, None) => 0,
    };
    let slot = app.guards.feeds.acquire(caller.principal.identity, &app.metrics)?;
    let closing = app.guards.closing.clone();
    let events = follow(app, caller.account().clone(), after);
    // The feed ends when the node shuts down (a client resumes elsewhere with `Last-Event-ID`),
    // and holds its slot until the stream is dropped: finished, or the client gone.
    let events = events.take_until(async move { closing.closed().await }).map(move |event| {
        let _held = &slot;
        event
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Events of `account` after `after`, forever: the stored ones, then each new one as applied.
fn follow(app: AppState, account: AccountId, after: u64) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold((app, account, after, Vec::new()), |(app, account, mut after, mut ready)| async move {
        let mut applied = app.node.raft().metrics();
        loop {
            if let Some(event) = ready.pop() {
                return Some((Ok(event), (app, account, after, ready)));
            }
            let head = app.node.ledger().state().head().seq;
            if head > after {
                let to = head.min(after + STEP);
                let ledger = app.node.ledger().clone();
                let account = account.clone();
                let chunk = tokio::task::spawn_blocking(move || {
                    ledger
                        .entries(after + 1, to)
                        .filter_map(Result::ok)
                        .filter(|e| e.event.account == account)
                        .map(|e| {
                            let data = serde_json::to_string(&to_export(&e.event)).unwrap_or_default();
                            SseEvent::default().id(e.event.seq.to_string()).data(data)
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                after = to;
                ready = chunk.into_iter().rev().collect();
                continue;
            }
            // Caught up: wait for this node to apply more (or look again after a while). Reading
            // writes what applies have staged, so a busy ledger is read once per staging period
            // rather than after every apply, which would write each apply's batch on its own.
            if let Ok(Ok(())) = tokio::time::timeout(IDLE_CHECK, applied.changed()).await {
                tokio::time::sleep(keyledger_ledger::PENDING_AGE).await;
            }
        }
    })
}
