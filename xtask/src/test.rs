//! `cargo xtask test`: set-up, then the workspace's tests, then the root network tests one at
//! a time (they load programs and create namespaces).

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only run tests whose name contains this (passed to the test harness).
    filter: Option<String>,
}

pub fn run(args: &TestArgs) -> Result<()> {
    setup::run()?;
    // SAFETY-free check: the network tests need root.
    if !is_root() {
        bail!(
            "cargo xtask test needs root: the network tests load BPF programs and create namespaces"
        );
    }
    let filter: Vec<&str> = args.filter.iter().map(String::as_str).collect();

    // The binary the network tests start.
    status(cargo().args(["build", "--package", "shadow-user", "--bin", "shadowd"]))?;

    status(
        cargo()
            .args([
                "test",
                "--workspace",
                "--exclude",
                "shadowd-tests",
                "--exclude",
                "shadow-ebpf",
            ])
            .arg("--")
            .args(&filter),
    )?;
    let shadowd = setup::workspace_root().join("target/debug/shadowd");
    status(
        cargo()
            .args(["test", "--package", "shadowd-tests", "--"])
            .args(["--test-threads", "1"])
            .args(&filter)
            .env("SHADOWD_BIN", shadowd),
    )
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(setup::workspace_root());
    cmd
}

pub fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2))
                == Some("0")
        })
        .unwrap_or(false)
}
