//! A shadow's reply through the replay client's reader, whole and piece by piece; script
//! format and checks in `shadowd::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadowd::fuzzing::response_reader(data));
