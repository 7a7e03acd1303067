//! From the model to the wire and back: how objects are shown, and how the strings of a
//! request (roles, permission levels, scopes, durations) become model values.

use std::collections::BTreeMap;

use keyledger_model::{
    Account, AccountId, AccountLimits, AccountSettings, KeyRecord, LeakAction, Level, Namespace, Owner, Role, Scope,
    ServiceAccount, Span, State as LedgerState, Timestamp, User,
};
use keyledger_wire as wire;

use crate::error::ApiError;

pub(crate) fn owner_kind(owner: &Owner) -> wire::OwnerKind {
    match owner {
        Owner::User(_) => wire::OwnerKind::User,
        Owner::ServiceAccount(_) => wire::OwnerKind::ServiceAccount,
    }
}

pub(crate) fn owner_id(owner: &Owner) -> String {
    match owner {
        Owner::User(id) => id.to_string(),
        Owner::ServiceAccount(id) => id.to_string(),
    }
}

pub(crate) fn identity(state: &LedgerState, owner: &Owner) -> wire::Identity {
    wire::Identity {
        kind: owner_kind(owner),
        id: owner_id(owner),
        name: state.owner_name(owner).unwrap_or_default().to_string(),
    }
}

/// KEY as the API shows it, with the state as of `now` (an expired key shows `expired`).
pub(crate) fn key(state: &LedgerState, key: &KeyRecord, now: Timestamp) -> wire::Key {
    let created_by = match key.created_by.identity() {
        None => wire::Actor { kind: "system".into(), id: None, key_id: None },
        Some(identity) => wire::Actor {
            kind: owner_kind(&identity).as_str().into(),
            id: Some(owner_id(&identity)),
            key_id: key.created_by.key().map(|k| k.to_string()),
        },
    };
    wire::Key {
        id: key.id.to_string(),
        name: key.name.clone(),
        description: key.description.clone(),
        owner: identity(state, &key.owner),
        account: key.account.to_string(),
        namespace: state.key_namespace(key).map(str::to_string),
        scope: key.scope.as_ref().map(scope),
        state: key.state_at(now).as_str().to_string(),
        locked: key.locked,
        hint: key.hint.clone(),
        created_at: key.created_at.to_string(),
        created_by,
        expires_at: key.expires_at.map(|t| t.to_string()),
        last_used_at: key.last_used_at.map(|t| t.to_string()),
        revision: key.revision,
    }
}

pub(crate) fn scope(scope: &Scope) -> wire::KeyScope {
    match scope {
        Scope::Role(role) => wire::KeyScope::Role(role.as_str().into()),
        Scope::Namespaces(namespaces) => wire::KeyScope::Namespaces(levels(namespaces)),
    }
}

fn levels(namespaces: &BTreeMap<String, Level>) -> BTreeMap<String, String> {
    namespaces.iter().map(|(name, level)| (name.clone(), level.as_str().to_string())).collect()
}

pub(crate) fn user(user: &User) -> wire::User {
    wire::User {
        id: user.id.to_string(),
        name: user.name.clone(),
        role: user.role.as_str().into(),
        namespaces: levels(&user.namespaces),
        state: user.state.as_str().into(),
        created_at: user.created_at.to_string(),
    }
}

pub(crate) fn service_account(sa: &ServiceAccount) -> wire::ServiceAccount {
    let (namespace, permission) = match &sa.binding {
        keyledger_model::Binding::Account(_) => (None, None),
        keyledger_model::Binding::Namespace { namespace, level } => {
            (Some(namespace.clone()), Some(level.as_str().to_string()))
        }
    };
    wire::ServiceAccount {
        id: sa.id.to_string(),
        name: sa.name.clone(),
        role: sa.role().map(|r| r.as_str().to_string()),
        namespace,
        permission,
        state: sa.state.as_str().into(),
        created_at: sa.created_at.to_string(),
    }
}

pub(crate) fn namespace(namespace: &Namespace) -> wire::Namespace {
    wire::Namespace { name: namespace.name.clone(), created_at: namespace.created_at.to_string() }
}

pub(crate) fn settings(
    account: &Account,
    limits: &AccountLimits,
    action_when_leaked: LeakAction,
    last_used_granularity: Span,
) -> wire::Settings {
    let AccountSettings {
        key_creation_enabled,
        max_key_lifetime,
        allow_never_expiring,
        max_keys_per_user,
        max_keys_per_service_account,
    } = account.settings.clone();
    let AccountLimits { max_users, max_service_accounts, max_namespaces, max_accounts } = limits.clone();
    wire::Settings {
        key_creation_enabled,
        max_key_lifetime: span(max_key_lifetime),
        allow_never_expiring,
        max_keys_per_user,
        max_keys_per_service_account,
        max_users,
        max_service_accounts,
        max_namespaces,
        max_accounts: (account.id == AccountId::default_account()).then_some(max_accounts),
        action_when_leaked: action_when_leaked.as_str().to_string(),
        last_used_granularity: span(last_used_granularity),
    }
}

/// A span as a duration `Span::parse` reads back: `730d`, `1d12h`, `90m`, `0s`.
pub(crate) fn span(span: Span) -> String {
    const UNITS: [(char, i64); 4] = [('d', 86_400_000), ('h', 3_600_000), ('m', 60_000), ('s', 1_000)];
    let mut rest = span.0.max(0);
    let mut out = String::new();
    for (unit, ms) in UNITS {
        if rest >= ms {
            out.push_str(&format!("{}{unit}", rest / ms));
            rest %= ms;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

// --- request strings ---------------------------------------------------------------------------

pub(crate) fn parse_role(field: &str, text: &str) -> Result<Role, ApiError> {
    Role::parse(text)
        .ok_or_else(|| ApiError::invalid(format!("`{field}` must be one of owner, admin, developer, read")))
}

pub(crate) fn parse_level(field: &str, text: &str) -> Result<Level, ApiError> {
    text.parse::<Level>().map_err(|_| ApiError::invalid(format!("`{field}` must be one of admin, write, read")))
}

pub(crate) fn parse_scope(scope: &wire::KeyScope) -> Result<Scope, ApiError> {
    match scope {
        wire::KeyScope::Role(role) => parse_role("scope.role", role).map(Scope::Role),
        wire::KeyScope::Namespaces(namespaces) => namespaces
            .iter()
            .map(|(name, level)| Ok((name.clone(), parse_level("scope.namespaces", level)?)))
            .collect::<Result<BTreeMap<_, _>, ApiError>>()
            .map(Scope::Namespaces),
    }
}

pub(crate) fn parse_span(field: &str, text: &str) -> Result<Span, ApiError> {
    Span::parse(text).map_err(|e| ApiError::invalid(format!("`{field}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_back() {
        for text in ["730d", "1d12h", "90m", "1h0m5s", "2y", "45s"] {
            let parsed = Span::parse(text).unwrap();
            assert_eq!(Span::parse(&span(parsed)), Ok(parsed), "{text}");
        }
        assert_eq!(span(Span::years(2)), "730d");
        assert_eq!(span(Span(5_400_000)), "1h30m");
        assert_eq!(span(Span::ZERO), "0s");
    }
}
