//! What shadowd reads off the wire: frames and capture files ([`packet`], [`pcap`]), TCP
//! streams rebuilt as production's stack accepted them ([`reassembly`]), and the HTTP/1
//! messages in them ([`http`]). No I/O and no daemon: the benches and fuzz targets drive
//! these directly.

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

#[cfg(test)]
mod end_to_end;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
pub mod labels;
pub mod packet;
pub mod pcap;
pub mod reassembly;
#[cfg(test)]
mod testing;
