//! The JSON shapes of keyledger's HTTP API (`api.md` is the contract).
//!
//! Both the server (`keyledger-api`) and the typed client (`keyledger-client`) use these
//! types, so a field renamed on one side cannot silently drift from the other. The crate
//! holds plain data only: no validation, no HTTP. Request types refuse unknown fields,
//! because a misspelt optional field silently ignored is a bug the caller never sees.
//!
//! Modules, all re-exported here: [`keys`] (KEY, create/update/rotate, verification),
//! [`identities`] (USER, SERVICE_ACCOUNT, namespaces, settings, accounts), [`audit`] (EVENT,
//! event pages, key history) and [`ops`] (cluster status and health). Roles, permission levels and states travel as strings
//! (`"developer"`, `"write"`, `"enabled"`): the server says what it accepts, and a client built
//! against an older server still reads answers that carry a value it does not know.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod audit;
pub mod identities;
pub mod keys;
pub mod ops;
pub mod webhooks;

pub use audit::*;
pub use identities::*;
pub use keys::*;
pub use ops::*;
pub use webhooks::*;

/// Header carrying the Raft log index a write committed at (and `min_index` for reads).
pub const INDEX_HEADER: &str = "x-keyledger-index";
/// Header carrying the request id, taken from the request or made by the server.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Every error answer: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_found`, `key_locked`, `unavailable`.
    pub code: String,
    /// One human sentence.
    pub message: String,
    #[serde(default)]
    #[schema(required)]
    pub request_id: Option<String>,
}

/// `user` or `service_account`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    User,
    ServiceAccount,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::User => "user",
            OwnerKind::ServiceAccount => "service_account",
        }
    }
}

/// A reference to a key's owner in a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OwnerRef {
    pub kind: OwnerKind,
    pub id: String,
}

/// An identity as shown in answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Identity {
    pub kind: OwnerKind,
    pub id: String,
    pub name: String,
}

/// Who caused an event: an identity and the key it used, or the cluster itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `service_account` or `system`.
    pub kind: String,
    #[schema(required)]
    pub id: Option<String>,
    #[schema(required)]
    pub key_id: Option<String>,
}
