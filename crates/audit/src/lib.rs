//! keyledger's audit export: every ledger event as a readable, self-contained record that
//! still verifies offline.
//!
//! Main items: [`to_export`] (model event → exported record, a [`keyledger_wire::AuditEvent`]:
//! the EVENT of `api.md` with seq, time, type, account, both chain positions, actor, request id,
//! the type-specific `data` and the four hashes, all in hex), [`from_export`] (exported record →
//! the exact model event, so its canonical bytes and hashes can be recomputed without the server),
//! [`ExportError`] (what a record that does not parse back is missing), and the CSV form,
//! [`CSV_HEADER`] and [`to_csv_row`].
//!
//! Design decision: `data` is plain JSON with readable values (ids as `key_…`, times as
//! RFC 3339, durations as milliseconds, levels and roles as lower-case words), not the
//! canonical bincode bytes. The mapping is lossless in both directions, which
//! `tests/round_trip.rs` checks for every event type, so an auditor reads the export as it is
//! and a verifier rebuilds the canonical bytes from it; and because the chain covers only a
//! key's digest *commitment*, an export verifies completely without holding any digest or
//! secret.
//!
//! The exported record is the API's own event type, `keyledger_wire::AuditEvent`, so a page of
//! `GET /v1/audit/events`, a proof and a line of an export are the same object, and the client
//! and the CLI read them with the type the server wrote them with.

mod csv;
mod data;
mod line;
pub mod proofs;
mod tree_check;
pub mod verify;

use std::fmt;

use keyledger_model::{AccountId, Actor, ChainHash, Event, ServiceAccountId, Timestamp, UserId};
use keyledger_wire::{Actor as WireActor, AuditEvent};

pub use csv::{to_csv_row, CSV_HEADER};

/// Every `type` an exported event can have (`EventBody::type_name` of each variant).
pub const TYPE_NAMES: &[&str] = &[
    "account_created",
    "user_created",
    "created",
    "enabled",
    "disabled",
    "deleted",
    "updated",
    "locked",
    "unlocked",
    "rotated",
    "expired",
    "used",
    "denied",
    "user_deleted",
    "user_disabled",
    "user_enabled",
    "user_role_changed",
    "user_namespace_changed",
    "service_account_created",
    "service_account_deleted",
    "service_account_disabled",
    "service_account_enabled",
    "namespace_created",
    "settings_changed",
    "signer_registered",
    "checkpoint",
    "enrollment_issued",
    "enrolled",
    "leaked",
    "leak_action_changed",
    "limits_changed",
    "usage_granularity_changed",
    "webhook_created",
    "webhook_deleted",
    "webhook_secret_rotated",
    "webhook_deliveries",
    "expiring_soon",
];

/// An exported record that does not parse back into a ledger event: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError {
    pub field: String,
    pub message: String,
}

impl ExportError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> ExportError {
        ExportError { field: field.to_string(), message: message.into() }
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ExportError {}

/// The exported form of `event`.
///
/// The verifier writes an event's line without it (`line::write`), to the same bytes as
/// `serde_json::to_writer(&to_export(event))`: a change of form here goes there too.
pub fn to_export(event: &Event) -> AuditEvent {
    AuditEvent {
        seq: event.seq,
        time: event.time.to_string(),
        kind: event.body.type_name().to_string(),
        account: event.account.to_string(),
        account_seq: event.account_seq,
        actor: export_actor(&event.actor),
        request_id: event.request_id.clone(),
        data: data::to_data(&event.body),
        prev_hash: event.prev_hash.to_hex(),
        hash: event.hash.to_hex(),
        account_prev_hash: event.account_prev_hash.to_hex(),
        account_hash: event.account_hash.to_hex(),
    }
}

/// The ledger event `exported` was made from, value for value, so that
/// `Event::content_bytes` and `Event::hashes_are_valid` can be checked on it.
pub fn from_export(exported: &AuditEvent) -> Result<Event, ExportError> {
    ExportedRef::of(exported).to_event()
}

/// An exported event's fields, borrowed: from an [`AuditEvent`], or read straight from an
/// export's line (`line::read`). [`from_export`] is [`ExportedRef::to_event`].
pub(crate) struct ExportedRef<'a> {
    pub(crate) seq: u64,
    pub(crate) time: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) account: &'a str,
    pub(crate) account_seq: u64,
    pub(crate) actor_kind: &'a str,
    pub(crate) actor_id: Option<&'a str>,
    pub(crate) actor_key_id: Option<&'a str>,
    pub(crate) request_id: &'a str,
    pub(crate) data: &'a serde_json::Value,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
    pub(crate) account_prev_hash: &'a str,
    pub(crate) account_hash: &'a str,
}

