//! Pushes, gaps and ends through one `HttpFlow`; script format and checks in
//! `shadowd::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadowd::fuzzing::http_flow(data));
