//! Deciding changes to identities: users, service accounts, and enrollment codes that let a
//! user mint its own key.

use crate::authz::{self, Principal};
use crate::event::EventBody;
use crate::identity::{Binding, IdentityState, User, ENROLLMENT_REFUSED, ENROLLMENT_VALIDITY};
use crate::ids::{AccountId, ServiceAccountId, UserId};
use crate::owner::{Actor, Owner};
use crate::permissions::Role;
use crate::proposal::{NewKey, Proposal, RejectCode, Rejection};
use crate::state::State;
use crate::time::Timestamp;
use crate::token::KeyDigest;

use super::checks::{check_cap, check_text, MAX_NAME_CHARS};
use super::{refused, reject, Decision, Pending, SubjectRef};

impl State {
    pub(super) fn user_in(&self, caller: &Principal, id: UserId) -> Result<&User, Rejection> {
        self.users
            .get(&id)
            .filter(|u| u.account == caller.account)
            .ok_or_else(|| reject(RejectCode::NotFound, "no such user"))
    }

    /// Refuses a change that would leave the account without an enabled owner.
    pub(super) fn keep_an_owner(&self, account: &AccountId, changing: UserId) -> Result<(), Rejection> {
        let others = self.users.values().any(|u| {
            u.account == *account && u.id != changing && u.role == Role::Owner && u.state == IdentityState::Enabled
        });
        if others {
            Ok(())
        } else {
            Err(reject(RejectCode::Conflict, "the account must keep at least one enabled owner"))
        }
    }

    pub(super) fn check_identity_name(&self, account: &AccountId, name: &str, taken: bool) -> Result<(), Rejection> {
        check_text("name", name, MAX_NAME_CHARS, true)?;
        if taken {
            return Err(reject(
                RejectCode::Conflict,
                format!("the name `{name}` is already taken in account {account}"),
            ));
        }
        Ok(())
    }

    pub(super) fn decide_create_user(
        &self,
        p: &Proposal,
        id: UserId,
        name: &str,
        role: Role,
    ) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_user_state(&self, p: &Proposal, id: UserId, to: IdentityState) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_user_role(&self, p: &Proposal, id: UserId, role: Role) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_user_namespace(
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

    pub(super) fn decide_create_sa(
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

    pub(super) fn decide_sa_state(
        &self,
        p: &Proposal,
        id: ServiceAccountId,
        to: IdentityState,
    ) -> Result<Decision, Rejection> {
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

    pub(super) fn enrollment_issued(
        &self,
        p: &Proposal,
        account: &AccountId,
        user: UserId,
        code: &KeyDigest,
    ) -> Pending {
        let expires_at = p.time.checked_add(ENROLLMENT_VALIDITY).unwrap_or(Timestamp(i64::MAX));
        Pending {
            account: account.clone(),
            actor: p.actor,
            body: EventBody::EnrollmentIssued { user, code_commitment: code.commitment(), expires_at },
            digest: Some(*code),
        }
    }

    /// A code's digest must be new: neither an open code's nor a key's.
    pub(super) fn check_new_code(&self, code: &KeyDigest) -> Result<(), Rejection> {
        if self.enrollments.contains_key(code) || self.index.contains_key(code) {
            return Err(reject(RejectCode::Conflict, "an enrollment code with this digest already exists"));
        }
        Ok(())
    }

    pub(super) fn decide_create_enrolled_user(
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

    pub(super) fn decide_issue_enrollment(
        &self,
        p: &Proposal,
        id: UserId,
        code: &KeyDigest,
    ) -> Result<Decision, Rejection> {
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
    pub(super) fn decide_enroll(&self, p: &Proposal, code: &KeyDigest, new: &NewKey) -> Result<Decision, Rejection> {
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
}
