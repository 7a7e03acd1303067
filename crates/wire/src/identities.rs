//! Users, service accounts, namespaces, account settings and accounts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// USER.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    /// `owner`, `admin`, `developer` or `read`.
    pub role: String,
    /// Namespace name to `admin`, `write` or `read`.
    pub namespaces: BTreeMap<String, String>,
    /// `enabled`, `disabled` or `deleted`.
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub name: String,
    pub role: String,
}

/// `POST /v1/users` answer: the user and its one-time enrollment code, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedUser {
    pub user: User,
    /// `kle_...`: redeemed once with `POST /v1/enroll` within 24 h for the user's own key.
    pub enrollment_code: String,
}

/// `POST /v1/users/{id}/enrollment` answer: a fresh code; the previous one stops working.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EnrollmentCode {
    pub enrollment_code: String,
    /// RFC 3339: the code cannot be redeemed from then on.
    pub expires_at: String,
}

/// `POST /v1/enroll`: redeems an enrollment code for the user's own key. Expiry as for
/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// `kle_...`.
    pub code: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A duration such as `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// An RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_expires: Option<bool>,
}

/// `PATCH /v1/users/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: String,
}

/// `PUT /v1/users/{id}/namespaces/{namespace}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamespacePermissionRequest {
    /// `admin`, `write` or `read`.
    pub permission: String,
}

/// `GET /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UserList {
    pub users: Vec<User>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// SERVICE_ACCOUNT: account-scoped (`role`) or namespace-scoped (`namespace` + `permission`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: String,
    pub name: String,
    #[schema(required)]
    pub role: Option<String>,
    #[schema(required)]
    pub namespace: Option<String>,
    #[schema(required)]
    pub permission: Option<String>,
    /// `enabled`, `disabled` or `deleted`.
    pub state: String,
    pub created_at: String,
}

/// `POST /v1/service-accounts`: `name` and `role`, or `name`, `namespace` and `permission`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

/// `GET /v1/service-accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ServiceAccountList {
    pub service_accounts: Vec<ServiceAccount>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// A namespace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub created_at: String,
}

/// `POST /v1/namespaces`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    pub name: String,
}

/// `GET /v1/namespaces`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct NamespaceList {
    pub namespaces: Vec<Namespace>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// SETTINGS: the account's key policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Settings {
    pub key_creation_enabled: bool,
    /// A duration such as `730d`.
    pub max_key_lifetime: String,
    pub allow_never_expiring: bool,
    pub max_keys_per_user: u32,
    pub max_keys_per_service_account: u32,
    /// Cap on users that are not deleted (over it: `409 limit_exceeded`).
    pub max_users: u32,
    /// Cap on service accounts that are not deleted.
    pub max_service_accounts: u32,
    pub max_namespaces: u32,
    /// The cluster operator's cap on accounts, `default` included: shown for account `default`
    /// only, `null` elsewhere.
    pub max_accounts: Option<u32>,
    /// What a leak report does to the key: `disable`, `delete` or `none`.
    pub action_when_leaked: String,
    /// The cluster's granularity of `last_used_at` (a duration such as `1h`): a key's use is
    /// recorded at most once per this period, so `last_used_at` is exact to it.
    pub last_used_granularity: String,
}

/// `PATCH /v1/settings`: fields left out keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_creation_enabled: Option<bool>,
    /// A duration such as `730d` (between 1 day and 10 years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_key_lifetime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_never_expiring: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys_per_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys_per_service_account: Option<u32>,
    /// 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u32>,
    /// 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_service_accounts: Option<u32>,
    /// 1 to 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_namespaces: Option<u32>,
    /// 1 to 100000; account `default` only, by an owner (the cluster operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_accounts: Option<u32>,
    /// `disable`, `delete` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_when_leaked: Option<String>,
    /// A duration between `1m` and `7d`; account `default` only, by an owner (the cluster
    /// operator): it applies to every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_granularity: Option<String>,
}

/// `POST /v1/accounts`: another account and its owner, who gets an enrollment code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter.
    pub name: String,
    pub owner_name: String,
}

/// An account as `GET /v1/accounts` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountSummary {
    pub name: String,
    pub created_at: String,
}

/// `GET /v1/accounts`: one page of the cluster's accounts, in name order (the operator only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountList {
    pub accounts: Vec<AccountSummary>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// `201` answer to `POST /v1/accounts`: the new owner's one-time enrollment code, shown here
/// once; the owner redeems it with `POST /v1/enroll` for its own first key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedAccount {
    pub account: String,
    pub owner: User,
    /// `kle_…`: single use, valid until `expires_at`.
    pub enrollment_code: String,
    /// RFC 3339.
    pub expires_at: String,
}
