//! Production latency at a fixed rate of half of A's pinned saturation, and
//! at a light fixed rate, pinned, rounds of A B C on fresh servers; at the light rate also
//! the controls B idle and A with CPU 1 busy, to tell where B's tail comes from.

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    Bench,
    cpustat::{self, CpuShare},
    load::{self, FixedRate, RateResult},
    scenario::{Placement, Scenario, Stack},
    throughput::{Throughput, median},
};

/// The light rate, where every scenario should keep up.
pub const LIGHT_RATE: u64 = 5_000;
/// The scenarios at the light rate: A B C and the controls.
pub const LIGHT_SCENARIOS: [Scenario; 5] = [
    Scenario::A,
    Scenario::B,
    Scenario::C,
    Scenario::BIdle,
    Scenario::ABusy,
];

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub round: usize,
    pub scenario: Scenario,
    pub result: RateResult,
    pub production_served: usize,
    pub shadow_received: usize,
    pub cpus: Vec<CpuShare>,
    /// The machine's busy % before the load (other work).
    pub background: f64,
}

/// The runs at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub rate: u64,
    /// How the rate was chosen.
    pub why: String,
    /// A's pinned saturation with oha (closed loop), which sets the first rate.
    pub oha_saturation: f64,
    pub samples: Vec<Sample>,
}

impl Latency {
    /// Median over rounds of `figure` for `scenario`.
    pub fn median(&self, scenario: Scenario, figure: fn(&RateResult) -> f64) -> Option<f64> {
        median(
            self.samples
                .iter()
                .filter(|s| s.scenario == scenario)
                .map(|s| figure(&s.result))
                .collect(),
        )
    }
}

pub fn run(bench: &mut Bench, throughput: &Throughput) -> Result<Vec<Latency>> {
    let wrk = throughput
        .median(Placement::Pinned, Scenario::A)
        .context("no pinned saturation of A")?;
    // The fixed-rate generator needs several times wrk's CPU per request, and it shares
    // CPU 0 with production: half of wrk's figure would saturate CPU 0 with the client
    // alone. Half of what A sustains with oha itself leaves CPU 0 half idle.
    let saturation = one(bench, 0, Scenario::A, 0)?.result.achieved_rate;
    // Round to 100 requests/s so runs and reports name the same rate.
    let half = ((saturation / 2.0 / 100.0).round() as u64 * 100).max(100);
    let mut out = Vec::new();
    for (rate, why) in [
        (
            half,
            format!(
                "half of A's pinned saturation with oha itself ({saturation:.0} req/s; wrk's is {wrk:.0})"
            ),
        ),
        (LIGHT_RATE, "a light load".to_string()),
    ] {
        let scenarios = if rate == LIGHT_RATE {
            &LIGHT_SCENARIOS[..]
        } else {
            &Scenario::ALL[..]
        };
        let mut samples = Vec::new();
        for round in 1..=bench.plan.rounds {
            for &scenario in scenarios {
                samples.push(one(bench, round, scenario, rate)?);
            }
        }
        out.push(Latency {
            rate,
            why,
            samples,
            oha_saturation: saturation,
        });
    }
    Ok(out)
}

/// One run of `scenario` at `rate` (0: closed loop, round 0).
fn one(bench: &mut Bench, round: usize, scenario: Scenario, rate: u64) -> Result<Sample> {
    let placement = Placement::Pinned;
    let dir = match rate {
        0 => bench.run_dir(&format!("latency-saturation-{}", scenario.slug()))?,
        _ => bench.run_dir(&format!("latency-{rate}-{round}-{}", scenario.slug()))?,
    };
    let mut stack = Stack::start(&bench.topology, scenario, placement, &dir)?;
    let plan = bench.plan.clone();
    let cpu = placement.production_cpu();
    let load = |duration, path| FixedRate::gets(rate, duration, plan.connections, path);
    let warm_up = FixedRate {
        rate: if rate == 0 { 5_000 } else { rate },
        ..load(plan.warm_up, "/warmup")
    };
    load::oha(
        &bench.topology.client,
        cpu,
        &warm_up,
        &dir,
        &mut bench.commands,
    )?;
    stack.begin()?;
    let result = load::oha(
        &bench.topology.client,
        cpu,
        &load(
            if rate == 0 {
                plan.saturation
            } else {
                plan.latency
            },
            "/bench/latency",
        ),
        &dir,
        &mut bench.commands,
    )?;
    let cpus = stack.cpu_shares();
    let background = stack.background;
    let outcome = stack.finish()?;
    let what = match rate {
        0 => "A's saturation with oha (closed loop, pinned)".to_string(),
        _ => format!("round {round} {} at {rate} req/s", scenario.name()),
    };
    println!(
        "latency {what}: achieved {:.0}, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms{}; {}",
        result.achieved_rate,
        result.p50_ms,
        result.p99_ms,
        result.p99_9_ms,
        result.max_ms,
        if result.errors + result.non_200 > 0 {
            format!(", {} errors, {} non-200", result.errors, result.non_200)
        } else {
            String::new()
        },
        cpustat::describe(&cpus),
    );
    Ok(Sample {
        round,
        scenario,
        result,
        production_served: outcome.production.len(),
        shadow_received: outcome.shadow.len(),
        cpus,
        background,
    })
}
