//! Counts over the keys a caller may see: how many are in each state now, and how many of the
//! enabled ones expire soon. A query for dashboards and alerts (`GET /v1/keys/summary`), never a
//! rule: which keys count is [`State::authorize_key`]'s answer for reading them.

use crate::authz::{KeyAction, Principal};
use crate::key::KeyState;
use crate::state::State;
use crate::time::{Span, Timestamp};

const DAY: Span = Span(24 * 3_600_000);

/// Keys by state, and enabled keys expiring within 7 and within 30 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySummary {
    pub enabled: u64,
    pub disabled: u64,
    pub expired: u64,
    pub deleted: u64,
    pub expiring_within_7d: u64,
    pub expiring_within_30d: u64,
}

impl State {
    /// The summary of the keys of `caller`'s account that `caller` may read, at `now`.
    pub fn key_summary(&self, caller: &Principal, now: Timestamp) -> KeySummary {
        let within = |days: i64| now.checked_add(Span(DAY.0 * days)).unwrap_or(Timestamp(i64::MAX));
        let (week, month) = (within(7), within(30));
        let mut summary = KeySummary::default();
        let visible = self
            .keys_after(None)
            .filter(|key| key.account == caller.account && self.authorize_key(caller, key, KeyAction::Read).is_ok());
        for key in visible {
            match key.state_at(now) {
                KeyState::Enabled => {
                    summary.enabled += 1;
                    if let Some(at) = key.expires_at {
                        summary.expiring_within_7d += u64::from(at <= week);
                        summary.expiring_within_30d += u64::from(at <= month);
                    }
                }
                KeyState::Disabled => summary.disabled += 1,
                KeyState::Expired => summary.expired += 1,
                KeyState::Deleted => summary.deleted += 1,
            }
        }
        summary
    }
}

impl State {
    /// Keys of every account, enabled or disabled, that expire within each of `windows` after
    /// `now`: the counts an operator alerts on (`keyledger_keys_expiring` in `GET /metrics`).
    /// Counted in the expiry queue alone, without looking up a record, so a scrape costs a
    /// walk over the keys in the widest window and no more.
    pub fn keys_expiring_within<const N: usize>(&self, now: Timestamp, windows: [Span; N]) -> [u64; N] {
        use std::ops::Bound;
        let end = |w: Span| now.checked_add(w).unwrap_or(Timestamp(i64::MAX));
        let ends = windows.map(end);
        let mut counts = [0u64; N];
        let Some(widest) = ends.iter().max().copied() else {
            return counts;
        };
        let last = crate::ids::KeyId::from_bytes([u8::MAX; 16]);
        for (at, _) in self.expiry_queue.range((Bound::Excluded((now, last)), Bound::Included((widest, last)))) {
            for (count, end) in counts.iter_mut().zip(ends) {
                *count += u64::from(*at <= end);
            }
        }
        counts
    }
}
