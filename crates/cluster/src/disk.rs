//! The disk reserve: a node takes no new write while the filesystem of its data dir has less
//! free space than the reserve (`serve --min-free-disk-mib`), answering `503` with a sentence
//! that says so, and takes them again as soon as space returns. Verification never touches the
//! disk and goes on; what was acknowledged is already durable.
//!
//! Why a reserve instead of meeting `ENOSPC`: a Raft log append or a ledger write that fails
//! half-way is a storage error openraft treats as fatal, and the node would stop. Refused
//! before it is proposed, a write changes nothing, and the entries already in flight, a
//! snapshot and the state saved at shutdown fit in the reserve.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one look at the free space holds: a write costs no system call, and a filling
/// disk is noticed within this.
const RECHECK: Duration = Duration::from_millis(200);

/// The reserve and the free space last seen.
pub(crate) struct DiskReserve {
    data_dir: PathBuf,
    reserve_bytes: u64,
    started: Instant,
    /// Milliseconds after `started` of the last look, plus one (0: never looked).
    looked_at: AtomicU64,
    free_bytes: AtomicU64,
}

impl DiskReserve {
    pub(crate) fn new(data_dir: PathBuf, reserve_bytes: u64) -> DiskReserve {
        DiskReserve {
            data_dir,
            reserve_bytes,
            started: Instant::now(),
            looked_at: AtomicU64::new(0),
            free_bytes: AtomicU64::new(u64::MAX),
        }
    }

    /// `Err` with the reason when the free space is below the reserve.
    pub(crate) fn check(&self) -> Result<(), String> {
        let free = self.free_bytes();
        if free >= self.reserve_bytes {
            return Ok(());
        }
        Err(format!(
            "the disk of this node's data dir has {} MiB free, below its reserve of {} MiB (--min-free-disk-mib): \
             writes resume once space is freed; verification goes on",
            free >> 20,
            self.reserve_bytes >> 20
        ))
    }

    /// Free bytes for an unprivileged writer, looked at most every [`RECHECK`].
    pub(crate) fn free_bytes(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.looked_at.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < RECHECK.as_millis() as u64 {
            return self.free_bytes.load(Ordering::Relaxed);
        }
        let before = self.free_bytes.load(Ordering::Relaxed);
        let free = match rustix::fs::statvfs(&self.data_dir) {
            Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize),
            Err(e) => {
                // A data dir that cannot be looked at cannot be trusted with a write either.
                tracing::warn!(error = %e, dir = %self.data_dir.display(), "cannot read the free space of the data dir");
                0
            }
        };
        self.free_bytes.store(free, Ordering::Relaxed);
        self.looked_at.store(now, Ordering::Relaxed);
        let (was_low, is_low) = (before < self.reserve_bytes, free < self.reserve_bytes);
        if is_low && !was_low {
            tracing::error!(
                free_mib = free >> 20,
                reserve_mib = self.reserve_bytes >> 20,
                "the data dir's disk is below its reserve: writes are refused until space is freed"
            );
        } else if was_low && !is_low && last != 0 {
            tracing::info!(free_mib = free >> 20, "the data dir's disk is above its reserve again: writes resume");
        }
        free
    }

    pub(crate) fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = DiskReserve::new(dir.path().to_owned(), 0);
        assert_eq!(roomy.check(), Ok(()));
        let free = roomy.free_bytes();
        assert!(free > 0 && free < u64::MAX);

        let tight = DiskReserve::new(dir.path().to_owned(), u64::MAX);
        let why = tight.check().unwrap_err();
        assert!(why.contains("below its reserve") && why.contains("--min-free-disk-mib"), "{why}");
    }

    #[test]
    fn a_data_dir_that_cannot_be_read_counts_as_full() {
        let reserve = DiskReserve::new(PathBuf::from("/nonexistent/keyledger-disk-test"), 1);
        assert_eq!(reserve.free_bytes(), 0);
        assert!(reserve.check().is_err());
    }
}
