//! Fidelity and CPU: fidelity of B at fixed rates — GETs from 5k requests/s up
//! until a copy is lost or the load cannot be offered, and 64 KiB POSTs — each shortfall
//! set against shadowd's own counters, and shadowd's CPU per 10,000 copies; and B diff,
//! GETs of JSON whose responses are diffed, for the CPU per 10,000 diffed copies.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{
    Bench,
    cpustat::{self, CpuShare},
    load::{self, FixedRate, RateResult},
    metrics::Ledger,
    plan::Plan,
    scenario::{Outcome, Placement, Scenario, Stack},
};

/// Request bodies of the POST sweep.
pub const POST_BODY_BYTES: usize = 64 << 10;

/// One fixed-rate run of B.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub kind: &'static str,
    pub rate: u64,
    pub load: RateResult,
    pub production_served: u64,
    pub shadow_received: u64,
    /// shadow received / production served.
    pub fidelity: f64,
    /// production served − shadow received.
    pub shortfall: i64,
    /// What shadowd's counters say was not delivered: production served − observed
    /// (never observed), plus sampled out, dropped and in flight.
    pub counted: i64,
    pub ledger: Ledger,
    /// "complete", "explained: …" or "BUG: …".
    pub verdict: String,
    pub shadowd_cpu_s: f64,
    pub cpu_s_per_10k: Option<f64>,
    pub shadowd_hwm_kib: u64,
    /// POST only: copies the shadow logged with fewer bytes than production.
    pub short_copies: u64,
    /// The whole machine's CPUs during the load.
    pub cpus: Vec<CpuShare>,
    /// The machine's busy % before the load (other work).
    pub background: f64,
}

impl Run {
    /// Every request reached the shadow and the offered rate was held.
    pub fn complete(&self) -> bool {
        self.shortfall == 0 && self.production_served > 0 && self.load_held()
    }

    pub fn load_held(&self) -> bool {
        self.load.achieved_rate >= 0.95 * self.rate as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    pub get: Vec<Run>,
    /// GETs past what the pinned client can offer, with client and servers unpinned.
    pub get_unpinned: Vec<Run>,
    pub post: Vec<Run>,
    /// B diff: GETs of about 1 KiB of JSON, every copy's responses diffed.
    pub diffed: Vec<Run>,
    /// GETs with one replay thread (the default) and with two, alternated at each rate.
    pub replay_threads: Vec<Run>,
    /// Why each sweep ended.
    pub get_end: String,
    pub get_unpinned_end: String,
    pub post_end: String,
    pub diffed_end: String,
}

impl Fidelity {
    pub fn highest_complete(runs: &[Run]) -> Option<u64> {
        runs.iter().filter(|r| r.complete()).map(|r| r.rate).max()
    }

    /// Every run, in the order of the sweeps.
    pub fn all(&self) -> impl Iterator<Item = &Run> {
        self.get
            .iter()
            .chain(&self.get_unpinned)
            .chain(&self.post)
            .chain(&self.diffed)
            .chain(&self.replay_threads)
    }
}

/// One sweep: rates tried in turn while every copy arrives and the load is offered.
struct Sweep<'a> {
    kind: &'static str,
    body: Option<&'a Path>,
    placement: Placement,
    listed: &'a [u64],
    step: Option<u64>,
    max: u64,
    scenario: Scenario,
}

pub fn run(bench: &mut Bench) -> Result<Fidelity> {
    let body = bench.run_dir("post-body")?.join("body.bin");
    let bytes: Vec<u8> = (0..POST_BODY_BYTES)
        .map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) >> 13) % 26) as u8)
        .collect();
    std::fs::write(&body, bytes)?;
    let plan = bench.plan.clone();
    let (get, get_end) = sweep(
        bench,
        &Sweep {
            kind: "GET",
            body: None,
            placement: Placement::Pinned,
            listed: &plan.get_rates,
            step: plan.get_step,
            max: plan.get_max,
            scenario: Scenario::B,
        },
    )?;
    let (get_unpinned, get_unpinned_end) = if plan.get_unpinned_rates.is_empty() {
        (Vec::new(), "not run (--quick)".to_string())
    } else {
        sweep(
            bench,
            &Sweep {
                kind: "GET, unpinned",
                body: None,
                placement: Placement::Unpinned,
                listed: &plan.get_unpinned_rates,
                step: plan.get_step,
                max: plan.get_max,
                scenario: Scenario::B,
            },
        )?
    };
    let (post, post_end) = sweep(
        bench,
        &Sweep {
            kind: "POST 64 KiB",
            body: Some(&body),
            placement: Placement::Pinned,
            listed: &plan.post_rates,
            step: plan.post_step,
            max: plan.post_max,
            scenario: Scenario::B,
        },
    )?;
    let (diffed, diffed_end) = sweep(
        bench,
        &Sweep {
            kind: "GET JSON, diffed",
            body: None,
            placement: Placement::Pinned,
            listed: &plan.diff_rates,
            step: None,
            max: plan.diff_rates.last().copied().unwrap_or(0),
            scenario: Scenario::BDiff,
        },
    )?;
    let replay_threads = replay_threads(bench, &plan.thread_rates, plan.thread_rounds)?;
    Ok(Fidelity {
        get,
        get_unpinned,
        post,
        diffed,
        replay_threads,
        get_end,
        get_unpinned_end,
        post_end,
        diffed_end,
    })
}

