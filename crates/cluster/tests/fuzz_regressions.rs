//! Inputs that once crashed a fuzz target (`scripts/fuzz`), replayed on every test run: each
//! must now be refused with an error. The fixes they led to have unit tests of their own
//! (`keyledger_ledger::codec`: a claimed length is bounded before anything is allocated).

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.map(|entry| std::fs::read(entry.expect("a readable directory").path()).expect("a readable input")).collect()
}

#[test]
fn peer_messages_that_once_crashed_the_decoders_are_refused() {
    let inputs = [inputs("peer_message"), inputs("raft_stream")].concat();
    assert!(!inputs.is_empty(), "fuzz/regressions/peer_message holds the inputs");
    for bytes in &inputs {
        keyledger_cluster::fuzzing::decode_peer_message(bytes);
        keyledger_cluster::fuzzing::decode_stream(bytes);
    }
}
