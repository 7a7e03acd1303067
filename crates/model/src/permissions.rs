//! Permissions: what an identity, or a key's narrower scope, may do.
//!
//! A [`Grant`] is an account-wide level (or none) plus per-namespace levels. An account-wide
//! level applies to every namespace, so `namespace:x:write` is granted by `account:write` as
//! well as by `write` on `x`. A key's effective permissions are the *intersection* of its
//! identity's current grant and the key's scope ([`Grant::intersect`]), evaluated at the moment
//! of use — so a key can never do more than its scope, nor more than its identity can do now.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An ordered permission level: `admin` implies `write` implies `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Read, Level::Write, Level::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
}

impl FromStr for Level {
    type Err = BadPermission;
    fn from_str(text: &str) -> Result<Level, BadPermission> {
        match text {
            "read" => Ok(Level::Read),
            "write" => Ok(Level::Write),
            "admin" => Ok(Level::Admin),
            _ => Err(BadPermission),
        }
    }
}

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

/// A namespace name: 1–63 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter.
pub fn valid_namespace_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One permission as asked for at verification: `account:<level>` or `namespace:<name>:<level>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Permission {
    Account(Level),
    Namespace(String, Level),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a permission is `account:admin|write|read` or `namespace:<name>:admin|write|read`")]
pub struct BadPermission;

impl FromStr for Permission {
    type Err = BadPermission;
    fn from_str(text: &str) -> Result<Permission, BadPermission> {
        let mut parts = text.split(':');
        let permission = match (parts.next(), parts.next(), parts.next()) {
            (Some("account"), Some(level), None) => Permission::Account(level.parse()?),
            (Some("namespace"), Some(name), Some(level)) if valid_namespace_name(name) => {
                Permission::Namespace(name.to_string(), level.parse()?)
            }
            _ => return Err(BadPermission),
        };
        match parts.next() {
            None => Ok(permission),
            Some(_) => Err(BadPermission),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Account(level) => write!(f, "account:{}", level.as_str()),
            Permission::Namespace(name, level) => write!(f, "namespace:{name}:{}", level.as_str()),
        }
    }
}

/// What an identity (or a scope) may do: an account-wide level and per-namespace levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub account: Option<Level>,
    pub namespaces: BTreeMap<String, Level>,
}

impl Grant {
    pub fn account_wide(level: Level) -> Grant {
        Grant { account: Some(level), namespaces: BTreeMap::new() }
    }

    /// The level this grant gives in namespace `name`.
    pub fn level_in(&self, name: &str) -> Option<Level> {
        self.account.max(self.namespaces.get(name).copied())
    }

    pub fn grants(&self, permission: &Permission) -> bool {
        level_grants(self.account, |name| self.namespaces.get(name).copied(), permission)
    }

    /// The effective grant of a key: its identity's grant (this one) narrowed by the key's
    /// scope. The one place effective permissions are computed: verification, the caller of a
    /// write and the check that a new key is no wider than its maker all ask this.
    pub fn narrowed_by(self, scope: Option<&Scope>) -> Grant {
        match scope {
            Some(scope) => self.intersect(&scope.grant()),
            None => self,
        }
    }

    /// What both grants allow: `a.intersect(b).grants(p) == a.grants(p) && b.grants(p)`.
    pub fn intersect(&self, other: &Grant) -> Grant {
        let account = self.account.min(other.account);
        let namespaces = self
            .namespaces
            .keys()
            .chain(other.namespaces.keys())
            .filter_map(|name| {
                let level = self.level_in(name).min(other.level_in(name))?;
                (Some(level) > account).then(|| (name.clone(), level))
            })
            .collect();
        Grant { account, namespaces }
    }

    /// Every permission granted, strongest first: `account:admin`, `account:write`, …, then
    /// namespace permissions beyond the account-wide level.
    pub fn permissions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for level in Level::ALL.iter().rev() {
            if self.account >= Some(*level) {
                out.push(Permission::Account(*level).to_string());
            }
        }
        for (name, ns_level) in &self.namespaces {
            for level in Level::ALL.iter().rev() {
                if Some(*level) <= Some(*ns_level) && Some(*level) > self.account {
                    out.push(Permission::Namespace(name.clone(), *level).to_string());
                }
            }
        }
        out
    }
}

/// The one rule of what levels grant: `account:<level>` needs that level account-wide,
/// `namespace:<name>:<level>` needs it account-wide or in that namespace. `in_namespace` gives
/// the namespace-specific level, so identities and scopes are asked without building a
/// [`Grant`].
pub(crate) fn level_grants(
    account: Option<Level>,
    in_namespace: impl FnOnce(&str) -> Option<Level>,
    permission: &Permission,
) -> bool {
    match permission {
        Permission::Account(level) => account >= Some(*level),
        Permission::Namespace(name, level) => account.max(in_namespace(name)) >= Some(*level),
    }
}

/// A key's optional narrowing: at most a role, or only some namespace permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    Role(Role),
    Namespaces(BTreeMap<String, Level>),
}

impl Scope {
    pub fn grant(&self) -> Grant {
        match self {
            Scope::Role(role) => Grant::account_wide(role.level()),
            Scope::Namespaces(namespaces) => Grant { account: None, namespaces: namespaces.clone() },
        }
    }

    /// Does the scope allow `permission`? (Borrowed: verification asks this on its hot path.)
    pub fn grants(&self, permission: &Permission) -> bool {
        match self {
            Scope::Role(role) => level_grants(Some(role.level()), |_| None, permission),
            Scope::Namespaces(namespaces) => level_grants(None, |name| namespaces.get(name).copied(), permission),
        }
    }

    /// The effective account role of a key of an identity with account role `role`: the
    /// weaker of the two for a role scope, none for a namespace scope.
    pub fn narrow_role(scope: Option<&Scope>, role: Option<Role>) -> Option<Role> {
        match scope {
            None => role,
            Some(Scope::Role(scoped)) => role.map(|r| r.min(*scoped)),
            Some(Scope::Namespaces(_)) => None,
        }
    }

    /// True when everything this scope allows, `wider` allows too.
    pub fn within(&self, wider: &Grant) -> bool {
        let mine = self.grant();
        mine.intersect(wider) == mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_display() {
        for text in ["account:admin", "account:read", "namespace:payments:write", "namespace:a-b_c:read"] {
            assert_eq!(text.parse::<Permission>().unwrap().to_string(), text);
        }
        for bad in ["", "account", "account:root", "namespace:x", "namespace::read", "namespace:X:read", "a:b:c:d"] {
            assert_eq!(bad.parse::<Permission>(), Err(BadPermission), "{bad:?}");
        }
    }

    #[test]
    fn account_level_covers_namespaces() {
        let developer = Grant::account_wide(Level::Write);
        assert!(developer.grants(&"namespace:payments:write".parse().unwrap()));
        assert!(!developer.grants(&"namespace:payments:admin".parse().unwrap()));
        assert_eq!(developer.permissions(), ["account:write", "account:read"]);
        let ns_admin = Grant { account: Some(Level::Read), namespaces: BTreeMap::from([("p".into(), Level::Admin)]) };
        assert_eq!(ns_admin.permissions(), ["account:read", "namespace:p:admin", "namespace:p:write"]);
    }

    #[test]
    fn a_scope_narrows_the_role() {
        let ns = Scope::Namespaces(BTreeMap::from([("p".into(), Level::Admin)]));
        assert_eq!(Scope::narrow_role(None, Some(Role::Admin)), Some(Role::Admin));
        assert_eq!(Scope::narrow_role(Some(&Scope::Role(Role::Read)), Some(Role::Admin)), Some(Role::Read));
        assert_eq!(Scope::narrow_role(Some(&Scope::Role(Role::Owner)), Some(Role::Developer)), Some(Role::Developer));
        assert_eq!(Scope::narrow_role(Some(&ns), Some(Role::Owner)), None);
        let admin = Grant::account_wide(Level::Admin);
        assert_eq!(admin.clone().narrowed_by(None), admin);
        assert_eq!(admin.narrowed_by(Some(&ns)), ns.grant());
    }

    fn level() -> impl Strategy<Value = Option<Level>> {
        prop_oneof![Just(None), Just(Some(Level::Read)), Just(Some(Level::Write)), Just(Some(Level::Admin))]
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (level(), proptest::collection::btree_map(prop_oneof![Just("a"), Just("b"), Just("c")], level(), 0..3))
            .prop_map(|(account, ns)| Grant {
                account,
                namespaces: ns.into_iter().filter_map(|(n, l)| l.map(|l| (n.to_string(), l))).collect(),
            })
    }

    fn permission() -> impl Strategy<Value = Permission> {
        let level = prop_oneof![Just(Level::Read), Just(Level::Write), Just(Level::Admin)];
        prop_oneof![
            level.clone().prop_map(Permission::Account),
            (prop_oneof![Just("a"), Just("b"), Just("d")], level).prop_map(|(n, l)| Permission::Namespace(n.into(), l)),
        ]
    }

    proptest! {
        #[test]
        fn intersection_grants_exactly_what_both_grant(a in grant(), b in grant(), p in permission()) {
            prop_assert_eq!(a.intersect(&b).grants(&p), a.grants(&p) && b.grants(&p));
        }

        #[test]
        fn a_scope_grants_what_its_grant_grants(ns in proptest::collection::btree_map(prop_oneof![Just("a"), Just("b")], prop_oneof![Just(Level::Read), Just(Level::Admin)], 0..3), role in 0..4usize, p in permission()) {
            let namespaces = Scope::Namespaces(ns.into_iter().map(|(n, l)| (n.to_string(), l)).collect());
            prop_assert_eq!(namespaces.grants(&p), namespaces.grant().grants(&p));
            let role = Scope::Role(Role::ALL[role]);
            prop_assert_eq!(role.grants(&p), role.grant().grants(&p));
        }

        #[test]
        fn listed_permissions_are_exactly_the_granted_ones(g in grant(), p in permission()) {
            let listed = g.permissions();
            // Namespaces never mentioned are covered by the account-wide entries.
            let named = match &p { Permission::Namespace(n, _) => g.namespaces.contains_key(n), _ => true };
            if named {
                let expect_listed = g.grants(&p) && match &p {
                    Permission::Namespace(_, l) => Some(*l) > g.account,
                    Permission::Account(_) => true,
                };
                prop_assert_eq!(listed.contains(&p.to_string()), expect_listed);
            }
        }
    }
}
