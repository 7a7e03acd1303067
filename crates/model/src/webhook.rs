//! Webhooks: an account's subscriptions to its own key events, and the record of their delivery.
//!
//! A webhook's configuration is ledger events (`webhook_created`, `webhook_deleted`,
//! `webhook_secret_rotated`); its signing secret is never stored anywhere: the ledger holds a
//! random `secret_nonce`, and any node derives the secret from it and the cluster secret
//! (`keyledger_cluster::webhooks`). Deliveries are driven by the ledger position: the leader
//! delivers the account's matching events after the webhook's `cursor` in ledger order and
//! records their outcomes (`webhook_deliveries`), which moves the cursor, so a new leader
//! resumes where the last recorded delivery left off.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::event::EventBody;
use crate::ids::{AccountId, WebhookId};
use crate::time::{Span, Timestamp};

/// The longest URL a webhook may have.
pub const MAX_URL_LEN: usize = 2000;
/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Webhooks an account may have at once: each one costs the leader a delivery worker.
pub const MAX_WEBHOOKS_PER_ACCOUNT: usize = 20;
/// Deliveries kept per webhook in the state for `GET /v1/webhooks/{id}/deliveries`; older ones
/// stay in the ledger (and the audit export) only.
pub const RECENT_DELIVERIES: usize = 500;

/// An enabled key is warned of (`key_expiring_soon`, the webhooks' `key.expiring`) once it
/// expires within this long, once per expiry: a rotation or an expiry change that moves it out
/// and back in warns again. Not yet a per-account setting.
pub const EXPIRY_WARNING_WINDOW: Span = Span(7 * 24 * 3_600_000);

/// What a webhook can be told about. New variants go at the end (the log is bincode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WebhookEventType {
    KeyCreated,
    KeyDisabled,
    KeyDeleted,
    KeyLeaked,
    KeyExpiring,
}

impl WebhookEventType {
    pub const ALL: [WebhookEventType; 5] = [
        WebhookEventType::KeyCreated,
        WebhookEventType::KeyDisabled,
        WebhookEventType::KeyDeleted,
        WebhookEventType::KeyLeaked,
        WebhookEventType::KeyExpiring,
    ];

    /// The name in the API and in the payload's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::KeyCreated => "key.created",
            WebhookEventType::KeyDisabled => "key.disabled",
            WebhookEventType::KeyDeleted => "key.deleted",
            WebhookEventType::KeyLeaked => "key.leaked",
            WebhookEventType::KeyExpiring => "key.expiring",
        }
    }

    /// The webhook event type a ledger event is, if any.
    pub fn of(body: &EventBody) -> Option<WebhookEventType> {
        match body {
            EventBody::KeyCreated { .. } => Some(WebhookEventType::KeyCreated),
            EventBody::KeyDisabled { .. } => Some(WebhookEventType::KeyDisabled),
            EventBody::KeyDeleted { .. } => Some(WebhookEventType::KeyDeleted),
            EventBody::Leaked { .. } => Some(WebhookEventType::KeyLeaked),
            EventBody::KeyExpiringSoon { .. } => Some(WebhookEventType::KeyExpiring),
            _ => None,
        }
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a webhook event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event type {0:?} (known: key.created, key.disabled, key.deleted, key.leaked, key.expiring)")]
pub struct UnknownEventType(pub String);

impl FromStr for WebhookEventType {
    type Err = UnknownEventType;
    fn from_str(text: &str) -> Result<WebhookEventType, UnknownEventType> {
        WebhookEventType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownEventType(text.chars().take(40).collect()))
    }
}

/// A webhook as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub account: AccountId,
    pub url: String,
    /// Sorted, without repeats, never empty.
    pub event_types: Vec<WebhookEventType>,
    pub description: String,
    /// What the signing secret is derived from; alone it reveals nothing.
    pub secret_nonce: [u8; 16],
    pub created_at: Timestamp,
    pub secret_rotated_at: Option<Timestamp>,
    /// The highest ledger position handled: the creation event's, then the last recorded
    /// delivery's. Delivery resumes after it.
    pub cursor: u64,
}

