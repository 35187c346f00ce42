//! Saturated throughput. wrk with fixed connections against each scenario,
//! rounds of A B C per placement, each on freshly started servers; and, pinned, A and B
//! with 64 KiB responses, where copying response bodies would cost the most.

use anyhow::Result;
use serde::Serialize;

use super::{
    Bench,
    cpustat::{self, CpuShare},
    fidelity,
    load::{self, RateResult, Saturation},
    metrics::Ledger,
    scenario::{Placement, Scenario, Stack},
};

/// What production answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Profile {
    /// 1 KiB to every request: the most packets per byte.
    Small,
    /// 64 KiB (`nginx::LARGE_RESPONSE_BYTES`): GSO packets of up to 64 KiB.
    Large,
}

impl Profile {
    /// The path the load generator asks for.
    pub fn path(self) -> &'static str {
        match self {
            Profile::Small => "/bench/saturation",
            Profile::Large => "/bench/large",
        }
    }

    /// How the report names it, after the placement.
    pub fn suffix(self) -> &'static str {
        match self {
            Profile::Small => "",
            Profile::Large => ", 64 KiB responses",
        }
    }
}

/// wrk runs in a round.
pub const RUNS_PER_ROUND: usize = 10;

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub round: usize,
    pub placement: Placement,
    pub profile: Profile,
    pub scenario: Scenario,
    pub wrk: Saturation,
    pub production_served: usize,
    pub production_non_200: usize,
    pub shadow_received: usize,
    /// B: shadowd's CPU seconds during the measured part, and its ledger at the end.
    pub shadowd_cpu_s: Option<f64>,
    pub ledger: Option<Ledger>,
    /// B: the shortfall set against the ledger (see `fidelity::account`).
    pub verdict: Option<String>,
    /// The whole machine's CPUs during the measured part.
    pub cpus: Vec<CpuShare>,
    /// The machine's busy % before the load (other work).
    pub background: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub samples: Vec<Sample>,
    pub rps_settings: Vec<String>,
}

impl Throughput {
    /// Median requests/s of a scenario in a placement, with 1 KiB responses.
    pub fn median(&self, placement: Placement, scenario: Scenario) -> Option<f64> {
        self.median_of(Profile::Small, placement, scenario)
    }

    /// Median requests/s of a scenario in a placement, answering as `profile` says.
    pub fn median_of(
        &self,
        profile: Profile,
        placement: Placement,
        scenario: Scenario,
    ) -> Option<f64> {
        median(
            self.samples
                .iter()
                .filter(|s| s.profile == profile)
                .filter(|s| s.placement == placement && s.scenario == scenario)
                .map(|s| s.wrk.requests_per_sec)
                .collect(),
        )
    }
}

pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

pub fn run(bench: &mut Bench) -> Result<Throughput> {
    let mut result = Throughput {
        samples: Vec::new(),
        rps_settings: Vec::new(),
    };
    // shadowd's mirror output pinned too, right after the default output, to show what the
    // ring buffer saves the production CPU; and shadowd copying nothing, to show what being
    // in the TC path costs by itself.
    let order: [(Placement, Profile, Scenario); RUNS_PER_ROUND] = [
        (Placement::Pinned, Profile::Small, Scenario::A),
        (Placement::Pinned, Profile::Small, Scenario::B),
        (Placement::Pinned, Profile::Small, Scenario::BMirror),
        (Placement::Pinned, Profile::Small, Scenario::BIdle),
        (Placement::Pinned, Profile::Small, Scenario::C),
        (Placement::Pinned, Profile::Large, Scenario::A),
        (Placement::Pinned, Profile::Large, Scenario::B),
        (Placement::Unpinned, Profile::Small, Scenario::A),
        (Placement::Unpinned, Profile::Small, Scenario::B),
        (Placement::Unpinned, Profile::Small, Scenario::C),
    ];
    for round in 1..=bench.plan.rounds {
        for (placement, profile, scenario) in order {
            let sample = one(
                bench,
                round,
                (placement, profile, scenario),
                &mut result.rps_settings,
            )?;
            println!(
                "throughput round {round} {:>14}{} {}: {:>9.0} req/s; {}{}",
                placement.name(),
                profile.suffix(),
                scenario.name(),
                sample.wrk.requests_per_sec,
                cpustat::describe(&sample.cpus),
                match (&sample.ledger, scenario) {
                    (Some(ledger), _) => format!(
                        "; shadow got {} of {}: {} ({})",
                        sample.shadow_received,
                        sample.production_served,
                        sample.verdict.as_deref().unwrap_or_default(),
                        ledger.describe()
                    ),
                    (None, Scenario::C) => format!(
                        "; shadow got {} of {}",
                        sample.shadow_received, sample.production_served
                    ),
                    _ => String::new(),
                }
            );
            result.samples.push(sample);
        }
    }
    Ok(result)
}

fn one(
    bench: &mut Bench,
    round: usize,
    (placement, profile, scenario): (Placement, Profile, Scenario),
    rps_settings: &mut Vec<String>,
) -> Result<Sample> {
    let dir = bench.run_dir(&format!(
        "throughput-{round}-{}{}-{}",
        placement.slug(),
        if profile == Profile::Large {
            "-large"
        } else {
            ""
        },
        scenario.slug()
    ))?;
    let mut stack = Stack::start(&bench.topology, scenario, placement, &dir)?;
    if rps_settings.is_empty() {
        rps_settings.clone_from(&stack.rps);
    }
    let cpu = placement.production_cpu();
    let plan = bench.plan.clone();
    load::wrk(
        &bench.topology.client,
        cpu,
        plan.connections,
        plan.warm_up,
        "/warmup",
        &dir,
        &mut bench.commands,
    )?;
    stack.begin()?;
    let wrk = load::wrk(
        &bench.topology.client,
        cpu,
        plan.connections,
        plan.saturation,
        profile.path(),
        &dir,
        &mut bench.commands,
    )?;
    let cpus = stack.cpu_shares();
    let background = stack.background;
    let outcome = stack.finish()?;
    let verdict = match scenario {
        Scenario::BIdle => Some(format!(
            "copies nothing by design (capture port {})",
            super::scenario::IDLE_CAPTURE_PORT
        )),
        _ => outcome
            .ledger
            .as_ref()
            .map(|_| fidelity::account("GET", 0, RateResult::default(), &outcome, false).verdict),
    };
    Ok(Sample {
        round,
        placement,
        profile,
        scenario,
        wrk,
        production_served: outcome.production.len(),
        production_non_200: outcome.production_non_200(),
        shadow_received: outcome.shadow.len(),
        shadowd_cpu_s: outcome.ledger.as_ref().map(|_| outcome.shadowd_cpu_s),
        ledger: outcome.ledger,
        verdict,
        cpus,
        background,
    })
}
