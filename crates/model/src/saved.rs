//! The state as saved beside the ledger, so that a restart replays only the events after it
//! instead of the whole ledger.
//!
//! Only what the events made is saved; what is derived from it — the verification index, each
//! owner's keys, the expiry queue, each user's open code — is rebuilt on load, so the saved
//! form cannot disagree with itself. Encoding, checksums and the ledger-position check are the
//! storage's (`keyledger_ledger::saved_state`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::account::{Account, AccountLimits, LeakAction, Namespace};
use crate::chain::ChainHead;
use crate::checkpoint::{CheckpointMark, PublicKey};
use crate::identity::{Enrollment, ServiceAccount, User};
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId, WebhookId};
use crate::key::{IndexEntry, KeyRecord, KeyState};
use crate::state::State;
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;
use crate::webhook::{Delivery, Webhook};

/// The state to save, borrowed: serialized in place, nothing copied. Encodes exactly as
/// [`SavedState`] decodes (fields in the same order).
#[derive(Serialize)]
pub struct SavedStateRef<'a> {
    head: &'a ChainHead,
    account_heads: &'a BTreeMap<AccountId, ChainHead>,
    accounts: &'a BTreeMap<AccountId, Account>,
    limits: &'a BTreeMap<AccountId, AccountLimits>,
    leak_actions: &'a BTreeMap<AccountId, LeakAction>,
    users: &'a BTreeMap<UserId, User>,
    service_accounts: &'a BTreeMap<ServiceAccountId, ServiceAccount>,
    namespaces: &'a BTreeMap<(AccountId, String), Namespace>,
    keys: &'a BTreeMap<KeyId, Box<KeyRecord>>,
    signers: &'a BTreeMap<PublicKey, u64>,
    last_checkpoint: &'a Option<CheckpointMark>,
    last_time: &'a Option<Timestamp>,
    enrollments: &'a BTreeMap<KeyDigest, Enrollment>,
    leaked: &'a BTreeSet<KeyId>,
    usage_granularity: &'a Option<Span>,
    webhooks: &'a BTreeMap<WebhookId, Webhook>,
    webhook_deliveries: &'a BTreeMap<WebhookId, VecDeque<Delivery>>,
    expiry_warned: &'a BTreeMap<KeyId, Timestamp>,
}

/// A saved state as read back; [`State::from_saved`] makes it a state again.
#[derive(Deserialize)]
pub struct SavedState {
    head: ChainHead,
    account_heads: BTreeMap<AccountId, ChainHead>,
    accounts: BTreeMap<AccountId, Account>,
    limits: BTreeMap<AccountId, AccountLimits>,
    leak_actions: BTreeMap<AccountId, LeakAction>,
    users: BTreeMap<UserId, User>,
    service_accounts: BTreeMap<ServiceAccountId, ServiceAccount>,
    namespaces: BTreeMap<(AccountId, String), Namespace>,
    keys: BTreeMap<KeyId, Box<KeyRecord>>,
    signers: BTreeMap<PublicKey, u64>,
    last_checkpoint: Option<CheckpointMark>,
    last_time: Option<Timestamp>,
    enrollments: BTreeMap<KeyDigest, Enrollment>,
    leaked: BTreeSet<KeyId>,
    usage_granularity: Option<Span>,
    webhooks: BTreeMap<WebhookId, Webhook>,
    webhook_deliveries: BTreeMap<WebhookId, VecDeque<Delivery>>,
    expiry_warned: BTreeMap<KeyId, Timestamp>,
}

impl SavedState {
    /// The ledger position the state was saved at.
    pub fn head(&self) -> ChainHead {
        self.head
    }
}

impl State {
    /// This state in its saved form.
    pub fn to_saved(&self) -> SavedStateRef<'_> {
        SavedStateRef {
            head: &self.head,
            account_heads: &self.account_heads,
            accounts: &self.accounts,
            limits: &self.limits,
            leak_actions: &self.leak_actions,
            users: &self.users,
            service_accounts: &self.service_accounts,
            namespaces: &self.namespaces,
            keys: &self.keys,
            signers: &self.signers,
            last_checkpoint: &self.last_checkpoint,
            last_time: &self.last_time,
            enrollments: &self.enrollments,
            leaked: &self.leaked,
            usage_granularity: &self.usage_granularity,
            webhooks: &self.webhooks,
            webhook_deliveries: &self.webhook_deliveries,
            expiry_warned: &self.expiry_warned,
        }
    }

    /// The state a saved one describes, with everything derived rebuilt as `evolve` keeps it.
    pub fn from_saved(saved: SavedState) -> State {
        let SavedState {
            head,
            account_heads,
            accounts,
            limits,
            leak_actions,
            users,
            service_accounts,
            namespaces,
            keys,
            signers,
            last_checkpoint,
            last_time,
            enrollments,
            leaked,
            usage_granularity,
            webhooks,
            webhook_deliveries,
            expiry_warned,
        } = saved;
        let mut state = State {
            head,
            account_heads,
            accounts,
            limits,
            leak_actions,
            users,
            service_accounts,
            namespaces,
            signers,
            last_checkpoint,
            last_time,
            leaked,
            usage_granularity,
            webhooks,
            webhook_deliveries,
            expiry_warned,
            ..State::default()
        };
        // Built in bulk: the index at its final size, the sets from sorted runs (a B-tree built
        // from sorted input is a fraction of the inserts' cost at a million keys).
        state.index = crate::index::DigestIndex::with_capacity(keys.len());
        let mut by_owner: Vec<(crate::owner::Owner, KeyId)> = Vec::with_capacity(keys.len());
        let mut expiring: Vec<(Timestamp, KeyId)> = Vec::new();
        for record in keys.values() {
            let entry = IndexEntry {
                key: record.id,
                owner: record.owner,
                state: record.state,
                expires_at: record.expires_at,
                scoped: record.scope.is_some(),
            };
            state.index.insert(record.digest, entry);
            if let Some(at) = record.last_used_at {
                state.index.set_recorded(&record.digest, at);
            }
            by_owner.push((record.owner, record.id));
            // Only a key that can still expire waits for its `expired` event.
            if let (Some(at), KeyState::Enabled | KeyState::Disabled) = (record.expires_at, record.state) {
                expiring.push((at, record.id));
            }
        }
        by_owner.sort_unstable();
        for run in by_owner.chunk_by(|a, b| a.0 == b.0) {
            state.keys_by_owner.insert(run[0].0, run.iter().map(|(_, key)| *key).collect());
        }
        expiring.sort_unstable();
        state.expiry_queue = expiring.into_iter().collect();
        state.keys = keys;
        state.enrollment_of_user = enrollments.iter().map(|(code, e)| (e.user, *code)).collect();
        state.enrollments = enrollments;
        state
    }
}
