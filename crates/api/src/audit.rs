//! The audit trail: `GET /v1/audit/events` (pages of the caller's account's events),
//! `GET /v1/audit/export` (all of them, streamed as JSON lines or CSV) and
//! `GET /v1/keys/{id}/history` (one key's life). Events are shaped by `keyledger-audit`, so
//! the pages, the history and the export carry the very same objects.
//!
//! Ledger reads are synchronous (sled), so they run on blocking threads: a page at a time for
//! `events`, and for `export` one chunk of [`EXPORT_CHUNK`] events at a time, read by a task
//! that hands each chunk to the response body through a small channel, so memory stays flat
//! however long the ledger is and a client that stops reading holds no thread. Exports are
//! capped per caller and per node (`abuse.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_audit::{to_csv_row, to_export, CSV_HEADER, TYPE_NAMES};
use keyledger_ledger::{Ledger, LedgerError};
use keyledger_model::{visibility, AccountId, Event, KeyId, LedgerEntry, ServiceAccountId, Timestamp, UserId};
use keyledger_wire as wire;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::abuse::Slot;
use crate::error::ApiError;
use crate::extract::{Caller, Path};
use crate::keys::visible_key;
use crate::AppState;

const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;
/// Events read from the ledger per step of an export: a chunk is a few hundred KiB at most.
pub(crate) const EXPORT_CHUNK: u64 = 500;
/// Chunks queued between an export's producer and its response body; with the chunk size this
/// bounds what a client that stops reading can make the node hold.
const EXPORT_QUEUE: usize = 2;

/// The query of `GET /v1/audit/events`; every filter is optional, and they combine.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only events with a larger `seq`; `0` (the default) is the start. Pass the previous
    /// page's `next`.
    after: Option<u64>,
    /// The most events in one answer.
    #[param(minimum = 1, maximum = 10000, default = 1000)]
    limit: Option<usize>,
    /// Only events about this key (for a rotation, both keys).
    key_id: Option<String>,
    /// Only events caused by this user or service account (`usr_…`, `sa_…`), or `system`.
    actor: Option<String>,
    /// Only events of this type, e.g. `created`, `rotated`, `user_created`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Only events at or after this RFC 3339 time.
    from: Option<String>,
    /// Only events before this RFC 3339 time.
    to: Option<String>,
    /// `account` (the default): the caller's account's events; `cluster`: every account's
    /// (the cluster operator: an owner of the `default` account).
    scope: Option<String>,
}

/// The query of `GET /v1/audit/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// `jsonl` (one EVENT per line, the default) or `csv` (a header, then one row per event).
    format: Option<String>,
    /// Only events at or after this RFC 3339 time.
    from: Option<String>,
    /// Only events before this RFC 3339 time.
    to: Option<String>,
    /// `account` (the default): the caller's account's events and the cluster chain's
    /// (signers and checkpoints), which verify on their own chains; `cluster`: every event,
    /// which verifies on the cluster chain (the cluster operator: an owner of the `default`
    /// account).
    scope: Option<String>,
}

/// Which chains a read covers.
#[derive(Debug, Clone)]
enum Trail {
    /// One account's events, and with `with_cluster` the cluster chain's too.
    Account { account: AccountId, with_cluster: bool },
    /// Every event (the operator).
    Cluster,
}

impl Trail {
    /// `scope` as asked, if the caller may read it.
    fn of(caller: &Caller, scope: Option<&str>, with_cluster: bool) -> Result<Trail, ApiError> {
        match scope.unwrap_or("account") {
            "account" => Ok(Trail::Account { account: caller.account().clone(), with_cluster }),
            "cluster" if visibility::may_read_every_account(&caller.principal) => Ok(Trail::Cluster),
            "cluster" => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "only the cluster operator (an owner of the `default` account) may read every account's events",
            )),
            _ => Err(ApiError::invalid("`scope` must be `account` or `cluster`")),
        }
    }

    fn covers(&self, event: &Event) -> bool {
        match self {
            Trail::Account { account, with_cluster } => {
                event.account == *account || (*with_cluster && event.account.is_cluster())
            }
            Trail::Cluster => true,
        }
    }

    /// The stored events of this trail with `seq` in `from..=to`, oldest first; an account's
    /// are read through the account index, never by scanning the others'.
    fn entries<'a>(&self, ledger: &'a Ledger, from: u64, to: u64) -> Box<dyn Iterator<Item = Read> + 'a> {
        match self {
            Trail::Cluster => Box::new(ledger.entries(from, to)),
            Trail::Account { account, with_cluster: false } => Box::new(ledger.account_entries(account, from, to)),
            Trail::Account { account, with_cluster: true } => Box::new(merge_by_seq(
                ledger.account_entries(account, from, to),
                ledger.account_entries(&AccountId::cluster(), from, to),
            )),
        }
    }
}

