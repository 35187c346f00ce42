//! What the TC program costs the production CPU per packet, from the kernel's own
//! accounting (`BPF_ENABLE_STATS`, as `kernel.bpf_stats_enabled`: run time and run count of
//! each program, read with bpftool): B copying and B idle (attached, copying nothing) at a
//! fixed rate, pinned, and B copying 64 KiB responses. Stats are on only during these runs:
//! they add two clock reads to every run of every BPF program.

use std::{
    collections::BTreeMap,
    os::fd::{FromRawFd as _, OwnedFd},
    process::Command,
};

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
    let before = program_counts()?;
    let load = load::oha(
        &bench.topology.client,
        placement.production_cpu(),
        &FixedRate::gets(
            rate,
            bench.plan.fidelity,
            bench.plan.connections,
            profile.path(),
        ),
        &dir,
        &mut bench.commands,
    )?;
    let (runs, run_time_ns) = counted_between(&before, &program_counts()?)?;
    stack.finish()?;
    Ok(Run {
        scenario: scenario.name(),
        profile,
        rate,
        requests: load.responses,
        runs,
        run_time_ns,
    })
}

/// Runs and run time so far of each loaded program of shadowd's, by program id.
fn program_counts() -> Result<BTreeMap<u64, (u64, u64)>> {
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
    Ok(programs
        .iter()
        .filter(|p| PROGRAMS.contains(&p["name"].as_str().unwrap_or_default()))
        .filter_map(|p| {
            Some((
                p["id"].as_u64()?,
                (
                    p["run_cnt"].as_u64().unwrap_or(0),
                    p["run_time_ns"].as_u64().unwrap_or(0),
                ),
            ))
        })
        .collect())
}

/// Runs and run time between two snapshots, of the programs in both (an earlier run's
/// programs, detached but not yet freed, ran no more).
fn counted_between(
    before: &BTreeMap<u64, (u64, u64)>,
    after: &BTreeMap<u64, (u64, u64)>,
) -> Result<(u64, u64)> {
    let mut totals = (0, 0);
    let mut found = 0;
    for (id, (runs, time)) in after {
        if let Some((runs_before, time_before)) = before.get(id) {
            found += 1;
            totals.0 += runs - runs_before;
            totals.1 += time - time_before;
        }
    }
    if found < PROGRAMS.len() {
        bail!(
            "bpftool lists {found} of shadowd's {} programs",
            PROGRAMS.len()
        );
    }
    Ok(totals)
}

/// Run-time stats kept by the kernel while this lives (`BPF_ENABLE_STATS`): they stop when
/// its descriptor closes, however the bench ends.
struct StatsOn {
    _descriptor: OwnedFd,
}

impl StatsOn {
    fn enable() -> Result<StatsOn> {
        /// `BPF_ENABLE_STATS`, the command number of `bpf(2)`.
        const BPF_ENABLE_STATS: libc::c_long = 32;
        /// `union bpf_attr` for it: `enable_stats.type`, `BPF_STATS_RUN_TIME`.
        #[repr(C)]
        struct Attr {
            stats_type: u32,
        }
        let attr = Attr { stats_type: 0 };
        // SAFETY: `attr` is a valid `bpf_attr` prefix of the size passed, read by the kernel
        // only during the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                &attr as *const Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if fd < 0 {
            bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        let descriptor = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(StatsOn {
            _descriptor: descriptor,
        })
    }
}
