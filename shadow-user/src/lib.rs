//! shadowd: copies live HTTP traffic to shadow services from kernel packet clones.
//!
//! The binary (`main.rs`) calls [`cmd::main`]. Only what the binary, the benches and the fuzz
//! targets use is public ([`cmd::main`], [`fuzzing`], and the parsers and tables a bench
//! drives: [`packet`], [`reassembly`], [`http`], [`config`], [`route`]); the daemon's stages
//! are the crate's own, so the compiler finds what nothing uses.

#![warn(missing_docs)]
// Dependencies that only the tests, benches or build script use are not the library's.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub(crate) mod active;
pub(crate) mod admin;
pub(crate) mod capture;
pub mod cmd;
pub(crate) mod compare;
pub mod config;
pub(crate) mod diag;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub(crate) mod labels;
pub(crate) mod logging;
pub(crate) mod metrics;
pub mod packet;
pub(crate) mod pcap;
pub(crate) mod pipeline;
pub mod reassembly;
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
