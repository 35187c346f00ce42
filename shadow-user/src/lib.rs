//! shadowd: copies live HTTP traffic to shadow services from kernel packet clones.
//!
//! The binary (`main.rs`) calls [`cmd::main`]. Only what the binary and the route bench use
//! is public ([`cmd::main`], [`config`], [`route`]); the daemon's stages are the crate's own,
//! so the compiler finds what nothing uses. The parsers of the data path (frames, TCP
//! streams, HTTP messages) are the `shadow-wire` crate.

#![warn(missing_docs)]
// Dependencies that only the tests, benches or build script use are not the library's.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// Used here under the names they had as modules of this crate.
pub(crate) use shadow_wire::{http, packet, pcap, reassembly};

pub(crate) mod active;
pub(crate) mod admin;
pub(crate) mod capture;
pub mod cmd;
pub(crate) mod compare;
pub mod config;
pub(crate) mod diag;
pub(crate) mod diff;
pub(crate) mod kubernetes;
pub(crate) mod labels;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod production;
pub(crate) mod replay;
pub mod route;
pub(crate) mod settings;

/// Renders an error with all its sources, `outer: inner: …`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}
