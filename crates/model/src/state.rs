//! The state every node builds from the ledger: accounts, users, keys and the in-memory
//! verification index.
//!
//! Two functions change it, in the usual decide/evolve split: [`State::execute`] validates a
//! proposal against the current state (`decide`) and turns it into sealed events, and
//! [`State::evolve`] applies one event. Rebuilding from the ledger is `evolve` over every
//! stored entry, so the live state and a rebuilt one are equal by construction (a property
//! test checks it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{Actor, ChainHead, Event, EventBody, LedgerEntry, Owner};
use crate::ids::{AccountId, KeyId, UserId};
use crate::index::DigestIndex;
use crate::proposal::{Command, NewKey, Outcome, Proposal, RejectCode, Rejection};
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;

/// A user's role in its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Read,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Read => "read",
        }
    }

    /// May manage other identities' keys in the account.
    pub fn is_account_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// The account permissions the role grants, strongest first.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Role::Owner | Role::Admin => &["account:admin", "account:write", "account:read"],
            Role::Developer => &["account:write", "account:read"],
            Role::Read => &["account:read"],
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub created_at: Timestamp,
    pub settings: AccountSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityState {
    Enabled,
    Disabled,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account: AccountId,
    pub name: String,
    pub role: Role,
    pub state: IdentityState,
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
}

/// A key's metadata as the admin API shows it (plus the digest, which it never shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub account: AccountId,
    pub owner: Owner,
    pub name: String,
    pub description: String,
    pub hint: String,
    pub digest: KeyDigest,
    pub created_at: Timestamp,
    pub created_by: Actor,
    pub expires_at: Option<Timestamp>,
    pub state: KeyState,
    pub locked: bool,
    /// Seq of the latest state-changing event.
    pub revision: u64,
    pub last_used_at: Option<Timestamp>,
}

impl KeyRecord {
    /// The state as of `now`: an enabled key past its expiry is expired even before the
    /// `expired` event is written.
    pub fn state_at(&self, now: Timestamp) -> KeyState {
        match (self.state, self.expires_at) {
            (KeyState::Enabled | KeyState::Disabled, Some(at)) if now >= at => KeyState::Expired,
            (state, _) => state,
        }
    }
}

/// What the verification index keeps per digest: exactly what a verification reads,
/// inline, so a lookup touches one hash-table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: KeyId,
    pub owner: Owner,
    pub state: KeyState,
    pub expires_at: Option<Timestamp>,
}

/// Everything built from the ledger. Equal states mean equal histories were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    head: ChainHead,
    account_heads: BTreeMap<AccountId, ChainHead>,
    accounts: BTreeMap<AccountId, Account>,
    users: BTreeMap<UserId, User>,
    keys: BTreeMap<KeyId, KeyRecord>,
    keys_by_owner: BTreeMap<Owner, BTreeSet<KeyId>>,
    index: DigestIndex,
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead::EMPTY
    }
}

