//! Harness for shadowd's root integration tests: network namespaces and veths behind `Drop`
//! guards, a recording HTTP server, the `shadowd` process, and a Prometheus text reader.
//!
//! Every kernel object a test creates lives inside namespaces the test owns, so deleting the
//! namespaces removes everything, even when the test panics halfway.

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod bpf_maps;
pub mod browser;
pub mod clients;
pub mod fixtures;
pub mod forge;
pub mod http_server;
pub mod json_service;
pub mod kube_api;
pub mod metrics;
pub mod netns;
pub mod ptrace;
pub mod shadowd;
pub mod shadowing;
pub mod tcpdump;
pub mod tcx;

use std::{
    process::Command,
    time::{Duration, Instant},
};

/// Runs a command and panics with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|err| panic!("starting {cmd:?}: {err}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
