//! The state every node builds from the ledger: accounts, identities, namespaces, keys, and
//! the in-memory verification index.
//!
//! Two functions change it, in the usual decide/evolve split: [`State::execute`] (in
//! `decide.rs`) validates a proposal against the current state and turns it into sealed events,
//! and [`State::evolve`] applies one event. Rebuilding from the ledger is `evolve` over every
//! stored entry, so the live state and a rebuilt one are equal by construction (a property test
//! checks it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::authz::{OwnerClass, Principal, Rank};
use crate::checkpoint::{CheckpointMark, PublicKey};
use crate::event::{Actor, ChainHead, EventBody, LedgerEntry, Owner};
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId};
use crate::index::DigestIndex;
use crate::permissions::{Grant, Level, Scope};
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;

/// A role in an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Read,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The account-wide permission level the role grants.
    pub fn level(self) -> Level {
        match self {
            Role::Owner | Role::Admin => Level::Admin,
            Role::Developer => Level::Write,
            Role::Read => Level::Read,
        }
    }

    /// `owner` > `admin` > `developer` > `read`.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Developer => 1,
            Role::Read => 0,
        }
    }

    /// The weaker of two roles (a key scoped to `developer` of an `owner` acts as `developer`).
    pub fn min(self, other: Role) -> Role {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }
}

/// Per-account policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    pub key_creation_enabled: bool,
    pub max_key_lifetime: Span,
    pub allow_never_expiring: bool,
    pub max_keys_per_user: u32,
    pub max_keys_per_service_account: u32,
}

impl Default for AccountSettings {
    fn default() -> AccountSettings {
        AccountSettings {
            key_creation_enabled: true,
            max_key_lifetime: Span::years(2),
            allow_never_expiring: false,
            max_keys_per_user: 10,
            max_keys_per_service_account: 20,
        }
    }
}

/// What a `leaked` report does to the key it names (`action_when_leaked`). Kept apart from
/// [`AccountSettings`], whose encoding is part of existing events' canonical bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeakAction {
    #[default]
    Disable,
    Delete,
    /// Only the `leaked` event is written; the key stays as it is.
    None,
}

impl LeakAction {
    pub const ALL: [LeakAction; 3] = [LeakAction::Disable, LeakAction::Delete, LeakAction::None];