type Read = Result<LedgerEntry, LedgerError>;

/// Two ascending streams of entries as one (errors pass through where they occur).
fn merge_by_seq<'a>(
    a: impl Iterator<Item = Read> + 'a,
    b: impl Iterator<Item = Read> + 'a,
) -> impl Iterator<Item = Read> + 'a {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (Some(Ok(x)), Some(Ok(y))) => x.event.seq < y.event.seq,
            (Some(Err(_)), _) | (Some(_), None) => true,
            (_, Some(Err(_))) | (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_a {
            a.next()
        } else {
            b.next()
        }
    })
}

/// What selects an event: the trail the caller may read, and the query's filters.
#[derive(Debug, Clone)]
struct Filter {
    trail: Trail,
    key: Option<KeyId>,
    actor: Option<String>,
    kind: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl Filter {
    fn matches(&self, event: &Event) -> bool {
        self.trail.covers(event)
            && self.key.is_none_or(|key| {
                event.body.key() == Some(key)
                    || matches!(event.body, keyledger_model::EventBody::KeyRotated { replacement, .. } if replacement == key)
            })
            && self.actor.as_deref().is_none_or(|actor| actor_id(event) == actor)
            && self.kind.as_deref().is_none_or(|kind| event.body.type_name() == kind)
            && self.from.is_none_or(|from| event.time >= from)
            && self.to.is_none_or(|to| event.time < to)
    }
}

fn actor_id(event: &Event) -> String {
    match event.actor.identity() {
        Some(keyledger_model::Owner::User(id)) => id.to_string(),
        Some(keyledger_model::Owner::ServiceAccount(id)) => id.to_string(),
        None => "system".to_string(),
    }
}

pub(crate) fn bad_query(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::invalid(format!("bad query: {}", e.body_text()))
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| Timestamp::parse_rfc3339(t).map_err(|e| ApiError::invalid(format!("`{field}`: {e}")))).transpose()
}

/// Only owners and admins read the account's audit trail.
pub(crate) fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if visibility::may_read_audit_trail(&caller.principal) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only the account's owners and admins may read its audit trail",
        ))
    }
}

/// The page size asked for, within `1..=max`.
pub(crate) fn page_limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid(format!("`limit` must be between 1 and {max}")));
    }
    Ok(limit)
}

/// A page from up to `limit + 1` events found: the first `limit`, and the `next` cursor (the
/// last one's seq) when there were more.
pub(crate) fn into_page(mut found: Vec<Event>, limit: usize) -> (Vec<wire::AuditEvent>, Option<u64>) {
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|e| e.seq)
    } else {
        None
    };
    (found.iter().map(to_export).collect(), next)
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}

