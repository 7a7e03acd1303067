//! Webhooks: `POST /v1/webhooks` and its neighbours (`docs/webhooks.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: `https://` (plain `http://` and private addresses only where
    /// the operator allows them).
    pub url: String,
    /// At least one of `key.created`, `key.disabled`, `key.deleted`, `key.leaked`, `key.expiring`.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A webhook (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub account: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub created_at: String,
    /// When the signing secret was last replaced; `null` if never.
    #[serde(default)]
    #[schema(required)]
    pub secret_rotated_at: Option<String>,
    /// The ledger position of the last recorded delivery (at first, of the webhook's creation):
    /// events after it are still to be delivered.
    pub cursor: u64,
}

/// A webhook with its signing secret: answered once, when made or when its secret is rotated.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// `whsec_` and 64 hex digits; signs every delivery (`X-Keyledger-Signature`). Shown only now.
    pub secret: String,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// One finished delivery: delivered (a 2xx), or given up on after `attempts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The delivery id receivers dedupe on (`X-Keyledger-Delivery`): webhook id and position.
    pub id: String,
    /// The ledger position of the event delivered.
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub attempts: u32,
    pub delivered: bool,
    /// The last attempt's result: the receiver's HTTP status (`"204"`), or `timeout`,
    /// `connect_failed`, `address_refused`, `error`.
    pub result: String,
    /// When the last attempt ended.
    pub at: String,
}

/// `GET /v1/webhooks/{id}/deliveries`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WebhookDeliveryList {
    pub deliveries: Vec<WebhookDelivery>,
    /// Pass as `cursor` for the next (older) page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}