impl<'a> ExportedRef<'a> {
    fn of(exported: &'a AuditEvent) -> ExportedRef<'a> {
        ExportedRef {
            seq: exported.seq,
            time: &exported.time,
            kind: &exported.kind,
            account: &exported.account,
            account_seq: exported.account_seq,
            actor_kind: &exported.actor.kind,
            actor_id: exported.actor.id.as_deref(),
            actor_key_id: exported.actor.key_id.as_deref(),
            request_id: &exported.request_id,
            data: &exported.data,
            prev_hash: &exported.prev_hash,
            hash: &exported.hash,
            account_prev_hash: &exported.account_prev_hash,
            account_hash: &exported.account_hash,
        }
    }

    /// The ledger event these fields were made from, or the first field that is wrong.
    pub(crate) fn to_event(&self) -> Result<Event, ExportError> {
        Ok(Event {
            seq: self.seq,
            time: parse_time("time", self.time)?,
            account: AccountId::parse(self.account).map_err(|_| ExportError::new("account", "not an account name"))?,
            actor: parse_actor(self.actor_kind, self.actor_id, self.actor_key_id)?,
            request_id: self.request_id.to_string(),
            body: data::from_data(self.kind, self.data)?,
            account_seq: self.account_seq,
            prev_hash: parse_hash("prev_hash", self.prev_hash)?,
            hash: parse_hash("hash", self.hash)?,
            account_prev_hash: parse_hash("account_prev_hash", self.account_prev_hash)?,
            account_hash: parse_hash("account_hash", self.account_hash)?,
        })
    }
}

fn export_actor(actor: &Actor) -> WireActor {
    match actor {
        Actor::System => WireActor { kind: "system".into(), id: None, key_id: None },
        Actor::User { id, key } => {
            WireActor { kind: "user".into(), id: Some(id.to_string()), key_id: Some(key.to_string()) }
        }
        Actor::ServiceAccount { id, key } => {
            WireActor { kind: "service_account".into(), id: Some(id.to_string()), key_id: Some(key.to_string()) }
        }
    }
}

fn parse_actor(kind: &str, id: Option<&str>, key_id: Option<&str>) -> Result<Actor, ExportError> {
    let present_id = || id.ok_or_else(|| ExportError::new("actor.id", "missing"));
    let key = || {
        let text = key_id.ok_or_else(|| ExportError::new("actor.key_id", "missing"))?;
        data::parse_id("actor.key_id", text)
    };
    match kind {
        "system" => {
            if id.is_some() || key_id.is_some() {
                return Err(ExportError::new("actor", "a system actor has no id or key_id"));
            }
            Ok(Actor::System)
        }
        "user" => Ok(Actor::User { id: data::parse_id::<UserId>("actor.id", present_id()?)?, key: key()? }),
        "service_account" => Ok(Actor::ServiceAccount {
            id: data::parse_id::<ServiceAccountId>("actor.id", present_id()?)?,
            key: key()?,
        }),
        other => Err(ExportError::new("actor.kind", format!("unknown actor kind {other:?}"))),
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    keyledger_model::hex::encode(bytes)
}

/// 32 bytes from 64 lower-case hex digits.
pub(crate) fn parse_hex32(field: &str, text: &str) -> Result<[u8; 32], ExportError> {
    keyledger_model::hex::decode(text).ok_or_else(|| ExportError::new(field, "not 64 lower-case hex digits"))
}

fn parse_hash(field: &str, text: &str) -> Result<ChainHash, ExportError> {
    parse_hex32(field, text).map(ChainHash)
}

/// A time as `Timestamp`'s `Display` writes it: RFC 3339, or `@<ms>ms` for one outside the
/// years RFC 3339 can show.
pub(crate) fn parse_time(field: &str, text: &str) -> Result<Timestamp, ExportError> {
    if let Some(ms) = text.strip_prefix('@').and_then(|t| t.strip_suffix("ms")) {
        return ms.parse().map(Timestamp).map_err(|_| ExportError::new(field, "not a time"));
    }
    // The usual case, read directly; any other text takes the checks below, which say what is wrong.
    if let Some(time) = Timestamp::parse_display(text) {
        return Ok(time);
    }
    let time = Timestamp::parse_rfc3339(text).map_err(|e| ExportError::new(field, e.to_string()))?;
    // Only the exact text `Display` gives maps back to the same value (no offsets, no extra
    // precision), so anything else was not written by an export.
    if time.to_string() != text {
        return Err(ExportError::new(field, "not a time in the export's form (UTC, milliseconds)"));
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_hex32("x", &hex(&bytes)), Ok(bytes));
        assert!(parse_hex32("x", &"A".repeat(64)).is_err());
        assert!(parse_hex32("x", "00").is_err());
    }

    #[test]
    fn times() {
        let t = Timestamp(1_750_000_000_123);
        assert_eq!(parse_time("t", &t.to_string()), Ok(t));
        assert_eq!(parse_time("t", &Timestamp(i64::MAX).to_string()), Ok(Timestamp(i64::MAX)));
        assert!(parse_time("t", "2025-06-15T15:06:40Z").is_err(), "not the export's form");
        assert!(parse_time("t", "yesterday").is_err());
    }
}
