//! shadowd: copies live HTTP traffic to shadow services from kernel packet clones.
//!
//! The binary (`main.rs`) is a thin CLI over these modules.

pub mod active;
pub mod admin;
pub mod capture;
pub mod cmd;
pub mod compare;
pub mod config;
pub mod diag;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod packet;
pub mod pcap;
pub mod pipeline;
pub mod reassembly;
pub mod replay;
pub mod route;
pub mod settings;

/// Renders an error with all its sources, `outer: inner: …`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}
