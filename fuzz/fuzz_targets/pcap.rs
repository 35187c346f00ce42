//! Bytes read as a pcap or pcapng capture file; checks in `shadow_wire::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shadow_wire::fuzzing::pcap(data));
