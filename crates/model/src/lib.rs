//! keyledger's pure domain model.
//!
//! Main types: [`token`] (the `klk_…` key format, its checksum and SHA3 digest), [`Proposal`]
//! (what goes into the Raft log), [`Event`]/[`LedgerEntry`] (what the ledger keeps, hash-chained),
//! [`State`] (accounts, identities, namespaces, keys and the verification index) with
//! [`State::execute`] (validate + seal + apply) and [`State::verify`] (the hot path),
//! [`authz`] (who may do what, in one place), [`visibility`] (who may see what), and
//! [`merkle`] (an RFC 6962 tree, so that a log's history can be proven with short inclusion and
//! consistency proofs).
//!
//! Design decision: this crate does no I/O and reads no clock or random source of its own.
//! Time, ids and secrets arrive inside proposals, fixed by the proposing node, so applying the
//! same log on any node yields the same bytes — the property the whole cluster rests on.

pub mod account;
pub mod as_of;
pub mod authz;
mod base62;
pub mod chain;
pub mod checkpoint;
mod decide;
pub mod defaults;
pub mod event;
mod evolve;
pub mod hex;
pub mod idempotency;
pub mod identity;
pub mod ids;
mod index;
pub mod key;
pub mod merkle;
pub mod owner;
pub mod permissions;
pub mod proposal;
pub mod saved;
pub mod state;
pub mod summary;
pub mod time;
pub mod token;
pub mod usage;
pub mod verify;
pub mod visibility;
pub mod webhook;

pub use account::{Account, AccountLimits, AccountSettings, LeakAction, Namespace};
pub use authz::{KeyAction, OwnerClass, Principal, Rank, Refusal};
pub use chain::{ChainHash, ChainHead};
pub use checkpoint::{Checkpoint, CheckpointMark, CheckpointSigner, PublicKey, Signature};
pub use event::{Event, EventBody, LedgerEntry};
pub use identity::{Binding, Enrollment, IdentityState, ServiceAccount, User, ENROLLMENT_REFUSED, ENROLLMENT_VALIDITY};
pub use ids::{AccountId, BadId, KeyId, ServiceAccountId, UserId, WebhookId};
pub use index::Usage;
pub use key::{KeyRecord, KeyState};
pub use merkle::TreeHash;
pub use owner::{Actor, Owner};
pub use permissions::{Grant, Level, Permission, Role, Scope};
pub use proposal::{
    Command, DenialRecord, LimitsPatch, NewKey, Outcome, Proposal, RejectCode, Rejection, SettingsPatch, Subject,
    UseRecord,
};
pub use state::State;
pub use summary::KeySummary;
pub use time::{Span, TimeError, Timestamp};
pub use token::{KeyDigest, Malformed, SecretToken};
pub use usage::DEFAULT_USAGE_GRANULARITY;
pub use verify::{IdentityRef, Invalid, StateReader, Verdict, Verified};
