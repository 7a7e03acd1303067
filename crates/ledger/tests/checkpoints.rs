//! The stored Merkle tree and signed checkpoints through the state machine: roots match an
//! in-memory tree, survive restarts and snapshots, proofs verify, and a checkpoint is written
//! only when its signer, signature, root and head are all right.

use keyledger_ledger::{Ledger, StateMachine, Storage, TypeConfig};
use keyledger_model::merkle::{self, Frontier, MemoryTree};
use keyledger_model::{
    AccountId, Actor, ChainHash, CheckpointSigner, Command, EventBody, KeyId, LedgerEntry, NewKey, Outcome, Proposal,
    RejectCode, Timestamp, TreeHash, UserId,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod common;

use common::T0;

struct Log {
    rng: ChaCha20Rng,
    index: u64,
    admin: UserId,
    key: KeyId,
}

impl Log {
    fn new() -> Log {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let admin = UserId::generate(T0, &mut rng);
        let key = KeyId::generate(T0, &mut rng);
        Log { rng, index: 0, admin, key }
    }

    fn entry(&mut self, actor: Actor, account: AccountId, command: Command) -> Entry<TypeConfig> {
        self.index += 1;
        let proposal = Proposal {
            time: Timestamp(T0.0 + self.index as i64),
            request_id: format!("r{}", self.index),
            actor,
            account,
            command,
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(proposal.into()),
        }
    }

    fn new_key(&mut self, id: KeyId) -> NewKey {
        common::new_key(id, &mut self.rng, None)
    }

    fn bootstrap(&mut self) -> Entry<TypeConfig> {
        let key = self.new_key(self.key);
        let command = Command::Bootstrap { admin: self.admin, admin_name: "admin".into(), key };
        self.entry(Actor::System, AccountId::default_account(), command)
    }

    /// A rename of the admin's key: one event each time.
    fn change(&mut self) -> Entry<TypeConfig> {
        let actor = Actor::User { id: self.admin, key: self.key };
        let name = Some(format!("name {}", self.index));
        let command = Command::UpdateKey { key: self.key, name, description: None, if_revision: None };
        self.entry(actor, AccountId::default_account(), command)
    }

    fn cluster(&mut self, command: Command) -> Entry<TypeConfig> {
        self.entry(Actor::System, AccountId::cluster(), command)
    }
}

/// The in-memory tree of the stored ledger's first `size` events.
fn memory_tree(ledger: &Ledger, size: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for entry in ledger.entries(1, size) {
        tree.push(merkle::leaf_hash(&entry.unwrap().event.hash.0));
    }
    tree
}

fn reference_leaf(ledger: &Ledger, seq: u64) -> TreeHash {
    merkle::leaf_hash(&ledger.entry(seq).unwrap().unwrap().event.hash.0)
}

fn statement(ledger: &Ledger, size: u64) -> (TreeHash, ChainHash) {
    (ledger.merkle_root(size).unwrap(), ledger.entry(size).unwrap().unwrap().event.hash)
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry<TypeConfig>>) -> Vec<Outcome> {
    sm.apply(entries).await.unwrap().into_iter().flatten().collect()
}

fn rejected(outcome: &Outcome) -> RejectCode {
    match outcome {
        Outcome::Rejected(r) => r.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn stored_roots_and_proofs_match_an_in_memory_tree_across_restarts_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    let mut log = Log::new();
    let mut entries = vec![log.bootstrap()];
    // Past 512 events, so the upper levels kept in memory are exercised too.
    entries.extend((0..600).map(|_| log.change()));
    apply(&mut sm, entries).await;
    let size = storage.ledger.stored_size();
    assert_eq!(size, 603, "bootstrap writes 3 events, each change 1");
    let reference = memory_tree(&storage.ledger, size);
    for n in 1..=size {
        assert_eq!(storage.ledger.merkle_root(n).unwrap(), merkle::root(&reference, n).unwrap(), "size {n}");
    }
    let root = storage.ledger.merkle_root(size).unwrap();
    for seq in [1, 2, 31, 32, 33, 63, 256, 257, 512, 603] {
        let proof = storage.ledger.inclusion_proof(seq, size).unwrap();
        let leaf = merkle::leaf_hash(&storage.ledger.entry(seq).unwrap().unwrap().event.hash.0);
        assert!(merkle::verify_inclusion(&leaf, seq - 1, size, &proof, &root), "seq {seq}");
    }
    for old in [1, 7, 32, 62, 63, 256, 511, 512, 602, 603] {
        let proof = storage.ledger.consistency_proof(old, size).unwrap();
        let old_root = storage.ledger.merkle_root(old).unwrap();
        assert!(merkle::verify_consistency(old, size, &old_root, &root, &proof), "old {old}");
    }
    assert!(storage.ledger.merkle_root(size + 1).is_err(), "no root beyond the ledger");
    assert!(storage.ledger.inclusion_proof(0, size).is_err());

    // A node that receives a snapshot builds the same tree.
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    other_sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(other.ledger.stored_size(), size);
    assert_eq!(other.ledger.merkle_root(size).unwrap(), root);

    // And a restart picks the tree up where it was.
    drop(sm);
    drop(storage.ledger);
    drop(storage.log_store);
    let reopened = Storage::open(dir.path()).unwrap();
    assert_eq!(reopened.ledger.stored_size(), size);
    assert_eq!(reopened.ledger.merkle_root(size).unwrap(), root);
    let mut sm = reopened.state_machine;
    apply(&mut sm, (0..300).map(|_| log.change()).collect()).await;
    let reference = memory_tree(&reopened.ledger, size + 300);
    for n in [size, size + 1, 768, 900, size + 300] {
        assert_eq!(reopened.ledger.merkle_root(n).unwrap(), merkle::root(&reference, n).unwrap(), "size {n}");
        let proof = reopened.ledger.inclusion_proof(n, size + 300).unwrap();
        let root = merkle::root(&reference, size + 300).unwrap();
        assert!(merkle::verify_inclusion(&reference_leaf(&reopened.ledger, n), n - 1, size + 300, &proof, &root));
    }
}

#[tokio::test]
async fn a_checkpoint_is_written_only_when_everything_about_it_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let ledger = storage.ledger.clone();
    let mut sm = storage.state_machine;
    let mut log = Log::new();
    let signer = CheckpointSigner::from_seed(1, [3; 32]);
    let stranger = CheckpointSigner::from_seed(1, [4; 32]);
    let mut entries = vec![log.bootstrap()];
    entries.extend((0..5).map(|_| log.change()));
    apply(&mut sm, entries).await;
    let (root, head) = statement(&ledger, 8);

    // Not yet registered: refused.
    let outcomes = apply(&mut sm, vec![log.cluster(Command::Checkpoint(signer.sign(8, root, head)))]).await;
    assert_eq!(rejected(&outcomes[0]), RejectCode::InvalidArgument);

    // A user cannot register a key or write a checkpoint, and neither goes on an account's chain.
    let register = Command::RegisterSigner { node: 1, public_key: signer.public_key() };
    let as_user = log.entry(Actor::User { id: log.admin, key: log.key }, AccountId::cluster(), register.clone());
    let on_account = log.entry(Actor::System, AccountId::default_account(), register.clone());
    let outcomes = apply(&mut sm, vec![as_user, on_account]).await;
    assert_eq!(rejected(&outcomes[0]), RejectCode::PermissionDenied);
    assert_eq!(rejected(&outcomes[1]), RejectCode::InvalidArgument);

    let outcomes = apply(&mut sm, vec![log.cluster(register.clone()), log.cluster(register)]).await;
    assert!(matches!(outcomes[0], Outcome::Accepted { events: 1, .. }), "{:?}", outcomes[0]);
    assert_eq!(rejected(&outcomes[1]), RejectCode::Conflict, "registered once");
    assert!(ledger.state().is_signer(&signer.public_key()));
    assert_eq!(ledger.stored_size(), 9);

    let wrong_root = TreeHash([0x55; 32]);
    let mut forged = signer.sign(8, root, head);
    forged.signature.0[0] ^= 1;
    let attempts = vec![
        (stranger.sign(8, root, head), RejectCode::InvalidArgument, "an unregistered key"),
        (signer.sign(8, wrong_root, head), RejectCode::InvalidArgument, "a root that is not the ledger's"),
        (signer.sign(8, root, ChainHash([1; 32])), RejectCode::InvalidArgument, "a head that is not the ledger's"),
        (signer.sign(7, root, head), RejectCode::InvalidArgument, "the statement of another size"),
        (signer.sign(10, root, head), RejectCode::InvalidArgument, "a size beyond the ledger"),
        (forged, RejectCode::InvalidArgument, "a signature that does not verify"),
    ];
    for (checkpoint, code, what) in attempts {
        let outcomes = apply(&mut sm, vec![log.cluster(Command::Checkpoint(checkpoint))]).await;
        assert_eq!(rejected(&outcomes[0]), code, "{what}");
    }
    assert_eq!(ledger.stored_size(), 9, "nothing refused was written");

    // The right one, with another event ahead of it in the same batch.
    let creates: Vec<_> = (0..3).map(|_| log.change()).collect();
    apply(&mut sm, creates).await;
    let (root, head) = statement(&ledger, 12);
    let batch = vec![log.change(), log.cluster(Command::Checkpoint(signer.sign(12, root, head)))];
    let outcomes = apply(&mut sm, batch).await;
    assert!(matches!(outcomes[1], Outcome::Accepted { events: 1, .. }), "{:?}", outcomes[1]);
    let written = ledger.entry(14).unwrap().unwrap().event;
    assert_eq!(written.account, AccountId::cluster());
    assert!(matches!(written.body, EventBody::Checkpoint(c) if c.tree_size == 12 && c.root == root));
    assert_eq!(ledger.state().last_checkpoint().map(|c| (c.tree_size, c.seq)), Some((12, 14)));

    // Checkpoints only move forward.
    let outcomes = apply(&mut sm, vec![log.cluster(Command::Checkpoint(signer.sign(12, root, head)))]).await;
    assert_eq!(rejected(&outcomes[0]), RejectCode::Conflict);

    // In the same batch as the events it covers, before they are stored.
    let mut batch: Vec<_> = (0..4).map(|_| log.change()).collect();
    let pending_tree = {
        let mut tree = memory_tree(&ledger, 14);
        // The four changes will be events 15..=18; their hashes are not known before applying,
        // so apply them on a copy first and read the statement back.
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = Storage::open(copy_dir.path()).unwrap();
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let mut copy_sm = copy.state_machine;
        copy_sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        copy_sm.apply(batch.clone()).await.unwrap();
        for entry in copy.ledger.entries(15, 18) {
            tree.push(merkle::leaf_hash(&entry.unwrap().event.hash.0));
        }
        (merkle::root(&tree, 18).unwrap(), copy.ledger.entry(18).unwrap().unwrap().event.hash)
    };
    batch.push(log.cluster(Command::Checkpoint(signer.sign(18, pending_tree.0, pending_tree.1))));
    let outcomes = apply(&mut sm, batch).await;
    assert!(matches!(outcomes[4], Outcome::Accepted { events: 1, .. }), "{:?}", outcomes[4]);
    assert_eq!(ledger.merkle_root(18).unwrap(), pending_tree.0);
}

/// The data dir's sled database, once the store dropped just before has let go of it (its
/// flusher thread holds it a moment longer).
fn open_sled(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(dir.join("db")) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the database: {e}"),
        }
    }
}

