//! Deciding what callers do to keys: create, change state, update, lock, rotate — and the
//! checks every new key (created, rotated in or enrolled) must pass.

use crate::authz::{self, KeyAction, Principal, Refusal};
use crate::event::EventBody;
use crate::identity::IdentityState;
use crate::ids::{AccountId, KeyId};
use crate::key::{KeyRecord, KeyState};
use crate::owner::Owner;
use crate::permissions::Scope;
use crate::proposal::{NewKey, Proposal, RejectCode, Rejection};
use crate::state::State;
use crate::time::{Span, Timestamp};
use crate::token::HINT_LEN;

use super::checks::{check_expiry, check_text, never_expiring_refused, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use super::{refused, reject, Decision, Pending, SubjectRef};

impl State {
    /// The key, if `caller` may see it; then whether it may do `action` to it.
    pub(super) fn key_for(&self, caller: &Principal, id: KeyId, action: KeyAction) -> Result<&KeyRecord, Rejection> {
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

    pub(super) fn key_created(
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

    pub(super) fn decide_create(&self, p: &Proposal, new: &NewKey) -> Result<Decision, Rejection> {
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
    pub(super) fn check_new_key(
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
        let effective = self.identity_grant(&owner).unwrap_or_default().narrowed_by(new.scope.as_ref());
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

    pub(super) fn check_scope(&self, account: &AccountId, scope: &Scope) -> Result<(), Rejection> {
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

    pub(super) fn check_key_shape(&self, key: &NewKey) -> Result<(), Rejection> {
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

    pub(super) fn decide_key_state(&self, p: &Proposal, id: KeyId, to: KeyState) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_update(
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

    pub(super) fn decide_lock(&self, p: &Proposal, id: KeyId, lock: bool) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_rotate(
        &self,
        p: &Proposal,
        id: KeyId,
        new: &NewKey,
        grace: Span,
    ) -> Result<Decision, Rejection> {
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
}
