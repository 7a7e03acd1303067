//! The local cache of positive verdicts: bounded, least recently used out first, keyed by the
//! key's SHA3-256 digest (never the secret) and the permission asked, each entry good for at
//! most the TTL and only while no newer revocation barrier has been raised.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha3::{Digest, Sha3_256};

/// The SHA3-256 digest of a presented key: what the cache holds instead of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub(crate) fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha3_256::digest(key.as_bytes()).into())
    }
}

/// What an entry is found by: the key and the permission the verdict was for.
pub(crate) type CacheKey = (KeyDigest, Option<Arc<str>>);

struct Entry<V> {
    value: V,
    stored: Instant,
    /// The barrier the verdict was fetched under: it reflects every write up to this index.
    barrier: u64,
    /// Its place in the recency order.
    stamp: u64,
}

/// A bounded LRU map from [`CacheKey`] to `V` with a TTL and a barrier. Not synchronised: the
/// caller holds it behind a mutex, for a lookup or an insert, never across an await.
pub(crate) struct VerdictCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<CacheKey, Entry<V>>,
    /// Recency: stamp → key, oldest first.
    order: BTreeMap<u64, CacheKey>,
    next_stamp: u64,
}

impl<V: Clone> VerdictCache<V> {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> VerdictCache<V> {
        VerdictCache { ttl, capacity, entries: HashMap::new(), order: BTreeMap::new(), next_stamp: 0 }
    }

    /// The cached verdict for `key`, if it is younger than the TTL at `now` and was fetched
    /// under `barrier` or a later one. A stale entry is dropped.
    pub(crate) fn get(&mut self, key: &CacheKey, now: Instant, barrier: u64) -> Option<V> {
        let entry = self.entries.get_mut(key)?;
        let fresh = now.saturating_duration_since(entry.stored) < self.ttl && entry.barrier >= barrier;
        if !fresh {
            let stamp = entry.stamp;
            self.entries.remove(key);
            self.order.remove(&stamp);
            return None;
        }
        self.order.remove(&entry.stamp);
        entry.stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.insert(entry.stamp, key.clone());
        Some(entry.value.clone())
    }

    /// Stores a verdict fetched under `barrier` at `now`, evicting the least recently used
    /// entry when full.
    pub(crate) fn insert(&mut self, key: CacheKey, value: V, now: Instant, barrier: u64) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.stamp);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.insert(stamp, key.clone());
        self.entries.insert(key, Entry { value, stored: now, barrier, stamp });
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CacheKey {
        (KeyDigest::of(name), None)
    }

    #[test]
    fn an_entry_lives_for_the_ttl_and_no_longer() {
        let mut cache = VerdictCache::new(Duration::from_secs(1), 10);
        let start = Instant::now();
        cache.insert(key("a"), 1, start, 0);
        assert_eq!(cache.get(&key("a"), start + Duration::from_millis(999), 0), Some(1));
        assert_eq!(cache.get(&key("a"), start + Duration::from_secs(1), 0), None);
        assert_eq!(cache.len(), 0, "the expired entry is dropped");
    }

    #[test]
    fn the_bound_holds_and_the_least_recently_used_goes_first() {
        let mut cache = VerdictCache::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key(name), i, now, 0);
        }
        assert_eq!(cache.get(&key("a"), now, 0), Some(0), "a is now the most recently used");
        cache.insert(key("d"), 3, now, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key("b"), now, 0), None, "b was the least recently used");
        assert_eq!(cache.get(&key("a"), now, 0), Some(0));
        assert_eq!(cache.get(&key("c"), now, 0), Some(2));
        assert_eq!(cache.get(&key("d"), now, 0), Some(3));
        for i in 0..100 {
            cache.insert(key(&format!("k{i}")), i, now, 0);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.order.len(), 3, "the recency order holds no dead entries");
    }

    #[test]
    fn a_barrier_hides_every_verdict_fetched_before_it() {
        let mut cache = VerdictCache::new(Duration::from_secs(30), 10);
        let now = Instant::now();
        cache.insert(key("old"), "old", now, 5);
        cache.insert(key("new"), "new", now, 9);
        assert_eq!(cache.get(&key("old"), now, 5), Some("old"));
        assert_eq!(cache.get(&key("old"), now, 9), None, "fetched under barrier 5, before index 9");
        assert_eq!(cache.get(&key("new"), now, 9), Some("new"));
        assert_eq!(cache.get(&key("new"), now, 10), None);
    }

    #[test]
    fn permissions_are_cached_apart_and_a_zero_ttl_caches_nothing() {
        let mut cache = VerdictCache::new(Duration::from_secs(30), 10);
        let now = Instant::now();
        let with = (KeyDigest::of("a"), Some(Arc::<str>::from("account:write")));
        cache.insert(key("a"), 1, now, 0);
        assert_eq!(cache.get(&with, now, 0), None);
        let mut off = VerdictCache::new(Duration::ZERO, 10);
        off.insert(key("a"), 1, now, 0);
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn the_digest_is_sha3_256_of_the_key() {
        // SHA3-256 of the empty string.
        let empty = KeyDigest::of("");
        assert_eq!(empty.0[..4], [0xa7, 0xff, 0xc6, 0xf8]);
        assert_ne!(KeyDigest::of("klk_a"), KeyDigest::of("klk_b"));
    }
}
