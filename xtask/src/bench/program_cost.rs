//! What the TC program costs the production CPU per packet, from the kernel's own
//! accounting (`kernel.bpf_stats_enabled`: run time and run count of each program): B
//! copying and B idle (attached, copying nothing) at a fixed rate, pinned, and B copying
//! 64 KiB responses. Stats are on only during these runs: they add two clock reads to every
//! run of every BPF program.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{
    Bench,
    load::{self, FixedRate},
    scenario::{Placement, Scenario, Stack},
    throughput::Profile,
};

/// The programs shadowd attaches, as the kernel names them (15 characters at most).
const PROGRAMS: [&str; 2] = ["shadow_ingress", "shadow_egress"];
const STATS_SYSCTL: &str = "kernel.bpf_stats_enabled";

/// One fixed-rate run's program accounting.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scenario: &'static str,
    pub profile: Profile,
    pub rate: u64,
    pub requests: u64,
    /// Program runs (packets, over every attachment) and their time, during the load.
    pub runs: u64,
    pub run_time_ns: u64,
}

impl Run {
    /// Mean program time per packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.run_time_ns as f64 / self.runs.max(1) as f64
    }

    /// Program time per production request, in microseconds.
    pub fn us_per_request(&self) -> f64 {
        self.run_time_ns as f64 / self.requests.max(1) as f64 / 1000.0
    }
}

pub fn run(bench: &mut Bench) -> Result<Vec<Run>> {
    let _stats = StatsOn::enable()?;
    let mut runs = Vec::new();
    for (scenario, profile) in [
        (Scenario::B, Profile::Small),
        (Scenario::BIdle, Profile::Small),
        (Scenario::B, Profile::Large),
    ] {
        let run = one(bench, scenario, profile, bench.plan.program_cost_rate)?;
        println!(
            "program cost {}{} at {} req/s: {:.0} ns per packet, {:.2} packets and {:.2} µs \
             of program time per request",
            run.scenario,
            profile.suffix(),
            run.rate,
            run.ns_per_packet(),
            run.runs as f64 / run.requests.max(1) as f64,
            run.us_per_request(),
        );
        runs.push(run);
    }
    Ok(runs)
}

fn one(bench: &mut Bench, scenario: Scenario, profile: Profile, rate: u64) -> Result<Run> {
    let dir = bench.run_dir(&format!(
        "program-cost-{}{}-{rate}",
        scenario.slug(),
        if profile == Profile::Large {
            "-large"
        } else {
            ""
        }
    ))?;
    let placement = Placement::Pinned;
    let mut stack = Stack::start(&bench.topology, scenario, placement, &dir)?;
    stack.begin()?;
    let before = program_totals()?;
    let load = load::oha(
        &bench.topology.client,
        placement.production_cpu(),
        &FixedRate {
            rate,
            duration: bench.plan.fidelity,
            connections: bench.plan.connections,
            path: profile.path(),
            unique: false,
            body: None,
            keep_alive: true,
        },
        &dir,
        &mut bench.commands,
    )?;
    let after = program_totals()?;
    stack.finish()?;
    Ok(Run {
        scenario: scenario.name(),
        profile,
        rate,
        requests: load.responses,
        runs: after.0 - before.0,
        run_time_ns: after.1 - before.1,
    })
}

/// Runs and run time of shadowd's programs so far, summed.
fn program_totals() -> Result<(u64, u64)> {
    let output = Command::new("bpftool")
        .args(["--json", "prog", "show"])
        .output()
        .context("running bpftool")?;
    if !output.status.success() {
        bail!(
            "bpftool prog show: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let programs: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)?;
    let mut totals = (0, 0);
    let mut found = 0;
    for program in &programs {
        if !PROGRAMS.contains(&program["name"].as_str().unwrap_or_default()) {
            continue;
        }
        found += 1;
        totals.0 += program["run_cnt"].as_u64().unwrap_or(0);
        totals.1 += program["run_time_ns"].as_u64().unwrap_or(0);
    }
    if found != PROGRAMS.len() {
        bail!(
            "bpftool lists {found} of shadowd's {} programs",
            PROGRAMS.len()
        );
    }
    Ok(totals)
}

/// `kernel.bpf_stats_enabled` set to 1, and put back as it was when dropped.
struct StatsOn {
    before: String,
}

impl StatsOn {
    fn enable() -> Result<StatsOn> {
        let before = sysctl(&[STATS_SYSCTL])?;
        sysctl(&["-w", &format!("{STATS_SYSCTL}=1")])?;
        Ok(StatsOn { before })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = sysctl(&["-w", &format!("{STATS_SYSCTL}={}", self.before)]);
    }
}

/// `sysctl -n ARGS`, its output trimmed.
fn sysctl(args: &[&str]) -> Result<String> {
    let output = Command::new("sysctl")
        .arg("-n")
        .args(args)
        .output()
        .context("running sysctl")?;
    if !output.status.success() {
        bail!(
            "sysctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
