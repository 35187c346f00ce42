//! Segments through a `FlowTable<HttpFlow>`, then a flush; script format and checks in
//! `shadowd::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadowd::fuzzing::reassembly(data));
