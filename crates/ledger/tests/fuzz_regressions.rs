//! Snapshot files that once crashed the `snapshot` fuzz target (`scripts/fuzz`), replayed on
//! every test run: each must be refused as damaged. The fix has a unit test of its own
//! (`codec`: a claimed length is bounded before anything is allocated).

use std::path::PathBuf;

#[test]
fn snapshots_that_once_crashed_the_check_are_refused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/snapshot");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/snapshot holds the inputs") {
        let bytes = std::fs::read(entry.expect("a readable directory").path()).expect("a readable input");
        keyledger_ledger::fuzzing::check_snapshot(&bytes);
        replayed += 1;
    }
    assert!(replayed > 0, "no input replayed");
}