/// Every record of the ledger tree but the `m:` bookkeeping, as stored bytes.
fn ledger_records(db: &sled::Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    let tree = db.open_tree("ledger").unwrap();
    let records = tree.iter().map(|item| item.unwrap());
    records.filter(|(key, _)| !key.starts_with(b"m:")).map(|(key, value)| (key.to_vec(), value.to_vec())).collect()
}

/// A data dir written when events were stored one per key (`e` + big-endian seq) opens with
/// the same ledger, its events moved into blocks, also when an earlier open was cut off after
/// moving some of them.
#[tokio::test]
async fn a_data_dir_storing_one_key_per_event_opens_with_the_same_ledger() {
    for moved_before in [0u64, 45] {
        let dir = tempfile::tempdir().unwrap();
        let (entries, root) = {
            let storage = Storage::open(dir.path()).unwrap();
            let mut sm = storage.state_machine;
            let mut log = Log::new();
            let mut entries = vec![log.bootstrap()];
            entries.extend((0..100).map(|_| log.change()));
            apply(&mut sm, entries).await;
            storage.ledger.persist().unwrap();
            let size = storage.ledger.stored_size();
            let entries: Vec<LedgerEntry> = storage.ledger.entries(1, size).collect::<Result<_, _>>().unwrap();
            (entries, storage.ledger.merkle_root(size).unwrap())
        };
        let written = {
            let db = open_sled(dir.path());
            let written = ledger_records(&db);
            let tree = db.open_tree("ledger").unwrap();
            for key in tree.scan_prefix(b"b").keys() {
                tree.remove(key.unwrap()).unwrap();
            }
            // The events before `moved_before` in blocks, as a cut-off move leaves them.
            let mut block = Vec::new();
            for entry in &entries {
                let (seq, bytes) = (entry.event.seq, keyledger_ledger::codec::encode(entry).unwrap());
                if seq > moved_before {
                    let mut key = vec![b'e'];
                    key.extend(seq.to_be_bytes());
                    tree.insert(key, bytes).unwrap();
                    continue;
                }
                block.extend((bytes.len() as u32).to_le_bytes());
                block.extend(bytes);
                if seq % 32 == 0 || seq == moved_before {
                    let mut key = vec![b'b'];
                    key.extend(((seq - 1) / 32).to_be_bytes());
                    tree.insert(key, std::mem::take(&mut block)).unwrap();
                }
            }
            db.flush().unwrap();
            assert_ne!(ledger_records(&db), written);
            written
        };
        {
            let reopened = Storage::open(dir.path()).unwrap();
            let size = reopened.ledger.stored_size();
            assert_eq!(size, entries.len() as u64);
            let read: Vec<LedgerEntry> = reopened.ledger.entries(1, size).collect::<Result<_, _>>().unwrap();
            assert_eq!(read, entries);
            assert_eq!(reopened.ledger.merkle_root(size).unwrap(), root);
        }
        assert!(ledger_records(&open_sled(dir.path())) == written, "moved after {moved_before}");
    }
}

