//! Offline verification of a JSONL export: no server, no database, just the file.
//!
//! Line by line it checks that the line is the canonical encoding of an event (parsing it and
//! writing it back gives the same bytes), that the event's two chain hashes match its content,
//! and that it continues the chains before it: every account's `account_seq` is gap-free and
//! each `account_prev_hash` is the previous `account_hash`; in a file with more than one
//! account (the operator's full export) the cluster chain (`seq`, `prev_hash`) is checked the
//! same way. A chain that starts at 1 must start from the genesis hash; an export that starts
//! later (`--from`) is anchored at its first event. The first failure is named with its line.
//!
//! Where each check lives: what one line shows on its own is in `check_line` (run on many
//! threads); what needs the lines before it is in `Links::follow_line` (in file order); what
//! needs the whole file is in `Links::finish`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::BufRead;

use keyledger_model::{AccountId, ChainHash, ChainHead, Event};

use crate::line;
use crate::{from_export, ExportedEvent};

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

/// About how many bytes of whole lines go to one thread at a time (some 1,700 lines of a
/// typical export): large enough that starting a thread per block costs nothing, small enough
/// that a few blocks in flight keep every core busy without holding much of the file.
const BLOCK_BYTES: usize = 1 << 20;

/// Verifies a JSONL export read from `input`.
///
/// The checks of one line need no other line, so the file is read in blocks, each checked on
/// its own thread; only the chain links are followed in order. The calling thread reads the
/// next block and links finished ones while up to one block per core is being checked.
pub fn verify_jsonl(mut input: impl BufRead, expect: Expect) -> Result<Verified, Failure> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut links = Links::new(expect);
    std::thread::scope(|scope| {
        let mut in_flight = VecDeque::new();
        let mut next_line = 1;
        let mut spare = Lines::default();
        while let Some(block) = read_block(&mut input, &mut next_line, std::mem::take(&mut spare)) {
            in_flight.push_back(scope.spawn(move || check_block(block)));
            // One block more than cores: while the oldest is linked, every core still has one.
            if in_flight.len() > threads {
                let oldest = in_flight.pop_front().expect("more blocks than threads");
                spare = links.follow(oldest.join().expect("a line check does not panic"))?;
            }
        }
        while let Some(worker) = in_flight.pop_front() {
            links.follow(worker.join().expect("a line check does not panic"))?;
        }
        links.finish()
    })
}

/// Whole lines of the file, numbered from `first_line`.
struct Block {
    first_line: u64,
    lines: Lines,
    /// Reading stopped here: the line after the block could not be read.
    read_error: Option<std::io::Error>,
}

/// Lines as read: their bytes one after the other, each with its `\n` (the file's last line
/// may have none), and where each ends. Kept from block to block, so its memory is reused.
#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Lines {
    /// Each line without its `\n`.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| {
            let line = &self.text[start..end];
            line.strip_suffix(b"\n").unwrap_or(line)
        })
    }
}

/// The next block of whole lines, read into `lines`; `None` at the end of the input.
fn read_block(input: &mut impl BufRead, next_line: &mut u64, mut lines: Lines) -> Option<Block> {
    lines.text.clear();
    lines.ends.clear();
    let first_line = *next_line;
    let mut read_error = None;
    while lines.text.len() < BLOCK_BYTES {
        let start = lines.text.len();
        match input.read_until(b'\n', &mut lines.text) {
            Ok(0) => break,
            Ok(_) => {
                lines.ends.push(lines.text.len());
                *next_line += 1;
            }
            Err(e) => {
                // A line read in part is not a line: the error stands in its place.
                lines.text.truncate(start);
                read_error = Some(e);
                break;
            }
        }
    }
    (!lines.ends.is_empty() || read_error.is_some()).then_some(Block { first_line, lines, read_error })
}

/// A block's lines, each checked on its own, up to the first that fails.
struct Checked {
    first_line: u64,
    /// What the in-order pass needs of each good line, in line order.
    links: Vec<Link>,
    /// The first line that failed; no line after it was checked.
    failure: Option<Failure>,
    /// The block's lines, to read another block into.
    lines: Lines,
}

fn check_block(block: Block) -> Checked {
    let Block { first_line, lines, read_error } = block;
    let mut links = Vec::with_capacity(lines.ends.len());
    let mut failure = None;
    // The reserialized line, reused from line to line.
    let mut canonical = Vec::new();
    let mut number = first_line;
    for line in lines.iter() {
        match check_line(line, &mut canonical) {
            Ok(link) => links.push(link),
            Err(reason) => {
                failure = Some(Failure { line: number, reason });
                break;
            }
        }
        number += 1;
    }
    if failure.is_none() {
        failure = read_error.map(|e| Failure { line: number, reason: format!("cannot read: {e}") });
    }
    Checked { first_line, links, failure, lines }
}

