//! Offline verification of a JSONL export: no server, no database, just the file.
//!
//! Line by line it checks that the line is the canonical encoding of an event (parsing it and
//! writing it back gives the same bytes), that the event's two chain hashes match its content,
//! and that it continues the chains before it: every account's `account_seq` is gap-free and
//! each `account_prev_hash` is the previous `account_hash`; in a file with more than one
//! account (the operator's full export) the cluster chain (`seq`, `prev_hash`) is checked the
//! same way. A chain that starts at 1 must start from the genesis hash; an export that starts
//! later (`--from`) is anchored at its first event. The first failure is named with its line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;

use keyledger_model::{ChainHash, ChainHead, Event};

use crate::{from_export, to_export, ExportedEvent};

/// What a clean file contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: u64,
    /// Each account's chain in the file: its first event's prev hash (the anchor) and its head.
    pub accounts: BTreeMap<String, AccountChain>,
    /// The cluster chain's head, checked only when the file holds more than one account.
    pub cluster_head: Option<ChainHead>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChain {
    pub first_account_seq: u64,
    pub anchor: ChainHash,
    pub head: ChainHead,
}

/// The first problem found: 1-based line number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for Failure {}

/// How much of a chain the file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A whole export: every chain starts at 1, so a missing first event is caught.
    Complete,
    /// An export cut by time (`--from`): chains may start later, anchored at their first event.
    Partial,
}

/// Lines checked per batch; the checks of one line need no other line, so a batch is spread
/// over the machine's cores, and only the chain links are followed in order.
const BATCH: usize = 8192;

/// Verifies a JSONL export read from `input`.
pub fn verify_jsonl(input: impl BufRead, expect: Expect) -> Result<Verified, Failure> {
    let mut accounts: BTreeMap<String, AccountChain> = BTreeMap::new();
    let mut cluster: Option<ChainHead> = None;
    let mut cluster_broken: Option<Failure> = None;
    let mut events = 0u64;
    let mut first_seq = None;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = input.split(b'\n').enumerate().peekable();
    while lines.peek().is_some() {
        let batch: Vec<(u64, std::io::Result<Vec<u8>>)> =
            lines.by_ref().take(BATCH).map(|(number, line)| (number as u64 + 1, line)).collect();
        let checked = check_in_parallel(&batch, threads);
        for (event, &(number, _)) in checked.into_iter().zip(&batch) {
            let event = event?;
            let fail = |reason: String| Failure { line: number, reason };
            if expect == Expect::Complete && !accounts.contains_key(event.account.as_str()) && event.account_seq != 1 {
                return Err(fail(format!(
                    "account {} starts at account_seq {}, not 1: events are missing before it",
                    event.account, event.account_seq
                )));
            }
            link_account(&mut accounts, &event).map_err(fail)?;
            // The cluster chain is judged at the end: only a file with several accounts must hold it.
            if cluster_broken.is_none() {
                if let Err(reason) = link(cluster, event.seq, event.prev_hash, "seq", "prev_hash") {
                    cluster_broken = Some(fail(reason));
                }
            }
            cluster = Some(ChainHead { seq: event.seq, hash: event.hash });
            first_seq.get_or_insert(event.seq);
            events += 1;
        }
    }
    if events == 0 {
        return Err(Failure { line: 0, reason: "the file holds no events".into() });
    }
    let whole_cluster = accounts.len() > 1;
    if whole_cluster {
        if let Some(broken) = cluster_broken {
            return Err(broken);
        }
        if expect == Expect::Complete && first_seq != Some(1) {
            return Err(Failure { line: 1, reason: "the cluster chain does not start at seq 1".into() });
        }
    }
    Ok(Verified { events, accounts, cluster_head: cluster.filter(|_| whole_cluster) })
}

/// Checks every line of `batch` on its own (form and hashes), on up to `threads` threads;
/// the results come back in line order.
fn check_in_parallel(batch: &[(u64, std::io::Result<Vec<u8>>)], threads: usize) -> Vec<Result<Event, Failure>> {
    let per_thread = batch.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = batch
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|(n, line)| check_line(*n, line)).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a line check does not panic")).collect()
    })
}

/// One line on its own: an event, in canonical form, whose hashes match its content.
fn check_line(number: u64, line: &std::io::Result<Vec<u8>>) -> Result<Event, Failure> {
    let fail = |reason: String| Failure { line: number, reason };
    let line = line.as_ref().map_err(|e| fail(format!("cannot read: {e}")))?;
    if line.is_empty() {
        return Err(fail("empty line".into()));
    }
    let text = std::str::from_utf8(line).map_err(|_| fail("not UTF-8".into()))?;
    let exported: ExportedEvent = serde_json::from_str(text).map_err(|e| fail(format!("not an event: {e}")))?;
    let event = from_export(&exported).map_err(|e| fail(e.to_string()))?;
    let canonical = serde_json::to_string(&to_export(&event)).map_err(|e| fail(e.to_string()))?;
    if canonical != text {
        return Err(fail("not in canonical form (fields, order or spelling differ from the export's)".into()));
    }
    if !event.hashes_are_valid() {
        return Err(fail(format!("seq {}: the hashes do not match the event's content", event.seq)));
    }
    Ok(event)
}

/// Checks that `event` continues its account's chain, and advances it.
fn link_account(accounts: &mut BTreeMap<String, AccountChain>, event: &Event) -> Result<(), String> {
    let account = event.account.as_str().to_string();
    match accounts.get_mut(&account) {
        None => {
            if event.account_seq == 1 && event.account_prev_hash != ChainHash::GENESIS {
                return Err(format!("account {account} starts at account_seq 1 but not from the genesis hash"));
            }
            let head = ChainHead { seq: event.account_seq, hash: event.account_hash };
            let first = AccountChain { first_account_seq: event.account_seq, anchor: event.account_prev_hash, head };
            accounts.insert(account, first);
        }
        Some(chain) => {
            link(Some(chain.head), event.account_seq, event.account_prev_hash, "account_seq", "account_prev_hash")
                .map_err(|reason| format!("account {account}: {reason}"))?;
            chain.head = ChainHead { seq: event.account_seq, hash: event.account_hash };
        }
    }
    Ok(())
}

/// Does an event at `seq` with `prev` continue `previous`?
fn link(previous: Option<ChainHead>, seq: u64, prev: ChainHash, seq_name: &str, prev_name: &str) -> Result<(), String> {
    match previous {
        None if seq == 1 && prev != ChainHash::GENESIS => {
            Err(format!("{seq_name} 1 must follow the genesis hash, but {prev_name} is {prev}"))
        }
        None => Ok(()),
        Some(head) if seq != head.seq + 1 => {
            Err(format!("{seq_name} {seq} follows {}: events are missing, repeated or out of order", head.seq))
        }
        Some(head) if prev != head.hash => {
            Err(format!("{seq_name} {seq}: {prev_name} does not match the previous event's hash"))
        }
        Some(_) => Ok(()),
    }
}
