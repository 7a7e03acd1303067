//! Who may do what: the table of `domain.md`, in one place.
//!
//! Every write is checked here at apply time (in log order) and the API asks the same functions
//! before it proposes, so a refusal is decided identically on every node. Two kinds of refusal:
//! [`Refusal::Hidden`] — the caller may not even see the object, answered as `404` — and
//! [`Refusal::Forbidden`] — it may see it but not do this, answered as `403`.

use crate::event::Owner;
use crate::ids::AccountId;
use crate::permissions::{Grant, Level};
use crate::state::Role;

/// Rows of the key table. Rotate is `Create`; update, enable, disable, lock and unlock are `Manage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Create,
    Read,
    Manage,
    Delete,
}

/// Columns of the key table: what kind of identity owns the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerClass<'a> {
    User,
    AccountServiceAccount,
    NamespaceServiceAccount(&'a str),
}

/// An authenticated caller as of one moment: its identity and its *effective* rights — the
/// identity's current ones narrowed by the scope of the key it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub identity: Owner,
    /// The effective account role (users and account-scoped service accounts); `None` for a
    /// namespace-scoped service account or a key scoped to namespaces.
    pub role: Option<Role>,
    pub grant: Grant,
}

impl Principal {
    pub fn is_user(&self) -> bool {
        matches!(self.identity, Owner::User(_))
    }

    /// Owner or admin of the account.
    pub fn is_account_admin(&self) -> bool {
        matches!(self.role, Some(Role::Owner | Role::Admin))
    }

    /// A *user* holding `admin` on `namespace` (account admins hold it everywhere).
    pub fn is_namespace_admin(&self, namespace: &str) -> bool {
        self.is_user() && self.grant.level_in(namespace) == Some(Level::Admin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answered as not found: the caller may not know the object exists.
    Hidden,
    /// Answered as permission denied: the caller can see the object but not do this.
    Forbidden,
}

/// May `caller` do `action` on a key owned by `owner` (of class `class`, in `owner_account`)?
pub fn authorize_key(
    caller: &Principal,
    action: KeyAction,
    owner: Owner,
    owner_account: &AccountId,
    class: OwnerClass<'_>,
) -> Result<(), Refusal> {
    if *owner_account != caller.account {
        return Err(Refusal::Hidden);
    }
    if owner == caller.identity {
        return match action {
            KeyAction::Create | KeyAction::Read => Ok(()),
            // A service account may rotate its own key but not disable or delete it, unless
            // it holds an admin role.
            KeyAction::Manage | KeyAction::Delete if caller.is_user() || caller.is_account_admin() => Ok(()),
            KeyAction::Manage | KeyAction::Delete => Err(Refusal::Forbidden),
        };
    }
    // A person's keys are minted only by that person: nobody creates or rotates a key for
    // another user (an admin hands out an enrollment code instead, `authorize_enrollment`).
    if class == OwnerClass::User && action == KeyAction::Create {
        return Err(Refusal::Forbidden);
    }
    let allowed = match class {
        OwnerClass::User | OwnerClass::AccountServiceAccount => caller.is_account_admin(),
        OwnerClass::NamespaceServiceAccount(namespace) => {
            caller.is_account_admin() || caller.is_namespace_admin(namespace)
        }
    };
    match (allowed, action) {
        (true, _) => Ok(()),
        // Creating for an identity names the identity, not a key: refusing is no disclosure.
        (false, KeyAction::Create) => Err(Refusal::Forbidden),
        (false, _) => Err(Refusal::Hidden),
    }
}

/// Managing users. Granting, changing or removing an `owner` or `admin` role (or such a user)
/// takes an owner.
pub fn authorize_user_change(caller: &Principal, roles_touched: &[Role]) -> Result<(), Refusal> {
    if !caller.is_account_admin() {
        return Err(Refusal::Forbidden);
    }
    let privileged = roles_touched.iter().any(|r| matches!(r, Role::Owner | Role::Admin));
    if privileged && caller.role != Some(Role::Owner) {
        return Err(Refusal::Forbidden);
    }
    Ok(())
}

/// Issuing an enrollment code for a user whose role is `user_role`: an owner or admin the user
/// does not outrank (the code mints a key with the user's rights).
pub fn authorize_enrollment(caller: &Principal, user_role: Role) -> Result<(), Refusal> {
    match caller.role {
        Some(role) if caller.is_account_admin() && role.rank() >= user_role.rank() => Ok(()),
        _ => Err(Refusal::Forbidden),
    }
}

/// Managing a service account bound to `namespace` (or account-scoped when `None`).
pub fn authorize_service_account_change(caller: &Principal, namespace: Option<&str>) -> Result<(), Refusal> {
    let allowed = caller.is_account_admin() || namespace.is_some_and(|ns| caller.is_namespace_admin(ns));
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Managing namespaces and account settings.
pub fn authorize_account_change(caller: &Principal) -> Result<(), Refusal> {
    if caller.is_account_admin() {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Creating another account (a cluster operator's act): an owner.
pub fn authorize_account_creation(caller: &Principal) -> Result<(), Refusal> {
    if caller.role == Some(Role::Owner) {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}