/// One line on its own: an event, in canonical form, whose hashes match its content.
/// `canonical` is scratch space for the line as the export writes it.
fn check_line(line: &[u8], canonical: &mut Vec<u8>) -> Result<Link, String> {
    if line.is_empty() {
        return Err("empty line".into());
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let event = match read_canonical(text, canonical) {
        Some(event) => event,
        None => read_any(text, canonical)?,
    };
    if !event.hashes_are_valid() {
        return Err(format!("seq {}: the hashes do not match the event's content", event.seq));
    }
    Ok(Link::of(event))
}

/// The usual line, read directly from its text (`line::read`) without serde's owned copy of
/// every field; `None` if the line is laid out any other way or is not in canonical form.
/// An event that rewrites to exactly this line is the one `read_any` would find too (the
/// export's mapping is lossless both ways), so this only saves time.
fn read_canonical(text: &str, canonical: &mut Vec<u8>) -> Option<Event> {
    let mut data = serde_json::Value::Null;
    let event = line::read(text, &mut data)?.to_event().ok()?;
    write_canonical(&event, canonical).ok()?;
    (canonical == text.as_bytes()).then_some(event)
}

/// Any line, through serde as an `ExportedEvent`: the event, or what is wrong with the line.
fn read_any(text: &str, canonical: &mut Vec<u8>) -> Result<Event, String> {
    let exported: ExportedEvent = serde_json::from_str(text).map_err(|e| format!("not an event: {e}"))?;
    let event = from_export(&exported).map_err(|e| e.to_string())?;
    write_canonical(&event, canonical).map_err(|e| e.to_string())?;
    if canonical != text.as_bytes() {
        return Err("not in canonical form (fields, order or spelling differ from the export's)".into());
    }
    Ok(event)
}

/// Writes `event` into `canonical` as the export writes its line.
fn write_canonical(event: &Event, canonical: &mut Vec<u8>) -> serde_json::Result<()> {
    canonical.clear();
    line::write(event, canonical)
}

/// What the in-order pass needs of an event: its place on both chains.
struct Link {
    seq: u64,
    prev_hash: ChainHash,
    hash: ChainHash,
    account: AccountId,
    account_seq: u64,
    account_prev_hash: ChainHash,
    account_hash: ChainHash,
}

impl Link {
    fn of(event: Event) -> Link {
        Link {
            seq: event.seq,
            prev_hash: event.prev_hash,
            hash: event.hash,
            account: event.account,
            account_seq: event.account_seq,
            account_prev_hash: event.account_prev_hash,
            account_hash: event.account_hash,
        }
    }
}

/// The in-order pass: every account's chain, and the cluster chain, followed line by line.
struct Links {
    expect: Expect,
    accounts: BTreeMap<String, AccountChain>,
    cluster: Option<ChainHead>,
    /// The cluster chain is judged at the end: only a file with several accounts must hold it.
    cluster_broken: Option<Failure>,
    events: u64,
    first_seq: Option<u64>,
}

impl Links {
    fn new(expect: Expect) -> Links {
        Links { expect, accounts: BTreeMap::new(), cluster: None, cluster_broken: None, events: 0, first_seq: None }
    }

    /// Follows a checked block's lines, then reports its failed line, if any; gives back the
    /// block's lines, to read into again.
    fn follow(&mut self, checked: Checked) -> Result<Lines, Failure> {
        let Checked { first_line, links, failure, lines } = checked;
        for (number, link) in (first_line..).zip(links) {
            self.follow_line(number, link)?;
        }
        failure.map_or(Ok(lines), Err)
    }

    fn follow_line(&mut self, number: u64, event: Link) -> Result<(), Failure> {
        let fail = |reason: String| Failure { line: number, reason };
        if self.expect == Expect::Complete
            && !self.accounts.contains_key(event.account.as_str())
            && event.account_seq != 1
        {
            return Err(fail(format!(
                "account {} starts at account_seq {}, not 1: events are missing before it",
                event.account, event.account_seq
            )));
        }
        link_account(&mut self.accounts, &event).map_err(fail)?;
        if self.cluster_broken.is_none() {
            if let Err(reason) = link(self.cluster, event.seq, event.prev_hash, "seq", "prev_hash") {
                self.cluster_broken = Some(fail(reason));
            }
        }
        self.cluster = Some(ChainHead { seq: event.seq, hash: event.hash });
        self.first_seq.get_or_insert(event.seq);
        self.events += 1;
        Ok(())
    }

    fn finish(self) -> Result<Verified, Failure> {
        if self.events == 0 {
            return Err(Failure { line: 0, reason: "the file holds no events".into() });
        }
        let whole_cluster = self.accounts.len() > 1;
        if whole_cluster {
            if let Some(broken) = self.cluster_broken {
                return Err(broken);
            }
            if self.expect == Expect::Complete && self.first_seq != Some(1) {
                return Err(Failure { line: 1, reason: "the cluster chain does not start at seq 1".into() });
            }
        }
        let cluster_head = self.cluster.filter(|_| whole_cluster);
        Ok(Verified { events: self.events, accounts: self.accounts, cluster_head })
    }
}

/// Checks that `event` continues its account's chain, and advances it.
fn link_account(accounts: &mut BTreeMap<String, AccountChain>, event: &Link) -> Result<(), String> {
    let account = event.account.as_str();
    match accounts.get_mut(account) {
        None => {
            if event.account_seq == 1 && event.account_prev_hash != ChainHash::GENESIS {
                return Err(format!("account {account} starts at account_seq 1 but not from the genesis hash"));
            }
            let head = ChainHead { seq: event.account_seq, hash: event.account_hash };
            let first = AccountChain { first_account_seq: event.account_seq, anchor: event.account_prev_hash, head };
            accounts.insert(account.to_string(), first);
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
