//! An audit export as `keyledger audit verify` reads it: every line parsed, both chains and
//! every checkpoint checked. Any file is verified or refused with the line it fails at.
#![no_main]

use keyledger_audit::verify::{verify_jsonl, Expect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_jsonl(data, Expect::Complete);
    let _ = verify_jsonl(data, Expect::Partial);
});