/// What `decide` produced: event bodies to seal, and the key the caller asked about.
struct Decision {
    account: AccountId,
    bodies: Vec<(EventBody, Option<KeyDigest>)>,
    target: Option<KeyId>,
}

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;

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

    pub fn account_head(&self, account: &AccountId) -> ChainHead {
        self.account_heads.get(account).copied().unwrap_or(ChainHead::EMPTY)
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn key(&self, id: &KeyId) -> Option<&KeyRecord> {
        self.keys.get(id)
    }

    /// Keys in id (= creation) order, starting after `after`.
    pub fn keys_after(&self, after: Option<KeyId>) -> impl Iterator<Item = &KeyRecord> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.keys.range((lower, Bound::Unbounded)).map(|(_, k)| k)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The display name of a key's owner.
    pub fn owner_name(&self, owner: &Owner) -> Option<&str> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| u.name.as_str()),
            Owner::ServiceAccount(_) => None,
        }
    }

    /// The account an identity belongs to.
    pub fn owner_account(&self, owner: &Owner) -> Option<&AccountId> {
        match owner {
            Owner::User(id) => self.users.get(id).map(|u| &u.account),
            Owner::ServiceAccount(_) => None,
        }
    }

    /// The key a digest belongs to, if any.
    pub fn key_by_digest(&self, digest: &KeyDigest) -> Option<&KeyRecord> {
        self.index.get(digest).and_then(|entry| self.keys.get(&entry.key))
    }

    #[inline]
    pub(crate) fn index_entry(&self, digest: &KeyDigest) -> Option<IndexEntry> {
        self.index.get(digest)
    }

    /// Validates `proposal` and, if accepted, appends its events. Returns the answer for the
    /// proposer and the new ledger entries (empty when rejected: nothing changed).
    pub fn execute(&mut self, proposal: &Proposal) -> (Outcome, Vec<LedgerEntry>) {
        let decision = match self.decide(proposal) {
            Ok(decision) => decision,
            Err(rejection) => return (Outcome::Rejected(rejection), Vec::new()),
        };
        let mut entries = Vec::with_capacity(decision.bodies.len());
        for (body, digest) in decision.bodies {
            let entry = LedgerEntry { event: self.seal(proposal, &decision.account, body), digest };
            self.evolve(&entry);
            entries.push(entry);
        }
        let outcome = Outcome::Accepted {
            events: entries.len() as u32,
            head: self.head,
            key: decision.target.and_then(|id| self.keys.get(&id)).cloned().map(Box::new),
        };
        (outcome, entries)
    }

    /// Gives an event body its place on both chains.
    fn seal(&self, proposal: &Proposal, account: &AccountId, body: EventBody) -> Event {
        let account_head = self.account_head(account);
        let mut event = Event {
            seq: self.head.seq + 1,
            time: proposal.time,
            account: account.clone(),
            actor: proposal.actor,
            request_id: proposal.request_id.clone(),
            body,
            account_seq: account_head.seq + 1,
            prev_hash: self.head.hash,
            hash: crate::event::ChainHash::GENESIS,
            account_prev_hash: account_head.hash,
            account_hash: crate::event::ChainHash::GENESIS,
        };
        (event.hash, event.account_hash) = event.compute_hashes();
        event
    }

    /// Applies one event. Never fails: events were validated before they were sealed.
    pub fn evolve(&mut self, entry: &LedgerEntry) {
        let event = &entry.event;
        self.head = ChainHead { seq: event.seq, hash: event.hash };
        self.account_heads
            .insert(event.account.clone(), ChainHead { seq: event.account_seq, hash: event.account_hash });
        match &event.body {
            EventBody::AccountCreated { settings } => {
                self.accounts.insert(
                    event.account.clone(),
                    Account { id: event.account.clone(), created_at: event.time, settings: settings.clone() },
                );
            }
            EventBody::UserCreated { user, name, role } => {
                self.users.insert(
                    *user,
                    User {
                        id: *user,
                        account: event.account.clone(),
                        name: name.clone(),
                        role: *role,
                        state: IdentityState::Enabled,
                        created_at: event.time,
                    },
                );
            }
            EventBody::KeyCreated { key, owner, name, description, hint, expires_at, .. } => {
                let Some(digest) = entry.digest else {
                    // A ledger entry without its digest cannot authenticate; keep the
                    // metadata so history stays complete.
                    debug_assert!(false, "KeyCreated without digest");
                    return;
                };
                let record = KeyRecord {
                    id: *key,
                    account: event.account.clone(),
                    owner: *owner,
                    name: name.clone(),
                    description: description.clone(),
                    hint: hint.clone(),
                    digest,
                    created_at: event.time,
                    created_by: event.actor,
                    expires_at: *expires_at,
                    state: KeyState::Enabled,
                    locked: false,
                    revision: event.seq,
                    last_used_at: None,
                };
                self.index.insert(
                    digest,
                    IndexEntry { key: *key, owner: *owner, state: KeyState::Enabled, expires_at: *expires_at },
                );
                self.keys_by_owner.entry(*owner).or_default().insert(*key);
                self.keys.insert(*key, record);
            }
            EventBody::KeyEnabled { key } => self.set_key_state(*key, KeyState::Enabled, event.seq),
            EventBody::KeyDisabled { key } => self.set_key_state(*key, KeyState::Disabled, event.seq),
            EventBody::KeyDeleted { key } => self.set_key_state(*key, KeyState::Deleted, event.seq),
        }
    }

    fn set_key_state(&mut self, key: KeyId, state: KeyState, seq: u64) {
        if let Some(record) = self.keys.get_mut(&key) {
            record.state = state;
            record.revision = seq;
            self.index.set_state(&record.digest, state);
        }
    }

    fn decide(&self, proposal: &Proposal) -> Result<Decision, Rejection> {
        match &proposal.command {
            Command::Bootstrap { admin, admin_name, key } => self.decide_bootstrap(proposal, *admin, admin_name, key),
            Command::CreateKey(new_key) => self.decide_create(proposal, new_key),
            Command::EnableKey(id) => self.decide_state_change(proposal, *id, KeyState::Enabled),
            Command::DisableKey(id) => self.decide_state_change(proposal, *id, KeyState::Disabled),
            Command::DeleteKey(id) => self.decide_state_change(proposal, *id, KeyState::Deleted),
        }
    }

    fn decide_bootstrap(
        &self,
        proposal: &Proposal,
        admin: UserId,
        admin_name: &str,
        key: &NewKey,
    ) -> Result<Decision, Rejection> {
        if proposal.actor != Actor::System {
            return Err(Rejection::new(RejectCode::PermissionDenied, "only the cluster itself bootstraps an account"));
        }
        if self.accounts.contains_key(&proposal.account) {
            return Err(Rejection::new(RejectCode::Conflict, "the account already exists"));
        }
        // A reused id would move an existing user, and its keys, into the new account.
        if self.users.contains_key(&admin) {
            return Err(Rejection::new(RejectCode::Conflict, "a user with this id already exists"));
        }
        check_text("user name", admin_name, MAX_NAME_CHARS, true)?;
        self.check_new_key_shape(key)?;
        // The owner's first key may never expire (it is the operator's way in, to be rotated
        // once set up); an expiry, if given, follows the default account policy.
        if let Some(at) = key.expires_at {
            check_expiry(at, proposal.time, &AccountSettings::default())?;
        }
        let owner = Owner::User(admin);
        Ok(Decision {
            account: proposal.account.clone(),
            bodies: vec![
                (EventBody::AccountCreated { settings: AccountSettings::default() }, None),
                (EventBody::UserCreated { user: admin, name: admin_name.to_string(), role: Role::Owner }, None),
                key_created(key, owner),
            ],
            target: Some(key.id),
        })
    }

    fn decide_create(&self, proposal: &Proposal, key: &NewKey) -> Result<Decision, Rejection> {
        let caller = self.authenticate(proposal)?;
        let account = self
            .accounts
            .get(&proposal.account)
            .ok_or_else(|| Rejection::new(RejectCode::NotFound, "the account does not exist"))?;
        let owner = key.owner.unwrap_or(caller.identity);
        if self.owner_account(&owner) != Some(&account.id) {
            return Err(Rejection::new(RejectCode::NotFound, "the key's owner does not exist"));
        }
        if owner != caller.identity && !caller.role.is_account_admin() {
            return Err(Rejection::new(
                RejectCode::PermissionDenied,
                "only an account owner or admin may create keys for another identity",
            ));
        }
        if !account.settings.key_creation_enabled {
            return Err(Rejection::new(RejectCode::CreationDisabled, "key creation is switched off for this account"));
        }
        self.check_new_key_shape(key)?;
        match key.expires_at {
            None if !account.settings.allow_never_expiring => {
                return Err(Rejection::new(
                    RejectCode::InvalidArgument,
                    "this account does not allow keys that never expire; give an expiry",
                ))
            }
            None => {}
            Some(at) => check_expiry(at, proposal.time, &account.settings)?,
        }
        let limit = match owner {
            Owner::User(_) => account.settings.max_keys_per_user,
            Owner::ServiceAccount(_) => account.settings.max_keys_per_service_account,
        };
        if self.live_key_count(&owner, proposal.time) >= limit as usize {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!("the identity already has {limit} keys that are neither expired nor deleted"),
            ));
        }
        Ok(Decision { account: account.id.clone(), bodies: vec![key_created(key, owner)], target: Some(key.id) })
    }

    fn decide_state_change(&self, proposal: &Proposal, id: KeyId, to: KeyState) -> Result<Decision, Rejection> {
        let caller = self.authenticate(proposal)?;
        let key = self
            .keys
            .get(&id)
            .filter(|k| k.account == proposal.account && caller.may_see(k))
            .ok_or_else(|| Rejection::new(RejectCode::NotFound, "no such key"))?;
        let current = key.state_at(proposal.time);
        if current == to {
            // Already there: accepted, nothing written.
            return Ok(Decision { account: key.account.clone(), bodies: Vec::new(), target: Some(id) });
        }
        if current == KeyState::Deleted {
            return Err(Rejection::new(RejectCode::Conflict, "the key is deleted"));
        }
        if key.locked {
            return Err(Rejection::new(RejectCode::KeyLocked, "the key is locked; unlock it first"));
        }
        let body = match to {
            KeyState::Enabled | KeyState::Disabled if current == KeyState::Expired => {
                return Err(Rejection::new(RejectCode::Conflict, "the key has expired"))
            }
            KeyState::Enabled => EventBody::KeyEnabled { key: id },
            KeyState::Disabled => EventBody::KeyDisabled { key: id },
            KeyState::Deleted => EventBody::KeyDeleted { key: id },
            KeyState::Expired => {
                return Err(Rejection::new(RejectCode::InvalidArgument, "expiry is recorded by the cluster"))
            }
        };
        Ok(Decision { account: key.account.clone(), bodies: vec![(body, None)], target: Some(id) })
    }

    /// Re-checks the caller at apply time: a key disabled while the proposal was in flight
    /// cannot still change things once its disable is ahead of it in the log.
    fn authenticate(&self, proposal: &Proposal) -> Result<Caller, Rejection> {
        let unauthenticated = || Rejection::new(RejectCode::Unauthenticated, "the calling key is no longer valid");
        let (Some(identity), Some(key_id)) = (proposal.actor.identity(), proposal.actor.key()) else {
            return Err(Rejection::new(RejectCode::PermissionDenied, "the cluster itself cannot make this change"));
        };
        let key = self.keys.get(&key_id).ok_or_else(unauthenticated)?;
        if key.owner != identity || key.account != proposal.account || key.state_at(proposal.time) != KeyState::Enabled
        {
            return Err(unauthenticated());
        }
        match identity {
            Owner::User(id) => {
                let user = self.users.get(&id).ok_or_else(unauthenticated)?;
                if user.state != IdentityState::Enabled {
                    return Err(unauthenticated());
                }
                Ok(Caller { identity, role: user.role })
            }
            Owner::ServiceAccount(_) => Err(unauthenticated()),
        }
    }

    /// Keys of `owner` that count against its limit at `now`.
    fn live_key_count(&self, owner: &Owner, now: Timestamp) -> usize {
        self.keys_by_owner.get(owner).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| self.keys.get(id))
                .filter(|k| !matches!(k.state_at(now), KeyState::Expired | KeyState::Deleted))
                .count()
        })
    }

    fn check_new_key_shape(&self, key: &NewKey) -> Result<(), Rejection> {
        check_text("name", &key.name, MAX_NAME_CHARS, true)?;
        check_text("description", &key.description, MAX_DESCRIPTION_CHARS, false)?;
        // The hint is chained into the ledger: it must be what it claims, 4 base62 characters,
        // so a faulty proposer cannot put a secret there.
        if key.hint.len() != crate::token::HINT_LEN || !key.hint.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Rejection::new(RejectCode::InvalidArgument, "the key hint must be 4 base62 characters"));
        }
        if self.keys.contains_key(&key.id) || self.index.contains_key(&key.digest) {
            return Err(Rejection::new(RejectCode::Conflict, "a key with this id or secret already exists"));
        }
        Ok(())
    }
}

