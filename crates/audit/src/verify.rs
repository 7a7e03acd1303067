//! Offline verification of a JSONL export: no server, no database, just the file.
//!
//! Line by line it checks that the line is the canonical encoding of an event (parsing it and
//! writing it back gives the same bytes), that the event's two chain hashes match its content,
//! and that it continues the chains before it: every account's `account_seq` is gap-free and
//! each `account_prev_hash` is the previous `account_hash` (the cluster's own `_cluster` chain of
//! signers and checkpoints included); `seq` only grows; in a file with more than one tenant
//! account (the operator's full export) the cluster chain (`seq`, `prev_hash`) is checked the
//! same way. A chain that starts at 1 must start from the genesis hash; an export that starts
//! later (`--from`) is anchored at its first event. Every checkpoint's signature is checked (and,
//! given trusted keys, that it is by one of them), and where the file holds every event from
//! seq 1 the Merkle tree is recomputed so each checkpoint's root and head must match the file.
//! The first failure is named with its line.
//!
//! Where each check lives: what one line shows on its own is in `check_line` (run on many
//! threads); what needs the lines before it is in `Links::follow_line` (in file order); what
//! needs the whole file is in `Links::finish`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::BufRead;

use keyledger_model::checkpoint::MAX_CHECKPOINT_LAG;
use keyledger_model::merkle::{self, TreeHash};
use keyledger_model::{AccountId, ChainHash, ChainHead, Checkpoint, Event, EventBody, PublicKey};
use keyledger_wire::AuditEvent;

use crate::from_export;
use crate::line;
use crate::proofs::{check_checkpoint, TrustedKeys};
use crate::tree_check::TreeCheck;

/// What a clean file contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: u64,
    /// Each account's chain in the file: its first event's prev hash (the anchor) and its head.
    pub accounts: BTreeMap<String, AccountChain>,
    /// The cluster chain's head, checked only when the file holds the whole cluster chain.
    pub cluster_head: Option<ChainHead>,
    /// Checkpoints whose signature was checked (against the trusted keys, when given).
    pub checkpoints: u64,
    /// Checkpoints whose root and head were recomputed from the file's events.
    pub roots_checked: u64,
    /// The last checkpoint in the file: its own seq and the tree size it signs.
    pub last_checkpoint: Option<(u64, u64)>,
}

