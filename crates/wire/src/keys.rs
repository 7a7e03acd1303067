//! Keys and their verification.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Actor, Identity, OwnerRef};

/// A key's optional narrowing, in requests and answers alike:
/// `{"role": "developer"}` (at most this account role) or
/// `{"namespaces": {"payments": "write"}}` (only these namespace permissions).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyScope {
    /// `owner`, `admin`, `developer` or `read`.
    Role(String),
    /// Namespace name to `admin`, `write` or `read`.
    Namespaces(BTreeMap<String, String>),
}

impl fmt::Display for KeyScope {
    /// `role:developer`, or `payments:write,staging:read`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyScope::Role(role) => write!(f, "role:{role}"),
            KeyScope::Namespaces(namespaces) => {
                let parts: Vec<String> = namespaces.iter().map(|(ns, level)| format!("{ns}:{level}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl std::str::FromStr for KeyScope {
    type Err = String;

    /// The [`fmt::Display`] form back: `role:developer`, or `payments:write,staging:read`
    /// (spaces around the commas allowed). Whether the names exist is the server's to say.
    fn from_str(text: &str) -> Result<KeyScope, String> {
        let text = text.trim();
        if let Some(role) = text.strip_prefix("role:") {
            return match role.trim() {
                "" => Err("`role:` needs a role, such as role:developer".into()),
                role => Ok(KeyScope::Role(role.to_string())),
            };
        }
        let mut namespaces = BTreeMap::new();
        for part in text.split(',').map(str::trim) {
            let Some((namespace, level)) = part.split_once(':').filter(|(n, l)| !n.is_empty() && !l.is_empty()) else {
                return Err(format!("`{part}` is not NAMESPACE:PERMISSION, such as payments:write"));
            };
            if let Some(earlier) = namespaces.insert(namespace.to_string(), level.to_string()) {
                if earlier != level {
                    return Err(format!("the namespace {namespace} is named twice, with {earlier} and with {level}"));
                }
            }
        }
        Ok(KeyScope::Namespaces(namespaces))
    }
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A duration such as `30d`, `4d12h`, `90m`, `2y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// An RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_expires: Option<bool>,
    /// Defaults to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
    /// A narrower scope than the owner's permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<KeyScope>,
}

/// Most keys one `POST /v1/keys/batch` may create.
pub const MAX_KEYS_PER_BATCH: usize = 1000;

/// `POST /v1/keys/batch`: 1 to [`MAX_KEYS_PER_BATCH`] creates, each exactly what `POST /v1/keys`
/// takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateKeysRequest {
    pub keys: Vec<CreateKeyRequest>,
}

/// `200` answer to `POST /v1/keys/batch`: one result per requested key, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedKeys {
    pub results: Vec<KeyBatchResult>,
}

/// What became of one key of a batch: the status a single `POST /v1/keys` would have answered,
/// and its body — `key` and `secret` (shown this once) on `201`, `error` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KeyBatchResult {
    /// `201` when the key was created; otherwise the error's HTTP status.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

/// `POST /v1/keys/leaked`: a key's secret found where it should not be. Needs no credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// The leaked secret, `klk_...`.
    pub key: String,
    /// Where it was found, e.g. a secret scanner's URL (kept up to 500 characters).
    #[serde(default)]
    pub source: String,
}

/// `POST /v1/keys/leaked` answer: always `202 {}`, whether or not the secret named a key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LeakReportAccepted {}

/// KEY: a key's metadata. Never the secret, never its digest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner: Identity,
    pub account: String,
    /// The namespace of a key owned by a namespace-scoped service account.
    #[schema(required)]
    pub namespace: Option<String>,
    #[schema(required)]
    pub scope: Option<KeyScope>,
    /// `enabled`, `disabled`, `expired` or `deleted`.
    pub state: String,
    pub locked: bool,
    /// The last 4 characters of the secret.
    pub hint: String,
    pub created_at: String,
    pub created_by: Actor,
    #[schema(required)]
    pub expires_at: Option<String>,
    #[schema(required)]
    pub last_used_at: Option<String>,
    /// Ledger sequence number of the key's latest state-changing event.
    pub revision: u64,
}

/// `201` answer to a create: the secret is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedKey {
    pub key: Key,
    pub secret: String,
}

/// `GET /v1/keys/summary`: the keys the caller may see, counted by state now, and the enabled
/// ones that expire within 7 and within 30 days.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KeySummary {
    pub enabled: u64,
    pub disabled: u64,
    pub expired: u64,
    pub deleted: u64,
    pub expiring_within_7d: u64,
    pub expiring_within_30d: u64,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KeyList {
    pub keys: Vec<Key>,
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// `PATCH /v1/keys/{id}`: fields left out keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /v1/keys/{id}/rotate`. Without an expiry the new key lives 90 days (or never expires,
/// if the old one never expires); `grace` defaults to `24h`, and `"0"` ends it at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// `201` answer to a rotate: the new key, its secret (shown once), and the old key's id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RotatedKey {
    pub key: Key,
    pub secret: String,
    pub replaces: String,
}

/// `POST /v1/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_index: Option<u64>,
}

/// The answer to a verification: `valid` with the identity, or `code` saying why not.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct VerifyResponse {
    pub valid: bool,
    /// Set when `valid` is false: `malformed`, `not_found`, `disabled`, `expired`,
    /// `deleted`, `identity_disabled` or `forbidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Present on a valid answer; `null` for a key that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reads_back_what_it_displays() {
        for scope in [
            KeyScope::Role("developer".into()),
            KeyScope::Namespaces([("payments".into(), "write".into()), ("staging".into(), "read".into())].into()),
        ] {
            assert_eq!(scope.to_string().parse::<KeyScope>(), Ok(scope.clone()));
        }
        assert_eq!(
            " payments:write , staging:read ".parse::<KeyScope>().unwrap().to_string(),
            "payments:write,staging:read"
        );
        for bad in ["", "role:", "payments", "payments:write,", ":read", "a:read,a:write"] {
            assert!(bad.parse::<KeyScope>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scope_shapes() {
        let role: KeyScope = serde_json::from_str(r#"{"role":"developer"}"#).unwrap();
        assert_eq!(role, KeyScope::Role("developer".into()));
        assert_eq!(serde_json::to_string(&role).unwrap(), r#"{"role":"developer"}"#);
        assert_eq!(role.to_string(), "role:developer");
        let ns: KeyScope = serde_json::from_str(r#"{"namespaces":{"payments":"write","a":"read"}}"#).unwrap();
        assert_eq!(serde_json::to_string(&ns).unwrap(), r#"{"namespaces":{"a":"read","payments":"write"}}"#);
        assert_eq!(ns.to_string(), "a:read,payments:write");
        for bad in [r#"{}"#, r#"{"role":"read","namespaces":{}}"#, r#"{"colour":"red"}"#, r#""read""#] {
            assert!(serde_json::from_str::<KeyScope>(bad).is_err(), "{bad}");
        }
    }
}
