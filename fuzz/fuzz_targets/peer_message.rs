//! The bodies of node-to-node requests and their answers (bincode via `codec`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keyledger_cluster::fuzzing::decode_peer_message(data));
