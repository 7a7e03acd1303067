//! The `klk_` token parser: any string is either a well-formed key or `Malformed`, never a panic;
//! a parsed token's hint is its last characters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if keyledger_model::token::parse(text).is_ok() {
        let hint = keyledger_model::token::hint_of(text);
        assert!(text.ends_with(&hint));
    }
});
