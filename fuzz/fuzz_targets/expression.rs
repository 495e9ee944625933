//! Any text as a condition, key condition, update (then applied) or projection expression:
//! parsing must return an error or an AST, never panic or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        kvsim::model::expr::fuzz_parse(text);
    }
});
