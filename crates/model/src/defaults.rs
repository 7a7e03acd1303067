//! Defaults the API fills in before it proposes, when a request leaves them out: a new key's
//! lifetime, a rotation's grace period, and whether a rotated key's successor never expires.
//!
//! They are decided on the proposing node (time is fixed before proposing, so the ledger
//! records the resulting expiry, never the default), but they are product rules, so they live
//! here beside the rules that judge the result at apply time.

use crate::account::AccountSettings;
use crate::key::KeyRecord;
use crate::time::Span;

/// The lifetime of a key whose request names no expiry, 90 days: long enough to be useful,
/// short enough that a forgotten key does not live for the account's whole maximum.
pub const DEFAULT_KEY_LIFETIME: Span = Span(90 * 24 * 3_600_000);

/// The grace period of a rotation that names none: both keys work for a day.
pub const DEFAULT_ROTATION_GRACE: Span = Span(24 * 3_600_000);

/// Does the successor of `old`, rotated without an expiry asked for, never expire? Only when
/// `old` never expires and the account (`settings`) allows that; otherwise it gets
/// [`DEFAULT_KEY_LIFETIME`]. The bootstrap key never expires even where the account does not
/// allow it, and its successor then gets the default lifetime.
pub fn successor_never_expires(old: Option<&KeyRecord>, settings: Option<&AccountSettings>) -> bool {
    let allowed = settings.is_some_and(|s| s.allow_never_expiring);
    allowed && old.is_some_and(|k| k.expires_at.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, KeyId, UserId};
    use crate::key::KeyState;
    use crate::owner::{Actor, Owner};
    use crate::time::Timestamp;
    use crate::token::KeyDigest;

    fn key(expires_at: Option<Timestamp>) -> KeyRecord {
        KeyRecord {
            id: KeyId::from_bytes([1; 16]),
            account: AccountId::default_account(),
            owner: Owner::User(UserId::from_bytes([2; 16])),
            name: "k".into(),
            description: String::new(),
            scope: None,
            hint: "abcd".into(),
            digest: KeyDigest::of("klk_test"),
            created_at: Timestamp(0),
            created_by: Actor::System,
            expires_at,
            state: KeyState::Enabled,
            locked: false,
            revision: 1,
            last_used_at: None,
            use_count: 0,
            replaces: None,
            replaced_by: None,
        }
    }

    #[test]
    fn a_successor_never_expires_only_where_both_the_key_and_the_account_allow_it() {
        let allowing = AccountSettings { allow_never_expiring: true, ..AccountSettings::default() };
        let refusing = AccountSettings::default();
        let never = key(None);
        let dated = key(Some(Timestamp(1)));
        assert!(successor_never_expires(Some(&never), Some(&allowing)));
        assert!(!successor_never_expires(Some(&never), Some(&refusing)));
        assert!(!successor_never_expires(Some(&dated), Some(&allowing)));
        assert!(!successor_never_expires(None, Some(&allowing)));
        assert!(!successor_never_expires(Some(&never), None));
    }

    #[test]
    fn the_defaults_are_ninety_days_and_a_day() {
        assert_eq!(DEFAULT_KEY_LIFETIME, Span::days(90));
        assert_eq!(DEFAULT_ROTATION_GRACE, Span::days(1));
    }
}