/// How to verify.
#[derive(Debug, Clone)]
pub struct Options {
    pub expect: Expect,
    /// Accept checkpoints signed by these keys only; `None` checks each signature against the
    /// key it names (integrity, not authenticity).
    pub trusted: Option<TrustedKeys>,
    /// The file must be the operator's full export: the whole cluster chain, from seq 1 when
    /// complete. (A file with more than one tenant account is held to that anyway.)
    pub whole_cluster: bool,
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
pub fn verify_jsonl(input: impl BufRead, expect: Expect) -> Result<Verified, Failure> {
    verify_export(input, &Options { expect, trusted: None, whole_cluster: false })
}

/// Verifies a JSONL export read from `input`, as `options` say.
pub fn verify_export(mut input: impl BufRead, options: &Options) -> Result<Verified, Failure> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut links = Links::new(options);
    let trusted = options.trusted.as_ref();
    std::thread::scope(|scope| {
        let mut in_flight = VecDeque::new();
        let mut next_line = 1;
        let mut spare = Lines::default();
        while let Some(block) = read_block(&mut input, &mut next_line, std::mem::take(&mut spare)) {
            in_flight.push_back(scope.spawn(move || check_block(block, trusted)));
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

fn check_block(block: Block, trusted: Option<&TrustedKeys>) -> Checked {
    let Block { first_line, lines, read_error } = block;
    let mut links = Vec::with_capacity(lines.ends.len());
    let mut failure = None;
    // The reserialized line, reused from line to line.
    let mut canonical = Vec::new();
    let mut number = first_line;
    for line in lines.iter() {
        match check_line(line, &mut canonical, trusted) {
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

/// One line on its own: an event, in canonical form, whose hashes match its content, and for a
/// checkpoint a signature that holds (by a trusted key, when given). `canonical` is scratch
/// space for the line as the export writes it.
fn check_line(line: &[u8], canonical: &mut Vec<u8>, trusted: Option<&TrustedKeys>) -> Result<Link, String> {
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
    let role = match &event.body {
        EventBody::SignerRegistered { node, public_key } => Role::Signer { node: *node, key: *public_key },
        EventBody::Checkpoint(_) => Role::Checkpoint(Box::new(check_checkpoint(&event, trusted)?)),
        _ => Role::Plain,
    };
    Ok(Link::of(event, role))
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

/// Any line, through serde as an `AuditEvent`: the event, or what is wrong with the line.
fn read_any(text: &str, canonical: &mut Vec<u8>) -> Result<Event, String> {
    let exported: AuditEvent = serde_json::from_str(text).map_err(|e| format!("not an event: {e}"))?;
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

/// What the in-order pass needs of an event: its place on both chains, and what it says about
/// checkpoints.
struct Link {
    seq: u64,
    prev_hash: ChainHash,
    hash: ChainHash,
    account: AccountId,
    account_seq: u64,
    account_prev_hash: ChainHash,
    account_hash: ChainHash,
    /// The event's Merkle leaf, hashed here on the checking threads.
    leaf: TreeHash,
    role: Role,
}

enum Role {
    Plain,
    Signer {
        node: u64,
        key: PublicKey,
    },
    /// Its signature already checked.
    Checkpoint(Box<Checkpoint>),
}

impl Link {
    fn of(event: Event, role: Role) -> Link {
        Link {
            seq: event.seq,
            prev_hash: event.prev_hash,
            hash: event.hash,
            account: event.account,
            account_seq: event.account_seq,
            account_prev_hash: event.account_prev_hash,
            account_hash: event.account_hash,
            leaf: merkle::leaf_hash(&event.hash.0),
            role,
        }
    }
}

/// The in-order pass: every account's chain, and the cluster chain, followed line by line; the
/// Merkle tree recomputed while the file holds every event from seq 1.
struct Links {
    expect: Expect,
    whole_cluster: bool,
    accounts: BTreeMap<String, AccountChain>,
    cluster: Option<ChainHead>,
    /// The cluster chain is judged at the end: only a full export must hold it.
    cluster_broken: Option<Failure>,
    events: u64,
    first_seq: Option<u64>,
    /// `None` once the file is seen not to hold every event from seq 1.
    tree: Option<TreeCheck>,
    /// Signing keys registered in the file, with their node.
    signers: BTreeMap<PublicKey, u64>,
    checkpoints: u64,
    roots_checked: u64,
    last_checkpoint: Option<(u64, u64)>,
}

impl Links {
    fn new(options: &Options) -> Links {
        Links {
            expect: options.expect,
            whole_cluster: options.whole_cluster,
            accounts: BTreeMap::new(),
            cluster: None,
            cluster_broken: None,
            events: 0,
            first_seq: None,
            tree: Some(TreeCheck::new()),
            signers: BTreeMap::new(),
            checkpoints: 0,
            roots_checked: 0,
            last_checkpoint: None,
        }
    }

    /// Follows a checked block's lines, then reports its failed line, if any; gives back the
    /// block's lines.
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
        if let Some(previous) = self.cluster.filter(|previous| event.seq <= previous.seq) {
            return Err(fail(format!(
                "seq {} follows {}: events are repeated or out of order",
                event.seq, previous.seq
            )));
        }
        link_account(&mut self.accounts, &event).map_err(fail)?;
        if self.cluster_broken.is_none() {
            if let Err(reason) = link(self.cluster, event.seq, event.prev_hash, "seq", "prev_hash") {
                self.cluster_broken = Some(fail(reason));
            }
        }
        // The tree can be recomputed only from every event, in order, from the first.
        if self.cluster_broken.is_some() || (self.first_seq.is_none() && event.seq != 1) {
            self.tree = None;
        }
        match &event.role {
            Role::Plain => {}
            Role::Signer { node, key } => {
                self.signers.insert(*key, *node);
            }
            Role::Checkpoint(checkpoint) => self.follow_checkpoint(event.seq, checkpoint).map_err(fail)?,
        }
        if let Some(tree) = &mut self.tree {
            tree.push(event.hash, event.leaf);
        }
        self.cluster = Some(ChainHead { seq: event.seq, hash: event.hash });
        self.first_seq.get_or_insert(event.seq);
        self.events += 1;
        Ok(())
    }

    /// A checkpoint at `seq` (signature already checked): registered signer, order, lag, and
    /// where the tree is known, its root and head.
    fn follow_checkpoint(&mut self, seq: u64, checkpoint: &Checkpoint) -> Result<(), String> {
        let whole_signer_chain =
            self.accounts.get(AccountId::cluster().as_str()).is_some_and(|c| c.first_account_seq == 1);
        if whole_signer_chain && self.signers.get(&checkpoint.public_key) != Some(&checkpoint.signer) {
            return Err(format!(
                "checkpoint at seq {seq}: key {} is not registered for node {} by an earlier signer_registered event",
                checkpoint.public_key, checkpoint.signer
            ));
        }
        if seq - 1 - checkpoint.tree_size > MAX_CHECKPOINT_LAG {
            return Err(format!("checkpoint at seq {seq} covers only {} events: too far behind", checkpoint.tree_size));
        }
        if let Some((last_seq, last_size)) = self.last_checkpoint {
            if checkpoint.tree_size <= last_size {
                return Err(format!(
                    "checkpoint at seq {seq} covers {} events, no more than the checkpoint at seq {last_seq} ({last_size})",
                    checkpoint.tree_size
                ));
            }
        }
        if let Some(tree) = &self.tree {
            let (root, head) = tree
                .statement_at(checkpoint.tree_size)
                .ok_or_else(|| format!("checkpoint at seq {seq}: the events it covers are not all in the file"))?;
            if head != checkpoint.head {
                return Err(format!(
                    "checkpoint at seq {seq}: event {} in this file is not the one it signed (head differs)",
                    checkpoint.tree_size
                ));
            }
            if root != checkpoint.root {
                return Err(format!(
                    "checkpoint at seq {seq}: the Merkle root of events 1..={} in this file is not the one it signed: \
                     history was changed",
                    checkpoint.tree_size
                ));
            }
            self.roots_checked += 1;
        }
        self.checkpoints += 1;
        self.last_checkpoint = Some((seq, checkpoint.tree_size));
        Ok(())
    }

    fn finish(self) -> Result<Verified, Failure> {
        if self.events == 0 {
            return Err(Failure { line: 0, reason: "the file holds no events".into() });
        }
        let tenants = self.accounts.keys().filter(|name| name.as_str() != AccountId::cluster().as_str()).count();
        let whole_cluster = self.whole_cluster || tenants > 1;
        if whole_cluster {
            if let Some(broken) = self.cluster_broken {
                return Err(broken);
            }
            if self.expect == Expect::Complete && self.first_seq != Some(1) {
                return Err(Failure { line: 1, reason: "the cluster chain does not start at seq 1".into() });
            }
        }
        let cluster_head = self.cluster.filter(|_| whole_cluster || self.cluster_broken.is_none());
        Ok(Verified {
            events: self.events,
            accounts: self.accounts,
            cluster_head,
            checkpoints: self.checkpoints,
            roots_checked: self.roots_checked,
            last_checkpoint: self.last_checkpoint,
        })
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

/// Verifies events handed over one at a time, in order from seq 1 (a backup file's, decoded by
/// `keyledger-ledger`): the checks a full operator export gets — hashes against content, every
/// chain link, each checkpoint's signature, signer and Merkle root — and the root of the whole.
pub struct EventCheck {
    links: Links,
    trusted: Option<TrustedKeys>,
}

impl EventCheck {
    /// Checkpoints must be signed by `trusted` keys when given; by the key they name otherwise.
    pub fn new(trusted: Option<TrustedKeys>) -> EventCheck {
        let options = Options { expect: Expect::Complete, trusted: None, whole_cluster: true };
        EventCheck { links: Links::new(&options), trusted }
    }

    /// The next event; a failure's `line` is the event's seq.
    pub fn push(&mut self, event: Event) -> Result<(), Failure> {
        let seq = event.seq;
        let fail = |reason: String| Failure { line: seq, reason };
        if !event.hashes_are_valid() {
            return Err(fail(format!("seq {seq}: the hashes do not match the event's content")));
        }
        let role = match &event.body {
            EventBody::SignerRegistered { node, public_key } => Role::Signer { node: *node, key: *public_key },
            EventBody::Checkpoint(_) => {
                Role::Checkpoint(Box::new(check_checkpoint(&event, self.trusted.as_ref()).map_err(fail)?))
            }
            _ => Role::Plain,
        };
        self.links.follow_line(seq, Link::of(event, role))
    }

    /// The Merkle root of every event pushed so far (`None` before the first).
    pub fn merkle_root(&self) -> Option<TreeHash> {
        let tree = self.links.tree.as_ref()?;
        tree.statement_at(tree.size()).map(|(root, _)| root)
    }

    /// What the events held, once they were all pushed.
    pub fn finish(self) -> Result<Verified, Failure> {
        self.links.finish()
    }
}
