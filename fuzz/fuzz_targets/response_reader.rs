//! A shadow's reply through the replay client's reader, whole and piece by piece; script
//! format and checks in `shadow_wire::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadow_wire::fuzzing::response_reader(data));
