//! Deciding: validating a proposal against the current state, in log order, and sealing the
//! resulting events onto both hash chains.
//!
//! Every check of `domain.md` happens here — authentication of the caller's key *at apply
//! time*, the authorization table, lifecycle rules, limits, settings — so they hold under
//! concurrent writes and leader changes without any lock across the cluster.

use crate::account::{Account, AccountSettings, LeakAction};
use crate::authz::{self, KeyAction, Principal, Refusal};
use crate::chain::ChainHash;
use crate::checkpoint::{Checkpoint, PublicKey, MAX_CHECKPOINT_LAG};
use crate::event::{Event, EventBody, LedgerEntry};
use crate::identity::{Binding, IdentityState, User, ENROLLMENT_REFUSED, ENROLLMENT_VALIDITY};
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId};
use crate::key::{KeyRecord, KeyState};
use crate::owner::{Actor, Owner};
use crate::permissions::{valid_namespace_name, Role, Scope};
use crate::proposal::{
    Command, DenialRecord, LimitsPatch, NewKey, Outcome, Proposal, RejectCode, Rejection, SettingsPatch, Subject,
    UseRecord,
};
use crate::state::State;
use crate::time::{Span, Timestamp};
use crate::token::{KeyDigest, HINT_LEN};
use crate::usage::{MAX_USAGE_GRANULARITY, MIN_USAGE_GRANULARITY};

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Free text in `denied` events is cut to this many characters.
const MAX_DENIAL_TEXT: usize = 200;
/// A leak report's source is cut to this many characters, its reporter's address to the other.
const MAX_LEAK_SOURCE: usize = 500;
const MAX_LEAK_REPORTER: usize = 100;

/// Bounds of the per-account settings.
const MAX_LIFETIME_LIMIT: Span = Span(10 * 365 * 24 * 3_600_000);
const MAX_KEYS_LIMIT: u32 = 1000;
/// Upper bounds of the caps (`max_users`, …, `max_accounts`).
const MAX_IDENTITIES_LIMIT: u32 = 100_000;
const MAX_NAMESPACES_LIMIT: u32 = 10_000;
const MAX_ACCOUNTS_LIMIT: u32 = 100_000;

/// An event body waiting for its place on the chains.
struct Pending {
    account: AccountId,
    actor: Actor,
    body: EventBody,
    digest: Option<KeyDigest>,
}

/// The object the answer shows.
enum SubjectRef {
    Key(KeyId),
    User(UserId),
    ServiceAccount(ServiceAccountId),
    Namespace(AccountId, String),
    Account(AccountId),
    Enrollment(UserId),
}

struct Decision {
    events: Vec<Pending>,
    subject: Option<SubjectRef>,
}

impl Decision {
    fn one(pending: Pending, subject: SubjectRef) -> Decision {
        Decision { events: vec![pending], subject: Some(subject) }
    }

    fn nothing(subject: SubjectRef) -> Decision {
        Decision { events: Vec::new(), subject: Some(subject) }
    }
}

