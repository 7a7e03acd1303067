//! `GET /v1/admin/backup`: a consistent copy of the cluster's ledger from this node (leader or
//! follower), streamed in the backup format of `keyledger_ledger::backup`. The operator only:
//! the file holds every account's events. It runs under the audit exports' limits (a slot per
//! caller and per node, the stall timeout, the shutdown grace), since it is one.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_ledger::backup::BackupStream;

use crate::audit::{blocking, stream_export, ExportSource};
use crate::error::ApiError;
use crate::extract::Caller;
use crate::AppState;

/// The header naming how many events a backup holds, so a client can show progress.
pub(crate) const EVENTS_HEADER: &str = "x-keyledger-backup-events";

/// The bytes of a backup file, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct BackupFile(#[allow(dead_code)] Vec<u8>);

/// Streams a backup of every event this node holds now (the cluster operator only).
#[utoipa::path(
    get,
    path = "/v1/admin/backup",
    operation_id = "backup",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "The backup file (`application/octet-stream`): the magic `KLBACKUP`, a format version, \
                a header (events N, head hash, Merkle root, time), events 1..=N as the ledger stores them, and a \
                trailer with a SHA3-256 of everything before it. No secret is in it. Check and use it with \
                `keyledger admin restore`.",
            content((BackupFile = "application/octet-stream")),
        ),
        crate::responses::RestrictedReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn backup(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if !caller.principal.is_operator() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "only the cluster operator (an owner of the `default` account) may back up the cluster",
        ));
    }
    let slot = app.guards.exports.acquire(caller.principal.identity, &app.metrics)?;
    let (ledger, now, node) = (app.node.ledger().clone(), app.node.now(), app.node.id());
    let stream = blocking(move || {
        BackupStream::start(&ledger, now, node).map_err(|e| {
            tracing::error!(error = %e, "backup: cannot read the ledger");
            ApiError::unavailable("the ledger cannot be read")
        })
    })
    .await?;
    let events = stream.header().events;
    tracing::info!(events, "backup started");
    let body = stream_export(&app, slot, Box::new(Source(stream)));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(EVENTS_HEADER), HeaderValue::from(events)),
        ],
        body,
    )
        .into_response())
}

struct Source(BackupStream);

impl ExportSource for Source {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        self.0.next_chunk().map_err(|e| {
            tracing::error!(error = %e, "backup: cannot read the ledger");
            ApiError::unavailable("the ledger cannot be read")
        })
    }
}