impl Webhook {
    pub fn wants(&self, event_type: WebhookEventType) -> bool {
        self.event_types.contains(&event_type)
    }
}

/// A webhook as proposed: id and nonce fixed by the proposing node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub url: String,
    pub event_types: Vec<WebhookEventType>,
    pub description: String,
    pub secret_nonce: [u8; 16],
}

/// The result of one delivery attempt (the last one's is recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptResult {
    /// The receiver answered with this HTTP status (2xx: delivered).
    Status(u16),
    /// No answer within the attempt's timeout.
    Timeout,
    /// No connection (refused, unreachable, TLS failed, DNS failed).
    ConnectFailed,
    /// The URL's address is one the node may not send to (private, loopback...).
    AddressRefused,
    /// Anything else that went wrong sending the request or reading the answer's head.
    Error,
}

impl AttemptResult {
    pub fn delivered(self) -> bool {
        matches!(self, AttemptResult::Status(200..=299))
    }

    /// How the API and the export show it: `200`, `timeout`, `connect_failed`...
    pub fn as_text(self) -> String {
        match self {
            AttemptResult::Status(status) => status.to_string(),
            AttemptResult::Timeout => "timeout".into(),
            AttemptResult::ConnectFailed => "connect_failed".into(),
            AttemptResult::AddressRefused => "address_refused".into(),
            AttemptResult::Error => "error".into(),
        }
    }

    pub fn parse(text: &str) -> Option<AttemptResult> {
        Some(match text {
            "timeout" => AttemptResult::Timeout,
            "connect_failed" => AttemptResult::ConnectFailed,
            "address_refused" => AttemptResult::AddressRefused,
            "error" => AttemptResult::Error,
            status => AttemptResult::Status(status.parse().ok().filter(|s| (100..=999).contains(s))?),
        })
    }
}

/// One finished delivery: of the event at `position`, after `attempts` attempts, the last
/// with `last`. Delivered if `last` is a 2xx; otherwise the dispatcher gave up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub position: u64,
    pub event_type: WebhookEventType,
    pub attempts: u32,
    pub last: AttemptResult,
    /// When the last attempt ended (the leader's clock).
    pub at: Timestamp,
}

impl Delivery {
    /// The id receivers dedupe on: the same for every attempt and every leader.
    pub fn id(webhook: WebhookId, position: u64) -> String {
        format!("{webhook}-{position}")
    }
}

/// A finished delivery reported by the leader's dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub webhook: WebhookId,
    pub delivery: Delivery,
}

/// Why a URL is refused before anything resolves it (the address checks are the cluster's).
pub fn check_url_form(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("`url` is longer than {MAX_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`url` holds whitespace or control characters".into());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "`url` must start with https:// (or http:// where the operator allows it)".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("`url` must name a host, without user information".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip_and_unknown_ones_are_refused() {
        for t in WebhookEventType::ALL {
            assert_eq!(t.as_str().parse::<WebhookEventType>(), Ok(t));
        }
        assert!("key.rotated".parse::<WebhookEventType>().is_err());
        assert!("".parse::<WebhookEventType>().is_err());
    }

    #[test]
    fn url_forms() {
        assert!(check_url_form("https://example.com/hook").is_ok());
        assert!(check_url_form("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url_form("ftp://example.com/").is_err());
        assert!(check_url_form("https://user:pw@example.com/").is_err());
        assert!(check_url_form("https:///path").is_err());
        assert!(check_url_form("https://exa mple.com/").is_err());
        assert!(check_url_form(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn attempt_results_round_trip() {
        for r in [
            AttemptResult::Status(204),
            AttemptResult::Status(503),
            AttemptResult::Timeout,
            AttemptResult::ConnectFailed,
            AttemptResult::AddressRefused,
            AttemptResult::Error,
        ] {
            assert_eq!(AttemptResult::parse(&r.as_text()), Some(r));
        }
        assert!(AttemptResult::Status(204).delivered());
        assert!(!AttemptResult::Status(302).delivered());
        assert_eq!(AttemptResult::parse("42"), None);
    }
}