fn reject(code: RejectCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

fn refused(refusal: Refusal, what: &str) -> Rejection {
    match refusal {
        Refusal::Hidden => reject(RejectCode::NotFound, format!("no such {what}")),
        Refusal::Forbidden => {
            reject(RejectCode::PermissionDenied, format!("the caller may not do this to that {what}"))
        }
    }
}

impl State {
    /// Validates `proposal` and, if accepted, appends its events. Returns the answer for the
    /// proposer and the new ledger entries (none when rejected: nothing changed).
    ///
    /// Time never runs backwards in the ledger. A proposal carries the time the node that took
    /// the request stamped on it; one stamped before the latest event (a request delayed across
    /// a leader change, or a node whose clock is behind) is decided and recorded at that event's
    /// time instead — otherwise, say, an `enable` stamped before a rotation that committed first
    /// would be judged against a key that had not expired yet.
    pub fn execute(&mut self, proposal: &Proposal) -> (Outcome, Vec<LedgerEntry>) {
        let late;
        let proposal = match self.last_time {
            Some(last) if proposal.time < last => {
                late = Proposal { time: last, ..proposal.clone() };
                &late
            }
            _ => proposal,
        };
        let decision = match self.decide(proposal) {
            Ok(decision) => decision,
            Err(rejection) => return (Outcome::Rejected(rejection), Vec::new()),
        };
        let mut entries = Vec::with_capacity(decision.events.len());
        for pending in decision.events {
            let entry = LedgerEntry { event: self.seal(proposal, &pending), digest: pending.digest };
            self.evolve(&entry);
            entries.push(entry);
        }
        let subject = decision.subject.and_then(|s| self.subject(s)).map(Box::new);
        (Outcome::Accepted { events: entries.len() as u32, head: self.head, subject }, entries)
    }

    fn subject(&self, subject: SubjectRef) -> Option<Subject> {
        Some(match subject {
            SubjectRef::Key(id) => Subject::Key(self.key(&id)?.clone()),
            SubjectRef::User(id) => Subject::User(self.users.get(&id)?.clone()),
            SubjectRef::ServiceAccount(id) => Subject::ServiceAccount(self.service_accounts.get(&id)?.clone()),
            SubjectRef::Namespace(account, name) => Subject::Namespace(self.namespace(&account, &name)?.clone()),
            SubjectRef::Account(id) => Subject::AccountSettings {
                account: self.accounts.get(&id)?.clone(),
                limits: self.limits(&id),
                action_when_leaked: self.leak_action(&id),
            },
            SubjectRef::Enrollment(id) => {
                let code = self.enrollment_of_user.get(&id)?;
                let expires_at = self.enrollments.get(code)?.expires_at;
                Subject::Enrollment { user: self.users.get(&id)?.clone(), expires_at }
            }
        })
    }

    /// Gives an event its place on both chains.
    fn seal(&self, proposal: &Proposal, pending: &Pending) -> Event {
        let account_head = self.account_head(&pending.account);
        let mut event = Event {
            seq: self.head.seq + 1,
            time: proposal.time,
            account: pending.account.clone(),
            actor: pending.actor,
            request_id: proposal.request_id.clone(),
            body: pending.body.clone(),
            account_seq: account_head.seq + 1,
            prev_hash: self.head.hash,
            hash: ChainHash::GENESIS,
            account_prev_hash: account_head.hash,
            account_hash: ChainHash::GENESIS,
        };
        (event.hash, event.account_hash) = event.compute_hashes();
        event
    }

    fn decide(&self, p: &Proposal) -> Result<Decision, Rejection> {
        match &p.command {
            Command::Bootstrap { admin, admin_name, key } => self.decide_bootstrap(p, *admin, admin_name, key),
            Command::CreateKey(new) => self.decide_create(p, new),
            Command::EnableKey(id) => self.decide_key_state(p, *id, KeyState::Enabled),
            Command::DisableKey(id) => self.decide_key_state(p, *id, KeyState::Disabled),
            Command::DeleteKey(id) => self.decide_key_state(p, *id, KeyState::Deleted),
            Command::UpdateKey { key, name, description, if_revision } => {
                self.decide_update(p, *key, name.as_deref(), description.as_deref(), *if_revision)
            }
            Command::LockKey(id) => self.decide_lock(p, *id, true),
            Command::UnlockKey(id) => self.decide_lock(p, *id, false),
            Command::RotateKey { key, new, grace } => self.decide_rotate(p, *key, new, *grace),
            Command::ExpireKeys(ids) => self.decide_expire(p, ids),
            Command::RecordUse(uses) => self.decide_use(p, uses),
            Command::RecordDenials(denials) => self.decide_denials(p, denials),
            Command::CreateUser { id, name, role } => self.decide_create_user(p, *id, name, *role),
            Command::DeleteUser(id) => self.decide_user_state(p, *id, IdentityState::Deleted),
            Command::SetUserEnabled { user, enabled } => {
                let to = if *enabled { IdentityState::Enabled } else { IdentityState::Disabled };
                self.decide_user_state(p, *user, to)
            }
            Command::SetUserRole { user, role } => self.decide_user_role(p, *user, *role),
            Command::SetUserNamespace { user, namespace, level } => {
                self.decide_user_namespace(p, *user, namespace, *level)
            }
            Command::CreateServiceAccount { id, name, binding } => self.decide_create_sa(p, *id, name, binding),
            Command::DeleteServiceAccount(id) => self.decide_sa_state(p, *id, IdentityState::Deleted),
            Command::SetServiceAccountEnabled { service_account, enabled } => {
                let to = if *enabled { IdentityState::Enabled } else { IdentityState::Disabled };
                self.decide_sa_state(p, *service_account, to)
            }
            Command::CreateNamespace { name } => self.decide_namespace(p, name),
            Command::UpdateSettings(patch) => self.decide_settings(p, patch, &LimitsPatch::default(), None, None),
            Command::CreateAccount { account, owner, owner_name, key } => {
                self.decide_create_account(p, account, *owner, owner_name, key)
            }
            Command::RegisterSigner { node, public_key } => self.decide_register_signer(p, *node, *public_key),
            Command::Checkpoint(checkpoint) => self.decide_checkpoint(p, checkpoint),
            Command::CreateEnrolledUser { id, name, role, code } => {
                self.decide_create_enrolled_user(p, *id, name, *role, code)
            }
            Command::IssueEnrollment { user, code } => self.decide_issue_enrollment(p, *user, code),
            Command::Enroll { code, key } => self.decide_enroll(p, code, key),
            Command::ReportLeak { digest, source, reporter } => self.decide_leak(p, digest, source, reporter),
            Command::ChangeSettings { patch, limits, action_when_leaked } => {
                self.decide_settings(p, patch, limits, *action_when_leaked, None)
            }
            Command::Configure { patch, limits, action_when_leaked, last_used_granularity } => {
                self.decide_settings(p, patch, limits, *action_when_leaked, *last_used_granularity)
            }
            Command::CreateAccountWithEnrollment { account, owner, owner_name, code } => {
                self.decide_create_account_with_enrollment(p, account, *owner, owner_name, code)
            }
            // Retries are answered by `idempotency::Table`; on its own the command is its inner one.
            Command::Idempotent { command, .. } => self.decide(&Proposal { command: (**command).clone(), ..p.clone() }),
        }
    }

    // --- callers ----------------------------------------------------------------------------

    /// Re-checks the caller at apply time: a key disabled while the proposal was in flight
    /// cannot still change things once its disable is ahead of it in the log.
    fn caller(&self, p: &Proposal) -> Result<Principal, Rejection> {
        let unauthenticated = || reject(RejectCode::Unauthenticated, "the calling key is no longer valid");
        let (Some(identity), Some(key)) = (p.actor.identity(), p.actor.key()) else {
            return Err(reject(RejectCode::PermissionDenied, "the cluster itself cannot make this change"));
        };
        let principal = self.principal(&key, p.time).ok_or_else(unauthenticated)?;
        if principal.identity != identity || principal.account != p.account {
            return Err(unauthenticated());
        }
        Ok(principal)
    }

    fn system(&self, p: &Proposal) -> Result<(), Rejection> {
        match p.actor {
            Actor::System => Ok(()),
            _ => Err(reject(RejectCode::PermissionDenied, "only the cluster itself records this")),
        }
    }

    fn pending(&self, p: &Proposal, account: &AccountId, body: EventBody) -> Pending {
        Pending { account: account.clone(), actor: p.actor, body, digest: None }
    }

    // --- keys -------------------------------------------------------------------------------

    /// The key, if `caller` may see it; then whether it may do `action` to it.
    fn key_for(&self, caller: &Principal, id: KeyId, action: KeyAction) -> Result<&KeyRecord, Rejection> {
        let key = self.keys.get(&id).ok_or_else(|| reject(RejectCode::NotFound, "no such key"))?;
        self.authorize_key(caller, key, KeyAction::Read).map_err(|r| refused(r, "key"))?;
        self.authorize_key(caller, key, action).map_err(|r| refused(r, "key"))?;
        Ok(key)
    }

    /// May `caller` do `action` to `key`? (The API asks this too, before proposing.)
    pub fn authorize_key(&self, caller: &Principal, key: &KeyRecord, action: KeyAction) -> Result<(), Refusal> {
        let (account, class) = self.owner_class(&key.owner).ok_or(Refusal::Hidden)?;
        // On its own keys a caller is measured against the key; on others', against their owner.
        let target_rank = if key.owner == caller.identity {
            self.key_rank(&key.owner, key.scope.as_ref())
        } else {
            self.identity_rank(&key.owner)
        };
        authz::authorize_key(caller, action, key.owner, account, class, target_rank)
    }

    fn decide_bootstrap(&self, p: &Proposal, admin: UserId, name: &str, key: &NewKey) -> Result<Decision, Rejection> {
        self.system(p)?;
        self.check_new_account(&p.account, admin, name)?;
        self.check_first_key(&p.account, key)?;
        // The owner's first key may never expire (it is the operator's way in, to be rotated
        // once set up); an expiry, if given, follows the default account policy.
        if let Some(at) = key.expires_at {
            check_expiry(at, p.time, &AccountSettings::default())?;
        }
        Ok(self.new_account_events(p, &p.account, admin, name, key))
    }

    fn decide_create_account(
        &self,
        p: &Proposal,
        account: &AccountId,
        owner: UserId,
        name: &str,
        key: &NewKey,
    ) -> Result<Decision, Rejection> {
        self.check_operator_creates_account(p, account, owner, name)?;
        self.check_first_key(account, key)?;
        let settings = AccountSettings::default();
        match key.expires_at {
            Some(at) => check_expiry(at, p.time, &settings)?,
            None => return Err(never_expiring_refused()),
        }
        Ok(self.new_account_events(p, account, owner, name, key))
    }

    /// A new account and its owner, who redeems the enrollment code with digest `code` for its
    /// own first key: no key is written and no secret is answered.
    fn decide_create_account_with_enrollment(
        &self,
        p: &Proposal,
        account: &AccountId,
        owner: UserId,
        name: &str,
        code: &KeyDigest,
    ) -> Result<Decision, Rejection> {
        self.check_operator_creates_account(p, account, owner, name)?;
        self.check_new_code(code)?;
        let mut events = self.account_and_owner(p, account, owner, name);
        events.push(self.enrollment_issued(p, account, owner, code));
        Ok(Decision { events, subject: Some(SubjectRef::Enrollment(owner)) })
    }

    /// Only the cluster operator creates an account, under the operator's cap on accounts.
    fn check_operator_creates_account(
        &self,
        p: &Proposal,
        account: &AccountId,
        owner: UserId,
        name: &str,
    ) -> Result<(), Rejection> {
        let caller = self.caller(p)?;
        authz::authorize_account_creation(&caller).map_err(|r| refused(r, "account"))?;
        self.check_new_account(account, owner, name)?;
        let cap = self.limits(&caller.account).max_accounts;
        check_cap(self.accounts.len(), cap, "accounts in the cluster")
    }

    /// The first two events of every new account: the account, and its owner.
    fn account_and_owner(&self, p: &Proposal, account: &AccountId, owner: UserId, name: &str) -> Vec<Pending> {
        let settings = AccountSettings::default();
        vec![
            self.pending(p, account, EventBody::AccountCreated { settings }),
            self.pending(p, account, EventBody::UserCreated { user: owner, name: name.to_string(), role: Role::Owner }),
        ]
    }

    fn check_new_account(&self, account: &AccountId, owner: UserId, name: &str) -> Result<(), Rejection> {
        if self.accounts.contains_key(account) {
            return Err(reject(RejectCode::Conflict, "the account already exists"));
        }
        // A reused id would move an existing user, and its keys, into the new account.
        if self.users.contains_key(&owner) {
            return Err(reject(RejectCode::Conflict, "a user with this id already exists"));
        }
        check_text("user name", name, MAX_NAME_CHARS, true)
    }

    /// The first key of a new account: a valid shape, and a scope that can exist there (the
    /// account has no namespaces yet, so only a role).
    fn check_first_key(&self, account: &AccountId, key: &NewKey) -> Result<(), Rejection> {
        self.check_key_shape(key)?;
        match &key.scope {
            Some(scope) => self.check_scope(account, scope),
            None => Ok(()),
        }
    }

    fn new_account_events(
        &self,
        p: &Proposal,
        account: &AccountId,
        owner: UserId,
        name: &str,
        key: &NewKey,
    ) -> Decision {
        let mut events = self.account_and_owner(p, account, owner, name);
        events.push(self.key_created(p, account, key, Owner::User(owner), key.scope.clone()));
        Decision { events, subject: Some(SubjectRef::Key(key.id)) }
    }

    fn key_created(
        &self,
        p: &Proposal,
        account: &AccountId,
        key: &NewKey,
        owner: Owner,
        scope: Option<Scope>,
    ) -> Pending {
        Pending {
            account: account.clone(),
            actor: p.actor,
            body: EventBody::KeyCreated {
                key: key.id,
                owner,
                name: key.name.clone(),
                description: key.description.clone(),
                scope,
                digest_commitment: key.digest.commitment(),
                hint: key.hint.clone(),
                expires_at: key.expires_at,
            },
            digest: Some(key.digest),
        }
    }

    fn decide_create(&self, p: &Proposal, new: &NewKey) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let owner = new.owner.unwrap_or(caller.identity);
        let (account, class) =
            self.owner_class(&owner).ok_or_else(|| reject(RejectCode::NotFound, "no such identity"))?;
        let target_rank = if owner == caller.identity {
            self.key_rank(&owner, new.scope.as_ref())
        } else {
            self.identity_rank(&owner)
        };
        authz::authorize_key(&caller, KeyAction::Create, owner, account, class, target_rank)
            .map_err(|r| refused(r, "identity"))?;
        self.check_new_key(p, &caller, new, owner, None)?;
        let account = account.clone();
        Ok(Decision::one(self.key_created(p, &account, new, owner, new.scope.clone()), SubjectRef::Key(new.id)))
    }

    /// Everything a new key (created or rotated in) must satisfy.
    fn check_new_key(
        &self,
        p: &Proposal,
        caller: &Principal,
        new: &NewKey,
        owner: Owner,
        replacing: Option<&KeyRecord>,
    ) -> Result<(), Rejection> {
        let account =
            self.accounts.get(&caller.account).ok_or_else(|| reject(RejectCode::NotFound, "no such account"))?;
        if self.owner_state(&owner) != Some(IdentityState::Enabled) {
            return Err(reject(RejectCode::Conflict, "the identity is disabled or deleted"));
        }
        if !account.settings.key_creation_enabled {
            return Err(reject(RejectCode::CreationDisabled, "key creation is switched off for this account"));
        }
        self.check_key_shape(new)?;
        match new.expires_at {
            None if !account.settings.allow_never_expiring => return Err(never_expiring_refused()),
            None => {}
            Some(at) => check_expiry(at, p.time, &account.settings)?,
        }
        if let Some(scope) = &new.scope {
            self.check_scope(&account.id, scope)?;
        }
        // A key can never mint a key that may do more than it may itself.
        let owner_grant = self.identity_grant(&owner).unwrap_or_default();
        let effective = match &new.scope {
            Some(scope) => owner_grant.intersect(&scope.grant()),
            None => owner_grant,
        };
        if effective.intersect(&caller.grant) != effective {
            return Err(reject(
                RejectCode::PermissionDenied,
                "the new key would have permissions the calling key does not have",
            ));
        }
        // Nor one that outranks it (an admin's grant equals an owner's; the owner role does not).
        if self.key_rank(&owner, new.scope.as_ref()) > caller.rank() {
            return Err(reject(RejectCode::PermissionDenied, "the new key would outrank the calling key"));
        }
        let limit = match owner {
            Owner::User(_) => account.settings.max_keys_per_user,
            Owner::ServiceAccount(_) => account.settings.max_keys_per_service_account,
        };
        let live = self.keys_by_owner.get(&owner).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| self.keys.get(id))
                // The key being rotated away counts with the expiry the rotation gives it:
                // with no grace its slot is free at once.
                .map(|k| match replacing {
                    Some(old) if old.id == k.id => old,
                    _ => k,
                })
                .filter(|k| k.is_live_at(p.time))
                .count()
        });
        if live >= limit as usize {
            return Err(reject(
                RejectCode::LimitExceeded,
                format!("the identity already has {limit} keys that are neither expired nor deleted"),
            ));
        }
        Ok(())
    }

    fn check_scope(&self, account: &AccountId, scope: &Scope) -> Result<(), Rejection> {
        match scope {
            Scope::Role(_) => Ok(()),
            Scope::Namespaces(namespaces) if namespaces.is_empty() => {
                Err(reject(RejectCode::InvalidArgument, "a namespace scope names at least one namespace"))
            }
            Scope::Namespaces(namespaces) => match namespaces.keys().find(|n| self.namespace(account, n).is_none()) {
                Some(missing) => {
                    Err(reject(RejectCode::InvalidArgument, format!("no namespace `{missing}` in this account")))
                }
                None => Ok(()),
            },
        }
    }

    fn check_key_shape(&self, key: &NewKey) -> Result<(), Rejection> {
        check_text("name", &key.name, MAX_NAME_CHARS, true)?;
        check_text("description", &key.description, MAX_DESCRIPTION_CHARS, false)?;
        // The hint is chained into the ledger: it must be what it claims, 4 base62 characters,
        // so a faulty proposer cannot put a secret there.
        if key.hint.len() != HINT_LEN || !key.hint.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(reject(RejectCode::InvalidArgument, "the key hint must be 4 base62 characters"));
        }
        if self.keys.contains_key(&key.id) || self.index.contains_key(&key.digest) {
            return Err(reject(RejectCode::Conflict, "a key with this id or secret already exists"));
        }
        Ok(())
    }

    fn decide_key_state(&self, p: &Proposal, id: KeyId, to: KeyState) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let action = if to == KeyState::Deleted { KeyAction::Delete } else { KeyAction::Manage };
        let key = self.key_for(&caller, id, action)?;
        let current = key.state_at(p.time);
        if current == to {
            return Ok(Decision::nothing(SubjectRef::Key(id)));
        }
        if current == KeyState::Deleted {
            return Err(reject(RejectCode::Conflict, "the key is deleted"));
        }
        if key.locked {
            return Err(reject(RejectCode::KeyLocked, "the key is locked; unlock it first"));
        }
        let body = match to {
            KeyState::Enabled | KeyState::Disabled if current == KeyState::Expired => {
                return Err(reject(RejectCode::Conflict, "the key has expired"))
            }
            KeyState::Enabled => EventBody::KeyEnabled { key: id },
            KeyState::Disabled => EventBody::KeyDisabled { key: id },
            KeyState::Deleted => EventBody::KeyDeleted { key: id },
            KeyState::Expired => return Err(reject(RejectCode::InvalidArgument, "expiry is recorded by the cluster")),
        };
        Ok(Decision::one(self.pending(p, &key.account, body), SubjectRef::Key(id)))
    }

    fn decide_update(
        &self,
        p: &Proposal,
        id: KeyId,
        name: Option<&str>,
        description: Option<&str>,
        if_revision: Option<u64>,
    ) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let key = self.key_for(&caller, id, KeyAction::Manage)?;
        if if_revision.is_some_and(|r| r != key.revision) {
            return Err(reject(
                RejectCode::RevisionMismatch,
                format!(
                    "the key changed since revision {}; it is at revision {}",
                    if_revision.unwrap_or(0),
                    key.revision
                ),
            ));
        }
        if key.state == KeyState::Deleted {
            return Err(reject(RejectCode::Conflict, "the key is deleted"));
        }
        if key.locked {
            return Err(reject(RejectCode::KeyLocked, "the key is locked; unlock it first"));
        }
        let name = name.unwrap_or(&key.name);
        let description = description.unwrap_or(&key.description);
        check_text("name", name, MAX_NAME_CHARS, true)?;
        check_text("description", description, MAX_DESCRIPTION_CHARS, false)?;
        if name == key.name && description == key.description {
            return Ok(Decision::nothing(SubjectRef::Key(id)));
        }
        let body = EventBody::KeyUpdated { key: id, name: name.to_string(), description: description.to_string() };
        Ok(Decision::one(self.pending(p, &key.account, body), SubjectRef::Key(id)))
    }

    fn decide_lock(&self, p: &Proposal, id: KeyId, lock: bool) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let key = self.key_for(&caller, id, KeyAction::Manage)?;
        if key.state == KeyState::Deleted {
            return Err(reject(RejectCode::Conflict, "the key is deleted"));
        }
        if key.locked == lock {
            return Ok(Decision::nothing(SubjectRef::Key(id)));
        }
        let body = if lock { EventBody::KeyLocked { key: id } } else { EventBody::KeyUnlocked { key: id } };
        Ok(Decision::one(self.pending(p, &key.account, body), SubjectRef::Key(id)))
    }

    fn decide_rotate(&self, p: &Proposal, id: KeyId, new: &NewKey, grace: Span) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let old = self.key_for(&caller, id, KeyAction::Create)?;
        if old.state == KeyState::Deleted {
            return Err(reject(RejectCode::Conflict, "the key is deleted"));
        }
        if old.locked {
            return Err(reject(RejectCode::KeyLocked, "the key is locked; unlock it first"));
        }
        if old.replaced_by.is_some() {
            return Err(reject(RejectCode::Conflict, "the key was already rotated"));
        }
        if grace.0 < 0 {
            return Err(reject(RejectCode::InvalidArgument, "the grace period cannot be negative"));
        }
        let replacement = NewKey {
            id: new.id,
            owner: Some(old.owner),
            name: old.name.clone(),
            description: old.description.clone(),
            scope: old.scope.clone(),
            digest: new.digest,
            hint: new.hint.clone(),
            expires_at: new.expires_at,
        };
        let grace_end = p.time.checked_add(grace).unwrap_or(Timestamp(i64::MAX));
        let old_expires_at = old.expires_at.map_or(grace_end, |at| at.min(grace_end));
        let mut with_old_expiring = old.clone();
        with_old_expiring.expires_at = Some(old_expires_at);
        self.check_new_key(p, &caller, &replacement, old.owner, Some(&with_old_expiring))?;
        let events = vec![
            self.key_created(p, &old.account, &replacement, old.owner, old.scope.clone()),
            self.pending(
                p,
                &old.account,
                EventBody::KeyRotated { key: id, replacement: new.id, expires_at: old_expires_at },
            ),
        ];
        Ok(Decision { events, subject: Some(SubjectRef::Key(new.id)) })
    }

    fn decide_expire(&self, p: &Proposal, ids: &[KeyId]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let mut seen = std::collections::BTreeSet::new();
        let events = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.keys.get(id))
            .filter(|k| {
                matches!(k.state, KeyState::Enabled | KeyState::Disabled) && k.state_at(p.time) == KeyState::Expired
            })
            .map(|k| self.pending(p, &k.account, EventBody::KeyExpired { key: k.id }))
            .collect();
        Ok(Decision { events, subject: None })
    }

    /// One `used` event per key whose recorded use is at least `last_used_granularity` older
    /// than the reported one: several nodes reporting a key in one period add one event.
    fn decide_use(&self, p: &Proposal, uses: &[UseRecord]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let mut seen = std::collections::BTreeSet::new();
        let events = uses
            .iter()
            .filter(|u| u.count > 0 && seen.insert(u.key))
            .filter_map(|u| self.keys.get(&u.key).map(|k| (k, u)))
            .filter(|(k, u)| self.use_is_due(k, u.last_used_at))
            .map(|(k, u)| {
                let body = EventBody::KeyUsed { key: k.id, last_used_at: u.last_used_at, count: u.count };
                self.pending(p, &k.account, body)
            })
            .collect();
        Ok(Decision { events, subject: None })
    }

    fn decide_denials(&self, p: &Proposal, denials: &[DenialRecord]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let cut = |text: &str| text.chars().filter(|c| !c.is_control()).take(MAX_DENIAL_TEXT).collect::<String>();
        let events = denials
            .iter()
            .filter(|d| d.count > 0 && self.accounts.contains_key(&d.account) && d.actor != Actor::System)
            .map(|d| Pending {
                account: d.account.clone(),
                actor: d.actor,
                body: EventBody::Denied {
                    operation: cut(&d.operation),
                    target: cut(&d.target),
                    reason: cut(&d.reason),
                    count: d.count,
                },
                digest: None,
            })
            .collect();
        Ok(Decision { events, subject: None })
    }

    // --- identities, namespaces, settings -----------------------------------------------------

    fn user_in(&self, caller: &Principal, id: UserId) -> Result<&User, Rejection> {
        self.users
            .get(&id)
            .filter(|u| u.account == caller.account)
            .ok_or_else(|| reject(RejectCode::NotFound, "no such user"))
    }

    /// Refuses a change that would leave the account without an enabled owner.
    fn keep_an_owner(&self, account: &AccountId, changing: UserId) -> Result<(), Rejection> {
        let others = self.users.values().any(|u| {
            u.account == *account && u.id != changing && u.role == Role::Owner && u.state == IdentityState::Enabled
        });
        if others {
            Ok(())
        } else {
            Err(reject(RejectCode::Conflict, "the account must keep at least one enabled owner"))
        }
    }

    fn check_identity_name(&self, account: &AccountId, name: &str, taken: bool) -> Result<(), Rejection> {
        check_text("name", name, MAX_NAME_CHARS, true)?;
        if taken {
            return Err(reject(
                RejectCode::Conflict,
                format!("the name `{name}` is already taken in account {account}"),
            ));
        }
        Ok(())
    }

    fn decide_create_user(&self, p: &Proposal, id: UserId, name: &str, role: Role) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        authz::authorize_user_change(&caller, &[role]).map_err(|r| refused(r, "user"))?;
        let taken = self.users.values().any(|u| u.account == caller.account && u.name == name);
        self.check_identity_name(&caller.account, name, taken)?;
        if self.users.contains_key(&id) {
            return Err(reject(RejectCode::Conflict, "a user with this id already exists"));
        }
        let cap = self.limits(&caller.account).max_users;
        check_cap(self.live_user_count(&caller.account), cap, "users")?;
        let body = EventBody::UserCreated { user: id, name: name.to_string(), role };
        Ok(Decision::one(self.pending(p, &caller.account, body), SubjectRef::User(id)))
    }

    fn decide_user_state(&self, p: &Proposal, id: UserId, to: IdentityState) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let user = self.user_in(&caller, id)?;
        authz::authorize_user_change(&caller, &[user.role]).map_err(|r| refused(r, "user"))?;
        if user.state == to {
            return Ok(Decision::nothing(SubjectRef::User(id)));
        }
        if user.state == IdentityState::Deleted {
            return Err(reject(RejectCode::Conflict, "the user is deleted"));
        }
        if to != IdentityState::Enabled && user.role == Role::Owner {
            self.keep_an_owner(&user.account, id)?;
        }
        let body = match to {
            IdentityState::Enabled => EventBody::UserEnabled { user: id },
            IdentityState::Disabled => EventBody::UserDisabled { user: id },
            IdentityState::Deleted => EventBody::UserDeleted { user: id },
        };
        Ok(Decision::one(self.pending(p, &user.account, body), SubjectRef::User(id)))
    }

    fn decide_user_role(&self, p: &Proposal, id: UserId, role: Role) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let user = self.user_in(&caller, id)?;
        authz::authorize_user_change(&caller, &[user.role, role]).map_err(|r| refused(r, "user"))?;
        if user.state == IdentityState::Deleted {
            return Err(reject(RejectCode::Conflict, "the user is deleted"));
        }
        if user.role == role {
            return Ok(Decision::nothing(SubjectRef::User(id)));
        }
        if user.role == Role::Owner {
            self.keep_an_owner(&user.account, id)?;
        }
        let body = EventBody::UserRoleChanged { user: id, role };
        Ok(Decision::one(self.pending(p, &user.account, body), SubjectRef::User(id)))
    }

    fn decide_user_namespace(
        &self,
        p: &Proposal,
        id: UserId,
        namespace: &str,
        level: Option<crate::permissions::Level>,
    ) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let user = self.user_in(&caller, id)?;
        authz::authorize_user_change(&caller, &[]).map_err(|r| refused(r, "user"))?;
        if user.state == IdentityState::Deleted {
            return Err(reject(RejectCode::Conflict, "the user is deleted"));
        }
        if self.namespace(&caller.account, namespace).is_none() {
            return Err(reject(RejectCode::NotFound, format!("no namespace `{namespace}` in this account")));
        }
        if user.namespaces.get(namespace).copied() == level {
            return Ok(Decision::nothing(SubjectRef::User(id)));
        }
        let body = EventBody::UserNamespaceChanged { user: id, namespace: namespace.to_string(), level };
        Ok(Decision::one(self.pending(p, &user.account, body), SubjectRef::User(id)))
    }

    fn decide_create_sa(
        &self,
        p: &Proposal,
        id: ServiceAccountId,
        name: &str,
        binding: &Binding,
    ) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let namespace = match binding {
            Binding::Account(Role::Owner) => {
                return Err(reject(RejectCode::InvalidArgument, "a service account cannot hold the owner role"))
            }
            Binding::Account(_) => None,
            Binding::Namespace { namespace, .. } => Some(namespace.as_str()),
        };
        authz::authorize_service_account_change(&caller, namespace).map_err(|r| refused(r, "service account"))?;
        if let Some(ns) = namespace {
            if self.namespace(&caller.account, ns).is_none() {
                return Err(reject(RejectCode::InvalidArgument, format!("no namespace `{ns}` in this account")));
            }
        }
        let taken = self.service_accounts.values().any(|s| s.account == caller.account && s.name == name);
        self.check_identity_name(&caller.account, name, taken)?;
        if self.service_accounts.contains_key(&id) {
            return Err(reject(RejectCode::Conflict, "a service account with this id already exists"));
        }
        let cap = self.limits(&caller.account).max_service_accounts;
        check_cap(self.live_service_account_count(&caller.account), cap, "service accounts")?;
        let body =
            EventBody::ServiceAccountCreated { service_account: id, name: name.to_string(), binding: binding.clone() };
        Ok(Decision::one(self.pending(p, &caller.account, body), SubjectRef::ServiceAccount(id)))
    }

    fn decide_sa_state(&self, p: &Proposal, id: ServiceAccountId, to: IdentityState) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let sa = self
            .service_accounts
            .get(&id)
            .filter(|s| s.account == caller.account)
            .ok_or_else(|| reject(RejectCode::NotFound, "no such service account"))?;
        authz::authorize_service_account_change(&caller, sa.namespace()).map_err(|r| refused(r, "service account"))?;
        if sa.state == to {
            return Ok(Decision::nothing(SubjectRef::ServiceAccount(id)));
        }
        if sa.state == IdentityState::Deleted {
            return Err(reject(RejectCode::Conflict, "the service account is deleted"));
        }
        let body = match to {
            IdentityState::Enabled => EventBody::ServiceAccountEnabled { service_account: id },
            IdentityState::Disabled => EventBody::ServiceAccountDisabled { service_account: id },
            IdentityState::Deleted => EventBody::ServiceAccountDeleted { service_account: id },
        };
        Ok(Decision::one(self.pending(p, &sa.account, body), SubjectRef::ServiceAccount(id)))
    }

    fn decide_namespace(&self, p: &Proposal, name: &str) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        authz::authorize_account_change(&caller).map_err(|r| refused(r, "namespace"))?;
        if !valid_namespace_name(name) {
            return Err(reject(
                RejectCode::InvalidArgument,
                "a namespace name is 1–63 characters of a-z, 0-9, `-` and `_`, starting with a letter",
            ));
        }
        if self.namespace(&caller.account, name).is_some() {
            return Err(reject(RejectCode::Conflict, format!("the namespace `{name}` already exists")));
        }
        let cap = self.limits(&caller.account).max_namespaces;
        check_cap(self.namespaces_of(&caller.account).count(), cap, "namespaces")?;
        let body = EventBody::NamespaceCreated { name: name.to_string() };
        Ok(Decision::one(
            self.pending(p, &caller.account, body),
            SubjectRef::Namespace(caller.account.clone(), name.into()),
        ))
    }

    fn decide_settings(
        &self,
        p: &Proposal,
        patch: &SettingsPatch,
        caps: &LimitsPatch,
        action_when_leaked: Option<LeakAction>,
        granularity: Option<Span>,
    ) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        authz::authorize_account_change(&caller).map_err(|r| refused(r, "account"))?;
        let account: &Account =
            self.accounts.get(&caller.account).ok_or_else(|| reject(RejectCode::NotFound, "no such account"))?;
        let mut settings = account.settings.clone();
        if let Some(v) = patch.key_creation_enabled {
            settings.key_creation_enabled = v;
        }
        if let Some(v) = patch.allow_never_expiring {
            settings.allow_never_expiring = v;
        }
        if let Some(v) = patch.max_key_lifetime {
            if v.0 < Span::days(1).0 || v > MAX_LIFETIME_LIMIT {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    "`max_key_lifetime` must be between 1 day and 10 years",
                ));
            }
            settings.max_key_lifetime = v;
        }
        for (value, slot, what) in [
            (patch.max_keys_per_user, &mut settings.max_keys_per_user, "max_keys_per_user"),
            (
                patch.max_keys_per_service_account,
                &mut settings.max_keys_per_service_account,
                "max_keys_per_service_account",
            ),
        ] {
            set_bounded(value, slot, what, MAX_KEYS_LIMIT)?;
        }
        let current_limits = self.limits(&account.id);
        let mut limits = current_limits.clone();
        for (value, slot, what, max) in [
            (caps.max_users, &mut limits.max_users, "max_users", MAX_IDENTITIES_LIMIT),
            (caps.max_service_accounts, &mut limits.max_service_accounts, "max_service_accounts", MAX_IDENTITIES_LIMIT),
            (caps.max_namespaces, &mut limits.max_namespaces, "max_namespaces", MAX_NAMESPACES_LIMIT),
            (caps.max_accounts, &mut limits.max_accounts, "max_accounts", MAX_ACCOUNTS_LIMIT),
        ] {
            set_bounded(value, slot, what, max)?;
        }
        if caps.max_accounts.is_some() {
            if account.id != AccountId::default_account() {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    "`max_accounts` is the cluster operator's setting, kept in account `default`",
                ));
            }
            authz::authorize_account_creation(&caller).map_err(|r| refused(r, "account"))?;
        }
        if let Some(granularity) = granularity {
            if account.id != AccountId::default_account() {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    "`last_used_granularity` is the cluster operator's setting, kept in account `default`",
                ));
            }
            authz::authorize_account_creation(&caller).map_err(|r| refused(r, "account"))?;
            if !(MIN_USAGE_GRANULARITY..=MAX_USAGE_GRANULARITY).contains(&granularity) {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    "`last_used_granularity` must be between 1 minute and 7 days",
                ));
            }
        }
        let mut events = Vec::new();
        if settings != account.settings {
            events.push(self.pending(p, &account.id, EventBody::SettingsChanged { settings }));
        }
        if limits != current_limits {
            events.push(self.pending(p, &account.id, EventBody::LimitsChanged { limits }));
        }
        if let Some(action) = action_when_leaked.filter(|a| *a != self.leak_action(&account.id)) {
            events.push(self.pending(p, &account.id, EventBody::LeakActionChanged { action }));
        }
        if let Some(granularity) = granularity.filter(|g| *g != self.usage_granularity()) {
            events.push(self.pending(p, &account.id, EventBody::UsageGranularityChanged { granularity }));
        }
        Ok(Decision { events, subject: Some(SubjectRef::Account(account.id.clone())) })
    }

    // --- enrollment and leaks -----------------------------------------------------------------

    fn enrollment_issued(&self, p: &Proposal, account: &AccountId, user: UserId, code: &KeyDigest) -> Pending {
        let expires_at = p.time.checked_add(ENROLLMENT_VALIDITY).unwrap_or(Timestamp(i64::MAX));
        Pending {
            account: account.clone(),
            actor: p.actor,
            body: EventBody::EnrollmentIssued { user, code_commitment: code.commitment(), expires_at },
            digest: Some(*code),
        }
    }

    /// A code's digest must be new: neither an open code's nor a key's.
    fn check_new_code(&self, code: &KeyDigest) -> Result<(), Rejection> {
        if self.enrollments.contains_key(code) || self.index.contains_key(code) {
            return Err(reject(RejectCode::Conflict, "an enrollment code with this digest already exists"));
        }
        Ok(())
    }

    fn decide_create_enrolled_user(
        &self,
        p: &Proposal,
        id: UserId,
        name: &str,
        role: Role,
        code: &KeyDigest,
    ) -> Result<Decision, Rejection> {
        let mut decision = self.decide_create_user(p, id, name, role)?;
        // Creating an owner or admin already takes an owner, so the issuer is never outranked.
        self.check_new_code(code)?;
        let account = self.caller(p)?.account;
        decision.events.push(self.enrollment_issued(p, &account, id, code));
        decision.subject = Some(SubjectRef::Enrollment(id));
        Ok(decision)
    }

    fn decide_issue_enrollment(&self, p: &Proposal, id: UserId, code: &KeyDigest) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        let user = self.user_in(&caller, id)?;
        authz::authorize_enrollment(&caller, user.role).map_err(|r| refused(r, "user"))?;
        if user.state != IdentityState::Enabled {
            return Err(reject(RejectCode::Conflict, "the user is disabled or deleted"));
        }
        self.check_new_code(code)?;
        Ok(Decision::one(self.enrollment_issued(p, &user.account, id, code), SubjectRef::Enrollment(id)))
    }

    /// Redeeming a code: the user's own first (or next) key, under every rule a key the user
    /// created itself would meet. The events' actor is the user with the new key.
    fn decide_enroll(&self, p: &Proposal, code: &KeyDigest, new: &NewKey) -> Result<Decision, Rejection> {
        self.system(p)?;
        let refused = || reject(RejectCode::Unauthenticated, ENROLLMENT_REFUSED);
        let enrollment = self.enrollments.get(code).filter(|e| p.time < e.expires_at).ok_or_else(refused)?;
        let user = self
            .users
            .get(&enrollment.user)
            .filter(|u| u.state == IdentityState::Enabled && u.account == p.account)
            .ok_or_else(refused)?;
        let owner = Owner::User(user.id);
        // The user acting on itself, with its whole grant: the key can be no more than that.
        let principal =
            Principal { account: user.account.clone(), identity: owner, role: Some(user.role), grant: user.grant() };
        let key = NewKey { owner: Some(owner), ..new.clone() };
        self.check_new_key(p, &principal, &key, owner, None)?;
        let actor = Actor::User { id: user.id, key: key.id };
        let mut created = self.key_created(p, &user.account, &key, owner, key.scope.clone());
        created.actor = actor;
        let enrolled = Pending {
            account: user.account.clone(),
            actor,
            body: EventBody::Enrolled { user: user.id, key: key.id },
            digest: None,
        };
        Ok(Decision { events: vec![created, enrolled], subject: Some(SubjectRef::Key(key.id)) })
    }

    /// A leak report. Nothing is written for a digest that names no key, or for a key already
    /// reported (one `leaked` event per key). Otherwise `leaked`, then what the account's
    /// `action_when_leaked` does: a leak stops the key even when it is locked (a lock guards
    /// against mistakes by people who hold the key, not against a secret that is out), and
    /// the event says so.
    fn decide_leak(
        &self,
        p: &Proposal,
        digest: &KeyDigest,
        source: &str,
        reporter: &str,
    ) -> Result<Decision, Rejection> {
        self.system(p)?;
        let Some(key) = self.key_by_digest(digest).filter(|k| !self.leaked.contains(&k.id)) else {
            return Ok(Decision { events: Vec::new(), subject: None });
        };
        let action = self.leak_action(&key.account);
        let current = key.state_at(p.time);
        let change = match action {
            LeakAction::Disable if current == KeyState::Enabled => Some(EventBody::KeyDisabled { key: key.id }),
            LeakAction::Delete if current != KeyState::Deleted => Some(EventBody::KeyDeleted { key: key.id }),
            _ => None,
        };
        let cut = |text: &str, max: usize| text.chars().filter(|c| !c.is_control()).take(max).collect::<String>();
        let leaked = EventBody::Leaked {
            key: key.id,
            source: cut(source, MAX_LEAK_SOURCE),
            reporter: cut(reporter, MAX_LEAK_REPORTER),
            action,
            lock_overridden: key.locked && change.is_some(),
        };
        let mut events = vec![self.pending(p, &key.account, leaked)];
        events.extend(change.map(|body| self.pending(p, &key.account, body)));
        Ok(Decision { events, subject: None })
    }

    // --- the cluster's own chain --------------------------------------------------------------

    fn cluster_chain(&self, p: &Proposal) -> Result<(), Rejection> {
        self.system(p)?;
        if !p.account.is_cluster() {
            return Err(reject(RejectCode::InvalidArgument, "signers and checkpoints belong on the cluster chain"));
        }
        Ok(())
    }

    fn decide_register_signer(&self, p: &Proposal, node: u64, public_key: PublicKey) -> Result<Decision, Rejection> {
        self.cluster_chain(p)?;
        if !public_key.is_valid() {
            return Err(reject(RejectCode::InvalidArgument, "not an Ed25519 public key"));
        }
        if self.signers.contains_key(&public_key) {
            return Err(reject(RejectCode::Conflict, "this signing key is already registered"));
        }
        let body = EventBody::SignerRegistered { node, public_key };
        Ok(Decision { events: vec![self.pending(p, &p.account, body)], subject: None })
    }

    /// Everything about a checkpoint that the state can judge. Its root and head are compared
    /// with the stored ledger by the ledger crate, which holds the Merkle tree, before this runs.
    fn decide_checkpoint(&self, p: &Proposal, checkpoint: &Checkpoint) -> Result<Decision, Rejection> {
        self.cluster_chain(p)?;
        let invalid = |why: String| Err(reject(RejectCode::InvalidArgument, why));
        if self.signers.get(&checkpoint.public_key) != Some(&checkpoint.signer) {
            return invalid(format!("the key is not a registered signing key of node {}", checkpoint.signer));
        }
        let size = self.head.seq;
        if checkpoint.tree_size == 0 || checkpoint.tree_size > size {
            return invalid(format!("a checkpoint must cover 1 to {size} events, not {}", checkpoint.tree_size));
        }
        if size - checkpoint.tree_size > MAX_CHECKPOINT_LAG {
            return invalid(format!("the checkpoint covers a ledger more than {MAX_CHECKPOINT_LAG} events old"));
        }
        if let Some(last) = self.last_checkpoint {
            if checkpoint.tree_size <= last.tree_size {
                return Err(reject(RejectCode::Conflict, "not newer than the last checkpoint"));
            }
        }
        if !checkpoint.signature_is_valid() {
            return invalid("the signature does not verify".into());
        }
        let body = EventBody::Checkpoint(*checkpoint);
        Ok(Decision { events: vec![self.pending(p, &p.account, body)], subject: None })
    }
}

