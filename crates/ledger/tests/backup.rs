//! The backup file format: a backup of a live ledger reads back event for event; a cut file, a
//! changed byte, another format version and trailing bytes are each refused with a clear error;
//! a restore writes a data dir whose ledger is byte for byte the source's, and a refused restore
//! leaves the target as it was.

use keyledger_ledger::backup::{BackupReader, BackupStream};
use keyledger_ledger::restore::{restore_into, restored_for, RESTORE_MARKER};
use keyledger_ledger::{Storage, TypeConfig};
use keyledger_model::Timestamp;
use openraft::storage::RaftStateMachine;
use openraft::Entry;

mod common;

/// A bootstrap, then new keys and renames: `to` Raft entries, one event each.
fn history(to: u64) -> Vec<Entry<TypeConfig>> {
    common::history(7, 3, to)
}

/// A backup file of a ledger of over 1,500 events (more than one chunk), that ledger's dir
/// and its number of events.
async fn backup_bytes() -> (Vec<u8>, tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open(dir.path()).unwrap();
    storage.state_machine.apply(history(2500)).await.unwrap();
    let mut stream = BackupStream::start(&storage.ledger, Timestamp(1_800_000_000_000), 3).unwrap();
    let events = stream.header().events;
    assert!(events > 1500, "{events} events");
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        bytes.extend(chunk);
    }
    storage.ledger.persist().unwrap();
    (bytes, dir, events)
}

/// Reads a whole file; the first error, if any.
fn read_all(bytes: &[u8]) -> Result<u64, String> {
    let mut reader = BackupReader::open(bytes).map_err(|e| e.to_string())?;
    let mut events = 0;
    while reader.next_entry().map_err(|e| e.to_string())?.is_some() {
        events += 1;
    }
    Ok(events)
}

#[tokio::test]
async fn a_backup_reads_back_every_event_and_names_its_head() {
    let (bytes, dir, events) = backup_bytes().await;
    let ledger = keyledger_ledger::open_ledger(dir.path()).unwrap();
    let mut reader = BackupReader::open(&bytes[..]).unwrap();
    let header = reader.header().clone();
    assert_eq!((header.format.as_str(), header.version, header.source_node), ("keyledger-backup", 1, 3));
    assert_eq!(header.head, ledger.state().head());
    assert_eq!(header.merkle_root, ledger.merkle_root(events).unwrap());
    let mut seq = 0;
    while let Some(read) = reader.next_entry().unwrap() {
        seq += 1;
        assert_eq!(read, ledger.entry(seq).unwrap().unwrap());
    }
    assert_eq!(seq, events);
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
}

#[tokio::test]
async fn a_cut_a_changed_byte_another_version_or_more_bytes_are_refused() {
    let (bytes, _dir, events) = backup_bytes().await;
    assert_eq!(read_all(&bytes), Ok(events));
    for cut in [0, 5, 11, 200, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let error = read_all(&bytes[..cut]).expect_err("a cut file");
        assert!(error.contains("truncated") || error.contains("too short"), "cut at {cut}: {error}");
    }
    // A flipped byte in an event's bytes, in the header, and in the trailer's digest.
    for at in [bytes.len() / 2, 20, bytes.len() - 3] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        assert!(read_all(&changed).is_err(), "a byte changed at {at}");
    }
    let mut other_version = bytes.clone();
    other_version[8] = 2;
    let error = read_all(&other_version).unwrap_err();
    assert!(error.contains("format version 2"), "{error}");
    let error = read_all(b"KLSNAP01 and some more bytes").unwrap_err();
    assert!(error.contains("not a keyledger backup"), "{error}");
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(read_all(&longer).unwrap_err().contains("after the trailer"));
}

#[tokio::test]
async fn a_restore_writes_the_same_ledger_and_a_refused_one_leaves_the_dir_as_it_was() {
    let (bytes, source, events) = backup_bytes().await;
    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("restored");
    let restored = restore_into(&restored_dir, 1, BackupReader::open(&bytes[..]).unwrap(), |_| Ok(())).unwrap();
    assert_eq!(restored.events, events);
    assert_eq!(restored_for(&restored_dir).unwrap(), Some(1));
    let (a, b) =
        (keyledger_ledger::open_ledger(source.path()).unwrap(), keyledger_ledger::open_ledger(&restored_dir).unwrap());
    assert_eq!(format!("{:?}", *a.state()), format!("{:?}", *b.state()));
    for seq in [1, 777, events] {
        assert_eq!(a.entry(seq).unwrap(), b.entry(seq).unwrap());
    }
    assert_eq!(a.merkle_root(events).unwrap(), b.merkle_root(events).unwrap());
    drop(b);

    // Not into a dir that holds anything; and a refused file leaves nothing behind.
    let error = restore_into(&restored_dir, 1, BackupReader::open(&bytes[..]).unwrap(), |_| Ok(())).unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");
    assert!(restored_dir.join(RESTORE_MARKER).is_file(), "the earlier restore is untouched");
    let mut changed = bytes.clone();
    let at = bytes.len() - 100;
    changed[at] ^= 0x01;
    let fresh = target.path().join("fresh");
    assert!(restore_into(&fresh, 1, BackupReader::open(&changed[..]).unwrap(), |_| Ok(())).is_err());
    assert!(!fresh.exists(), "a refused restore removes what it wrote");
    let refused = restore_into(&fresh, 1, BackupReader::open(&bytes[..]).unwrap(), |entry| {
        if entry.event.seq == 100 {
            Err("the caller's check failed".into())
        } else {
            Ok(())
        }
    });
    assert!(refused.unwrap_err().to_string().contains("the caller's check failed"));
    assert!(!fresh.exists());
}
