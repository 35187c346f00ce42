//! Two response bodies from hostile bytes, flattened and compared; script and checks in
//! `shadow_diff::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadow_diff::fuzzing::response_diff(data));
