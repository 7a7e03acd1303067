//! The state every node builds from the ledger: accounts, identities, namespaces, keys, and
//! the in-memory verification index.
//!
//! This file holds the [`State`] struct and its queries; the domain types it holds live in
//! `account.rs`, `identity.rs` and `key.rs`. Two functions change it, in the usual
//! decide/evolve split: [`State::execute`] (in `decide/`) validates a proposal against the
//! current state and turns it into sealed events, and [`State::evolve`] (in `evolve.rs`)
//! applies one event. Rebuilding from the ledger is `evolve` over every
//! stored entry, so the live state and a rebuilt one are equal by construction (a property test
//! checks it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::account::{Account, AccountLimits, LeakAction, Namespace};
use crate::authz::{OwnerClass, Principal, Rank};
use crate::chain::ChainHead;
use crate::checkpoint::{CheckpointMark, PublicKey};
use crate::event::LedgerEntry;
use crate::identity::{Enrollment, IdentityState, ServiceAccount, User};
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId, WebhookId};
use crate::index::DigestIndex;
use crate::key::{KeyRecord, KeyState};
use crate::owner::Owner;
use crate::permissions::{Grant, Role, Scope};
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;
use crate::webhook::{Delivery, Webhook};

/// Everything built from the ledger. Equal states mean equal histories were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) head: ChainHead,
    pub(crate) account_heads: BTreeMap<AccountId, ChainHead>,
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    /// Caps of the accounts that changed them (the others have the defaults).
    pub(crate) limits: BTreeMap<AccountId, AccountLimits>,
    /// `action_when_leaked` of the accounts that changed it (the others `disable`).
    pub(crate) leak_actions: BTreeMap<AccountId, LeakAction>,
    pub(crate) users: BTreeMap<UserId, User>,
    pub(crate) service_accounts: BTreeMap<ServiceAccountId, ServiceAccount>,
    pub(crate) namespaces: BTreeMap<(AccountId, String), Namespace>,
    /// Boxed: a B-tree node then holds 11 pointers rather than 11 records of 320 bytes, and
    /// keys created in id order leave nodes half full (half the memory of the whole state).
    pub(crate) keys: BTreeMap<KeyId, Box<KeyRecord>>,
    pub(crate) keys_by_owner: BTreeMap<Owner, BTreeSet<KeyId>>,
    /// Keys that will expire and have no `expired` event yet, by expiry time.
    pub(crate) expiry_queue: BTreeSet<(Timestamp, KeyId)>,
    pub(crate) index: DigestIndex,
    /// Registered checkpoint-signing keys and the node each belongs to.
    pub(crate) signers: BTreeMap<PublicKey, u64>,
    pub(crate) last_checkpoint: Option<CheckpointMark>,
    /// The latest event time so far: no later event is decided or recorded earlier.
    pub(crate) last_time: Option<Timestamp>,
    /// Open enrollment codes by digest (at most one per user: a new one voids the old).
    pub(crate) enrollments: BTreeMap<KeyDigest, Enrollment>,
    pub(crate) enrollment_of_user: BTreeMap<UserId, KeyDigest>,
    /// Keys with a `leaked` event: a key is reported at most once.
    pub(crate) leaked: BTreeSet<KeyId>,
    /// The cluster's `last_used_granularity`, once the operator changed it.
    pub(crate) usage_granularity: Option<Span>,
    pub(crate) webhooks: BTreeMap<WebhookId, Webhook>,
    /// The latest [`crate::webhook::RECENT_DELIVERIES`] deliveries of each webhook, oldest first.
    pub(crate) webhook_deliveries: BTreeMap<WebhookId, VecDeque<Delivery>>,
    /// The expiry each key not yet expired or deleted was last warned of (`expiring_soon`).
    pub(crate) expiry_warned: BTreeMap<KeyId, Timestamp>,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Rebuilds a state from ledger entries, oldest first.
    pub fn rebuild<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> State {
        let mut state = State::new();
        for entry in entries {
            state.evolve(entry);
        }
        state
    }

    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Registered checkpoint-signing keys, with the node each belongs to.
    pub fn signers(&self) -> impl Iterator<Item = (&PublicKey, u64)> {
        self.signers.iter().map(|(key, node)| (key, *node))
    }

    pub fn is_signer(&self, key: &PublicKey) -> bool {
        self.signers.contains_key(key)
    }

    pub fn last_checkpoint(&self) -> Option<CheckpointMark> {
        self.last_checkpoint
    }

    pub fn account_head(&self, account: &AccountId) -> ChainHead {
        self.account_heads.get(account).copied().unwrap_or(ChainHead::EMPTY)
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// The caps of `account` (the defaults until it changes them).
    pub fn limits(&self, account: &AccountId) -> AccountLimits {
        self.limits.get(account).cloned().unwrap_or_default()
    }

    /// What a leak report does to a key of `account` (`disable` until it changes it).
    pub fn leak_action(&self, account: &AccountId) -> LeakAction {
        self.leak_actions.get(account).copied().unwrap_or_default()
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }

    /// Users in id (= creation) order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Users in id (= creation) order, starting after `after`.
    pub fn users_after(&self, after: Option<UserId>) -> impl Iterator<Item = &User> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.users.range((lower, Bound::Unbounded)).map(|(_, u)| u)
    }

    /// Service accounts in id (= creation) order, starting after `after`.
    pub fn service_accounts_after(&self, after: Option<ServiceAccountId>) -> impl Iterator<Item = &ServiceAccount> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.service_accounts.range((lower, Bound::Unbounded)).map(|(_, s)| s)
    }

    /// The namespaces of `account` in name order, starting after the name `after`.
    pub fn namespaces_after<'a>(
        &'a self,
        account: &'a AccountId,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a Namespace> + 'a {
        use std::ops::Bound;
        let lower = match after {
            Some(name) => Bound::Excluded((account.clone(), name.to_string())),
            None => Bound::Included((account.clone(), String::new())),
        };
        self.namespaces.range((lower, Bound::Unbounded)).map(|(_, n)| n).take_while(move |n| &n.account == account)
    }

    /// Accounts in name order, starting after `after`.
    pub fn accounts_after(&self, after: Option<&AccountId>) -> impl Iterator<Item = &Account> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        self.accounts.range((lower, Bound::Unbounded)).map(|(_, a)| a)
    }

    pub fn service_account(&self, id: &ServiceAccountId) -> Option<&ServiceAccount> {
        self.service_accounts.get(id)
    }

    pub fn service_accounts(&self) -> impl Iterator<Item = &ServiceAccount> {
        self.service_accounts.values()
    }

    pub fn namespace(&self, account: &AccountId, name: &str) -> Option<&Namespace> {
        self.namespaces.get(&(account.clone(), name.to_string()))
    }

    /// Users of `account` that are not deleted.
    pub fn live_user_count(&self, account: &AccountId) -> usize {
        self.users.values().filter(|u| &u.account == account && u.state != IdentityState::Deleted).count()
    }

    /// Service accounts of `account` that are not deleted.
    pub fn live_service_account_count(&self, account: &AccountId) -> usize {
        self.service_accounts.values().filter(|s| &s.account == account && s.state != IdentityState::Deleted).count()
    }

    pub fn namespaces_of<'a>(&'a self, account: &'a AccountId) -> impl Iterator<Item = &'a Namespace> + 'a {
        self.namespaces.values().filter(move |n| &n.account == account)
    }

    pub fn key(&self, id: &KeyId) -> Option<&KeyRecord> {
        self.keys.get(id).map(|k| &**k)
    }

    /// Keys in id (= creation) order, starting after `after`.
    pub fn keys_after(&self, after: Option<KeyId>) -> impl Iterator<Item = &KeyRecord> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.keys.range((lower, Bound::Unbounded)).map(|(_, k)| &**k)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The open enrollment code with this digest, whether or not it has expired.
    pub fn enrollment(&self, code: &KeyDigest) -> Option<Enrollment> {
        self.enrollments.get(code).copied()
    }

    /// True once a `leaked` event names the key.
    pub fn is_leaked(&self, key: &KeyId) -> bool {
        self.leaked.contains(key)
    }

    /// The key a digest belongs to, if any.
    pub fn key_by_digest(&self, digest: &KeyDigest) -> Option<&KeyRecord> {
        self.index.get(digest).and_then(|entry| self.key(&entry.key))
    }

    #[inline]
    /// Keys that will expire after `now` and no later than `until`, in expiry order: enabled
    /// and disabled ones, since deleted and expired keys have nothing left to expire.
    pub fn keys_expiring(&self, now: Timestamp, until: Timestamp) -> impl Iterator<Item = &KeyRecord> {
        use std::ops::Bound;
        let last = KeyId::from_bytes([u8::MAX; 16]);
        self.expiry_queue
            .range((Bound::Excluded((now, last)), Bound::Included((until, last))))
            .filter_map(|(_, id)| self.keys.get(id).map(|k| &**k))
    }

    /// Up to `limit` keys whose expiry has passed at `now` and that have no `expired` event yet.
    pub fn due_expiries(&self, now: Timestamp, limit: usize) -> Vec<KeyId> {
        self.expiry_queue.iter().take_while(|(at, _)| *at <= now).take(limit).map(|(_, id)| *id).collect()
    }

    pub fn webhook(&self, id: &WebhookId) -> Option<&Webhook> {
        self.webhooks.get(id)
    }

    /// Every webhook, in id (= creation) order.
    pub fn webhooks(&self) -> impl Iterator<Item = &Webhook> {
        self.webhooks.values()
    }

    /// The webhooks of `account` in id (= creation) order, starting after `after`.
    pub fn webhooks_after<'a>(
        &'a self,
        account: &'a AccountId,
        after: Option<WebhookId>,
    ) -> impl Iterator<Item = &'a Webhook> + 'a {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.webhooks.range((lower, Bound::Unbounded)).map(|(_, w)| w).filter(move |w| &w.account == account)
    }

    /// The webhook's recent deliveries (the latest [`crate::webhook::RECENT_DELIVERIES`]),
    /// newest first, those at positions below `before` if given.
    pub fn webhook_deliveries(&self, id: &WebhookId, before: Option<u64>) -> impl Iterator<Item = &Delivery> {
        self.webhook_deliveries
            .get(id)
            .into_iter()
            .flat_map(|d| d.iter().rev())
            .filter(move |d| before.is_none_or(|b| d.position < b))
    }

    /// Up to `limit` enabled keys expiring after `now` and by `now + window` that have not
    /// been warned of that expiry yet.
    pub fn due_expiry_warnings(&self, now: Timestamp, window: Span, limit: usize) -> Vec<KeyId> {
        let until = Timestamp(now.0.saturating_add(window.0));
        self.expiry_queue
            .range((now, KeyId::from_bytes([0; 16]))..)
            .take_while(|(at, _)| *at <= until)
            .filter(|(at, id)| *at > now && self.expiry_warned.get(id) != Some(at))
            .filter(|(_, id)| self.keys.get(id).is_some_and(|k| k.state == KeyState::Enabled))
            .take(limit)
            .map(|(_, id)| *id)
            .collect()
    }

    /// The expiry key `key` was last warned of, if it was.
    pub fn expiry_warned(&self, key: &KeyId) -> Option<Timestamp> {
        self.expiry_warned.get(key).copied()
    }

    /// The display name of an identity.
    pub fn owner_name(&self, owner: &Owner) -> Option<&str> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| u.name.as_str()),
            Owner::ServiceAccount(id) => self.service_accounts.get(id).map(|s| s.name.as_str()),
        }
    }

    /// The account an identity belongs to.
    pub fn owner_account(&self, owner: &Owner) -> Option<&AccountId> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| &u.account),
            Owner::ServiceAccount(id) => self.service_accounts.get(id).map(|s| &s.account),
        }
    }

    /// The identity's state (enabled, disabled, deleted).
    pub fn owner_state(&self, owner: &Owner) -> Option<IdentityState> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| u.state),
            Owner::ServiceAccount(id) => self.service_accounts.get(id).map(|s| s.state),
        }
    }

    /// The account and table column of an identity.
    pub fn owner_class(&self, owner: &Owner) -> Option<(&AccountId, OwnerClass<'_>)> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| (&u.account, OwnerClass::User)),
            Owner::ServiceAccount(id) => self.service_accounts.get(id).map(|s| match s.namespace() {
                None => (&s.account, OwnerClass::AccountServiceAccount),
                Some(ns) => (&s.account, OwnerClass::NamespaceServiceAccount(ns)),
            }),
        }
    }

    /// The account role of an identity (`None` for a namespace-scoped service account).
    pub fn identity_role(&self, owner: &Owner) -> Option<Role> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| u.role),
            Owner::ServiceAccount(id) => self.service_accounts.get(id).and_then(ServiceAccount::role),
        }
    }

    /// How an identity ranks (see [`Rank`]).
    pub fn identity_rank(&self, owner: &Owner) -> Rank {
        Rank::of_role(self.identity_role(owner))
    }

    /// How a key with `scope` of identity `owner` ranks: the identity's role narrowed by the scope.
    pub fn key_rank(&self, owner: &Owner, scope: Option<&Scope>) -> Rank {
        Rank::of_key(self.identity_role(owner), scope)
    }

    /// The namespace a key belongs to: its owner's, for a namespace-scoped service account.
    pub fn key_namespace(&self, key: &KeyRecord) -> Option<&str> {
        match key.owner {
            Owner::ServiceAccount(id) => self.service_accounts.get(&id).and_then(|s| s.namespace()),
            Owner::User(_) => None,
        }
    }

    /// The identity's current grant (nothing for a disabled or deleted identity).
    pub fn identity_grant(&self, owner: &Owner) -> Option<Grant> {
        match owner {
            Owner::User(id) => self.users.get(id).filter(|u| u.state == IdentityState::Enabled).map(User::grant),
            Owner::ServiceAccount(id) => {
                self.service_accounts.get(id).filter(|s| s.state == IdentityState::Enabled).map(ServiceAccount::grant)
            }
        }
    }

    /// The caller behind key `key_id` at `now`, with its effective rights — or `None` when that
    /// key cannot authenticate (unknown, not enabled, expired, identity not enabled).
    pub fn principal(&self, key_id: &KeyId, now: Timestamp) -> Option<Principal> {
        let key = self.keys.get(key_id)?;
        if key.state_at(now) != KeyState::Enabled {
            return None;
        }
        let grant = self.identity_grant(&key.owner)?.narrowed_by(key.scope.as_ref());
        let role = Scope::narrow_role(key.scope.as_ref(), self.identity_role(&key.owner));
        Some(Principal { account: key.account.clone(), identity: key.owner, role, grant })
    }
}