/// `Run::kind` of the replay threads runs.
pub const ONE_REPLAY_THREAD: &str = "GET, 1 replay thread";
pub const TWO_REPLAY_THREADS: &str = "GET, 2 replay threads";

/// shadowd's CPU per copy with one replay thread and with two, one run after the other at
/// each rate so that both meet the same machine.
fn replay_threads(bench: &mut Bench, rates: &[u64], rounds: usize) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for _ in 0..rounds {
        for &rate in rates {
            for (scenario, kind) in [
                (Scenario::B, ONE_REPLAY_THREAD),
                (Scenario::BTwoThreads, TWO_REPLAY_THREADS),
            ] {
                let run = fixed_rate(bench, (scenario, kind), None, Placement::Pinned, true, rate)?;
                println!(
                    "fidelity {kind} at {rate} req/s: {:.4} %, {}; shadowd {:.3} CPU-s per 10k",
                    run.fidelity * 100.0,
                    run.verdict,
                    run.cpu_s_per_10k.unwrap_or(f64::NAN),
                );
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

fn sweep(bench: &mut Bench, spec: &Sweep<'_>) -> Result<(Vec<Run>, String)> {
    let kind = spec.kind;
    let mut runs = Vec::new();
    let mut rate = spec.listed[0];
    let end = loop {
        let run = one(bench, spec, rate)?;
        println!(
            "fidelity {kind} at {rate} req/s: achieved {:.0}, shadow {} / production {} = {:.4} %, {}; {}; shadowd {:.3} CPU-s per 10k; {}",
            run.load.achieved_rate,
            run.shadow_received,
            run.production_served,
            run.fidelity * 100.0,
            run.verdict,
            run.ledger.describe(),
            run.cpu_s_per_10k.unwrap_or(f64::NAN),
            cpustat::describe(&run.cpus),
        );
        let held = run.load_held();
        let complete = run.complete();
        runs.push(run);
        if !held {
            break format!(
                "the load generator could not offer {rate} req/s ({})",
                match spec.placement {
                    Placement::Unpinned => "client, servers and shadowd share both CPUs",
                    _ => "client and production share CPU 0",
                }
            );
        }
        if !complete && spec.listed.last() <= Some(&rate) {
            break format!("first loss at {rate} req/s");
        }
        match Plan::next_rate(spec.listed, spec.step, spec.max, rate) {
            Some(next) => rate = next,
            None => break format!("planned rates done (up to {rate} req/s)"),
        }
    };
    Ok((runs, end))
}

fn one(bench: &mut Bench, spec: &Sweep<'_>, rate: u64) -> Result<Run> {
    fixed_rate(
        bench,
        (spec.scenario, spec.kind),
        spec.body,
        spec.placement,
        true,
        rate,
    )
}

/// One fixed-rate run of B (or B diff, whose GETs ask for JSON) on fresh servers: GETs, or
/// POSTs of `body`, on keep-alive connections or on one connection per request.
pub fn fixed_rate(
    bench: &mut Bench,
    (scenario, kind): (Scenario, &'static str),
    body: Option<&Path>,
    placement: Placement,
    keep_alive: bool,
    rate: u64,
) -> Result<Run> {
    let dir = bench.run_dir(&format!(
        "fidelity-{}{}{}-{}-{rate}",
        if body.is_some() { "post" } else { "get" },
        match scenario {
            Scenario::BDiff => "-diff",
            Scenario::BTwoThreads => "-2-threads",
            _ => "",
        },
        if keep_alive { "" } else { "-no-keepalive" },
        placement.slug()
    ))?;
    let mut stack = Stack::start(&bench.topology, scenario, placement, &dir)?;
    stack.begin()?;
    let load = load::oha(
        &bench.topology.client,
        placement.production_cpu(),
        &FixedRate {
            body,
            keep_alive,
            ..FixedRate::gets(
                rate,
                bench.plan.fidelity,
                bench.plan.connections,
                match (body.is_some(), scenario) {
                    (true, _) => "/bench/post",
                    (false, Scenario::BDiff) => "/bench/json",
                    (false, _) => "/bench/get",
                },
            )
        },
        &dir,
        &mut bench.commands,
    )?;
    let cpus = stack.cpu_shares();
    let background = stack.background;
    let outcome = stack.finish()?;
    let mut run = account(kind, rate, load, &outcome, body.is_some());
    run.cpus = cpus;
    run.background = background;
    Ok(run)
}

/// Frames and gaps capture lost: each request never observed needs at least one.
fn capture_frames_lost(ledger: &Ledger) -> u64 {
    ledger.ring_dropped_frames
        + ledger.clones_unaccounted().max(0) as u64
        + ledger.tc_clone_failed
        + ledger.reassembly_gaps.values().sum::<u64>()
        + ledger.http_dropped_messages.values().sum::<u64>()
}

/// Sets what the shadow missed against what shadowd counted.
pub fn account(
    kind: &'static str,
    rate: u64,
    load: RateResult,
    outcome: &Outcome,
    posts: bool,
) -> Run {
    let ledger = outcome.ledger.clone().unwrap_or_default();
    let production = outcome.production.len() as u64;
    let shadow = outcome.shadow.len() as u64;
    let shortfall = production as i64 - shadow as i64;
    let unobserved = production as i64 - ledger.replay.observed as i64;
    let counted = unobserved
        + (ledger.replay.sampled_out + ledger.replay.dropped_total() + ledger.replay.in_flight)
            as i64;
    let delivered_anyway = shadow as i64 - ledger.replay.copied as i64;
    let verdict = if ledger.replay.imbalance() != 0 {
        format!("BUG: the ledger is off by {}", ledger.replay.imbalance())
    } else if unobserved > 0
        && ledger.capture_losses() + ledger.mirror_veth_dropped + ledger.out_of_order_bytes == 0
    {
        format!("BUG: {unobserved} requests never observed, and no capture counter moved")
    } else if unobserved > 0 && unobserved as u64 <= capture_frames_lost(&ledger) {
        format!(
            "capture loss: {unobserved} requests never observed, within what capture counted \
             in frames and gaps ({} ring-dropped frames, {} clones lost before the ring, {} \
             gap events, {} bytes still held out of order); shadowd has no request count for \
             them",
            ledger.ring_dropped_frames,
            ledger.clones_unaccounted().max(0),
            ledger.reassembly_gaps.values().sum::<u64>(),
            ledger.out_of_order_bytes
        )
    } else if unobserved > 0 {
        format!(
            "LEDGER GAP: {unobserved} requests never observed, more than capture's counters \
             can explain ({} frames and gaps; {} bytes still held out of order)",
            capture_frames_lost(&ledger),
            ledger.out_of_order_bytes
        )
    } else if unobserved < 0 {
        format!(
            "BUG: {} more requests observed than production served",
            -unobserved
        )
    } else if delivered_anyway < 0 {
        format!(
            "BUG: {} copies counted as answered that the shadow never logged",
            -delivered_anyway
        )
    } else if delivered_anyway > ledger.replay.dropped_total() as i64 {
        format!(
            "BUG: the shadow logged {} more requests than shadowd sent",
            delivered_anyway - ledger.replay.dropped_total() as i64
        )
    } else if shortfall == 0 {
        "complete".to_string()
    } else if shortfall == counted - delivered_anyway {
        format!(
            "explained: shortfall {shortfall} = never observed {unobserved} + sampled out {} + dropped {} + in flight {} - dropped yet delivered {delivered_anyway}",
            ledger.replay.sampled_out,
            ledger.replay.dropped_total(),
            ledger.replay.in_flight
        )
    } else {
        format!("BUG: shortfall {shortfall} but counters say {counted}")
    };
    let short_copies = if posts {
        outcome
            .shadow
            .iter()
            .filter(|line| line.request_length < POST_BODY_BYTES as u64)
            .count() as u64
    } else {
        0
    };
    Run {
        kind,
        rate,
        load,
        production_served: production,
        shadow_received: shadow,
        fidelity: if production > 0 {
            shadow as f64 / production as f64
        } else {
            0.0
        },
        shortfall,
        counted,
        verdict,
        shadowd_cpu_s: outcome.shadowd_cpu_s,
        cpu_s_per_10k: (outcome.copied_since_begin > 0)
            .then(|| outcome.shadowd_cpu_s / outcome.copied_since_begin as f64 * 10_000.0),
        shadowd_hwm_kib: outcome.shadowd_hwm_kib,
        short_copies,
        ledger,
        cpus: Vec::new(),
        background: 0.0,
    }
}
