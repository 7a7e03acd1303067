//! Tests of the Raft log: appends, truncations, purges and votes read back from the cache, the
//! segment files and after a reopen, with segments and a cache small enough that every path is
//! taken.

use openraft::testing::{blank_ent, log_id};

use super::*;

/// Segments of a few entries and a cache of a few, so every path is taken.
const SMALL: Limits = Limits { segment_size: 256, cache_bytes: 100 };

struct Node {
    dir: tempfile::TempDir,
    db: sled::Db,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::Config::new().path(dir.path().join("db")).open().expect("sled");
        Node { dir, db }
    }

    fn open(&self) -> LogStore {
        let db = self.db.clone();
        let flush: FlushState = Arc::new(move || db.flush().map(|_| ()).map_err(io::Error::other));
        LogStore::open_with(self.dir.path(), &self.db, flush, SMALL).expect("open log")
    }

    fn segments(&self) -> Vec<u64> {
        wal::list_segments(&self.dir.path().join(DIR)).expect("list")
    }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry<TypeConfig>> {
    indexes.map(|i| blank_ent::<TypeConfig>(term, 1, i)).collect()
}

async fn append(store: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    store.write_entries(entries).expect("write");
    store.synced().await.expect("sync");
}

async fn log_ids(store: &mut LogStore, range: std::ops::RangeInclusive<u64>) -> Vec<LogId<NodeId>> {
    store.try_get_log_entries(range).await.expect("read").into_iter().map(|e| e.log_id).collect()
}

