//! `Idempotency-Key`: a retried write with the same key and the same request, within 24 hours,
//! answers what the first one answered and writes nothing new.
//!
//! The table lives beside [`State`] in the state machine and is changed only at apply time, in
//! log order, from the proposal's own time — so every node holds the same table and a retry may
//! land on any node. It is not part of the ledger (it records no change to keys or identities);
//! the state machine stores it next to `last_applied` and ships it in snapshots.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::LedgerEntry;
use crate::ids::AccountId;
use crate::proposal::{Command, Outcome, Proposal, RejectCode, Rejection};
use crate::state::State;
use crate::time::{Span, Timestamp};

/// How long a key is remembered.
pub const WINDOW: Span = Span(24 * 3_600_000);
/// Most records kept; past this the oldest are forgotten first (bounded memory under load).
pub const MAX_RECORDS: usize = 100_000;
/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// The first answer to one idempotent request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// A digest of the request (method, path, body), so a reused key with another request is
    /// refused instead of answered with the wrong result.
    pub fingerprint: [u8; 32],
    pub at: Timestamp,
    /// The Raft log index the first request committed at.
    pub index: u64,
    pub outcome: Outcome,
}

/// `(account, Idempotency-Key)`.
pub type RecordKey = (AccountId, String);

/// What applying one proposal did to the table, for the store to persist.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TableChange {
    pub inserted: Option<(RecordKey, Record)>,
    pub removed: Vec<RecordKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    records: BTreeMap<RecordKey, Record>,
    by_time: BTreeSet<(Timestamp, RecordKey)>,
}

impl Table {
    pub fn from_records(records: impl IntoIterator<Item = (RecordKey, Record)>) -> Table {
        let mut table = Table::default();
        for (key, record) in records {
            table.by_time.insert((record.at, key.clone()));
            table.records.insert(key, record);
        }
        table
    }

    pub fn records(&self) -> impl Iterator<Item = (&RecordKey, &Record)> {
        self.records.iter()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Applies `proposal`, committed at log `index`, to `state` — answering from the table
    /// instead when it is a retry.
    pub fn execute(
        &mut self,
        state: &mut State,
        proposal: &Proposal,
        index: u64,
    ) -> (Outcome, Vec<LedgerEntry>, TableChange) {
        let Command::Idempotent { key, fingerprint, command } = &proposal.command else {
            let (outcome, entries) = state.execute(proposal);
            return (outcome, entries, TableChange::default());
        };
        let mut change = TableChange { removed: self.forget_before(proposal.time), ..Default::default() };
        let record_key = (proposal.account.clone(), key.clone());
        if let Some(first) = self.records.get(&record_key) {
            let outcome = if first.fingerprint == *fingerprint {
                Outcome::Replayed { index: first.index, outcome: Box::new(first.outcome.clone()) }
            } else {
                Outcome::Rejected(Rejection::new(
                    RejectCode::Conflict,
                    "this Idempotency-Key was already used for a different request",
                ))
            };
            return (outcome, Vec::new(), change);
        }
        let inner = Proposal { command: (**command).clone(), ..proposal.clone() };
        let (outcome, entries) = state.execute(&inner);
        let record = Record { fingerprint: *fingerprint, at: proposal.time, index, outcome: outcome.clone() };
        if self.records.len() >= MAX_RECORDS {
            if let Some((_, oldest)) = self.by_time.pop_first() {
                self.records.remove(&oldest);
                change.removed.push(oldest);
            }
        }
        self.by_time.insert((record.at, record_key.clone()));
        self.records.insert(record_key.clone(), record.clone());
        change.inserted = Some((record_key, record));
        (outcome, entries, change)
    }

    /// Forgets records older than the window at `now`.
    fn forget_before(&mut self, now: Timestamp) -> Vec<RecordKey> {
        let mut removed = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if at.0.saturating_add(WINDOW.0) > now.0 {
                break;
            }
            let (_, key) = self.by_time.pop_first().expect("first exists");
            self.records.remove(&key);
            removed.push(key);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::Actor;
    use crate::proposal::SettingsPatch;

    /// A proposal that needs no caller and is refused the same way every time.
    fn proposal(key: &str, fingerprint: u8, time: i64) -> Proposal {
        Proposal {
            time: Timestamp(time),
            request_id: "r".into(),
            actor: Actor::System,
            account: AccountId::default_account(),
            command: Command::Idempotent {
                key: key.into(),
                fingerprint: [fingerprint; 32],
                command: Box::new(Command::UpdateSettings(SettingsPatch::default())),
            },
        }
    }

    #[test]
    fn a_retry_replays_the_first_answer_and_another_request_is_refused() {
        let (mut table, mut state) = (Table::default(), State::new());
        let (first, _, change) = table.execute(&mut state, &proposal("k", 1, 1_000), 7);
        assert!(matches!(first, Outcome::Rejected(_)));
        assert!(change.inserted.is_some());
        let (again, entries, change) = table.execute(&mut state, &proposal("k", 1, 2_000), 8);
        assert_eq!(again, Outcome::Replayed { index: 7, outcome: Box::new(first) });
        assert!(entries.is_empty() && change.inserted.is_none());
        let (other, _, _) = table.execute(&mut state, &proposal("k", 2, 3_000), 9);
        assert!(matches!(other, Outcome::Rejected(ref r) if r.code == RejectCode::Conflict));
    }

    #[test]
    fn records_are_forgotten_after_the_window() {
        let (mut table, mut state) = (Table::default(), State::new());
        table.execute(&mut state, &proposal("k", 1, 0), 1);
        let (_, _, change) = table.execute(&mut state, &proposal("other", 1, WINDOW.0), 2);
        assert_eq!(change.removed, vec![(AccountId::default_account(), "k".to_string())]);
        let (fresh, _, _) = table.execute(&mut state, &proposal("k", 2, WINDOW.0), 3);
        assert!(!matches!(fresh, Outcome::Replayed { .. }), "after the window the key is new again");
        assert_eq!(table.len(), 2);
        assert_eq!(Table::from_records(table.records().map(|(k, r)| (k.clone(), r.clone()))), table);
    }
}