/// Lists the account's events oldest first, a page at a time (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/audit/events",
    operation_id = "list_audit_events",
    tag = "audit",
    params(EventsQuery),
    responses(
        (status = 200, description = "One page of events; `next`, when not null, asks for the next.", body = wire::EventList),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn events(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let key = query
        .key_id
        .as_deref()
        .map(|k| k.parse::<KeyId>().map_err(|_| ApiError::invalid("`key_id` is not a key id")))
        .transpose()?;
    if let Some(actor) = query.actor.as_deref() {
        let valid = actor == "system" || actor.parse::<UserId>().is_ok() || actor.parse::<ServiceAccountId>().is_ok();
        if !valid {
            return Err(ApiError::invalid("`actor` must be a user id, a service account id or `system`"));
        }
    }
    if let Some(kind) = query.kind.as_deref() {
        if !TYPE_NAMES.contains(&kind) {
            return Err(ApiError::invalid(format!("`type` must be one of {}", TYPE_NAMES.join(", "))));
        }
    }
    let filter = Filter {
        trail: Trail::of(&caller, query.scope.as_deref(), false)?,
        key,
        actor: query.actor,
        kind: query.kind,
        from: parse_time("from", query.from.as_deref())?,
        to: parse_time("to", query.to.as_deref())?,
    };
    let after = query.after.unwrap_or(0);
    let ledger = app.node.ledger().clone();
    let page = blocking(move || {
        let mut found: Vec<Event> = Vec::new();
        let mut take = |entry: Result<keyledger_model::LedgerEntry, keyledger_ledger::LedgerError>| {
            let entry = entry.map_err(ApiError::internal)?;
            if entry.event.seq > after && filter.matches(&entry.event) {
                found.push(entry.event);
            }
            Ok::<bool, ApiError>(found.len() > limit)
        };
        match filter.key {
            Some(key) => {
                for entry in ledger.key_history(&key) {
                    if take(entry)? {
                        break;
                    }
                }
            }
            None => {
                for entry in filter.trail.entries(&ledger, after.saturating_add(1), u64::MAX) {
                    if take(entry)? {
                        break;
                    }
                }
            }
        }
        let (events, next) = into_page(found, limit);
        Ok(wire::EventList { events, next })
    })
    .await?;
    Ok(axum::Json(page).into_response())
}

/// A key's whole life, oldest first: every event about it (a rotation appears in the history
/// of both keys). Whoever may read the key may read its history.
#[utoipa::path(
    get,
    path = "/v1/keys/{id}/history",
    operation_id = "get_key_history",
    tag = "keys",
    params(crate::responses::KeyIdPath),
    responses(
        (status = 200, description = "The key's events, oldest first.", body = wire::KeyHistory),
        crate::responses::ReadOneErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn key_history(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = visible_key(&app.node.ledger().state(), &caller, &id)?.id;
    let ledger = app.node.ledger().clone();
    let history = blocking(move || {
        let events = ledger
            .key_history(&key)
            .map(|entry| entry.map(|e| to_export(&e.event)).map_err(ApiError::internal))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(wire::KeyHistory { events })
    })
    .await?;
    Ok(axum::Json(history).into_response())
}

/// Every event of the account (owners and admins), streamed oldest first: JSON lines, one
/// EVENT per line, or CSV. The export ends at the ledger's head when the request arrived.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    operation_id = "export_audit_events",
    tag = "audit",
    params(ExportQuery),
    responses(
        (
            status = 200,
            description = "The events: `application/x-ndjson` (one EVENT per line) or `text/csv` (a header line, \
                then one row per event: seq, time, type, account, account_seq, actor_kind, actor_id, actor_key_id, \
                request_id, data (the JSON object), prev_hash, hash, account_prev_hash, account_hash).",
            content(
                (String = "application/x-ndjson"),
                (String = "text/csv"),
            ),
        ),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    require_admin(&caller)?;
    let csv = match query.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => false,
        "csv" => true,
        _ => return Err(ApiError::invalid("`format` must be `jsonl` or `csv`")),
    };
    let filter = Filter {
        trail: Trail::of(&caller, query.scope.as_deref(), true)?,
        key: None,
        actor: None,
        kind: None,
        from: parse_time("from", query.from.as_deref())?,
        to: parse_time("to", query.to.as_deref())?,
    };
    let slot = app.guards.exports.acquire(caller.principal.identity, &app.metrics)?;
    let head = app.node.ledger().state().head().seq;
    let source = AuditSource { ledger: app.node.ledger().clone(), filter, from: 1, head, csv, header_sent: false };
    let content_type = if csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    let body = stream_export(&app, slot, Box::new(source));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response())
}

/// What an export streams: its next bytes, read on a blocking thread, until `None`.
pub(crate) trait ExportSource: Send + Sync + 'static {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError>;
}

/// The body of a long read (an audit export, a backup) from `source`, under the export limits:
/// the `slot` is held while it runs, a client that takes nothing for the stall timeout is
/// dropped, and a shutdown cuts it short after the grace; a cut-short body ends with an error.
pub(crate) fn stream_export(app: &AppState, slot: Slot, source: Box<dyn ExportSource>) -> Body {
    let export = Export {
        source,
        stall_timeout: app.guards.limits.export_stall_timeout,
        closing: app.guards.closing.clone(),
        grace: app.guards.limits.export_shutdown_grace,
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(EXPORT_QUEUE);
    let queue = Arc::new(Mutex::new(receiver));
    let finished = Arc::new(AtomicBool::new(false));
    tokio::spawn(export.run(sender, queue.clone(), finished.clone(), slot));
    Body::from_stream(export_body(queue, finished))
}

/// The audit export's events, `EXPORT_CHUNK` at a time up to the head it began at.
struct AuditSource {
    ledger: Ledger,
    filter: Filter,
    from: u64,
    head: u64,
    csv: bool,
    header_sent: bool,
}

impl ExportSource for AuditSource {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        if self.csv && !self.header_sent {
            self.header_sent = true;
            return Ok(Some(format!("{CSV_HEADER}\n").into_bytes()));
        }
        if self.from > self.head {
            return Ok(None);
        }
        let to = self.head.min(self.from + EXPORT_CHUNK - 1);
        let chunk = read_export_chunk(&self.ledger, &self.filter, self.from, to, self.csv)?;
        self.from = to + 1;
        Ok(Some(chunk.into_bytes()))
    }
}

