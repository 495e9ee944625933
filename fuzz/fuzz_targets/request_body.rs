//! Any bytes as the body of any DynamoDB operation: decoding must return an error or a value,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kvsim::api::ops::decode_for_fuzzing(data);
});
