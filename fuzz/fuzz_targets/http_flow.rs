//! Pushes, gaps and ends through one `HttpFlow`; script format and checks in
//! `shadow_wire::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadow_wire::fuzzing::http_flow(data));