fn expected(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<LogId<NodeId>> {
    indexes.map(|i| log_id(term, 1, i)).collect()
}

/// Term 1's entries `kept`, then term 2's `replaced` (a suffix written again).
fn expected_replaced(
    kept: std::ops::RangeInclusive<u64>,
    replaced: std::ops::RangeInclusive<u64>,
) -> Vec<LogId<NodeId>> {
    let mut ids = expected(1, kept);
    ids.extend(expected(2, replaced));
    ids
}

#[tokio::test]
async fn entries_read_back_from_the_cache_and_the_files_and_after_a_reopen() {
    let node = Node::new();
    let mut store = node.open();
    for batch in 0..10 {
        append(&mut store, entries(1, batch * 10 + 1..=batch * 10 + 10)).await;
    }
    assert!(node.segments().len() > 3, "small segments roll: {:?}", node.segments());
    assert!(store.shared.lock().cache.len() < 100, "older entries are read from the files");
    assert_eq!(log_ids(&mut store, 1..=100).await, expected(1, 1..=100));
    assert_eq!(log_ids(&mut store, 40..=45).await, expected(1, 40..=45));
    assert_eq!(log_ids(&mut store, 99..=200).await, expected(1, 99..=100), "a range past the end is cut");
    drop(store);

    let mut store = node.open();
    let state = store.get_log_state().await.expect("state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (None, Some(log_id(1, 1, 100))));
    assert_eq!(log_ids(&mut store, 1..=100).await, expected(1, 1..=100));
    append(&mut store, entries(1, 101..=101)).await;
    drop(store);
    assert_eq!(log_ids(&mut node.open(), 95..=101).await, expected(1, 95..=101));
}

#[tokio::test]
async fn the_purge_point_keeps_the_newest_entries_within_a_byte_budget() {
    let node = Node::new();
    let mut store = node.open();
    append(&mut store, entries(1, 1..=10)).await;
    let reader = store.reader();
    let all = reader.bytes_from(0);
    let one = all / 10;
    assert!(one > 0 && all == one * 10, "blank entries encode alike: {all}");
    assert_eq!(reader.bytes_from(8), one * 3);
    assert_eq!(reader.bytes_from(11), 0);
    assert_eq!(reader.purge_point(all), None, "everything fits");
    assert_eq!(reader.purge_point(one * 3), Some(7), "entries 8..=10 fit in three entries' bytes");
    assert_eq!(reader.purge_point(one * 3 + one / 2), Some(7));
    assert_eq!(reader.purge_point(0), Some(9), "the last entry always stays");
    store.purge(log_id(1, 1, 4)).await.expect("purge");
    assert_eq!(reader.bytes_from(0), one * 6, "purged entries are not counted");
    assert_eq!(reader.purge_point(one * 3), Some(7));
}

#[tokio::test]
async fn a_purge_deletes_the_segments_it_empties_and_the_rest_stays_readable() {
    let node = Node::new();
    let mut store = node.open();
    for batch in 0..10 {
        append(&mut store, entries(1, batch * 10 + 1..=batch * 10 + 10)).await;
    }
    let before = node.segments().len();
    store.purge(log_id(1, 1, 60)).await.expect("purge");
    let after = node.segments();
    assert!(after.len() < before, "{before} segments before, {after:?} after");
    assert_eq!(log_ids(&mut store, 1..=100).await, expected(1, 61..=100));
    drop(store);

    let mut store = node.open();
    let state = store.get_log_state().await.expect("state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 1, 60)), Some(log_id(1, 1, 100))));
    assert_eq!(log_ids(&mut store, 1..=100).await, expected(1, 61..=100));
    // Purging past the end (after a snapshot was installed) empties the log.
    store.purge(log_id(2, 1, 150)).await.expect("purge");
    append(&mut store, entries(2, 151..=152)).await;
    drop(store);
    let mut store = node.open();
    assert_eq!(log_ids(&mut store, 1..=200).await, expected(2, 151..=152));
    assert_eq!(node.segments().len(), 1, "every older segment was emptied");
}

#[tokio::test]
async fn a_truncated_suffix_stays_replaced_after_a_reopen() {
    let node = Node::new();
    let mut store = node.open();
    append(&mut store, entries(1, 1..=20)).await;
    store.truncate(log_id(1, 1, 15)).await.expect("truncate");
    assert_eq!(log_ids(&mut store, 1..=20).await, expected(1, 1..=14));
    append(&mut store, entries(2, 15..=18)).await;
    drop(store);
    assert_eq!(log_ids(&mut node.open(), 1..=20).await, expected_replaced(1..=14, 15..=18));
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_writing_goes_on_after_the_one_before() {
    let node = Node::new();
    let mut store = node.open();
    append(&mut store, entries(1, 1..=12)).await;
    let torn = store.shared.lock().locations.back().copied().expect("an entry");
    drop(store);
    // The last entry's record half-written: its payload's last byte differs.
    let file = wal::open_segment(&node.dir.path().join(DIR), torn.segment).expect("segment");
    file.write_all_at(&[0xff], torn.offset + torn.len as u64 - 1).expect("tear");
    drop(file);

    let mut store = node.open();
    assert_eq!(store.get_log_state().await.expect("state").last_log_id, Some(log_id(1, 1, 11)));
    append(&mut store, entries(2, 12..=13)).await;
    drop(store);
    assert_eq!(log_ids(&mut node.open(), 1..=20).await, expected_replaced(1..=11, 12..=13));
}

#[tokio::test]
async fn vote_and_committed_outlive_the_segment_they_were_written_in() {
    let node = Node::new();
    let mut store = node.open();
    let vote = Vote::new_committed(3, 2);
    store.save_vote(&vote).await.expect("vote");
    append(&mut store, entries(3, 1..=10)).await;
    store.save_committed(Some(log_id(3, 1, 10))).await.expect("committed");
    append(&mut store, entries(3, 11..=60)).await;
    store.purge(log_id(3, 1, 50)).await.expect("purge");
    assert!(!node.segments().contains(&1), "the first segment is gone: {:?}", node.segments());
    drop(store);

    let mut store = node.open();
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(store.read_committed().await.expect("committed"), Some(log_id(3, 1, 10)));
    assert_eq!(log_ids(&mut store, 1..=60).await, expected(3, 51..=60));
}

#[tokio::test]
async fn a_log_kept_in_sled_by_an_older_node_moves_into_segment_files() {
    let node = Node::new();
    let vote = Vote::new_committed(4, 1);
    {
        // The layout nodes before the file log wrote.
        let meta = node.db.open_tree("raft_meta").expect("tree");
        meta.insert("vote", codec::encode(&vote).expect("encode")).expect("insert");
        meta.insert("committed", codec::encode(&Some(log_id::<NodeId>(4, 1, 7))).expect("encode")).expect("insert");
        meta.insert("last_purged", codec::encode(&log_id::<NodeId>(4, 1, 4)).expect("encode")).expect("insert");
        let log = node.db.open_tree("raft_log").expect("tree");
        for entry in entries(4, 5..=9) {
            log.insert(entry.log_id.index.to_be_bytes(), codec::encode(&entry).expect("encode")).expect("insert");
        }
    }
    let mut store = node.open();
    let state = store.get_log_state().await.expect("state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(4, 1, 4)), Some(log_id(4, 1, 9))));
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(store.read_committed().await.expect("committed"), Some(log_id(4, 1, 7)));
    assert_eq!(log_ids(&mut store, 1..=9).await, expected(4, 5..=9));
    let names = node.db.tree_names();
    assert!(!names.iter().any(|n| n.as_ref() == b"raft_log" || n.as_ref() == b"raft_meta"), "old trees dropped");
    append(&mut store, entries(4, 10..=10)).await;
    drop(store);
    assert_eq!(log_ids(&mut node.open(), 1..=10).await, expected(4, 5..=10));
}
