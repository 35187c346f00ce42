//! Copy delay, from production receiving a request to the shadow receiving
//! its copy. Every request has a unique random path; tcpdump on the production interface
//! and on the shadow's interface stamps each request line with the kernel's receive time
//! (same clock, microseconds), and the two are matched by path. nginx's `$msec` in both
//! access logs (millisecond resolution, taken when the request is logged) is the
//! cross-check.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    Bench,
    commands::Commands,
    load::{self, FixedRate, RateResult},
    metrics::Ledger,
    netns::{Netns, Topology},
    pcap,
    process::Proc,
    scenario::{Placement, Scenario, Stack},
    signals,
    throughput::median,
};

/// Percentiles of the delays, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delays {
    pub matched: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

/// Requests that production received this soon after the first one count as the cold
/// start (a fresh shadowd: name lookup, new connections to the shadow).
const COLD: f64 = 0.2;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub rate: u64,
    pub load: RateResult,
    pub production_requests: usize,
    /// Kernel receive times (tcpdump), after the cold start.
    pub wire: Delays,
    /// The same, in the first 200 ms of load.
    pub wire_cold: Delays,
    /// nginx `$msec` in both access logs, after the cold start.
    pub logged: Delays,
    pub ledger: Ledger,
    pub tcpdump: Vec<String>,
    /// The machine's busy % before the load (other work).
    pub background: f64,
}

pub fn run(bench: &mut Bench) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for rate in bench.plan.delay_rates.clone() {
        let run = one(bench, rate)?;
        println!(
            "copy delay at {rate} req/s: wire p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} matched of {}); first {COLD} s: p50 {:.3} ms, max {:.3} ms ({}); nginx $msec p50 {:.0} ms, p99 {:.0} ms; {}",
            run.wire.p50_ms,
            run.wire.p99_ms,
            run.wire.p99_9_ms,
            run.wire.max_ms,
            run.wire.matched,
            run.production_requests,
            run.wire_cold.p50_ms,
            run.wire_cold.max_ms,
            run.wire_cold.matched,
            run.logged.p50_ms,
            run.logged.p99_ms,
            run.ledger.describe(),
        );
        runs.push(run);
    }
    Ok(runs)
}

const REQUEST_LINES: &str = "tcp dst port 80 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420";

fn tcpdump(ns: &Netns, interface: &str, file: &Path, commands: &mut Commands) -> Result<Proc> {
    let mut cmd = ns.command("tcpdump");
    cmd.args([
        "-i", interface, "-n", "-s", "256", "-B", "65536", "-U", "-w",
    ])
    .arg(file)
    .arg(REQUEST_LINES);
    commands.record("copy delay capture (tcpdump)", &cmd);
    let log = file.with_extension("log");
    let mut proc = Proc::spawn("tcpdump", &mut cmd, &log, libc::SIGINT)?;
    signals::wait_for(Duration::from_secs(10), "tcpdump to listen", || {
        if proc.exited().is_some() {
            return Some(());
        }
        std::fs::read_to_string(&log)
            .ok()?
            .contains("listening on")
            .then_some(())
    })?;
    Ok(proc)
}

fn one(bench: &mut Bench, rate: u64) -> Result<Run> {
    let dir = bench.run_dir(&format!("delay-{rate}"))?;
    let placement = Placement::Pinned;
    let mut stack = Stack::start(&bench.topology, Scenario::B, placement, &dir)?;
    let production_pcap = dir.join("production.pcap");
    let shadow_pcap = dir.join("shadow.pcap");
    let mut production_dump = tcpdump(
        &bench.topology.production,
        Topology::PRODUCTION_IF,
        &production_pcap,
        &mut bench.commands,
    )?;
    let mut shadow_dump = tcpdump(
        &bench.topology.shadow,
        Topology::SHADOW_IF,
        &shadow_pcap,
        &mut bench.commands,
    )?;
    stack.begin()?;
    let load = load::oha(
        &bench.topology.client,
        placement.production_cpu(),
        &FixedRate {
            unique: true,
            ..FixedRate::gets(
                rate,
                bench.plan.delay,
                bench.plan.connections,
                "/d/[a-z0-9]{20}",
            )
        },
        &dir,
        &mut bench.commands,
    )?;
    let background = stack.background;
    let outcome = stack.finish()?;
    // Let tcpdump write out what it has read before it stops.
    signals::sleep(Duration::from_millis(500))?;
    production_dump.stop();
    shadow_dump.stop();
    let tcpdump = [&production_pcap, &shadow_pcap]
        .iter()
        .map(|pcap| {
            let log = std::fs::read_to_string(pcap.with_extension("log")).unwrap_or_default();
            let counts: Vec<&str> = log
                .lines()
                .filter(|line| line.contains("packets"))
                .collect();
            format!(
                "{}: {}",
                pcap.file_name().unwrap_or_default().to_string_lossy(),
                counts.join(", ")
            )
        })
        .collect();
    let read = |path: &Path| -> Result<HashMap<String, f64>> {
        pcap::request_times(&std::fs::read(path).with_context(|| format!("reading {path:?}"))?)
    };
    let at_production = read(&production_pcap)?;
    let at_shadow = read(&shadow_pcap)?;
    let start = at_production
        .values()
        .copied()
        .reduce(f64::min)
        .unwrap_or(0.0);
    let cold = |at: f64| at < start + COLD;
    let wire = delays(&at_production, &at_shadow, |at| !cold(at));
    let wire_cold = delays(&at_production, &at_shadow, cold);
    let logged_at = |lines: &[super::nginx::LogLine]| -> HashMap<String, f64> {
        lines
            .iter()
            .map(|line| (line.uri.clone(), line.msec))
            .collect()
    };
    let logged = delays(
        &logged_at(&outcome.production),
        &logged_at(&outcome.shadow),
        |at| !cold(at),
    );
    Ok(Run {
        rate,
        load,
        production_requests: outcome.production.len(),
        wire,
        wire_cold,
        logged,
        ledger: outcome.ledger.unwrap_or_default(),
        tcpdump,
        background,
    })
}

/// Shadow time − production time per path, for the production times `when` selects.
fn delays(
    production: &HashMap<String, f64>,
    shadow: &HashMap<String, f64>,
    when: impl Fn(f64) -> bool,
) -> Delays {
    let mut ms: Vec<f64> = production
        .iter()
        .filter(|(_, at)| when(**at))
        .filter_map(|(path, at)| Some((shadow.get(path)? - at) * 1000.0))
        .collect();
    if ms.is_empty() {
        return Delays::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64) as usize).min(ms.len() - 1)];
    Delays {
        matched: ms.len(),
        p50_ms: median(ms.clone()).unwrap_or(f64::NAN),
        p99_ms: at(0.99),
        p99_9_ms: at(0.999),
        max_ms: ms[ms.len() - 1],
    }
}
