//! Last use, recorded with a granularity: the ledger grows with the keys in use per period,
//! never with traffic.
//!
//! Verification notes each use in the key's index slot ([`crate::index::Usage`]); a node's
//! flusher collects the keys that are due ([`State::due_uses`]) and proposes them as one
//! `RecordUse`. Uses are not counted per key (a `used` event's `count` is 1: the key was used
//! in the period); how often keys are verified is the nodes' metrics. A key is due when its last recorded use is at least `last_used_granularity`
//! older than the use seen — checked again when the proposal is applied
//! ([`State::use_is_due`]), so several nodes reporting one key in one period add one event.
//! `last_used_at` is therefore exact to the granularity (and to the second).

use std::ops::Range;

use crate::key::KeyRecord;
use crate::proposal::UseRecord;
use crate::state::State;
use crate::time::{Span, Timestamp};

/// The cluster's `last_used_granularity` until the operator changes it.
pub const DEFAULT_USAGE_GRANULARITY: Span = Span(3_600_000);
pub const MIN_USAGE_GRANULARITY: Span = Span(60_000);
pub const MAX_USAGE_GRANULARITY: Span = Span(7 * 24 * 3_600_000);

impl State {
    /// How far apart two recorded uses of one key are at least.
    pub fn usage_granularity(&self) -> Span {
        self.usage_granularity.unwrap_or(DEFAULT_USAGE_GRANULARITY)
    }

    /// Does a use of `key` at `at` get a `used` event? Yes if none was recorded, or the last
    /// recorded one is at least the granularity older.
    pub fn use_is_due(&self, key: &KeyRecord, at: Timestamp) -> bool {
        key.last_used_at.is_none_or(|last| at.0.saturating_sub(last.0) >= self.usage_granularity().0)
    }

    /// Index positions for [`State::due_uses`]: scan `0..usage_positions()` in ranges.
    pub fn usage_positions(&self) -> usize {
        self.index.capacity()
    }

    /// Adds to `out` the keys at index positions `range` whose use seen on this node is due:
    /// found by a comparison in each slot, so only those are looked up.
    pub fn due_uses(&self, range: Range<usize>, out: &mut Vec<UseRecord>) {
        let granularity = u32::try_from(self.usage_granularity().0 / 1000).unwrap_or(u32::MAX);
        for (key, seen) in self.index.due(range, granularity) {
            let Some(record) = self.keys.get(&key) else { continue };
            // Seen to the second; never before the key existed.
            let last_used_at = seen.max(record.created_at);
            if self.use_is_due(record, last_used_at) {
                out.push(UseRecord { key, last_used_at, count: 1 });
            }
        }
    }
}
