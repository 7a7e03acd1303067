//! A received snapshot file, checked end to end as before an install.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keyledger_ledger::fuzzing::check_snapshot(data));
