//! Snapshots: streamed from the ledger without a copy, received in small chunks straight into a
//! file, installed in bounded batches, and finished after a crash mid-install — always ending in
//! a ledger byte-identical to the one that was applied.

use std::path::Path;

use keyledger_ledger::codec;
use keyledger_ledger::{SnapshotFile, StateMachine, Storage, TypeConfig};
use keyledger_model::{Actor, Command, KeyId, Timestamp, UserId};
use openraft::storage::RaftStateMachine;
use openraft::{Entry, RaftSnapshotBuilder, Snapshot};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

mod common;
use common::{entry, new_key, reopen};

/// Raft entries writing about `events` ledger events: a bootstrap, renames of its key, a new key
/// every 100 entries, and an idempotent request (so the snapshot carries an idempotency record).
/// Another `seed` gives another chain.
fn history(seed: u64, events: u64) -> Vec<Entry<TypeConfig>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let t0 = Timestamp(1_790_000_000_000);
    let (admin, key) = (UserId::generate(t0, &mut rng), KeyId::generate(t0, &mut rng));
    let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: new_key(key, &mut rng, None) };
    let mut entries = vec![entry(1, Actor::System, boot)];
    let actor = Actor::User { id: admin, key };
    for index in 2..=events.saturating_sub(2) {
        let command = if index % 100 == 0 {
            Command::CreateKey(new_key(KeyId::generate(Timestamp(t0.0 + index as i64), &mut rng), &mut rng, None))
        } else {
            Command::UpdateKey { key, name: Some(format!("n{index}")), description: None, if_revision: None }
        };
        entries.push(entry(index, actor, command));
    }
    let rename = Command::UpdateKey { key, name: Some("last".into()), description: None, if_revision: None };
    let idempotent = Command::Idempotent { key: "once".into(), fingerprint: [7; 32], command: Box::new(rename) };
    entries.push(entry(events.saturating_sub(1).max(2), actor, idempotent));
    entries
}

async fn apply_all(sm: &mut StateMachine, entries: Vec<Entry<TypeConfig>>) {
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<_> = entries.by_ref().take(2000).collect();
        sm.apply(chunk).await.unwrap();
    }
}

/// Everything a node's ledger shows: the stored bytes of every event, the head, the Merkle
/// root, the state built from it.
fn fingerprint(
    storage_ledger: &keyledger_ledger::Ledger,
) -> (Vec<Vec<u8>>, keyledger_model::ChainHead, String, String) {
    let head = storage_ledger.state().head();
    let bytes = storage_ledger.entries(1, head.seq).map(|e| codec::encode(&e.unwrap()).unwrap()).collect();
    let root = storage_ledger.merkle_root(head.seq).unwrap().to_hex();
    let state = format!("{:?}", *storage_ledger.state());
    (bytes, head, root, state)
}

/// All the bytes of a snapshot, from its start.
async fn read_all(snapshot: &mut Snapshot<TypeConfig>) -> Vec<u8> {
    snapshot.snapshot.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut bytes = Vec::new();
    snapshot.snapshot.read_to_end(&mut bytes).await.unwrap();
    bytes
}

/// A snapshot saved to a file in `dir`, so that it outlives the node that streamed it.
async fn saved(snapshot: &mut Snapshot<TypeConfig>, dir: &Path) -> Snapshot<TypeConfig> {
    let path = dir.join("sent.bin");
    std::fs::write(&path, read_all(snapshot).await).unwrap();
    Snapshot { meta: snapshot.meta.clone(), snapshot: Box::new(SnapshotFile::open(path).await.unwrap()) }
}

/// What openraft's chunked transport does on the receiving side: `begin_receiving_snapshot`,
/// then each chunk written at its offset, then shutdown.
async fn receive_in_chunks(from: &Snapshot<TypeConfig>, to: &mut StateMachine, chunk: usize) -> Box<SnapshotFile> {
    let mut source = SnapshotFile::open(from.snapshot.path().unwrap()).await.unwrap();
    let mut received = to.begin_receiving_snapshot().await.unwrap();
    let mut offset = 0u64;
    let mut buf = vec![0u8; chunk];
    loop {
        let n = source.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        received.seek(std::io::SeekFrom::Start(offset)).await.unwrap();
        received.write_all(&buf[..n]).await.unwrap();
        offset += n as u64;
    }
    received.shutdown().await.unwrap();
    received
}

