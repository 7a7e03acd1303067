//! What a stopped node's data dir spends its bytes on: the files (sled's, the Raft log's
//! segments, the saved state) and, inside sled's `ledger` tree, each kind of record — event
//! blocks, key and account indexes, Merkle nodes, idempotency records, metadata.
//!
//! `cargo run --release -p keyledger-ledger --example disk_usage -- DATA_DIR [KEYS]`
//!
//! Record bytes are keys plus values as sled holds them; sled's files are larger by its own
//! page headers, its log's unreclaimed space and its snapshot, shown as the difference.

use std::collections::BTreeMap;
use std::path::Path;

/// Bytes of every file under `path`, as `du -b` counts them.
fn bytes_under(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| entries.flatten().map(|e| bytes_under(&e.path())).sum())
}

/// The kind of a record of the `ledger` tree, by its key's first byte (or `m:` prefix).
fn kind_of(key: &[u8]) -> &'static str {
    match key.first() {
        Some(b'b') => "b  event blocks (32 events each)",
        Some(b'e') => "e  events, one per key (older data dirs)",
        Some(b'k') => "k  key index (events about each key)",
        Some(b'a') => "a  account index (runs of events)",
        Some(b't') => "t  Merkle nodes (16 events and up)",
        Some(b'i') => "i  idempotency records",
        Some(b'm') if key.starts_with(b"m:") => "m: metadata (applied, membership, snapshot)",
        _ => "?  other",
    }
}

/// Events in an event block: length-prefixed (little-endian u32) encoded entries.
fn events_in_block(mut block: &[u8]) -> u64 {
    let mut events = 0;
    while block.len() >= 4 {
        let len = u32::from_le_bytes([block[0], block[1], block[2], block[3]]) as usize;
        block = block.get(4 + len..).unwrap_or_default();
        events += 1;
    }
    events
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: disk_usage DATA_DIR [KEYS] (of a stopped node)")?;
    let keys: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let dir = Path::new(&dir);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;

    let total = bytes_under(dir);
    let files = [("db/ (sled)", "db"), ("raft-log/", "raft-log"), ("state.bin", "state.bin")];
    println!("data dir {}: {:.1} MiB", dir.display(), mib(total));
    let mut listed = 0;
    for (label, name) in files {
        let bytes = bytes_under(&dir.join(name));
        listed += bytes;
        println!("  {label:<28} {:>10.1} MiB", mib(bytes));
    }
    println!("  {:<28} {:>10.1} MiB", "everything else", mib(total - listed));

    let db = sled::Config::new().path(dir.join("db")).open()?;
    let tree = db.open_tree("ledger")?;
    let mut kinds: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut events = 0;
    for record in tree.iter() {
        let (key, value) = record?;
        let kind = kind_of(&key);
        if key.first() == Some(&b'b') {
            events += events_in_block(&value);
        } else if key.first() == Some(&b'e') {
            events += 1;
        }
        let entry = kinds.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += (key.len() + value.len()) as u64;
    }
    let records: u64 = kinds.values().map(|(_, bytes)| bytes).sum();
    println!("sled tree `ledger`: {events} events, {:.1} MiB of records", mib(records));
    for (kind, (count, bytes)) in &kinds {
        let per_event = if events > 0 { *bytes as f64 / events as f64 } else { 0.0 };
        println!("  {kind:<44} {count:>9} records {:>9.1} MiB {per_event:>7.1} B/event", mib(*bytes));
    }
    let sled_files = bytes_under(&dir.join("db"));
    println!("  sled's own overhead (files − records)       {:>28.1} MiB", mib(sled_files.saturating_sub(records)));
    if let Some(keys) = keys.filter(|k| *k > 0) {
        println!(
            "per key ({keys} keys): data dir {:.0} B, sled records {:.0} B",
            total as f64 / keys as f64,
            records as f64 / keys as f64
        );
    }
    Ok(())
}
