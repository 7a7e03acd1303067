//! The layouts of the derived records in tree `ledger` — the key index (`k`) and the account
//! runs (`a`) — their keys and values, and what marks the layout version of every record kind
//! the tree holds.
//!
//! `docs/ARCHITECTURE.md` says a stored record starts with a version byte (`codec`). The records
//! `codec` encodes do; the derived ones are raw big-endian integers and hashes and do not. For
//! each kind, what says which layout its bytes follow:
//!
//! | key | holds | value | layout version marked by |
//! |---|---|---|---|
//! | `b` + block number | up to 32 events (`event_blocks.rs`) | per event, a length and a `codec` record | the letter (framing); each event's `codec` version byte |
//! | `e` + seq | one event, as older versions stored it | a `codec` record | the letter: moved into `b` blocks on open |
//! | `k` + key id + first seq | one key's events | big-endian seqs, 8 bytes each | the letter |
//! | `a` + account + `0` + first seq | a run of one account's events | the run's last seq, 8 bytes | the letter |
//! | `t` + level + index | a Merkle node (`merkle_store.rs`) | 32 bytes | `m:tree-layout` (now 2) |
//! | `i` + `codec` key | an idempotency record (`state_machine.rs`) | a `codec` record | `codec`'s version byte |
//! | `m:` + name | the state machine's bookkeeping | a `codec` record | `codec`'s version byte |
//!
//! Why the derived records carry no version byte, and get no migration to one: they are a
//! function of the events alone (a stopped node's are rebuilt by `offline.rs`), so no layout of
//! them ever has to be read back for its information; and they are the hottest writes (an
//! event rewrites its account run and its key's record), where a version byte would cost every
//! write a byte and an open of every older data dir a rewrite of all its index records, for
//! nothing the prefix letter does not already say. The letter therefore is the version: a new
//! layout of a `k` or `a` record takes a new letter, and the version that brings it moves or
//! rebuilds the old records on open, as `e` became `b` (`event_blocks::move_legacy_events`).
//! Within one letter a layout may only change so that its length tells the layouts apart (an
//! empty value is the one-record-per-event layout older versions wrote, and is still read). A
//! new layout of the Merkle tree takes a new `m:tree-layout` value, as 2 did
//! (`merkle_store::open_tree`), and a value this version does not know stops the open.
//!
//! Every value here has a fixed width, so bytes of another layout (say, a version byte before the
//! seqs) are refused as damaged rather than read as wrong seqs: the tests below hold that.

use keyledger_model::{AccountId, KeyId};

use crate::merkle_store::TREE_PREFIX;
use crate::LedgerError;

/// Prefix of the per-key index: `k` + key id + big-endian seq of the record's first event →
/// the big-endian seqs of up to [`KEY_RECORD_EVENTS`] of that key's events, so a key's history
/// is a range scan rather than a scan of the whole ledger. (A record with an empty value, as
/// older versions wrote one per event, names only its first.) A key's next event rewrites its
/// last record in place while there is room: a new record would cost a sled insert.
pub(crate) const KEY_INDEX_PREFIX: u8 = b'k';

/// Events one key-index record names at most (a 512-byte value).
pub(crate) const KEY_RECORD_EVENTS: usize = 64;