/// Every record of a closed data dir's ledger tree except the `m:` bookkeeping (which names
/// node-local files): events, per-key and per-account index records, Merkle nodes, idempotency
/// records, as stored bytes.
fn stored_records(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let db = loop {
        match sled::open(dir.join("db")) {
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            opened => break opened.unwrap(),
        }
    };
    let tree = db.open_tree("ledger").unwrap();
    let records = tree
        .iter()
        .map(|item| item.unwrap())
        .filter(|(key, _)| !key.starts_with(b"m:"))
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect();
    drop(tree);
    drop(db);
    records
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_large_ledger_is_streamed_through_files_in_small_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    apply_all(&mut sm, history(1, 20_000)).await;
    let expected = fingerprint(&storage.ledger);
    assert!(expected.1.seq > 19_000, "{} events", expected.1.seq);

    let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    // Building copies nothing: no file is written, the snapshot is streamed from the ledger.
    assert!(built.snapshot.path().is_none());
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    let mut current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    let sent = read_all(&mut current).await;
    let stored_bytes: u64 = expected.0.iter().map(|b| b.len() as u64).sum();
    assert!(sent.len() as u64 > stored_bytes, "it holds every event");
    // Read again in any order (a retried chunk seeks back), the stream gives the same bytes.
    for (at, len) in [(0usize, 10usize), (sent.len() / 2, 70_000), (7, 100_000), (sent.len() - 3, 3), (123_456, 4096)] {
        current.snapshot.seek(std::io::SeekFrom::Start(at as u64)).await.unwrap();
        let mut part = vec![0u8; len];
        current.snapshot.read_exact(&mut part).await.unwrap();
        assert!(part == sent[at..at + len], "{len} bytes at {at}");
    }
    assert_eq!(current.snapshot.seek(std::io::SeekFrom::End(0)).await.unwrap(), sent.len() as u64);
    let mut nothing = Vec::new();
    assert_eq!(current.snapshot.read_to_end(&mut nothing).await.unwrap(), 0);
    // Served from sled on the caller's thread, it yields to the runtime every so often rather
    // than hold it for a whole 4 MiB chunk.
    current.snapshot.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut chunk = vec![0u8; 4 << 20];
    let mut chunk = tokio::io::ReadBuf::new(&mut chunk);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let (mut yields, mut filled) = (0, 0);
    while chunk.remaining() > 0 {
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut *current.snapshot), &mut cx, &mut chunk) {
            std::task::Poll::Pending => yields += 1,
            std::task::Poll::Ready(read) => {
                read.unwrap();
                if chunk.filled().len() == filled {
                    break;
                }
                filled = chunk.filled().len();
            }
        }
    }
    assert!(yields >= 4, "{yields} yields in {filled} bytes");
    assert!(chunk.filled() == &sent[..filled]);
    let scratch = tempfile::tempdir().unwrap();
    let sent_file = saved(&mut current, scratch.path()).await;

    // A fresh node receives it 4 KiB at a time, straight into a file of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    let received = receive_in_chunks(&sent_file, &mut other_sm, 4096).await;
    assert_eq!(received.path().unwrap().parent(), Some(other_dir.path().join("snapshots").as_path()));
    assert!(std::fs::read(received.path().unwrap()).unwrap() == sent);
    other_sm.install_snapshot(&current.meta, received).await.unwrap();

    assert_eq!(fingerprint(&other.ledger), expected);
    assert_eq!(other_sm.applied_state().await.unwrap(), sm.applied_state().await.unwrap());
    // Installed, the received file is gone; the node streams the same bytes from its own ledger.
    assert!(files_in(other_dir.path()).is_empty(), "{:?}", files_in(other_dir.path()));
    let mut kept = other_sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(kept.meta, current.meta);
    assert!(read_all(&mut kept).await == sent);

    // The same after a restart, which checks the whole stored chain again.
    drop((other_sm, other.ledger, other.log_store, kept));
    let reopened = reopen(other_dir.path());
    assert_eq!(fingerprint(&reopened.ledger), expected);
    let mut reopened_sm = reopened.state_machine;
    assert!(read_all(&mut reopened_sm.get_current_snapshot().await.unwrap().unwrap()).await == sent);

    // Every stored record — events, indexes, Merkle nodes, idempotency — is the applying node's.
    drop((sm, storage.ledger, storage.log_store, built, current, reopened_sm, reopened.ledger, reopened.log_store));
    let applied = stored_records(dir.path());
    // Events are stored in blocks of 32 (`b` + block number).
    let blocks = applied.iter().filter(|(key, _)| key[0] == b'b').count() as u64;
    assert_eq!(blocks, expected.1.seq.div_ceil(32), "{} records", applied.len());
    assert!(applied == stored_records(other_dir.path()));
}

