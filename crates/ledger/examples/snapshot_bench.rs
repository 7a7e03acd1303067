//! Snapshot build and install on a large ledger, one step per process so `/usr/bin/time -v`
//! reports each step's peak memory (see docs/benchmarks.md):
//!
//! ```sh
//! cargo build --release -p keyledger-ledger --example snapshot_bench
//! B=target/release/examples/snapshot_bench
//! $B populate /tmp/snap/src 1000000   # a ledger of 1M events, applied as a node applies them
//! $B open     /tmp/snap/src           # baseline: open the data dir (state rebuilt) and nothing else
//! $B build    /tmp/snap/src           # open, build a snapshot, then stream it into a file (what a leader sends)
//! $B install  /tmp/snap/src /tmp/snap/dst   # receive that file in 3 MiB chunks into a fresh node, install it
//! $B install  /tmp/snap/src /tmp/snap/dst   # again: a node that holds the ledger checks it, writes nothing
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use keyledger_ledger::{SnapshotFile, Storage};
use keyledger_model::{Actor, Command, KeyId, Timestamp, UserId};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, LogId, RaftSnapshotBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{entry, new_key};

/// openraft's default chunk size (keyledger sends 4 MiB, see `cluster::node::lifecycle::raft_config`).
const CHUNK: usize = 3 * 1024 * 1024;

/// A bootstrap, then renames of its key with a new key every 50 entries.
async fn populate(dir: &Path, events: u64) {
    let storage = Storage::open(dir).expect("open");
    let ledger = storage.ledger.clone();
    let mut sm = storage.state_machine;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let t0 = Timestamp(1_790_000_000_000);
    let (admin, key) = (UserId::generate(t0, &mut rng), KeyId::generate(t0, &mut rng));
    let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: new_key(key, &mut rng, None) };
    sm.apply(vec![entry(1, Actor::System, boot)]).await.expect("apply");
    let actor = Actor::User { id: admin, key };
    let mut index = 1;
    let started = Instant::now();
    while ledger.stored_size() < events {
        let batch: Vec<_> = (0..10_000.min(events - ledger.stored_size()))
            .map(|_| {
                index += 1;
                let command = if index % 50 == 0 {
                    Command::CreateKey(new_key(
                        KeyId::generate(Timestamp(t0.0 + index as i64), &mut rng),
                        &mut rng,
                        None,
                    ))
                } else {
                    Command::UpdateKey { key, name: Some(format!("n{index}")), description: None, if_revision: None }
                };
                entry(index, actor, command)
            })
            .collect();
        sm.apply(batch).await.expect("apply");
    }
    println!("populated {} events in {:.1} s", ledger.stored_size(), started.elapsed().as_secs_f64());
}

fn open(dir: &Path) -> Storage {
    let started = Instant::now();
    let storage = Storage::open(dir).expect("open");
    let events = storage.ledger.stored_size();
    println!("opened {events} events in {:.2} s", started.elapsed().as_secs_f64());
    storage
}

async fn build(dir: &Path) {
    let storage = open(dir);
    let events = storage.ledger.stored_size();
    let mut sm = storage.state_machine;
    let started = Instant::now();
    let mut snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let built = started.elapsed().as_secs_f64();
    println!("built a snapshot of {events} events in {built:.3} s (recorded; nothing is copied)");
    let started = Instant::now();
    // As openraft's sender reads it: chunks of keyledger's 4 MiB.
    let mut out = std::fs::File::create(snapshot_file(dir)).expect("create");
    let (mut bytes, mut chunk) = (0u64, Vec::with_capacity(4 << 20));
    loop {
        chunk.clear();
        while chunk.len() < chunk.capacity() {
            if snapshot.snapshot.read_buf(&mut chunk).await.expect("read") == 0 {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        std::io::Write::write_all(&mut out, &chunk).expect("write");
        bytes += chunk.len() as u64;
    }
    out.sync_all().expect("sync");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "streamed it from the ledger into a file in {seconds:.2} s = {:.0} events/s, {:.0} MB/s; {:.1} MB",
        events as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        bytes as f64 / 1e6
    );
}

/// Where `build` leaves the snapshot it streamed (outside `snapshots/`, which the node keeps).
fn snapshot_file(dir: &Path) -> PathBuf {
    dir.join("sent-snapshot.bin")
}

/// This process's peak resident memory so far (Linux), in MB.
fn peak_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) / 1024
}

async fn install(source: &Path, target: &Path) {
    // The leader's meta, read without opening its database (this process holds only the target).
    let file = snapshot_file(source);
    let bytes = std::fs::metadata(&file).expect("file").len();
    let storage = Storage::open(target).expect("open target");
    let before = storage.ledger.stored_size();
    println!("target holds {before} events; peak memory after opening it: {} MB", peak_mb());
    let mut sm = storage.state_machine;

    let started = Instant::now();
    let mut from = SnapshotFile::open(&file).await.expect("open snapshot");
    let mut into = sm.begin_receiving_snapshot().await.expect("begin receiving");
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        into.write_all(&chunk[..n]).await.expect("write");
    }
    into.shutdown().await.expect("shutdown");
    let received = started.elapsed().as_secs_f64();
    println!("peak memory after receiving: {} MB", peak_mb());

    let meta = openraft::SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), u64::MAX / 2)),
        last_membership: Default::default(),
        snapshot_id: "bench".into(),
    };
    let started = Instant::now();
    sm.install_snapshot(&meta, into).await.expect("install");
    let seconds = started.elapsed().as_secs_f64();
    let events = storage.ledger.stored_size();
    println!(
        "received {:.1} MB in {received:.2} s; installed {events} events in {seconds:.2} s = {:.0} events/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        events as f64 / seconds,
        bytes as f64 / seconds / 1e6
    );
    println!("peak memory after installing: {} MB", peak_mb());
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: snapshot_bench populate DIR EVENTS | open DIR | build DIR | install SOURCE_DIR TARGET_DIR";
    match args.iter().skip(1).map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["populate", dir, events] => populate(Path::new(dir), events.parse().expect(usage)).await,
        ["open", dir] => drop(open(Path::new(dir))),
        ["build", dir] => build(Path::new(dir)).await,
        ["install", source, target] => install(Path::new(source), Path::new(target)).await,
        _ => panic!("{usage}"),
    }
}