/// The authenticated identity behind a proposal.
#[derive(Debug, Clone, Copy)]
struct Caller {
    identity: Owner,
    role: Role,
}

impl Caller {
    /// Object-level visibility: own keys, or every key of the account for owner/admin.
    fn may_see(&self, key: &KeyRecord) -> bool {
        key.owner == self.identity || self.role.is_account_admin()
    }
}

/// May `identity` with `role` read `key`? (Same rule the write path uses.)
pub fn may_see_key(identity: Owner, role: Role, key: &KeyRecord) -> bool {
    Caller { identity, role }.may_see(key)
}

fn key_created(key: &NewKey, owner: Owner) -> (EventBody, Option<KeyDigest>) {
    (
        EventBody::KeyCreated {
            key: key.id,
            owner,
            name: key.name.clone(),
            description: key.description.clone(),
            digest_commitment: key.digest.commitment(),
            hint: key.hint.clone(),
            expires_at: key.expires_at,
        },
        Some(key.digest),
    )
}

/// An expiry must lie in the future and within the account's maximum key lifetime.
fn check_expiry(at: Timestamp, now: Timestamp, settings: &AccountSettings) -> Result<(), Rejection> {
    if at <= now {
        return Err(Rejection::new(RejectCode::InvalidArgument, "the expiry must be in the future"));
    }
    if at.0.saturating_sub(now.0) > settings.max_key_lifetime.0 {
        return Err(Rejection::new(
            RejectCode::InvalidArgument,
            format!(
                "the expiry is beyond this account's maximum key lifetime of {} days",
                settings.max_key_lifetime.0 / Span::days(1).0
            ),
        ));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max_chars: usize, required: bool) -> Result<(), Rejection> {
    let chars = text.chars().count();
    if required && text.trim().is_empty() {
        return Err(Rejection::new(RejectCode::InvalidArgument, format!("the {what} must not be empty")));
    }
    if chars > max_chars {
        return Err(Rejection::new(
            RejectCode::InvalidArgument,
            format!("the {what} must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::new(
            RejectCode::InvalidArgument,
            format!("the {what} must not contain control characters"),
        ));
    }
    Ok(())
}