/// The queue between an export's producer and its body; the producer empties it when it gives up.
type Queue = Arc<Mutex<tokio::sync::mpsc::Receiver<Bytes>>>;

/// The response body of an export: the producer's chunks, then an error instead of a clean end
/// if the producer stopped before the last event, so a cut-short export never looks whole.
fn export_body(queue: Queue, finished: Arc<AtomicBool>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        if ended {
            return Poll::Ready(None);
        }
        let polled = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).poll_recv(cx);
        match polled {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(None) => {
                ended = true;
                if finished.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(std::io::Error::other("the export was cut short"))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    })
}

/// One export's producer. It runs as a task, not on a blocking thread: only the read of each
/// chunk goes to the blocking pool, so an export whose client stops reading holds no thread,
/// and is dropped once the client has taken nothing for `stall_timeout`.
struct Export {
    source: Box<dyn ExportSource>,
    stall_timeout: Duration,
    closing: crate::Closing,
    grace: Duration,
}

/// Why an export stopped before its end.
enum Stop {
    /// The client went away.
    Gone,
    /// The client took nothing for the stall timeout.
    Stalled,
    /// The node is shutting down and the export's grace is over.
    ShuttingDown,
    /// The ledger could not be read.
    Failed,
}

impl Export {
    /// Sends the source's chunks; sets `finished` only once the last one is queued. The slot
    /// is held until the producer stops.
    async fn run(
        mut self,
        sender: tokio::sync::mpsc::Sender<Bytes>,
        queue: Queue,
        finished: Arc<AtomicBool>,
        slot: Slot,
    ) {
        let _slot = slot;
        let shutdown = {
            let closing = self.closing.clone();
            let grace = self.grace;
            async move {
                closing.closed().await;
                tokio::time::sleep(grace).await;
            }
        };
        tokio::pin!(shutdown);
        let stopped = tokio::select! {
            stopped = self.send_all(&sender) => stopped,
            () = &mut shutdown => Err(Stop::ShuttingDown),
        };
        match stopped {
            Ok(()) => finished.store(true, Ordering::Release),
            Err(Stop::Gone | Stop::Failed) => {}
            Err(why @ (Stop::Stalled | Stop::ShuttingDown)) => {
                if matches!(why, Stop::Stalled) {
                    tracing::debug!(timeout = ?self.stall_timeout, "audit export dropped: its client stopped reading");
                } else {
                    tracing::info!("audit export cut short: the node is shutting down");
                }
                // What is queued will never be sent: free it now, not when the client goes.
                let mut queued = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                while queued.try_recv().is_ok() {}
            }
        }
    }

    async fn send_all(&mut self, sender: &tokio::sync::mpsc::Sender<Bytes>) -> Result<(), Stop> {
        let mut source = Some(std::mem::replace(&mut self.source, Box::new(Drained)));
        while let Some(mut taken) = source.take() {
            // A failed read is logged where it happened; the body ends with an error.
            let (given_back, chunk) = blocking(move || {
                let chunk = taken.next_chunk()?;
                Ok((taken, chunk))
            })
            .await
            .map_err(|_| Stop::Failed)?;
            match chunk {
                Some(chunk) if chunk.is_empty() => source = Some(given_back),
                Some(chunk) => {
                    self.send(sender, Bytes::from(chunk)).await?;
                    source = Some(given_back);
                }
                None => {}
            }
        }
        Ok(())
    }

    async fn send(&self, sender: &tokio::sync::mpsc::Sender<Bytes>, chunk: Bytes) -> Result<(), Stop> {
        use tokio::sync::mpsc::error::SendTimeoutError;
        match sender.send_timeout(chunk, self.stall_timeout).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(Stop::Stalled),
            Err(SendTimeoutError::Closed(_)) => Err(Stop::Gone),
        }
    }
}

/// What an export's source is while a blocking thread reads from it.
struct Drained;

impl ExportSource for Drained {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        Ok(None)
    }
}

/// The lines of the events in `from..=to` that `filter` selects.
fn read_export_chunk(ledger: &Ledger, filter: &Filter, from: u64, to: u64, csv: bool) -> Result<String, ApiError> {
    let mut chunk = String::new();
    for entry in filter.trail.entries(ledger, from, to) {
        let entry = entry.map_err(|e| {
            tracing::error!(error = %e, "audit export: cannot read the ledger");
            ApiError::unavailable("the ledger cannot be read")
        })?;
        if filter.matches(&entry.event) {
            let exported = to_export(&entry.event);
            if csv {
                chunk.push_str(&to_csv_row(&exported));
            } else {
                chunk.push_str(&serde_json::to_string(&exported).expect("an exported event serializes"));
            }
            chunk.push('\n');
        }
    }
    Ok(chunk)
}
