//! The JSON body of a delivery: the event's type, time, account and what it is about — never
//! a secret or a digest.

use keyledger_model::webhook::{Delivery, WebhookEventType};
use keyledger_model::{Event, EventBody, KeyId, Owner, State, WebhookId};
use serde_json::{json, Value};

/// The body for webhook `webhook` of `event`, whose type is `event_type`.
pub(super) fn body(state: &State, webhook: WebhookId, event_type: WebhookEventType, event: &Event) -> Vec<u8> {
    let data = match &event.body {
        EventBody::KeyCreated { key, owner, name, expires_at, .. } => {
            let mut data = key_data(state, *key, Some((owner, name.as_str())));
            data["expires_at"] = json!(expires_at.map(|t| t.to_string()));
            data
        }
        EventBody::KeyExpiringSoon { key, expires_at } => {
            let mut data = key_data(state, *key, None);
            data["expires_at"] = json!(expires_at.to_string());
            data
        }
        EventBody::Leaked { key, action, .. } => {
            let mut data = key_data(state, *key, None);
            data["action"] = json!(action.as_str());
            data
        }
        other => other.key().map_or_else(|| json!({}), |key| key_data(state, key, None)),
    };
    let payload = json!({
        "id": Delivery::id(webhook, event.seq),
        "type": event_type.as_str(),
        "occurred_at": event.time.to_string(),
        "account": event.account.to_string(),
        "position": event.seq,
        "data": data,
    });
    serde_json::to_vec(&payload).expect("a JSON value always encodes")
}

/// The key's id and name and its identity: from the event when it carries them (a `created`
/// event, before any rename), else from the state as it is now.
fn key_data(state: &State, key: KeyId, from_event: Option<(&Owner, &str)>) -> Value {
    let record = state.key(&key);
    let (owner, name) = match (from_event, record) {
        (Some((owner, name)), _) => (Some(*owner), Some(name.to_string())),
        (None, Some(record)) => (Some(record.owner), Some(record.name.clone())),
        (None, None) => (None, None),
    };
    let identity = owner.map(|owner| {
        let (kind, id) = match owner {
            Owner::User(id) => ("user", id.to_string()),
            Owner::ServiceAccount(id) => ("service_account", id.to_string()),
        };
        json!({ "kind": kind, "id": id, "name": state.owner_name(&owner) })
    });
    json!({ "key_id": key.to_string(), "name": name, "identity": identity })
}
