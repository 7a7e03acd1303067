//! Methods for the audit trail: `/v1/audit/events`, `/v1/audit/export` and a key's history.

use std::time::Duration;

use bytes::Bytes;
use keyledger_wire as wire;
use reqwest::{Method, StatusCode};

use crate::keys::key_path;
use crate::{decode, expect, failover, request_id, Client, ClientError};

/// How long an export may take in all; the usual request timeout is too short for a long ledger.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Filters and paging of `GET /v1/audit/events`; `None` fields are not sent.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Only events with a larger seq (the previous page's `next`).
    pub after: Option<u64>,
    /// Page size (server default 1000, max 10000).
    pub limit: Option<u32>,
    /// Only events about this key.
    pub key_id: Option<String>,
    /// Only events caused by this identity (`usr_…`, `sa_…`) or `system`.
    pub actor: Option<String>,
    /// Only events of this type, e.g. `created`.
    pub kind: Option<String>,
    /// RFC 3339: only events at or after this time.
    pub from: Option<String>,
    /// RFC 3339: only events before this time.
    pub to: Option<String>,
    /// `account` (the default) or `cluster` (every account's events; the operator only).
    pub scope: Option<String>,
}

/// What `GET /v1/audit/export` is asked for; `None` fields are not sent.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub format: ExportFormat,
    /// RFC 3339: only events at or after this time.
    pub from: Option<String>,
    /// RFC 3339: only events before this time.
    pub to: Option<String>,
    /// `account` (the default: the account's events and the cluster chain's checkpoints) or
    /// `cluster` (every event; the operator only).
    pub scope: Option<String>,
}

impl ExportRequest {
    /// The whole account's export in `format`.
    pub fn new(format: ExportFormat) -> ExportRequest {
        ExportRequest { format, from: None, to: None, scope: None }
    }
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One EVENT (JSON) per line.
    Jsonl,
    /// A header line, then one row per event.
    Csv,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// An export being received: read it a chunk at a time with [`Export::chunk`].
#[derive(Debug)]
pub struct Export {
    response: reqwest::Response,
}

impl Export {
    /// The next piece of the export, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        self.response.chunk().await.map_err(|e| ClientError::transport(&e))
    }
}