/// A data dir written before the tree existed gets it built once, on open.
#[tokio::test]
async fn a_ledger_without_a_stored_tree_gets_one_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        let mut log = Log::new();
        let mut entries = vec![log.bootstrap()];
        entries.extend((0..20).map(|_| log.change()));
        apply(&mut sm, entries).await;
        storage.ledger.merkle_root(23).unwrap()
    };
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree("ledger").unwrap();
        let nodes: Vec<_> = tree.scan_prefix(b"t").keys().collect::<Result<_, _>>().unwrap();
        assert!(!nodes.is_empty(), "the subtree of the first 16 events is stored");
        for key in nodes {
            tree.remove(key).unwrap();
        }
        tree.remove(b"m:tree-layout").unwrap();
        db.flush().unwrap();
    }
    let reopened = Storage::open(dir.path()).unwrap();
    assert_eq!(reopened.ledger.stored_size(), 23);
    assert_eq!(reopened.ledger.merkle_root(23).unwrap(), root);
}

/// A data dir written by an older version that stored every level of the Merkle tree opens
/// with the same root and proofs, and the levels no longer stored are removed.
#[tokio::test]
async fn a_tree_stored_at_every_level_opens_with_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let (size, root, proofs, entries) = {
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        let mut log = Log::new();
        let mut entries = vec![log.bootstrap()];
        entries.extend((0..40).map(|_| log.change()));
        apply(&mut sm, entries).await;
        let size = storage.ledger.stored_size();
        let proofs: Vec<_> = (1..=size).map(|seq| storage.ledger.inclusion_proof(seq, size).unwrap()).collect();
        let entries: Vec<_> = storage.ledger.entries(1, size).collect::<Result<_, _>>().unwrap();
        (size, storage.ledger.merkle_root(size).unwrap(), proofs, entries)
    };
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree("ledger").unwrap();
        let mut frontier = Frontier::new();
        for entry in &entries {
            frontier.push(merkle::leaf_hash(&entry.event.hash.0), |level, index, hash| {
                let mut key = vec![b't', level as u8];
                key.extend(index.to_be_bytes());
                tree.insert(key, &hash.0).unwrap();
            });
        }
        tree.remove(b"m:tree-layout").unwrap();
        db.flush().unwrap();
    }
    {
        let reopened = Storage::open(dir.path()).unwrap();
        assert_eq!(reopened.ledger.stored_size(), size);
        assert_eq!(reopened.ledger.merkle_root(size).unwrap(), root);
        for seq in 1..=size {
            assert_eq!(reopened.ledger.inclusion_proof(seq, size).unwrap(), proofs[seq as usize - 1]);
        }
    }
    let db = open_sled(dir.path());
    let tree = db.open_tree("ledger").unwrap();
    let low = tree.scan_prefix(b"t").keys().filter(|key| key.as_ref().unwrap()[1] < 4).count();
    assert_eq!(low, 0, "no node below level 4 is stored any more");
}

