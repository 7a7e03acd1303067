//! Length-prefixed frames of the Raft stream, read by a follower and by a leader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keyledger_cluster::fuzzing::decode_stream(data));
