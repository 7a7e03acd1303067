//! The verification index: key digest → what a verification needs, in one flat table.
//!
//! Open addressing with linear probing over a power-of-two array of 64-byte slots — one cache
//! line each — holding the digest's first 15 bytes and the entry inline. A lookup at a million
//! keys is then one random memory access (plus, rarely, its neighbour), where a general-purpose
//! map pays for a control-byte probe and a separate bucket access. Digests are SHA3 output, so
//! their first 8 bytes are already a uniform hash. Matching on a 120-bit digest prefix is safe:
//! presenting a different key with the same prefix is a 2^120 search, and a create whose prefix
//! is already taken is refused. Entries are never removed (a deleted key stays, marked deleted),
//! so no tombstones are needed. The table stays at most half full.
//!
//! Each slot also carries the key's use on this node ([`Usage`]: the second it was last
//! verified) and the second of its last *recorded* use (`last_used_at`). Verification writes
//! the first through a shared reference with a relaxed atomic — no lock, at most one store per
//! key per second, and two requests contend only when they present the same key — and the
//! node's flusher compares the two in place ([`crate::State::due_uses`]), so a scan of a
//! million keys looks nothing up. The use seen is node-local and volatile: not part of the
//! ledger, not compared, not persisted.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::ids::{KeyId, ServiceAccountId, UserId};
use crate::key::{IndexEntry, KeyState};
use crate::owner::Owner;
use crate::time::Timestamp;
use crate::token::KeyDigest;

/// Digest bytes a slot matches on.
const PREFIX: usize = 15;

/// When a key was last verified on this node.
#[derive(Debug, Default)]
pub struct Usage {
    /// Unix second of the latest verification; 0: none since the node started.
    seen: AtomicU32,
}

impl Usage {
    /// Notes one verification at `now`: a store only when the second changes.
    #[inline]
    pub fn note(&self, now: Timestamp) {
        let second = seconds(now);
        if self.seen.load(Ordering::Relaxed) != second {
            self.seen.store(second, Ordering::Relaxed);
        }
    }

    /// The latest verification, if any since the node started.
    pub fn last_seen(&self) -> Option<Timestamp> {
        match self.seen.load(Ordering::Relaxed) {
            0 => None,
            second => Some(Timestamp(i64::from(second) * 1000)),
        }
    }
}

/// Unix seconds of `t`, clamped to what a `u32` holds (until 2106); never 0 for a real time.
fn seconds(t: Timestamp) -> u32 {
    u32::try_from((t.0 / 1000).max(1)).unwrap_or(u32::MAX)
}

/// One slot. `flags & STATE == EMPTY` marks a free slot.
#[repr(C, align(64))]
struct Slot {
    prefix: [u8; PREFIX],
    /// The key's state (low three bits), owner kind and scope.
    flags: u8,
    key: [u8; 16],
    owner: [u8; 16],
    /// `i64::MAX`: never expires.
    expires_at: i64,
    usage: Usage,
    /// Unix second of the key's last recorded use; 0: none.
    recorded: u32,
}

const STATE: u8 = 0b0000_0111;
const SERVICE_ACCOUNT: u8 = 0b0000_1000;
const SCOPED: u8 = 0b0001_0000;
const EMPTY: u8 = 0;

impl Slot {
    fn free() -> Slot {
        Slot {
            prefix: [0; PREFIX],
            flags: EMPTY,
            key: [0; 16],
            owner: [0; 16],
            expires_at: 0,
            usage: Usage::default(),
            recorded: 0,
        }
    }

    fn state(&self) -> u8 {
        self.flags & STATE
    }

    fn is_empty(&self) -> bool {
        self.state() == EMPTY
    }

    /// The slot's entry, compared without the use seen (node-local, not state).
    fn same_entry(&self, other: &Slot) -> bool {
        (self.prefix, self.flags, self.key, self.owner, self.expires_at, self.recorded)
            == (other.prefix, other.flags, other.key, other.owner, other.expires_at, other.recorded)
    }
}

impl Clone for Slot {
    fn clone(&self) -> Slot {
        Slot { usage: Usage { seen: AtomicU32::new(self.usage.seen.load(Ordering::Relaxed)) }, ..*self }
    }
}

fn prefix_of(digest: &KeyDigest) -> [u8; PREFIX] {
    let mut prefix = [0u8; PREFIX];
    prefix.copy_from_slice(&digest.0[..PREFIX]);
    prefix
}

fn state_code(state: KeyState) -> u8 {
    match state {
        KeyState::Enabled => 1,
        KeyState::Disabled => 2,
        KeyState::Expired => 3,
        KeyState::Deleted => 4,
    }
}

impl Slot {
    fn new(digest: &KeyDigest, entry: &IndexEntry) -> Slot {
        let (owner, kind) = match entry.owner {
            Owner::User(id) => (id.to_bytes(), 0),
            Owner::ServiceAccount(id) => (id.to_bytes(), SERVICE_ACCOUNT),
        };
        Slot {
            prefix: prefix_of(digest),
            flags: state_code(entry.state) | kind | if entry.scoped { SCOPED } else { 0 },
            key: entry.key.to_bytes(),
            owner,
            expires_at: entry.expires_at.map_or(i64::MAX, |t| t.0),
            usage: Usage::default(),
            recorded: 0,
        }
    }