/// Sets `slot` to `value` if given and within `1..=max`.
fn set_bounded(value: Option<u32>, slot: &mut u32, what: &str, max: u32) -> Result<(), Rejection> {
    if let Some(v) = value {
        if !(1..=max).contains(&v) {
            return Err(reject(RejectCode::InvalidArgument, format!("`{what}` must be between 1 and {max}")));
        }
        *slot = v;
    }
    Ok(())
}

/// Refuses one more of something an account (or the cluster) already holds `count` of, at `cap`.
fn check_cap(count: usize, cap: u32, what: &str) -> Result<(), Rejection> {
    if count >= cap as usize {
        return Err(reject(RejectCode::LimitExceeded, format!("the cap of {cap} {what} is reached")));
    }
    Ok(())
}

fn never_expiring_refused() -> Rejection {
    reject(RejectCode::InvalidArgument, "this account does not allow keys that never expire; give an expiry")
}

/// An expiry must lie in the future and within the account's maximum key lifetime.
fn check_expiry(at: Timestamp, now: Timestamp, settings: &AccountSettings) -> Result<(), Rejection> {
    if at <= now {
        return Err(reject(RejectCode::InvalidArgument, "the expiry must be in the future"));
    }
    if at.0.saturating_sub(now.0) > settings.max_key_lifetime.0 {
        return Err(reject(
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
    if required && text.trim().is_empty() {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must not be empty")));
    }
    if text.chars().count() > max_chars {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must be at most {max_chars} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must not contain control characters")));
    }
    if text.chars().any(is_bidi_control) {
        return Err(reject(
            RejectCode::InvalidArgument,
            format!("the {what} must not contain Unicode bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069)"),
        ));
    }
    Ok(())
}

/// Characters that reorder the text around them: a name holding one can display as another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