/// Every start re-checks the stored ledger: an event changed on disk (even one whose bytes
/// still decode) stops the node from opening it, and `rebuild` refuses it too.
#[tokio::test]
async fn a_ledger_changed_on_disk_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        let mut log = Log::new();
        let mut entries = vec![log.bootstrap()];
        // Past one start-up chunk, so the change sits in a later one.
        entries.extend((0..5000).map(|_| log.change()));
        apply(&mut sm, entries).await;
        // Applies stage their writes (the Raft log, not driven here, would replay them).
        storage.ledger.persist().unwrap();
    }
    let target = 4500u64;
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree("ledger").unwrap();
        // Events are stored in blocks of 32: `b` + big-endian block number → records of a
        // little-endian u32 length and the encoded entry.
        let block = (target - 1) / 32;
        let mut key = vec![b'b'];
        key.extend(block.to_be_bytes());
        let stored = tree.get(&key).unwrap().unwrap();
        let (mut rest, mut rewritten) = (&stored[..], Vec::new());
        for seq in block * 32 + 1.. {
            if rest.is_empty() {
                break;
            }
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let mut record = rest[4..4 + len].to_vec();
            rest = &rest[4 + len..];
            if seq == target {
                let mut entry: keyledger_model::LedgerEntry = keyledger_ledger::codec::decode(&record).unwrap();
                entry.event.request_id.push_str("-edited");
                record = keyledger_ledger::codec::encode(&entry).unwrap();
            }
            rewritten.extend((record.len() as u32).to_le_bytes());
            rewritten.extend(record);
        }
        assert_ne!(rewritten, stored.to_vec());
        tree.insert(&key, rewritten).unwrap();
        db.flush().unwrap();
    }
    let refused = Storage::open(dir.path()).err().expect("a changed event is refused");
    assert!(refused.to_string().contains(&format!("seq {target}")), "{refused}");
    let refused = keyledger_ledger::rebuild(dir.path()).expect_err("rebuild refuses it too");
    assert!(refused.to_string().contains("hash does not match"), "{refused}");
}

