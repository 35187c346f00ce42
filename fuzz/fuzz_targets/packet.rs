//! One frame parsed under every link type; checks in `shadow_wire::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadow_wire::fuzzing::packet(data));