pub(crate) fn key_index_key(key: &KeyId, seq: u64) -> [u8; 25] {
    let mut out = [KEY_INDEX_PREFIX; 25];
    out[1..17].copy_from_slice(&key.to_bytes());
    out[17..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// The value of a key-index record naming `seqs`.
pub(crate) fn encode_key_record(seqs: &[u64]) -> Vec<u8> {
    seqs.iter().flat_map(|s| s.to_be_bytes()).collect()
}

/// The seqs a key-index record names.
pub(crate) fn decode_key_record(key: &[u8], value: &[u8]) -> Result<Vec<u64>, LedgerError> {
    let seq_at = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
    if key.len() != 25 || !value.len().is_multiple_of(8) {
        return Err(LedgerError::Damaged { seq: 0, why: "a key index record is malformed".into() });
    }
    if value.is_empty() {
        return Ok(vec![seq_at(&key[17..])]);
    }
    Ok(value.chunks_exact(8).map(seq_at).collect())
}

/// Prefix of the per-account index: `a` + account name + `0` + big-endian seq of the first
/// event of a run of that account's consecutive events → big-endian seq of the run's last event
/// (a record with an empty value, as older versions wrote one per event, is a run of one). An
/// account's trail is then read without the others', in ranged reads. Runs, not one record per
/// event: most events continue the run before them, and extending it rewrites one record where
/// a new record would cost a sled insert (and a leaf split every 16).
pub(crate) const ACCOUNT_INDEX_PREFIX: u8 = b'a';

pub(crate) fn account_index_key(account: &AccountId, seq: u64) -> Vec<u8> {
    let mut out = account_index_prefix(account);
    out.extend(seq.to_be_bytes());
    out
}

/// Account names are `a-z0-9-`, so the `0` byte ends the name unambiguously.
fn account_index_prefix(account: &AccountId) -> Vec<u8> {
    let mut out = vec![ACCOUNT_INDEX_PREFIX];
    out.extend(account.as_str().as_bytes());
    out.push(0);
    out
}

/// The value of an account-index record: the seq of its run's last event.
pub(crate) fn encode_run(last: u64) -> [u8; 8] {
    last.to_be_bytes()
}

/// The run an account index record describes.
pub(crate) fn decode_run(key: &[u8], value: &[u8]) -> Result<(u64, u64), LedgerError> {
    let seq_at = |bytes: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(bytes.try_into().ok()?)) };
    let damaged = || LedgerError::Damaged { seq: 0, why: "an account index record is malformed".into() };
    let first = key.len().checked_sub(8).and_then(|at| seq_at(&key[at..])).ok_or_else(damaged)?;
    let last = if value.is_empty() { first } else { seq_at(value).ok_or_else(damaged)? };
    if last < first {
        return Err(damaged());
    }
    Ok((first, last))
}

/// Removes everything derived from the events (indexes, Merkle nodes) into `batch`.
pub(crate) fn remove_derived(tree: &sled::Tree, batch: &mut sled::Batch) -> Result<(), LedgerError> {
    for prefix in [KEY_INDEX_PREFIX, ACCOUNT_INDEX_PREFIX, TREE_PREFIX] {
        for item in tree.scan_prefix([prefix]) {
            batch.remove(item?.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key-index record's key: `k`, a key id (here all 3s), the record's first seq.
    fn key_record_key(first: u64) -> Vec<u8> {
        let mut key = vec![KEY_INDEX_PREFIX];
        key.extend([3u8; 16]);
        key.extend(first.to_be_bytes());
        key
    }

    /// `value` as a layout that starts records with a version byte would store it.
    fn with_version_byte(value: &[u8]) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend(value);
        out
    }

    fn assert_refused<T: std::fmt::Debug>(decoded: Result<T, LedgerError>) {
        match decoded {
            Err(LedgerError::Damaged { why, .. }) => assert!(why.contains("malformed"), "{why}"),
            other => panic!("decoded a record of another layout: {other:?}"),
        }
    }

    #[test]
    fn key_index_records_of_another_layout_are_refused_not_misread() {
        let key = key_record_key(5);
        assert_eq!(decode_key_record(&key, &encode_key_record(&[5, 9])).unwrap(), [5, 9]);
        // The layout older versions wrote: one record per event, with an empty value.
        assert_eq!(decode_key_record(&key, &[]).unwrap(), [5]);
        for seqs in [&[5][..], &[5, 9], &[5, 9, 11]] {
            assert_refused(decode_key_record(&key, &with_version_byte(&encode_key_record(seqs))));
        }
        assert_refused(decode_key_record(&key[..24], &encode_key_record(&[5])));
    }

    #[test]
    fn account_runs_of_another_layout_are_refused_not_misread() {
        let key = account_index_key(&AccountId::cluster(), 5);
        assert_eq!(decode_run(&key, &encode_run(9)).unwrap(), (5, 9));
        // The layout older versions wrote: a run of one, with an empty value.
        assert_eq!(decode_run(&key, &[]).unwrap(), (5, 5));
        assert_refused(decode_run(&key, &with_version_byte(&encode_run(9))));
        assert_refused(decode_run(&key, &[encode_run(9), encode_run(12)].concat()));
        // A run that ends before it starts is no run.
        assert_refused(decode_run(&key, &encode_run(4)));
    }
}
