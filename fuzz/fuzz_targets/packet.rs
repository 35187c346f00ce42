//! One frame parsed under every link type; checks in `shadowd::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadowd::fuzzing::packet(data));
