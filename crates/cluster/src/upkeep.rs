//! What keeps a restart short and the disk bounded while a node runs: the Raft log's bytes,
//! and how far the saved state (`state.bin`) lags behind the ledger.
//!
//! The log's bytes, not only its entries: openraft snapshots and purges by entry counts (`--snapshot-logs`), but entries differ in size
//! by a thousandfold: a batch of 256 use reports or 1,000 key creations is one entry. At a
//! million keys, the 20,000 entries kept after a snapshot were 163 MiB, all of it read at every
//! restart and kept on disk. So each node also builds a snapshot once the entries after its last
//! one pass twice the byte budget, and purges down to the budget (never past its snapshot, and
//! openraft delays a purge while a follower is still being sent those entries). A follower more
//! than the budget behind catches up from a snapshot, streamed from the ledger.
//!
//! The saved state is written with each snapshot (`state_machine.rs`) and at shutdown; a start
//! after a crash decodes it and replays every event after it, at about 300k events a second.
//! Snapshots follow the log's bytes, which say little about events (a million first uses are a
//! million events in 60 MiB of log), so the state is also saved once `SAVE_AFTER_EVENTS` were
//! applied since the last save (each save still at most once a minute: about a second of one
//! core at a million keys, with writes held back meanwhile).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use keyledger_ledger::LogReader;

use crate::node::ClusterNode;

const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A snapshot asked for and not yet reported is not asked for again before this.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(60);

/// Events after which the state is saved again: under a second of replay after a crash.
const SAVE_AFTER_EVENTS: u64 = 250_000;

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Upkeep {
    pub(crate) snapshot: bool,
    pub(crate) purge_upto: Option<u64>,
}

/// Decides from the log's sizes and Raft's marks: `snapshot_index` and `purged_index` are the
/// last indexes in the snapshot and purged (0 when none).
pub(crate) fn decide(
    log: &LogReader,
    keep_bytes: u64,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
) -> Upkeep {
    let first_unsnapshotted = snapshot_index.map_or(0, |i| i + 1);
    let snapshot = log.bytes_from(first_unsnapshotted) > keep_bytes.saturating_mul(2);
    let purge_upto = match (log.purge_point(keep_bytes), snapshot_index) {
        (Some(point), Some(snapshotted)) => {
            Some(point.min(snapshotted)).filter(|upto| purged_index.is_none_or(|purged| *upto > purged))
        }
        _ => None,
    };
    Upkeep { snapshot, purge_upto }
}

pub(crate) fn spawn(node: &Arc<ClusterNode>, log: LogReader, keep_bytes: u64) {
    let weak: Weak<ClusterNode> = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(CHECK_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asked: Option<(Option<u64>, Instant)> = None;
        let mut saved_at = weak.upgrade().map_or(0, |node| node.ledger().state().head().seq);
        loop {
            timer.tick().await;
            let Some(node) = weak.upgrade() else { return };
            let metrics = node.metrics();
            if metrics.running_state.is_err() {
                return;
            }
            let snapshot_index = metrics.snapshot.map(|id| id.index);
            let upkeep = decide(&log, keep_bytes, snapshot_index, metrics.purged.map(|id| id.index));
            let waiting = asked.is_some_and(|(at, when)| at == snapshot_index && when.elapsed() < SNAPSHOT_PATIENCE);
            if upkeep.snapshot && !waiting {
                tracing::info!(
                    bytes = log.bytes_from(snapshot_index.map_or(0, |i| i + 1)),
                    "raft log past its budget: snapshot"
                );
                if node.raft().trigger().snapshot().await.is_err() {
                    return;
                }
                asked = Some((snapshot_index, Instant::now()));
            }
            if let Some(upto) = upkeep.purge_upto {
                if node.raft().trigger().purge_log(upto).await.is_err() {
                    return;
                }
            }
            let head = node.ledger().state().head().seq;
            if head.saturating_sub(saved_at) >= SAVE_AFTER_EVENTS {
                let ledger = node.ledger().clone();
                drop(node);
                match tokio::task::spawn_blocking(move || ledger.save_state_if_due()).await {
                    Ok(Ok(true)) => {
                        tracing::info!(seq = head, "state saved");
                        saved_at = head;
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot save the state; a restart replays more of the ledger")
                    }
                    Err(_) => return,
                }
            }
        }
    });
}
