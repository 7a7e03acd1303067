//! Writing the index records (`records.rs`) as events are stored: each event extends its
//! account's run and its key's last record, continuing what is stored, so the records are a
//! function of the events alone whichever batches wrote them.

use std::collections::HashMap;

use keyledger_model::{AccountId, KeyId, LedgerEntry};

use crate::event_blocks;
use crate::ledger::Ledger;
use crate::records::{
    account_index_key, decode_key_record, decode_run, encode_key_record, encode_run, key_index_key, KEY_RECORD_EVENTS,
};
use crate::LedgerError;

/// The last index record of a key: its key's first seq, and every seq it names.
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    first: u64,
    seqs: Vec<u64>,
}

/// What the index records of a batch's events continue: the account run the event before ends,
/// and each key's last record. Records this batch wrote are kept here; earlier ones are read
/// from `stored` (none when the batch builds a ledger's indexes from its first event).
pub(crate) struct IndexTails {
    pub(crate) account: Option<AccountRun>,
    keys: HashMap<KeyId, KeyRecord>,
    stored: Option<sled::Tree>,
}

impl IndexTails {
    /// Indexes built from the first event.
    pub(crate) fn fresh() -> IndexTails {
        IndexTails { account: None, keys: HashMap::new(), stored: None }
    }

    /// Continuing the stored indexes of `ledger`.
    pub(crate) fn continuing(ledger: &Ledger) -> IndexTails {
        IndexTails { account: ledger.account_tail(), keys: HashMap::new(), stored: Some(ledger.tree().clone()) }
    }

    /// Continuing the indexes stored in `tree` for its first `head_seq` events. Every writer
    /// continues what is stored, so the records are a function of the events alone: a node that
    /// applied the log and one that installed a snapshot in other batches store the same.
    pub(crate) fn continuing_stored(tree: &sled::Tree, head_seq: u64) -> Result<IndexTails, LedgerError> {
        let account = stored_account_tail(tree, head_seq)?;
        Ok(IndexTails { account, keys: HashMap::new(), stored: Some(tree.clone()) })
    }

    fn key_record(&mut self, key: &KeyId) -> Result<Option<&mut KeyRecord>, LedgerError> {
        if !self.keys.contains_key(key) {
            let Some(tree) = &self.stored else { return Ok(None) };
            let Some(last) = tree.range(key_index_key(key, 0)..=key_index_key(key, u64::MAX)).next_back() else {
                return Ok(None);
            };
            let (record_key, value) = last?;
            let seqs = decode_key_record(&record_key, &value)?;
            self.keys.insert(*key, KeyRecord { first: seqs[0], seqs });
        }
        Ok(self.keys.get_mut(key))
    }

    /// Names `seq` in `key`'s last record, or in a new one when that is full.
    fn put_key_event(&mut self, batch: &mut sled::Batch, key: &KeyId, seq: u64) -> Result<(), LedgerError> {
        let record = match self.key_record(key)? {
            Some(record) if record.seqs.len() < KEY_RECORD_EVENTS => {
                record.seqs.push(seq);
                record.clone()
            }
            _ => {
                let record = KeyRecord { first: seq, seqs: vec![seq] };
                self.keys.insert(*key, record.clone());
                record
            }
        };
        batch.insert(&key_index_key(key, record.first), encode_key_record(&record.seqs));
        Ok(())
    }
}

/// A run of one account's consecutive events, `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountRun {
    pub(crate) account: AccountId,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// Writes the index records of an event: its account's run — continuing the run of the event
/// before it when that is the same account's — and its key's (both keys', for a rotation).
pub(crate) fn put_indexes(
    batch: &mut sled::Batch,
    tails: &mut IndexTails,
    entry: &LedgerEntry,
) -> Result<(), LedgerError> {
    let (account, seq) = (&entry.event.account, entry.event.seq);
    let tail = &mut tails.account;
    match tail {
        Some(run) if run.account == *account && run.last + 1 == seq => run.last = seq,
        _ => *tail = Some(AccountRun { account: account.clone(), first: seq, last: seq }),
    }
    if let Some(run) = tail {
        batch.insert(account_index_key(&run.account, run.first), &encode_run(run.last));
    }
    if let Some(key) = entry.event.body.key() {
        tails.put_key_event(batch, &key, seq)?;
    }
    if let keyledger_model::EventBody::KeyRotated { replacement, .. } = &entry.event.body {
        tails.put_key_event(batch, replacement, seq)?;
    }
    Ok(())
}

/// The account-index run that ends at the last stored event (`head_seq`), if any.
pub(crate) fn stored_account_tail(tree: &sled::Tree, head_seq: u64) -> Result<Option<AccountRun>, LedgerError> {
    let Some(entry) = event_blocks::get(tree, head_seq)? else {
        return Ok(None);
    };
    let account = entry.event.account;
    let record = tree.range(account_index_key(&account, 0)..=account_index_key(&account, head_seq)).next_back();
    let Some(record) = record else {
        return Ok(None);
    };
    let (key, value) = record?;
    let (first, last) = decode_run(&key, &value)?;
    // An index that does not reach the last event (written before the index existed) is not
    // continued; the next event starts a run of its own.
    Ok((last == head_seq).then_some(AccountRun { account, first, last }))
}