impl Client {
    /// `GET /v1/audit/events`: one page of the account's events, oldest first.
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<wire::EventList, ClientError> {
        let pairs: Vec<(&str, String)> = [
            ("after", query.after.map(|n| n.to_string())),
            ("limit", query.limit.map(|n| n.to_string())),
            ("key_id", query.key_id.clone()),
            ("actor", query.actor.clone()),
            ("type", query.kind.clone()),
            ("from", query.from.clone()),
            ("to", query.to.clone()),
            ("scope", query.scope.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        let answer = self.send(Method::GET, "/v1/audit/events".into(), None::<&()>, &pairs).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/keys/{id}/history`: every event of the key, oldest first (`next` is `None`).
    pub async fn key_history(&self, id: &str) -> Result<wire::EventList, ClientError> {
        let answer = self.send(Method::GET, key_path(id, "/history")?, None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/audit/replay`: the account as it was at `at` (RFC 3339).
    pub async fn replay(&self, at: &str) -> Result<wire::Replay, ClientError> {
        let pairs = [("at", at.to_string())];
        let answer = self.send(Method::GET, "/v1/audit/replay".into(), None::<&()>, &pairs).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/audit/public-key`: the keys checkpoints are signed with (no API key needed).
    pub async fn audit_public_keys(&self) -> Result<wire::SigningKeys, ClientError> {
        let answer = self.send(Method::GET, "/v1/audit/public-key".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/audit/checkpoints`: one page of signed checkpoints, oldest first.
    /// `GET /v1/audit/checkpoints/latest`: the newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<wire::AuditEvent, ClientError> {
        let answer = self.send(Method::GET, "/v1/audit/checkpoints/latest".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    pub async fn audit_checkpoints(
        &self,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<wire::CheckpointList, ClientError> {
        let pairs: Vec<(&str, String)> = [("after", after), ("limit", limit.map(u64::from))]
            .into_iter()
            .filter_map(|(n, v)| Some((n, v?.to_string())))
            .collect();
        let answer = self.send(Method::GET, "/v1/audit/checkpoints".into(), None::<&()>, &pairs).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/audit/proof/inclusion`: the event at `seq` against checkpoint `checkpoint`
    /// (the latest when `None`). The raw JSON, to be kept as it is and checked offline.
    pub async fn inclusion_proof(&self, seq: u64, checkpoint: Option<u64>) -> Result<Bytes, ClientError> {
        let mut pairs = vec![("seq", seq.to_string())];
        pairs.extend(checkpoint.map(|c| ("checkpoint", c.to_string())));
        let answer = self.send(Method::GET, "/v1/audit/proof/inclusion".into(), None::<&()>, &pairs).await?;
        Ok(expect(answer, StatusCode::OK)?.body)
    }

    /// `GET /v1/audit/proof/consistency`: checkpoint `from` against `to` (the latest when `None`).
    pub async fn consistency_proof(&self, from: u64, to: Option<u64>) -> Result<Bytes, ClientError> {
        let mut pairs = vec![("from", from.to_string())];
        pairs.extend(to.map(|t| ("to", t.to_string())));
        let answer = self.send(Method::GET, "/v1/audit/proof/consistency".into(), None::<&()>, &pairs).await?;
        Ok(expect(answer, StatusCode::OK)?.body)
    }

    /// `POST /v1/verify/as-of`: would a key have verified at a past moment, and which event
    /// decided it (owners and admins).
    pub async fn verify_as_of(&self, req: &wire::VerifyAsOfRequest) -> Result<wire::VerifyAsOfResponse, ClientError> {
        let answer = self.send(Method::POST, "/v1/verify/as-of".into(), Some(req), &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/audit/export`: starts an export; its body is read with [`Export::chunk`], so it
    /// is never held in memory whole. An error answer is returned as usual.
    pub async fn audit_export(&self, export: &ExportRequest) -> Result<Export, ClientError> {
        let mut query = vec![("format", export.format.as_str().to_string())];
        query.extend(export.from.clone().map(|t| ("from", t)));
        query.extend(export.to.clone().map(|t| ("to", t)));
        query.extend(export.scope.clone().map(|s| ("scope", s)));
        self.long_get("/v1/audit/export", &query).await
    }

    /// `GET /v1/admin/backup`: starts a backup of the cluster's ledger (the operator only); its
    /// body is read with [`Export::chunk`] and checked by `keyledger_ledger::backup`.
    pub async fn backup(&self) -> Result<Export, ClientError> {
        self.long_get("/v1/admin/backup", &[]).await
    }

    /// A GET whose answer is streamed, with the long timeout of exports. A GET, so safe to
    /// repeat: an address that fails before the answer's head, or answers 503 while others
    /// remain, is left for the next.
    async fn long_get(&self, path: &str, query: &[(&str, String)]) -> Result<Export, ClientError> {
        let order: Vec<usize> = failover::attempt_order(self.preferred_index(), self.addresses.len()).collect();
        let mut failures = Vec::new();
        let mut answered = None;
        for (position, &index) in order.iter().enumerate() {
            let last = position + 1 == order.len();
            let url = format!("{}{path}", self.addresses[index]);
            let mut request = self.http.get(url).query(query).timeout(EXPORT_TIMEOUT);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            match request.send().await {
                Ok(response) if last || response.status() != StatusCode::SERVICE_UNAVAILABLE => {
                    self.prefer(index);
                    answered = Some(response);
                    break;
                }
                Ok(response) => {
                    let request_id = request_id(response.headers());
                    let body = response.bytes().await.unwrap_or_default();
                    failures.push((index, ClientError::from_answer(503, &body, request_id)));
                }
                Err(e) if last && failures.is_empty() => return Err(ClientError::transport(&e)),
                Err(e) => failures.push((index, ClientError::transport(&e))),
            }
        }
        let Some(response) = answered else { return Err(self.every_address_failed(failures)) };
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(Export { response });
        }
        let request_id = request_id(response.headers());
        let body = response.bytes().await.map_err(|e| ClientError::transport(&e))?;
        if status.is_success() {
            let message = format!("expected HTTP 200, the server answered HTTP {}", status.as_u16());
            return Err(crate::error::unexpected(status.as_u16(), message, request_id));
        }
        Err(ClientError::from_answer(status.as_u16(), &body, request_id))
    }
}