/// Entries whose events alternate between the `default` and `_cluster` accounts in runs of
/// 1 to 4, some crossing the end of an apply: one list per apply.
fn interleaved_applies(log: &mut Log, node: &mut u64) -> Vec<Vec<Entry<TypeConfig>>> {
    let mut applies = Vec::new();
    for runs in [[1, 3, 2], [4, 1, 1], [2, 2, 3]] {
        let mut entries = Vec::new();
        for (i, run) in runs.into_iter().enumerate() {
            for _ in 0..run {
                if i % 2 == 0 {
                    entries.push(log.change());
                } else {
                    *node += 1;
                    let signer = CheckpointSigner::from_seed(*node, [*node as u8; 32]);
                    entries.push(log.cluster(Command::RegisterSigner { node: *node, public_key: signer.public_key() }));
                }
            }
        }
        applies.push(entries);
    }
    applies
}

/// Every range of both accounts reads exactly that account's events in it.
fn check_account_ranges(ledger: &Ledger) {
    let size = ledger.stored_size();
    let all: Vec<LedgerEntry> = ledger.entries(1, size).collect::<Result<_, _>>().unwrap();
    for account in [AccountId::default_account(), AccountId::cluster()] {
        for from in 0..=size + 1 {
            for to in from.saturating_sub(1)..=size + 1 {
                let got: Vec<LedgerEntry> =
                    ledger.account_entries(&account, from, to).collect::<Result<_, _>>().unwrap();
                let expected: Vec<LedgerEntry> = all
                    .iter()
                    .filter(|e| e.event.account == account && (from..=to).contains(&e.event.seq))
                    .cloned()
                    .collect();
                assert_eq!(got, expected, "{account} {from}..={to}");
            }
        }
    }
}