    fn entry(&self) -> IndexEntry {
        IndexEntry {
            key: KeyId::from_bytes(self.key),
            owner: if self.flags & SERVICE_ACCOUNT != 0 {
                Owner::ServiceAccount(ServiceAccountId::from_bytes(self.owner))
            } else {
                Owner::User(UserId::from_bytes(self.owner))
            },
            state: match self.state() {
                1 => KeyState::Enabled,
                2 => KeyState::Disabled,
                3 => KeyState::Expired,
                _ => KeyState::Deleted,
            },
            expires_at: (self.expires_at != i64::MAX).then_some(Timestamp(self.expires_at)),
            scoped: self.flags & SCOPED != 0,
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct DigestIndex {
    slots: Vec<Slot>,
    len: usize,
}

const MIN_SLOTS: usize = 64;

impl DigestIndex {
    /// An empty index that takes `keys` entries without growing (loading a saved state).
    pub(crate) fn with_capacity(keys: usize) -> DigestIndex {
        let size = (keys.saturating_mul(2)).next_power_of_two().max(MIN_SLOTS);
        DigestIndex { slots: vec![Slot::free(); size], len: 0 }
    }

    /// The slot holding `prefix`, or the free slot where it would go.
    #[inline]
    fn find(&self, prefix: &[u8; PREFIX]) -> usize {
        let mask = self.slots.len() - 1;
        let mut first = [0u8; 8];
        first.copy_from_slice(&prefix[..8]);
        let mut i = (u64::from_le_bytes(first) as usize) & mask;
        loop {
            let slot = &self.slots[i];
            if slot.is_empty() || slot.prefix == *prefix {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn occupied(&self, digest: &KeyDigest) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.find(&prefix_of(digest));
        (!self.slots[i].is_empty()).then_some(i)
    }

    #[inline]
    pub(crate) fn get(&self, digest: &KeyDigest) -> Option<IndexEntry> {
        self.occupied(digest).map(|i| self.slots[i].entry())
    }

    /// The entry and this node's usage cell for `digest`, from one slot.
    #[inline]
    pub(crate) fn get_with_usage(&self, digest: &KeyDigest) -> Option<(IndexEntry, &Usage)> {
        self.occupied(digest).map(|i| (self.slots[i].entry(), &self.slots[i].usage))
    }

    #[cfg(test)]
    pub(crate) fn usage(&self, digest: &KeyDigest) -> Option<&Usage> {
        self.occupied(digest).map(|i| &self.slots[i].usage)
    }

    /// Notes the key's last recorded use (it only moves forward); false if not indexed.
    pub(crate) fn set_recorded(&mut self, digest: &KeyDigest, at: Timestamp) -> bool {
        match self.occupied(digest) {
            Some(i) => {
                let slot = &mut self.slots[i];
                slot.recorded = slot.recorded.max(seconds(at));
                true
            }
            None => false,
        }
    }

    pub(crate) fn contains_key(&self, digest: &KeyDigest) -> bool {
        self.occupied(digest).is_some()
    }

    /// Changes the state of an indexed key; false if the digest is not indexed.
    pub(crate) fn set_state(&mut self, digest: &KeyDigest, state: KeyState) -> bool {
        match self.occupied(digest) {
            Some(i) => {
                let slot = &mut self.slots[i];
                slot.flags = (slot.flags & !STATE) | state_code(state);
                true
            }
            None => false,
        }
    }

    /// Changes the expiry of an indexed key; false if the digest is not indexed.
    pub(crate) fn set_expiry(&mut self, digest: &KeyDigest, expires_at: Option<Timestamp>) -> bool {
        match self.occupied(digest) {
            Some(i) => {
                self.slots[i].expires_at = expires_at.map_or(i64::MAX, |t| t.0);
                true
            }
            None => false,
        }
    }

    /// Inserts or replaces the entry for `digest` (a replaced entry keeps its use).
    pub(crate) fn insert(&mut self, digest: KeyDigest, entry: IndexEntry) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut slot = Slot::new(&digest, &entry);
        let i = self.find(&slot.prefix);
        if self.slots[i].is_empty() {
            self.len += 1;
        } else {
            slot.usage = std::mem::take(&mut self.slots[i].usage);
            slot.recorded = self.slots[i].recorded;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot::free(); size]);
        for slot in old.into_iter().filter(|s| !s.is_empty()) {
            let i = self.find(&slot.prefix);
            self.slots[i] = slot;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots in the table (occupied or not): positions for [`DigestIndex::usages`].
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The keys in slot positions `range` verified on this node at least `granularity`
    /// seconds after their last recorded use (or with none recorded), and when: a comparison in
    /// place per slot.
    pub(crate) fn due(
        &self,
        range: std::ops::Range<usize>,
        granularity: u32,
    ) -> impl Iterator<Item = (KeyId, Timestamp)> + '_ {
        let range = range.start.min(self.slots.len())..range.end.min(self.slots.len());
        self.slots[range].iter().filter(|s| !s.is_empty()).filter_map(move |s| {
            let seen = s.usage.seen.load(Ordering::Relaxed);
            let due = seen != 0 && (s.recorded == 0 || seen >= s.recorded.saturating_add(granularity));
            due.then(|| (KeyId::from_bytes(s.key), Timestamp(i64::from(seen) * 1000)))
        })
    }

    fn occupied_slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| !s.is_empty())
    }
}

/// Two indexes are equal when they map the same digests to the same entries, whatever their
/// capacity, insertion order or this node's usage.
impl PartialEq for DigestIndex {
    fn eq(&self, other: &DigestIndex) -> bool {
        self.len == other.len
            && self.occupied_slots().all(|slot| {
                !other.slots.is_empty() && {
                    let i = other.find(&slot.prefix);
                    other.slots[i].same_entry(slot)
                }
            })
    }
}

impl Eq for DigestIndex {}

impl std::fmt::Debug for DigestIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestIndex").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> KeyDigest {
        KeyDigest::of(&format!("k{n}"))
    }

