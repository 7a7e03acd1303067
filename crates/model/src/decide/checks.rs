//! Checks and bounds shared by several decisions: text fields, expiries, caps and settings
//! bounds. Pure functions of their arguments, so each is the one place its rule lives.

use crate::account::AccountSettings;
use crate::proposal::{RejectCode, Rejection};
use crate::time::{Span, Timestamp};

use super::reject;

pub(super) const MAX_NAME_CHARS: usize = 100;
pub(super) const MAX_DESCRIPTION_CHARS: usize = 1000;

/// Bounds of the per-account settings.
pub(super) const MAX_LIFETIME_LIMIT: Span = Span(10 * 365 * 24 * 3_600_000);
pub(super) const MAX_KEYS_LIMIT: u32 = 1000;
/// Upper bounds of the caps (`max_users`, …, `max_accounts`).
pub(super) const MAX_IDENTITIES_LIMIT: u32 = 100_000;
pub(super) const MAX_NAMESPACES_LIMIT: u32 = 10_000;
pub(super) const MAX_ACCOUNTS_LIMIT: u32 = 100_000;

/// Sets `slot` to `value` if given and within `1..=max`.
pub(super) fn set_bounded(value: Option<u32>, slot: &mut u32, what: &str, max: u32) -> Result<(), Rejection> {
    if let Some(v) = value {
        if !(1..=max).contains(&v) {
            return Err(reject(RejectCode::InvalidArgument, format!("`{what}` must be between 1 and {max}")));
        }
        *slot = v;
    }
    Ok(())
}

/// Refuses one more of something an account (or the cluster) already holds `count` of, at `cap`.
pub(super) fn check_cap(count: usize, cap: u32, what: &str) -> Result<(), Rejection> {
    if count >= cap as usize {
        return Err(reject(RejectCode::LimitExceeded, format!("the cap of {cap} {what} is reached")));
    }
    Ok(())
}

pub(super) fn never_expiring_refused() -> Rejection {
    reject(RejectCode::InvalidArgument, "this account does not allow keys that never expire; give an expiry")
}

/// An expiry must lie in the future and within the account's maximum key lifetime.
pub(super) fn check_expiry(at: Timestamp, now: Timestamp, settings: &AccountSettings) -> Result<(), Rejection> {
    if at <= now {
        return Err(reject(RejectCode::InvalidArgument, "the expiry must be in the future"));
    }
    if at.0.saturating_sub(now.0) > settings.max_key_lifetime.0 {
        return Err(reject(
            RejectCode::InvalidArgument,
            format!(
                "the expiry is beyond this account's maximum key lifetime of {} days",
                settings.max_key_lifetime.0 / Span::days(1).0
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_text(what: &str, text: &str, max_chars: usize, required: bool) -> Result<(), Rejection> {
    if required && text.trim().is_empty() {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must not be empty")));
    }
    if text.chars().count() > max_chars {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must be at most {max_chars} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(reject(RejectCode::InvalidArgument, format!("the {what} must not contain control characters")));
    }
    if text.chars().any(is_bidi_control) {
        return Err(reject(
            RejectCode::InvalidArgument,
            format!("the {what} must not contain Unicode bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069)"),
        ));
    }
    Ok(())
}

/// Characters that reorder the text around them: a name holding one can display as another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
