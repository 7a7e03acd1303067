//! The access log: one `info` event per request, target [`ACCESS_TARGET`], with the method, the
//! route template, the status, the latency, the request id and, when the request authenticated
//! with an API key, that key's id.
//!
//! What is never logged: the path as sent and its query string (ids, filters, and whatever a
//! client put there), headers (`Authorization` above all), bodies, and the key a
//! `POST /v1/verify` checks: that key is the request's subject, not its caller's credential,
//! and its handler takes no [`Caller`](crate::extract::Caller), so no key id is noted.
//!
//! Cost: verification answers tens of thousands of requests a second, and a line for each cost
//! about a quarter of a node's verification throughput (docs/benchmarks.md, "Access log"). So
//! verifications (`POST /v1/verify`, the auth-request routes) have a target of their own,
//! [`VERIFY_ACCESS_TARGET`], off unless `serve --access-log-verifications`; they are counted
//! in `/metrics` either way. When a target is off [`enabled`] is one cached callsite check and
//! nothing else runs; when it is on, the caller's key id travels in a task-local `Cell` (no
//! allocation) from the `Caller` extractor to `request_frame`.

use std::cell::Cell;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use keyledger_model::KeyId;

/// The `tracing` target of access events; a filter directive `keyledger::access=off` turns
/// them off.
pub const ACCESS_TARGET: &str = "keyledger::access";

/// The target of verifications' access events: below [`ACCESS_TARGET`], so turning that off
/// turns this off too.
pub const VERIFY_ACCESS_TARGET: &str = "keyledger::access::verify";

tokio::task_local! {
    /// The key the current request authenticated with, noted by the `Caller` extractor.
    static CALLER_KEY: Cell<Option<KeyId>>;
}

/// Whether the access event of a request (a verification or not) would be recorded now.
pub(crate) fn enabled(verification: bool) -> bool {
    if verification {
        tracing::enabled!(target: VERIFY_ACCESS_TARGET, tracing::Level::INFO)
    } else {
        tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
    }
}

/// Runs `request` with a slot for its caller's key; its answer and the key, if one
/// authenticated it.
pub(crate) async fn with_caller_slot<T>(request: impl std::future::Future<Output = T>) -> (T, Option<KeyId>) {
    CALLER_KEY
        .scope(Cell::new(None), async move {
            let answer = request.await;
            (answer, CALLER_KEY.try_with(Cell::get).ok().flatten())
        })
        .await
}

/// Notes `key` as the current request's credential; nothing when no slot was made (the access
/// log is off).
pub(crate) fn note_caller(key: KeyId) {
    let _ = CALLER_KEY.try_with(|slot| slot.set(Some(key)));
}

/// Records one request. `route` is the template (`/v1/keys/{id}`) or `unmatched`.
pub(crate) fn record(
    method: &Method,
    route: &str,
    status: StatusCode,
    started: Instant,
    request_id: &str,
    key: Option<KeyId>,
    verification: bool,
) {
    // Whole microseconds: a log line has no use for the float's 17 digits.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    if verification {
        // No caller: the key a verification checks is its subject, never logged.
        tracing::info!(
            target: VERIFY_ACCESS_TARGET,
            method = method.as_str(),
            route,
            status = status.as_u16(),
            latency_ms,
            request_id,
            "request"
        );
        return;
    }
    match key {
        Some(key) => tracing::info!(
            target: ACCESS_TARGET,
            method = method.as_str(),
            route,
            status = status.as_u16(),
            latency_ms,
            request_id,
            key_id = %key,
            "request"
        ),
        None => tracing::info!(
            target: ACCESS_TARGET,
            method = method.as_str(),
            route,
            status = status.as_u16(),
            latency_ms,
            request_id,
            "request"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_noted_key_reaches_the_slot_and_no_further() {
        let key = KeyId::from_bytes([7; 16]);
        let (answer, noted) = with_caller_slot(async {
            note_caller(key);
            1
        })
        .await;
        assert_eq!((answer, noted), (1, Some(key)));
        let ((), none) = with_caller_slot(async {}).await;
        assert_eq!(none, None);
        // Outside a slot, noting is harmless.
        note_caller(key);
    }
}
