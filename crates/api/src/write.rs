//! The one way a handler writes: a complete proposal as the caller, through the cluster, and
//! the outcome turned into the changed object or an [`ApiError`].
//!
//! Refusals for authorization are noted here, for every write at once: a `permission_denied`,
//! or a `not_found` about an object that exists but that the caller may not see, goes to
//! [`keyledger_cluster::ClusterNode::record_denial`] and so into a batched `denied` event.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use keyledger_cluster::Committed;
use keyledger_model::{
    Account, AccountId, AccountLimits, Actor, Command, KeyAction, KeyId, KeyRecord, LeakAction, Namespace, Outcome,
    Owner, Proposal, RejectCode, Rejection, ServiceAccount, ServiceAccountId, State as LedgerState, Subject, Timestamp,
    User, UserId,
};
use keyledger_wire as wire;

use crate::error::{current_request_id, ApiError};
use crate::extract::Caller;
use crate::metrics::WriteOutcome;
use crate::AppState;

/// What a write is: its name in `denied` events (`key.disable`) and the object it is about.
pub(crate) struct Operation {
    pub(crate) name: &'static str,
    pub(crate) target: Target,
}

impl Operation {
    pub(crate) fn new(name: &'static str, target: Target) -> Operation {
        Operation { name, target }
    }
}

/// The object a write is about.
pub(crate) enum Target {
    Key(KeyId),
    User(UserId),
    ServiceAccount(ServiceAccountId),
    /// The identity a key is created for.
    Identity(Owner),
    /// Something named that every member of the account may see (a namespace, settings).
    Named(String),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Target::Key(id) => id.to_string(),
            Target::User(id) => id.to_string(),
            Target::ServiceAccount(id) => id.to_string(),
            Target::Identity(owner) => crate::render::owner_id(owner),
            Target::Named(name) => name.clone(),
        }
    }

    /// True when the object exists but `caller` may not see it (the model answered
    /// `not_found` to hide it, not because it is missing).
    fn hidden_from(&self, state: &LedgerState, caller: &Caller) -> bool {
        let other_account = |account: &keyledger_model::AccountId| account != caller.account();
        match self {
            Target::Key(id) => {
                state.key(id).is_some_and(|key| state.authorize_key(&caller.principal, key, KeyAction::Read).is_err())
            }
            Target::User(id) => state.user(id).is_some_and(|u| other_account(&u.account)),
            Target::ServiceAccount(id) => state.service_account(id).is_some_and(|s| other_account(&s.account)),
            Target::Identity(owner) => state.owner_account(owner).is_some_and(other_account),
            Target::Named(_) => false,
        }
    }
}

/// Proposes `command` as `caller` at `now` and waits for its outcome: the commit index and the
/// object the command was about, as it is after it.
pub(crate) async fn write(
    app: &AppState,
    caller: &Caller,
    now: Timestamp,
    operation: Operation,
    command: Command,
) -> Result<(u64, Subject), ApiError> {
    // Commands whose first answer carried a secret: a retry cannot show it again.
    let (index, outcome, replayed) = propose(app, caller.actor(), caller.account().clone(), now, command).await?;
    match outcome {
        Outcome::Accepted { subject: Some(subject), .. } => Ok((index, *subject)),
        Outcome::Rejected(rejection) => {
            // A replayed refusal was noted the first time.
            if !replayed {
                note_denial(app, caller, &operation, &rejection);
            }
            Err(rejection.into())
        }
        other => Err(ApiError::internal(format!("unexpected outcome {other:?} at index {index}"))),
    }
}

/// Proposes `command` as the cluster itself, for a request that carries no API key and whose
/// command holds its own proof, checked at apply time (an enrollment code's digest). `account`
/// is the account the command is about. Refusals are not noted as `denied`: there is no actor.
pub(crate) async fn write_without_key(
    app: &AppState,
    account: AccountId,
    now: Timestamp,
    command: Command,
) -> Result<(u64, Subject), ApiError> {
    let (index, outcome, _) = propose(app, Actor::System, account, now, command).await?;
    match outcome {
        Outcome::Accepted { subject: Some(subject), .. } => Ok((index, *subject)),
        Outcome::Rejected(rejection) => Err(rejection.into()),
        other => Err(ApiError::internal(format!("unexpected outcome {other:?} at index {index}"))),
    }
}