/// The account index records runs of an account's consecutive events. With two accounts'
/// events interleaved over several applies and a restart (runs continued across both), every
/// range of every account reads exactly that account's events in it.
#[tokio::test]
async fn account_runs_read_exactly_each_accounts_events_in_any_range() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut node) = (Log::new(), 0);
    {
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        apply(&mut sm, vec![log.bootstrap()]).await;
        for entries in interleaved_applies(&mut log, &mut node) {
            apply(&mut sm, entries).await;
        }
        check_account_ranges(&storage.ledger);
    }
    let size = {
        let storage = Storage::open(dir.path()).unwrap();
        check_account_ranges(&storage.ledger);
        let mut sm = storage.state_machine;
        for entries in interleaved_applies(&mut log, &mut node) {
            apply(&mut sm, entries).await;
        }
        check_account_ranges(&storage.ledger);
        storage.ledger.stored_size()
    };
    let db = open_sled(dir.path());
    let records = db.open_tree("ledger").unwrap().scan_prefix(b"a").count();
    assert!(records < size as usize / 2, "runs, not one record per event: {records} records, {size} events");
}

/// A key's index records name up to 64 of its events each, rewritten in place as events come.
/// A key with 150 events over several applies and a restart reads exactly its history.
#[tokio::test]
async fn key_records_list_a_keys_events_across_records_applies_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    let key = log.key;
    let history = |ledger: &Ledger| -> Vec<LedgerEntry> { ledger.key_history(&key).collect::<Result<_, _>>().unwrap() };
    let expected = |ledger: &Ledger| -> Vec<LedgerEntry> {
        let all = ledger.entries(1, ledger.stored_size()).collect::<Result<Vec<LedgerEntry>, _>>().unwrap();
        all.into_iter().filter(|e| e.event.body.key() == Some(key)).collect()
    };
    {
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        apply(&mut sm, vec![log.bootstrap()]).await;
        for size in [1, 7, 50, 12] {
            apply(&mut sm, (0..size).map(|_| log.change()).collect()).await;
            assert_eq!(history(&storage.ledger), expected(&storage.ledger));
        }
    }
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    apply(&mut sm, (0..80).map(|_| log.change()).collect()).await;
    let got = history(&storage.ledger);
    assert_eq!(got.len(), 151, "the bootstrap's key event and 150 renames");
    assert_eq!(got, expected(&storage.ledger));
    drop((sm, storage.ledger, storage.log_store));
    let db = open_sled(dir.path());
    let records = db.open_tree("ledger").unwrap().scan_prefix(b"k").count();
    assert_eq!(records, 3, "151 events in records of 64");
}
