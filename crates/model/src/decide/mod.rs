//! Deciding: validating a proposal against the current state, in log order, and sealing the
//! resulting events onto both hash chains.
//!
//! Every check of `domain.md` happens here — authentication of the caller's key *at apply
//! time*, the authorization table, lifecycle rules, limits, settings — so they hold under
//! concurrent writes and leader changes without any lock across the cluster.
//!
//! This file holds the entry point ([`State::execute`]), sealing, the dispatch of each
//! command to its decision and the checks every decision shares (who the caller is); the
//! decisions themselves live in one file per kind of object.

mod accounts;
mod checks;
mod cluster;
mod identities;
mod keys;
mod recorded;
mod webhooks;

use crate::authz::{Principal, Refusal};
use crate::chain::ChainHash;
use crate::event::{Event, EventBody, LedgerEntry};
use crate::identity::IdentityState;
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId};
use crate::key::KeyState;
use crate::owner::Actor;
use crate::proposal::{Command, LimitsPatch, Outcome, Proposal, RejectCode, Rejection, Subject};
use crate::state::State;
use crate::token::KeyDigest;

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
    Webhook(crate::ids::WebhookId),
    /// An object the command removed, as it was before.
    Removed(Box<Subject>),
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
            SubjectRef::Webhook(id) => Subject::Webhook(self.webhooks.get(&id)?.clone()),
            SubjectRef::Removed(subject) => *subject,
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
            Command::CreateWebhook(new) => self.decide_create_webhook(p, new),
            Command::DeleteWebhook(id) => self.decide_delete_webhook(p, *id),
            Command::RotateWebhookSecret { webhook, secret_nonce } => {
                self.decide_rotate_webhook_secret(p, *webhook, *secret_nonce)
            }
            Command::RecordWebhookDeliveries(reports) => self.decide_record_deliveries(p, reports),
            Command::WarnExpiringKeys(ids) => self.decide_warn_expiring(p, ids),
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
}
