//! The verification index: key digest → what a verification needs, in one flat table.
//!
//! Open addressing with linear probing over a power-of-two array of 64-byte slots — one cache
//! line each — holding the digest's first 16 bytes and the entry inline. A lookup at a million
//! keys is then one random memory access (plus, rarely, its neighbour), where a general-purpose
//! map pays for a control-byte probe and a separate bucket access. Digests are SHA3 output, so
//! their first 8 bytes are already a uniform hash. Matching on a 128-bit digest prefix is safe:
//! presenting a different key with the same prefix is a 2^128 search, and a create whose prefix
//! is already taken is refused. Entries are never removed (a deleted key stays, marked deleted),
//! so no tombstones are needed. The table stays at most half full.

use crate::event::Owner;
use crate::ids::{KeyId, ServiceAccountId, UserId};
use crate::state::{IndexEntry, KeyState};
use crate::time::Timestamp;
use crate::token::KeyDigest;

/// One slot. `state == EMPTY` marks a free slot.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Slot {
    prefix: [u8; 16],
    key: [u8; 16],
    owner: [u8; 16],
    /// `i64::MAX`: never expires.
    expires_at: i64,
    owner_is_service_account: bool,
    scoped: bool,
    state: u8,
}

const EMPTY: u8 = 0;
const FREE: Slot = Slot {
    prefix: [0; 16],
    key: [0; 16],
    owner: [0; 16],
    expires_at: 0,
    owner_is_service_account: false,
    scoped: false,
    state: EMPTY,
};

fn prefix_of(digest: &KeyDigest) -> [u8; 16] {
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&digest.0[..16]);
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
        let (owner, owner_is_service_account) = match entry.owner {
            Owner::User(id) => (id.to_bytes(), false),
            Owner::ServiceAccount(id) => (id.to_bytes(), true),
        };
        Slot {
            prefix: prefix_of(digest),
            key: entry.key.to_bytes(),
            owner,
            expires_at: entry.expires_at.map_or(i64::MAX, |t| t.0),
            owner_is_service_account,
            scoped: entry.scoped,
            state: state_code(entry.state),
        }
    }

    fn entry(&self) -> IndexEntry {
        IndexEntry {
            key: KeyId::from_bytes(self.key),
            owner: if self.owner_is_service_account {
                Owner::ServiceAccount(ServiceAccountId::from_bytes(self.owner))
            } else {
                Owner::User(UserId::from_bytes(self.owner))
            },
            state: match self.state {
                1 => KeyState::Enabled,
                2 => KeyState::Disabled,
                3 => KeyState::Expired,
                _ => KeyState::Deleted,
            },
            expires_at: (self.expires_at != i64::MAX).then_some(Timestamp(self.expires_at)),
            scoped: self.scoped,
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
    fn find(&self, prefix: &[u8; 16]) -> usize {
        let mask = self.slots.len() - 1;
        let mut first = [0u8; 8];
        first.copy_from_slice(&prefix[..8]);
        let mut i = (u64::from_le_bytes(first) as usize) & mask;
        loop {
            let slot = &self.slots[i];
            if slot.state == EMPTY || slot.prefix == *prefix {
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
        (self.slots[i].state != EMPTY).then_some(i)
    }

    #[inline]
    pub(crate) fn get(&self, digest: &KeyDigest) -> Option<IndexEntry> {
        self.occupied(digest).map(|i| self.slots[i].entry())
    }

    pub(crate) fn contains_key(&self, digest: &KeyDigest) -> bool {
        self.occupied(digest).is_some()
    }

    /// Changes the state of an indexed key; false if the digest is not indexed.
    pub(crate) fn set_state(&mut self, digest: &KeyDigest, state: KeyState) -> bool {
        match self.occupied(digest) {
            Some(i) => {
                self.slots[i].state = state_code(state);
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

    /// Inserts or replaces the entry for `digest`.
    pub(crate) fn insert(&mut self, digest: KeyDigest, entry: IndexEntry) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let slot = Slot::new(&digest, &entry);
        let i = self.find(&slot.prefix);
        if self.slots[i].state == EMPTY {
            self.len += 1;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![FREE; size]);
        for slot in old.into_iter().filter(|s| s.state != EMPTY) {
            let i = self.find(&slot.prefix);
            self.slots[i] = slot;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn occupied_slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.state != EMPTY)
    }
}

/// Two indexes are equal when they map the same digests to the same entries, whatever their
/// capacity or insertion order.
impl PartialEq for DigestIndex {
    fn eq(&self, other: &DigestIndex) -> bool {
        self.len == other.len
            && self.occupied_slots().all(|slot| {
                !other.slots.is_empty() && {
                    let i = other.find(&slot.prefix);
                    other.slots[i] == *slot
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
}
