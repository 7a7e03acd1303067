//! Who may do what: the table of `domain.md`, in one place.
//!
//! Every write is checked here at apply time (in log order) and the API asks the same functions
//! before it proposes, so a refusal is decided identically on every node. Two kinds of refusal:
//! [`Refusal::Hidden`] — the caller may not even see the object, answered as `404` — and
//! [`Refusal::Forbidden`] — it may see it but not do this, answered as `403`.

use crate::ids::AccountId;
use crate::owner::Owner;
use crate::permissions::{Grant, Level, Role, Scope};

/// How much an identity, or a caller through its key, outranks others: `owner` > `admin` >
/// `developer` > `read` > namespace-only (a namespace-scoped service account, or a key scoped
/// to namespaces only, which holds nothing account-wide). No caller acts on the keys of an
/// identity that outranks it; equal rank is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    NamespaceOnly,
    Read,
    Developer,
    Admin,
    Owner,
}

impl Rank {
    /// The rank of an account role (`None`: namespace-only).
    pub fn of_role(role: Option<Role>) -> Rank {
        match role {
            Some(Role::Owner) => Rank::Owner,
            Some(Role::Admin) => Rank::Admin,
            Some(Role::Developer) => Rank::Developer,
            Some(Role::Read) => Rank::Read,
            None => Rank::NamespaceOnly,
        }
    }

    /// The rank of a key of an identity with account role `role`, narrowed by the key's scope.
    pub fn of_key(role: Option<Role>, scope: Option<&Scope>) -> Rank {
        Rank::of_role(Scope::narrow_role(scope, role))
    }
}

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
    /// The caller's effective rank: its role as narrowed by its key's scope.
    pub fn rank(&self) -> Rank {
        Rank::of_role(self.role)
    }

    pub fn is_user(&self) -> bool {
        matches!(self.identity, Owner::User(_))
    }

    /// Owner or admin of the account.
    pub fn is_account_admin(&self) -> bool {
        matches!(self.role, Some(Role::Owner | Role::Admin))
    }

    /// The cluster operator: an owner of the `default` account, the one made at bootstrap
    /// (calling with a key not scoped below owner).
    pub fn is_operator(&self) -> bool {
        self.role == Some(Role::Owner) && self.account == AccountId::default_account()
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
///
/// `target_rank` is what the caller would act on: for another identity that identity's rank,
/// for one of the caller's own keys that key's rank (its identity's role narrowed by its scope),
/// so a scoped-down key cannot disable or delete its identity's wider keys either. Reading is
/// not ranked: metadata stays visible as the table says.
pub fn authorize_key(
    caller: &Principal,
    action: KeyAction,
    owner: Owner,
    owner_account: &AccountId,
    class: OwnerClass<'_>,
    target_rank: Rank,
) -> Result<(), Refusal> {
    if *owner_account != caller.account {
        return Err(Refusal::Hidden);
    }
    let outranked = action != KeyAction::Read && target_rank > caller.rank();
    if owner == caller.identity {
        return match action {
            KeyAction::Create | KeyAction::Read if !outranked => Ok(()),
            // A service account may rotate its own key but not disable or delete it, unless
            // it holds an admin role.
            KeyAction::Manage | KeyAction::Delete if !outranked && (caller.is_user() || caller.is_account_admin()) => {
                Ok(())
            }
            _ => Err(Refusal::Forbidden),
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
        // It may see the key (an admin reads an owner's), but not act on it.
        (true, _) if outranked => Err(Refusal::Forbidden),
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

/// Creating another account, or changing the cap on accounts: the cluster operator, an `owner`
/// of account `default` (calling with a key not scoped below owner).
pub fn authorize_account_creation(caller: &Principal) -> Result<(), Refusal> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}