/// Kills an install after each of `batch_counts` sled batches (the test hook leaves exactly what
/// a crash there leaves) on a node that applied `target_history` first, then reopens: the
/// install is finished and the ledger is identical.
async fn interrupted_installs_are_finished(target_history: Option<Vec<Entry<TypeConfig>>>, batch_counts: &[usize]) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    apply_all(&mut sm, history(1, 10_000)).await;
    let expected = fingerprint(&storage.ledger);
    let mut built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let snapshot = saved(&mut built, scratch.path()).await;
    let applied_state = sm.applied_state().await.unwrap();
    drop((sm, storage.ledger, storage.log_store, built));
    let expected_records = stored_records(dir.path());

    for &batches in batch_counts {
        let other_dir = tempfile::tempdir().unwrap();
        let other = Storage::open(other_dir.path()).unwrap();
        let mut other_sm = other.state_machine;
        if let Some(entries) = &target_history {
            apply_all(&mut other_sm, entries.clone()).await;
        }
        other_sm.interrupt_installs_after(batches);
        let received = receive_in_chunks(&snapshot, &mut other_sm, 64 * 1024).await;
        let failed = other_sm.install_snapshot(&snapshot.meta, received).await;
        assert!(failed.is_err(), "interrupted after {batches} batches");
        drop((other_sm, other.ledger, other.log_store));

        // Offline tools refuse a half-written ledger rather than read it.
        assert!(keyledger_ledger::open_ledger(other_dir.path()).is_err());

        let reopened = reopen(other_dir.path());
        assert_eq!(fingerprint(&reopened.ledger), expected, "interrupted after {batches} batches");
        let mut reopened_sm = reopened.state_machine;
        assert_eq!(reopened_sm.applied_state().await.unwrap(), applied_state);
        let mut current = reopened_sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        assert!(read_all(&mut current).await == std::fs::read(snapshot.snapshot.path().unwrap()).unwrap());
        assert!(files_in(other_dir.path()).is_empty(), "{:?}", files_in(other_dir.path()));
        // Nothing of a removed ledger is left, nothing derived is missing.
        drop((reopened_sm, reopened.ledger, reopened.log_store, current));
        assert!(stored_records(other_dir.path()) == expected_records, "interrupted after {batches} batches");
    }
}

#[tokio::test]
async fn an_interrupted_install_on_a_fresh_node_is_finished_on_reopen() {
    // 0: the marker only; 1: the idempotency records; 2: and a first batch of events; 40:
    // about half of them (128 a batch).
    interrupted_installs_are_finished(None, &[0, 1, 2, 40]).await;
}

#[tokio::test]
async fn an_interrupted_install_over_a_shorter_ledger_is_finished_on_reopen() {
    // A node that was behind: its events are a prefix of the snapshot's and stay.
    let mut behind = history(1, 10_000);
    behind.truncate(3_000);
    interrupted_installs_are_finished(Some(behind), &[1]).await;
}

#[tokio::test]
async fn an_interrupted_install_over_a_different_ledger_is_finished_on_reopen() {
    // A ledger that is not a prefix is removed first (56 batches of 128 records, measured);
    // crash during the removal and after it.
    interrupted_installs_are_finished(Some(history(2, 6_000)), &[1, 4, 30, 60]).await;
}

#[tokio::test]
async fn a_cut_off_transfer_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    apply_all(&mut sm, history(1, 500)).await;
    let mut built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let snapshot = saved(&mut built, scratch.path()).await;

    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    apply_all(&mut other_sm, history(1, 100)).await;
    let before = fingerprint(&other.ledger);
    let received = receive_in_chunks(&snapshot, &mut other_sm, 1024).await;
    let len = std::fs::metadata(received.path().unwrap()).unwrap().len();
    // Cut inside the last frame, or anywhere in the middle: refused.
    for cut in [len - 1, len / 2] {
        let copy = other_dir.path().join("cut");
        std::fs::copy(received.path().unwrap(), &copy).unwrap();
        std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(cut).unwrap();
        let cut_file = Box::new(SnapshotFile::open(&copy).await.unwrap());
        assert!(other_sm.install_snapshot(&snapshot.meta, cut_file).await.is_err(), "cut at {cut}");
        assert_eq!(fingerprint(&other.ledger), before);
    }
    drop(received);
    drop((other_sm, other.ledger, other.log_store));
    let reopened = reopen(other_dir.path());
    assert_eq!(fingerprint(&reopened.ledger), before);
}