    fn entry(n: u32) -> IndexEntry {
        IndexEntry {
            key: KeyId::from_bytes([n as u8; 16]),
            owner: if n.is_multiple_of(2) {
                Owner::User(UserId::from_bytes([1; 16]))
            } else {
                Owner::ServiceAccount(ServiceAccountId::from_bytes([2; 16]))
            },
            state: KeyState::Enabled,
            scoped: n.is_multiple_of(5),
            expires_at: n.is_multiple_of(3).then_some(Timestamp(i64::from(n))),
        }
    }

    #[test]
    fn insert_get_replace_across_growth() {
        let mut index = DigestIndex::default();
        assert_eq!(index.get(&digest(0)), None);
        assert!(!index.set_state(&digest(0), KeyState::Disabled));
        for n in 0..10_000 {
            index.insert(digest(n), entry(n));
        }
        assert_eq!(index.len(), 10_000);
        for n in 0..10_000 {
            assert_eq!(index.get(&digest(n)), Some(entry(n)));
        }
        assert_eq!(index.get(&digest(10_001)), None);
        assert!(index.set_state(&digest(5), KeyState::Disabled));
        assert_eq!(index.get(&digest(5)).unwrap().state, KeyState::Disabled);
        index.insert(digest(5), entry(5));
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.get(&digest(5)), Some(entry(5)));
    }

    #[test]
    fn equality_ignores_order_and_capacity() {
        let (mut a, mut b) = (DigestIndex::default(), DigestIndex::default());
        for n in 0..100 {
            a.insert(digest(n), entry(n));
            b.insert(digest(99 - n), entry(99 - n));
        }
        assert_eq!(a, b);
        b.set_state(&digest(3), KeyState::Deleted);
        assert_ne!(a, b);
        assert_eq!(std::mem::size_of::<Slot>(), 64, "one slot, one cache line");
    }

    #[test]
    fn use_is_noted_kept_across_growth_and_replacement_and_ignored_by_equality() {
        let mut index = DigestIndex::default();
        index.insert(digest(1), entry(1));
        let clean = index.clone();
        let usage = index.usage(&digest(1)).unwrap();
        assert_eq!(usage.last_seen(), None);
        usage.note(Timestamp(5_000_400));
        usage.note(Timestamp(7_000_999));
        assert_eq!(usage.last_seen(), Some(Timestamp(7_000_000)));
        assert_eq!(index, clean, "the use seen is node-local, not state");
        let all = |index: &DigestIndex, g| index.due(0..index.capacity(), g).collect::<Vec<_>>();
        assert_eq!(all(&index, 60), vec![(entry(1).key, Timestamp(7_000_000))]);
        for n in 2..1_000 {
            index.insert(digest(n), entry(n));
        }
        index.insert(digest(1), entry(1));
        assert_eq!(all(&index, 60), vec![(entry(1).key, Timestamp(7_000_000))], "kept across growth");
        // Recorded at 6,990 s: due again from 7,050 s with a granularity of 60 s.
        assert!(index.set_recorded(&digest(1), Timestamp(6_990_000)));
        assert_ne!(index, clean, "the recorded use is state");
        assert!(all(&index, 60).is_empty());
        index.usage(&digest(1)).unwrap().note(Timestamp(7_050_000));
        assert_eq!(all(&index, 60), vec![(entry(1).key, Timestamp(7_050_000))]);
        assert!(all(&index, 61).is_empty());
        assert!(index.set_recorded(&digest(1), Timestamp(1_000)), "an older record does not move it back");
        assert!(all(&index, 61).is_empty());
        assert_eq!(index.due(index.capacity()..usize::MAX, 60).count(), 0);
    }
}
