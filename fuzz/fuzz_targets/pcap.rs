//! Bytes read as a pcap or pcapng capture file; checks in `shadowd::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadowd::fuzzing::pcap(data));
