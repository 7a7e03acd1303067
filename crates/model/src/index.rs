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
//! Each slot also carries the key's [`Usage`] on this node: when it was last verified and how
//! often since it was last reported. Verification writes it through a shared reference with
//! relaxed atomics — no lock, and two requests contend only when they present the same key —
//! and the node's flusher reads it ([`crate::State::due_uses`]). It is node-local and volatile:
//! not part of the ledger, not compared, not persisted.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::event::Owner;
use crate::ids::{KeyId, ServiceAccountId, UserId};
use crate::state::{IndexEntry, KeyState};
use crate::time::Timestamp;
use crate::token::KeyDigest;

/// Digest bytes a slot matches on.
const PREFIX: usize = 15;

/// A key's use on this node since its last report.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Usage {
    /// Unix second of the latest verification; 0: none since the node started.
    seen: AtomicU32,
    /// Verifications since the flusher last took them (wraps at 2^32, which a period of
    /// `last_used_granularity` does not reach below 50,000 verifications a second).
    uses: AtomicU32,
}

impl Usage {
    /// Notes one verification at `now`. The second is stored only when it changes, so a hot
    /// key costs one atomic add, not two writes.
    #[inline]
    pub fn note(&self, now: Timestamp) {
        let second = seconds(now);
        if self.seen.load(Ordering::Relaxed) != second {
            self.seen.store(second, Ordering::Relaxed);
        }
        self.uses.fetch_add(1, Ordering::Relaxed);
    }

    /// The latest verification, if any since the node started.
    pub fn last_seen(&self) -> Option<Timestamp> {
        match self.seen.load(Ordering::Relaxed) {
            0 => None,
            second => Some(Timestamp(i64::from(second) * 1000)),
        }
    }

    /// Verifications not yet taken.
    pub fn pending(&self) -> u32 {
        self.uses.load(Ordering::Relaxed)
    }

    /// Takes the verifications counted so far (the flusher, as it reports them).
    pub fn take(&self) -> u32 {
        self.uses.swap(0, Ordering::Relaxed)
    }

    /// Gives back `count` verifications whose report could not be written.
    pub fn give_back(&self, count: u32) {
        self.uses.fetch_add(count, Ordering::Relaxed);
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
}

const STATE: u8 = 0b0000_0111;
const SERVICE_ACCOUNT: u8 = 0b0000_1000;
const SCOPED: u8 = 0b0001_0000;
const EMPTY: u8 = 0;

impl Slot {
    fn free() -> Slot {
        Slot { prefix: [0; PREFIX], flags: EMPTY, key: [0; 16], owner: [0; 16], expires_at: 0, usage: Usage::default() }
    }

    fn state(&self) -> u8 {
        self.flags & STATE
    }

    fn is_empty(&self) -> bool {
        self.state() == EMPTY
    }

    /// The slot's entry, compared without its usage (node-local, not state).
    fn same_entry(&self, other: &Slot) -> bool {
        (self.prefix, self.flags, self.key, self.owner, self.expires_at)
            == (other.prefix, other.flags, other.key, other.owner, other.expires_at)
    }
}

impl Clone for Slot {
    fn clone(&self) -> Slot {
        Slot {
            usage: Usage {
                seen: AtomicU32::new(self.usage.seen.load(Ordering::Relaxed)),
                uses: AtomicU32::new(self.usage.uses.load(Ordering::Relaxed)),
            },
            ..*self
        }
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

    pub(crate) fn usage(&self, digest: &KeyDigest) -> Option<&Usage> {
        self.occupied(digest).map(|i| &self.slots[i].usage)
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

    /// Inserts or replaces the entry for `digest` (a replaced entry keeps its usage).
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

    /// The keys in slot positions `range` that were verified on this node since they were last
    /// taken, with their usage cells.
    pub(crate) fn usages(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = (KeyId, &Usage)> {
        let range = range.start.min(self.slots.len())..range.end.min(self.slots.len());
        self.slots[range]
            .iter()
            .filter(|s| !s.is_empty() && s.usage.pending() > 0)
            .map(|s| (KeyId::from_bytes(s.key), &s.usage))
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
    fn usage_is_counted_kept_across_growth_and_replacement_and_ignored_by_equality() {
        let mut index = DigestIndex::default();
        index.insert(digest(1), entry(1));
        let clean = index.clone();
        let usage = index.usage(&digest(1)).unwrap();
        assert_eq!((usage.last_seen(), usage.pending()), (None, 0));
        usage.note(Timestamp(5_000_400));
        usage.note(Timestamp(7_000_000));
        assert_eq!((usage.last_seen(), usage.pending()), (Some(Timestamp(7_000_000)), 2));
        assert_eq!(index, clean, "usage is node-local, not state");
        assert_eq!(index.usages(0..index.capacity()).map(|(key, _)| key).collect::<Vec<_>>(), vec![entry(1).key]);
        for n in 2..1_000 {
            index.insert(digest(n), entry(n));
        }
        index.insert(digest(1), entry(1));
        let usage = index.usage(&digest(1)).unwrap();
        assert_eq!((usage.last_seen(), usage.take()), (Some(Timestamp(7_000_000)), 2));
        assert_eq!(index.usages(0..index.capacity()).count(), 0);
        usage.give_back(3);
        assert_eq!(usage.pending(), 3);
        assert_eq!(index.usages(0..index.capacity()).count(), 1);
        assert_eq!(index.usages(index.capacity()..usize::MAX).count(), 0);
    }
}