    pub fn as_str(self) -> &'static str {
        match self {
            LeakAction::Disable => "disable",
            LeakAction::Delete => "delete",
            LeakAction::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<LeakAction> {
        LeakAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Per-account caps on how many identities and namespaces it holds, and (on account `default`
/// only) the operator's cap on accounts. Kept apart from [`AccountSettings`] and [`Account`],
/// whose bincode encodings are chained into existing `account_created`/`settings_changed` events
/// and stored in idempotency records: caps arrive by `limits_changed` events, and an account that
/// never had one has the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Users not deleted.
    pub max_users: u32,
    /// Service accounts not deleted.
    pub max_service_accounts: u32,
    pub max_namespaces: u32,
    /// Accounts in the cluster, `default` included; read from account `default` only.
    pub max_accounts: u32,
}

impl Default for AccountLimits {
    fn default() -> AccountLimits {
        AccountLimits { max_users: 1000, max_service_accounts: 1000, max_namespaces: 100, max_accounts: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub created_at: Timestamp,
    pub settings: AccountSettings,
}

/// A user's open enrollment code, known by its digest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub user: UserId,
    pub expires_at: Timestamp,
}

/// The one answer for every code that cannot be redeemed, so it does not say which.
pub const ENROLLMENT_REFUSED: &str = "the enrollment code is not valid (unknown, used, replaced or expired)";

/// How long an enrollment code can be redeemed.
pub const ENROLLMENT_VALIDITY: Span = Span(24 * 3_600_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityState {
    Enabled,
    Disabled,
    Deleted,
}

impl IdentityState {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityState::Enabled => "enabled",
            IdentityState::Disabled => "disabled",
            IdentityState::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account: AccountId,
    pub name: String,
    pub role: Role,
    pub namespaces: BTreeMap<String, Level>,
    pub state: IdentityState,
    pub created_at: Timestamp,
}

impl User {
    pub fn grant(&self) -> Grant {
        Grant { account: Some(self.role.level()), namespaces: self.namespaces.clone() }
    }
}

/// What a service account is bound to: an account role (never `owner`), or one permission in
/// one namespace and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binding {
    Account(Role),
    Namespace { namespace: String, level: Level },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub account: AccountId,
    pub name: String,
    pub binding: Binding,
    pub state: IdentityState,
    pub created_at: Timestamp,
}

impl ServiceAccount {
    pub fn grant(&self) -> Grant {
        match &self.binding {
            Binding::Account(role) => Grant::account_wide(role.level()),
            Binding::Namespace { namespace, level } => {
                Grant { account: None, namespaces: BTreeMap::from([(namespace.clone(), *level)]) }
            }
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self.binding {
            Binding::Account(role) => Some(role),
            Binding::Namespace { .. } => None,
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match &self.binding {
            Binding::Account(_) => None,
            Binding::Namespace { namespace, .. } => Some(namespace),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub account: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    Expired,
    Deleted,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<KeyState> {
        [KeyState::Enabled, KeyState::Disabled, KeyState::Expired, KeyState::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A key's metadata as the admin API shows it (plus the digest, which it never shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub account: AccountId,
    pub owner: Owner,
    pub name: String,
    pub description: String,
    pub scope: Option<Scope>,
    pub hint: String,
    pub digest: KeyDigest,
    pub created_at: Timestamp,
    pub created_by: Actor,
    pub expires_at: Option<Timestamp>,
    pub state: KeyState,
    pub locked: bool,
    /// Seq of the latest state-changing event (`used` and `denied` do not count).
    pub revision: u64,
    pub last_used_at: Option<Timestamp>,
    pub use_count: u64,
    /// The key this one was rotated from, and the one it was rotated into.
    pub replaces: Option<KeyId>,
    pub replaced_by: Option<KeyId>,
}

impl KeyRecord {
    /// The state as of `now`: a key past its expiry is expired even before the `expired`
    /// event is written.
    pub fn state_at(&self, now: Timestamp) -> KeyState {
        match (self.state, self.expires_at) {
            (KeyState::Enabled | KeyState::Disabled, Some(at)) if now >= at => KeyState::Expired,
            (state, _) => state,
        }
    }

    /// Counts against its owner's limit: neither expired nor deleted at `now`.
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        !matches!(self.state_at(now), KeyState::Expired | KeyState::Deleted)
    }
}

/// What the verification index keeps per digest: exactly what a verification reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: KeyId,
    pub owner: Owner,
    pub state: KeyState,
    pub expires_at: Option<Timestamp>,
    /// The key has a scope: a permission check must read its record.
    pub scoped: bool,
}

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
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead::EMPTY
    }
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
    /// Up to `limit` keys whose expiry has passed at `now` and that have no `expired` event yet.
    pub fn due_expiries(&self, now: Timestamp, limit: usize) -> Vec<KeyId> {
        self.expiry_queue.iter().take_while(|(at, _)| *at <= now).take(limit).map(|(_, id)| *id).collect()
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
        let identity_grant = self.identity_grant(&key.owner)?;
        let identity_role = self.identity_role(&key.owner);
        let (role, grant) = match &key.scope {
            None => (identity_role, identity_grant),
            Some(scope) => {
                let role = match scope {
                    Scope::Role(scoped) => identity_role.map(|r| r.min(*scoped)),
                    Scope::Namespaces(_) => None,
                };
                (role, identity_grant.intersect(&scope.grant()))
            }
        };
        Some(Principal { account: key.account.clone(), identity: key.owner, role, grant })
    }

    /// Applies one event. Never fails: events were validated before they were sealed.
    pub fn evolve(&mut self, entry: &LedgerEntry) {
        let event = &entry.event;
        self.head = ChainHead { seq: event.seq, hash: event.hash };
        self.account_heads
            .insert(event.account.clone(), ChainHead { seq: event.account_seq, hash: event.account_hash });
        self.last_time = Some(self.last_time.map_or(event.time, |last| last.max(event.time)));
        let (seq, time, account) = (event.seq, event.time, &event.account);
        match &event.body {
            EventBody::AccountCreated { settings } => {
                let account = Account { id: account.clone(), created_at: time, settings: settings.clone() };
                self.accounts.insert(account.id.clone(), account);
            }
            EventBody::UserCreated { user, name, role } => {
                self.users.insert(
                    *user,
                    User {
                        id: *user,
                        account: account.clone(),
                        name: name.clone(),
                        role: *role,
                        namespaces: BTreeMap::new(),
                        state: IdentityState::Enabled,
                        created_at: time,
                    },
                );
            }
            EventBody::KeyCreated { key, owner, name, description, scope, hint, expires_at, .. } => {
                let Some(digest) = entry.digest else {
                    // Unreachable for validated events; without a digest the key cannot
                    // authenticate, so it is simply not indexed.
                    debug_assert!(false, "KeyCreated without digest");
                    return;
                };
                let record = KeyRecord {
                    id: *key,
                    account: account.clone(),
                    owner: *owner,
                    name: name.clone(),
                    description: description.clone(),
                    scope: scope.clone(),
                    hint: hint.clone(),
                    digest,
                    created_at: time,
                    created_by: event.actor,
                    expires_at: *expires_at,
                    state: KeyState::Enabled,
                    locked: false,
                    revision: seq,
                    last_used_at: None,
                    use_count: 0,
                    replaces: None,
                    replaced_by: None,
                };
                self.index.insert(
                    digest,
                    IndexEntry {
                        key: *key,
                        owner: *owner,
                        state: KeyState::Enabled,
                        expires_at: *expires_at,
                        scoped: scope.is_some(),
                    },
                );
                if let Some(at) = expires_at {
                    self.expiry_queue.insert((*at, *key));
                }
                self.keys_by_owner.entry(*owner).or_default().insert(*key);
                self.keys.insert(*key, Box::new(record));
            }
            EventBody::KeyEnabled { key } => self.set_key_state(*key, KeyState::Enabled, seq),
            EventBody::KeyDisabled { key } => self.set_key_state(*key, KeyState::Disabled, seq),
            EventBody::KeyDeleted { key } => self.set_key_state(*key, KeyState::Deleted, seq),
            EventBody::KeyExpired { key } => self.set_key_state(*key, KeyState::Expired, seq),
            EventBody::KeyUpdated { key, name, description } => {
                if let Some(record) = self.keys.get_mut(key) {
                    record.name = name.clone();
                    record.description = description.clone();
                    record.revision = seq;
                }
            }
            EventBody::KeyLocked { key } | EventBody::KeyUnlocked { key } => {
                if let Some(record) = self.keys.get_mut(key) {
                    record.locked = matches!(event.body, EventBody::KeyLocked { .. });
                    record.revision = seq;
                }
            }
            EventBody::KeyRotated { key, replacement, expires_at } => {
                if let Some(old) = self.keys.get_mut(key) {
                    if let Some(previous) = old.expires_at {
                        self.expiry_queue.remove(&(previous, *key));
                    }
                    old.expires_at = Some(*expires_at);
                    old.replaced_by = Some(*replacement);
                    old.revision = seq;
                    let digest = old.digest;
                    self.index.set_expiry(&digest, Some(*expires_at));
                    // Only a key that can still expire waits for its `expired` event.
                    if matches!(old.state, KeyState::Enabled | KeyState::Disabled) {
                        self.expiry_queue.insert((*expires_at, *key));
                    }
                }
                if let Some(new) = self.keys.get_mut(replacement) {
                    new.replaces = Some(*key);
                }
            }
            EventBody::KeyUsed { key, last_used_at, count } => {
                if let Some(record) = self.keys.get_mut(key) {
                    self.index.set_recorded(&record.digest, *last_used_at);
                    record.last_used_at = record.last_used_at.max(Some(*last_used_at));
                    record.use_count = record.use_count.saturating_add(*count);
                }
            }
            EventBody::Denied { .. } => {}
            EventBody::UserDeleted { user } => {
                self.void_enrollment(*user);
                self.set_user_state(*user, IdentityState::Deleted)
            }
            EventBody::UserDisabled { user } => self.set_user_state(*user, IdentityState::Disabled),
            EventBody::UserEnabled { user } => self.set_user_state(*user, IdentityState::Enabled),
            EventBody::UserRoleChanged { user, role } => {
                // A code was issued for the old role, by someone ranked for that role.
                self.void_enrollment(*user);
                if let Some(u) = self.users.get_mut(user) {
                    u.role = *role;
                }
            }
            EventBody::UserNamespaceChanged { user, namespace, level } => {
                if let Some(u) = self.users.get_mut(user) {
                    match level {
                        Some(level) => u.namespaces.insert(namespace.clone(), *level),
                        None => u.namespaces.remove(namespace),
                    };
                }
            }
            EventBody::ServiceAccountCreated { service_account, name, binding } => {
                self.service_accounts.insert(
                    *service_account,
                    ServiceAccount {
                        id: *service_account,
                        account: account.clone(),
                        name: name.clone(),
                        binding: binding.clone(),
                        state: IdentityState::Enabled,
                        created_at: time,
                    },
                );
            }
            EventBody::ServiceAccountDeleted { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Deleted)
            }
            EventBody::ServiceAccountDisabled { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Disabled)
            }
            EventBody::ServiceAccountEnabled { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Enabled)
            }
            EventBody::NamespaceCreated { name } => {
                let namespace = Namespace { account: account.clone(), name: name.clone(), created_at: time };
                self.namespaces.insert((account.clone(), name.clone()), namespace);
            }
            EventBody::SettingsChanged { settings } => {
                if let Some(a) = self.accounts.get_mut(account) {
                    a.settings = settings.clone();
                }
            }
            EventBody::UsageGranularityChanged { granularity } => {
                self.usage_granularity = Some(*granularity);
            }
            EventBody::LimitsChanged { limits } => {
                self.limits.insert(account.clone(), limits.clone());
            }
            EventBody::SignerRegistered { node, public_key } => {
                self.signers.insert(*public_key, *node);
            }
            EventBody::Checkpoint(checkpoint) => {
                self.last_checkpoint = Some(CheckpointMark { tree_size: checkpoint.tree_size, seq, time });
            }
            EventBody::EnrollmentIssued { user, expires_at, .. } => {
                self.void_enrollment(*user);
                let Some(code) = entry.digest else {
                    // Unreachable for validated events; without a digest no code can match.
                    debug_assert!(false, "EnrollmentIssued without digest");
                    return;
                };
                self.enrollments.insert(code, Enrollment { user: *user, expires_at: *expires_at });
                self.enrollment_of_user.insert(*user, code);
            }
            // Both are in the key's history, so they move its revision like any change.
            EventBody::Enrolled { user, key } => {
                self.void_enrollment(*user);
                self.touch_key(*key, seq);
            }
            EventBody::Leaked { key, .. } => {
                self.leaked.insert(*key);
                self.touch_key(*key, seq);
            }
            EventBody::LeakActionChanged { action } => {
                self.leak_actions.insert(account.clone(), *action);
            }
        }
    }

    fn touch_key(&mut self, key: KeyId, seq: u64) {
        if let Some(record) = self.keys.get_mut(&key) {
            record.revision = seq;
        }
    }

    fn void_enrollment(&mut self, user: UserId) {
        if let Some(code) = self.enrollment_of_user.remove(&user) {
            self.enrollments.remove(&code);
        }
    }

    fn set_key_state(&mut self, key: KeyId, state: KeyState, seq: u64) {
        if let Some(record) = self.keys.get_mut(&key) {
            record.state = state;
            record.revision = seq;
            self.index.set_state(&record.digest, state);
            if matches!(state, KeyState::Expired | KeyState::Deleted) {
                if let Some(at) = record.expires_at {
                    self.expiry_queue.remove(&(at, key));
                }
            }
        }
    }

    fn set_user_state(&mut self, user: UserId, state: IdentityState) {
        if let Some(u) = self.users.get_mut(&user) {
            u.state = state;
        }
    }

    fn set_service_account_state(&mut self, id: ServiceAccountId, state: IdentityState) {
        if let Some(s) = self.service_accounts.get_mut(&id) {
            s.state = state;
        }
    }
}
