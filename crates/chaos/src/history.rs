//! Every request the harness sends, with when it was sent, when it came back and what it came
//! back with — the raw material of every check. Written to `history.jsonl` in the run's
//! directory, one record a line.

use std::sync::Mutex;
use std::time::Instant;

use keyledger_client::ClientError;
use serde::Serialize;

use crate::model::{KeyOp, KeyRet};

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// An answer: an acknowledged write (with the ledger index it committed at), a refusal the
    /// model must predict (`404`, `409`), or a verification's verdict.
    Answered { answer: KeyRet, index: Option<u64> },
    /// Certainly without effect: `503 unavailable` (nothing was proposed), a refused connection
    /// (nothing was sent), or a read that failed (reads change nothing).
    Failed { why: String },
    /// Perhaps in effect: a timeout, `503 outcome_unknown`, a broken connection, any other
    /// error after the request may have left.
    Maybe { why: String },
}

/// One request and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub worker: usize,
    /// The key (the checked object) the request was about; `None` for a create that got no
    /// answer, whose key the harness never learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<usize>,
    pub key_id: String,
    /// The node asked.
    pub node: u64,
    pub op: KeyOp,
    /// A verification with `min_index` (the revocation barrier), not a linearizable one; not
    /// part of the linearizability check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_index: Option<u64>,
    /// For a `create` that is the new half of a rotation: the rotated key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<usize>,
    /// Sent as `X-Request-Id`; the ledger's events carry it.
    pub request_id: String,
    /// Microseconds since the run started.
    pub called_us: u64,
    pub returned_us: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The shared, append-only record of a run.
#[derive(Debug)]
pub struct History {
    start: Instant,
    records: Mutex<Vec<Record>>,
}

impl History {
    pub fn new() -> History {
        History { start: Instant::now(), records: Mutex::new(Vec::new()) }
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn push(&self, record: Record) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

/// Classifies a failed write: a refusal the model must predict, certainly nothing, or maybe.
pub fn write_error(error: &ClientError) -> Outcome {
    match error {
        ClientError::Api { status, error } if *status == 503 && error.code == "unavailable" => {
            Outcome::Failed { why: format!("503 unavailable: {}", error.message) }
        }
        ClientError::Api { status, error } if (400..500).contains(status) => {
            Outcome::Answered { answer: KeyRet::Refused(error.code.clone()), index: None }
        }
        ClientError::Api { status, error } => {
            Outcome::Maybe { why: format!("{status} {}: {}", error.code, error.message) }
        }
        ClientError::Transport(why) if never_sent(why) => Outcome::Failed { why: why.clone() },
        other => Outcome::Maybe { why: other.to_string() },
    }
}

/// Classifies a failed read: a `4xx` is an answer the model must predict (no key of ours is
/// ever refused a verification), anything else means the read did not happen.
pub fn read_error(error: &ClientError) -> Outcome {
    match error {
        ClientError::Api { status, error } if (400..500).contains(status) => {
            Outcome::Answered { answer: KeyRet::Refused(error.code.clone()), index: None }
        }
        other => Outcome::Failed { why: other.to_string() },
    }
}

/// True when the transport error happened while connecting, before any byte of the request
/// was written (hyper names these "error trying to connect"; a refused connection says so).
fn never_sent(why: &str) -> bool {
    why.contains("error trying to connect") || why.contains("Connection refused")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyledger_wire::ErrorDetail;

    fn api(status: u16, code: &str) -> ClientError {
        ClientError::Api { status, error: ErrorDetail { code: code.into(), message: "m".into(), request_id: None } }
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(write_error(&api(503, "unavailable")), Outcome::Failed { .. }));
        assert!(matches!(write_error(&api(503, "outcome_unknown")), Outcome::Maybe { .. }));
        assert!(matches!(write_error(&api(500, "internal")), Outcome::Maybe { .. }));
        assert_eq!(
            write_error(&api(409, "conflict")),
            Outcome::Answered { answer: KeyRet::Refused("conflict".into()), index: None }
        );
        let refused = ClientError::Transport(
            "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)"
                .into(),
        );
        assert!(matches!(write_error(&refused), Outcome::Failed { .. }));
        let broken = ClientError::Transport("error sending request: connection closed before message completed".into());
        assert!(matches!(write_error(&broken), Outcome::Maybe { .. }));
        assert!(matches!(read_error(&broken), Outcome::Failed { .. }));
        assert!(matches!(read_error(&api(404, "not_found")), Outcome::Answered { .. }));
    }
}