/// Builds the proposal (wrapped for an `Idempotency-Key`), proposes it and counts it; answers
/// the index, the outcome and whether it was a replay. A replayed command whose first answer
/// carried a secret is refused: the secret cannot be shown again.
async fn propose(
    app: &AppState,
    actor: Actor,
    account: AccountId,
    now: Timestamp,
    command: Command,
) -> Result<(u64, Outcome, bool), ApiError> {
    let makes_secret = matches!(
        command,
        Command::CreateKey(_)
            | Command::RotateKey { .. }
            | Command::CreateAccount { .. }
            | Command::CreateAccountWithEnrollment { .. }
            | Command::CreateEnrolledUser { .. }
            | Command::IssueEnrollment { .. }
            | Command::Enroll { .. }
            | Command::CreateWebhook(_)
            | Command::RotateWebhookSecret { .. }
    );
    let command = match crate::idempotency::current() {
        Some(idem) => Command::Idempotent { key: idem.key, fingerprint: idem.fingerprint, command: Box::new(command) },
        None => command,
    };
    let proposal =
        Proposal { time: now, request_id: current_request_id().unwrap_or_default(), actor, account, command };
    let started = Instant::now();
    let proposed = app.node.propose(proposal).await;
    app.metrics.count_write(WriteOutcome::of(&proposed), started.elapsed());
    let Committed { index, outcome, replayed } = proposed?;
    if replayed && makes_secret {
        if let Outcome::Accepted { subject: Some(subject), .. } = &outcome {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!(
                    "this request was already applied at index {index} ({}); a secret is shown only once, \
                     so if it was lost delete that key and create a new one (for an enrollment code: \
                     issue a fresh code)",
                    subject_id(subject)
                ),
            ));
        }
    }
    Ok((index, outcome, replayed))
}

fn subject_id(subject: &Subject) -> String {
    match subject {
        Subject::Key(key) => format!("key {}", key.id),
        Subject::User(user) => format!("user {}", user.id),
        Subject::ServiceAccount(sa) => format!("service account {}", sa.id),
        Subject::Namespace(ns) => format!("namespace {}", ns.name),
        Subject::Account(account) | Subject::AccountSettings { account, .. } => format!("account {}", account.id),
        Subject::Enrollment { user, .. } => format!("an enrollment code for user {}", user.id),
        Subject::Webhook(webhook) => format!("webhook {}", webhook.id),
    }
}

fn note_denial(app: &AppState, caller: &Caller, operation: &Operation, rejection: &Rejection) {
    let denied = match rejection.code {
        RejectCode::PermissionDenied => true,
        RejectCode::NotFound => operation.target.hidden_from(&app.node.ledger().state(), caller),
        _ => false,
    };
    if denied {
        app.node.record_denial(
            caller.actor(),
            caller.account().clone(),
            operation.name,
            &operation.target.text(),
            &rejection.message,
        );
    }
}

/// A write whose answer is `204 No Content` (a delete): only the index it committed at.
pub(crate) async fn write_no_content(
    app: &AppState,
    caller: &Caller,
    operation: Operation,
    command: Command,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (index, _) = write(app, caller, app.node.now(), operation, command).await?;
    Ok((axum::http::StatusCode::NO_CONTENT, index_header(index)).into_response())
}

/// `X-Keyledger-Index: <index>`, carried by every write's answer.
pub(crate) fn index_header(index: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(wire::INDEX_HEADER, HeaderValue::from(index));
    headers
}

fn unexpected(what: &str, subject: &Subject) -> ApiError {
    ApiError::internal(format!("a {what} write answered about {subject:?}"))
}

pub(crate) fn into_key(subject: Subject) -> Result<KeyRecord, ApiError> {
    match subject {
        Subject::Key(key) => Ok(key),
        other => Err(unexpected("key", &other)),
    }
}

pub(crate) fn into_user(subject: Subject) -> Result<User, ApiError> {
    match subject {
        Subject::User(user) => Ok(user),
        other => Err(unexpected("user", &other)),
    }
}

/// The user and its new code's expiry, from a write that issued an enrollment code.
pub(crate) fn into_enrollment(subject: Subject) -> Result<(User, Timestamp), ApiError> {
    match subject {
        Subject::Enrollment { user, expires_at } => Ok((user, expires_at)),
        other => Err(unexpected("enrollment", &other)),
    }
}

pub(crate) fn into_service_account(subject: Subject) -> Result<ServiceAccount, ApiError> {
    match subject {
        Subject::ServiceAccount(sa) => Ok(sa),
        other => Err(unexpected("service account", &other)),
    }
}

pub(crate) fn into_namespace(subject: Subject) -> Result<Namespace, ApiError> {
    match subject {
        Subject::Namespace(namespace) => Ok(namespace),
        other => Err(unexpected("namespace", &other)),
    }
}

/// The account and its caps (`None` in an answer recorded before caps existed).
/// An account's settings answer: the account, and its caps and leak action when the answer
/// carries them (an answer stored before they existed does not).
pub(crate) fn into_account(subject: Subject) -> Result<(Account, Option<(AccountLimits, LeakAction)>), ApiError> {
    match subject {
        Subject::Account(account) => Ok((account, None)),
        Subject::AccountSettings { account, limits, action_when_leaked } => {
            Ok((account, Some((limits, action_when_leaked))))
        }
        other => Err(unexpected("account", &other)),
    }
}
