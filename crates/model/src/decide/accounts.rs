//! Deciding account-wide changes: bootstrapping the first account, creating accounts, their
//! namespaces and their settings and caps.

use crate::account::{Account, AccountSettings, LeakAction};
use crate::authz::{self};
use crate::event::EventBody;
use crate::ids::{AccountId, UserId};
use crate::owner::Owner;
use crate::permissions::{valid_namespace_name, Role};
use crate::proposal::{LimitsPatch, NewKey, Proposal, RejectCode, Rejection, SettingsPatch};
use crate::state::State;
use crate::time::Span;
use crate::token::KeyDigest;
use crate::usage::{MAX_USAGE_GRANULARITY, MIN_USAGE_GRANULARITY};

use super::checks::{
    check_cap, check_expiry, check_text, never_expiring_refused, set_bounded, MAX_ACCOUNTS_LIMIT, MAX_IDENTITIES_LIMIT,
    MAX_KEYS_LIMIT, MAX_LIFETIME_LIMIT, MAX_NAMESPACES_LIMIT, MAX_NAME_CHARS,
};
use super::{refused, reject, Decision, Pending, SubjectRef};

impl State {
    pub(super) fn decide_bootstrap(
        &self,
        p: &Proposal,
        admin: UserId,
        name: &str,
        key: &NewKey,
    ) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_create_account(
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
    pub(super) fn decide_create_account_with_enrollment(
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
    pub(super) fn check_operator_creates_account(
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
    pub(super) fn account_and_owner(
        &self,
        p: &Proposal,
        account: &AccountId,
        owner: UserId,
        name: &str,
    ) -> Vec<Pending> {
        let settings = AccountSettings::default();
        vec![
            self.pending(p, account, EventBody::AccountCreated { settings }),
            self.pending(p, account, EventBody::UserCreated { user: owner, name: name.to_string(), role: Role::Owner }),
        ]
    }

    pub(super) fn check_new_account(&self, account: &AccountId, owner: UserId, name: &str) -> Result<(), Rejection> {
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
    pub(super) fn check_first_key(&self, account: &AccountId, key: &NewKey) -> Result<(), Rejection> {
        self.check_key_shape(key)?;
        match &key.scope {
            Some(scope) => self.check_scope(account, scope),
            None => Ok(()),
        }
    }

    pub(super) fn new_account_events(
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

    pub(super) fn decide_namespace(&self, p: &Proposal, name: &str) -> Result<Decision, Rejection> {
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

    pub(super) fn decide_settings(
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
}
