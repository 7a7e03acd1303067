//! openraft's own storage test suite (~35 cases: vote persistence, truncate, purge,
//! membership recovery, snapshots, re-applying committed entries) against the sled store.

use keyledger_ledger::{LogStore, StateMachine, Storage, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("open storage");
        Ok((dir, storage.log_store, storage.state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
