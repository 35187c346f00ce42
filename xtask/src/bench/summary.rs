//! The summary rows of the report: every headline figure with its ratio to A.

use super::{
    fidelity::{Fidelity, ONE_REPLAY_THREAD, Run, TWO_REPLAY_THREADS},
    latency::LIGHT_SCENARIOS,
    load::RateResult,
    report::{Report, Row},
    scenario::{Placement, Scenario},
    throughput::Profile,
};

/// Picks one latency figure out of a run.
type Figure = fn(&RateResult) -> f64;

pub fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    Some(value? / base?).filter(|r| r.is_finite())
}

pub fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

impl Report {
    pub(super) fn summary_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        self.throughput_rows(&mut rows);
        self.latency_rows(&mut rows);
        self.fidelity_rows(&mut rows);
        self.footprint_rows(&mut rows);
        self.delay_rows(&mut rows);
        self.program_cost_rows(&mut rows);
        rows
    }

    /// The number of rounds each median is taken over.
    fn rounds(&self) -> usize {
        self.throughput
            .samples
            .iter()
            .map(|s| s.round)
            .max()
            .unwrap_or(0)
    }

    /// Throughput of every scenario, pinned and unpinned, and what the shadow received at
    /// saturation.
    fn throughput_rows(&self, rows: &mut Vec<Row>) {
        let rounds = self.rounds();
        for (placement, scenarios) in [
            (
                Placement::Pinned,
                &[
                    Scenario::A,
                    Scenario::B,
                    Scenario::BMirror,
                    Scenario::BIdle,
                    Scenario::C,
                ][..],
            ),
            (Placement::Unpinned, &Scenario::ALL[..]),
        ] {
            let base = self.throughput.median(placement, Scenario::A);
            for scenario in scenarios {
                let value = self.throughput.median(placement, *scenario);
                rows.push(Row {
                    scenario: scenario.name(),
                    figure: format!(
                        "throughput, {} (req/s, wrk, median of {rounds})",
                        placement.name()
                    ),
                    value: fmt(value, 0),
                    ratio_to_a: ratio(value, base),
                });
            }
        }
        let base = self
            .throughput
            .median_of(Profile::Large, Placement::Pinned, Scenario::A);
        for scenario in [Scenario::A, Scenario::B] {
            let value = self
                .throughput
                .median_of(Profile::Large, Placement::Pinned, scenario);
            rows.push(Row {
                scenario: scenario.name(),
                figure: format!(
                    "throughput, pinned, 64 KiB responses (req/s, wrk, median of {rounds})"
                ),
                value: fmt(value, 0),
                ratio_to_a: ratio(value, base),
            });
        }
        for scenario in [Scenario::B, Scenario::BMirror, Scenario::C] {
            let shares: Vec<f64> = self
                .throughput
                .samples
                .iter()
                .filter(|s| s.scenario == scenario && s.placement == Placement::Pinned)
                .filter(|s| s.profile == Profile::Small)
                .filter(|s| s.production_served > 0)
                .map(|s| s.shadow_received as f64 / s.production_served as f64 * 100.0)
                .collect();
            rows.push(Row {
                scenario: scenario.name(),
                figure: "shadow received / production served at saturation, pinned (%, worst)"
                    .into(),
                value: fmt(shares.into_iter().reduce(f64::min), 2),
                ratio_to_a: None,
            });
        }
    }

    /// The fixed-rate generator's saturation, then each latency percentile at each rate.
    fn latency_rows(&self, rows: &mut Vec<Row>) {
        let rounds = self.rounds();
        let figures: [(&str, Figure); 3] = [
            ("p50", |r| r.p50_ms),
            ("p99", |r| r.p99_ms),
            ("p99.9", |r| r.p99_9_ms),
        ];
        if let Some(first) = self.latency.first() {
            rows.push(Row {
                scenario: "A",
                figure: "saturation with the fixed-rate generator, pinned (req/s, oha closed loop; sets the latency rate)".into(),
                value: fmt(Some(first.oha_saturation), 0),
                ratio_to_a: None,
            });
        }
        for latency in &self.latency {
            for (name, figure) in figures {
                let base = latency.median(Scenario::A, figure);
                for scenario in LIGHT_SCENARIOS {
                    let value = latency.median(scenario, figure);
                    if value.is_none() && !Scenario::ALL.contains(&scenario) {
                        // A control, run at the light rate only.
                        continue;
                    }
                    rows.push(Row {
                        scenario: scenario.name(),
                        figure: format!(
                            "latency {name} at {} req/s, pinned (ms, oha, median of {rounds})",
                            latency.rate
                        ),
                        value: fmt(value, 3),
                        ratio_to_a: ratio(value, base),
                    });
                }
            }
        }
    }

    /// Each fidelity run, the highest rate with every request copied, CPU per copy and peak
    /// RSS.
    fn fidelity_rows(&self, rows: &mut Vec<Row>) {
        for run in self.fidelity.all() {
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "fidelity, {} at {} req/s (shadow / production)",
                    run.kind, run.rate
                ),
                value: format!(
                    "{:.2} % ({} / {}){}",
                    run.fidelity * 100.0,
                    run.shadow_received,
                    run.production_served,
                    if run.load_held() {
                        String::new()
                    } else {
                        format!(", offered only {:.0} req/s", run.load.achieved_rate)
                    }
                ),
                ratio_to_a: None,
            });
        }
        for (kind, runs) in [
            ("GET (pinned)", &self.fidelity.get),
            ("GET (unpinned)", &self.fidelity.get_unpinned),
            ("64 KiB POST (pinned)", &self.fidelity.post),
        ] {
            if runs.is_empty() {
                continue;
            }
            rows.push(Row {
                scenario: "B",
                figure: format!("highest {kind} rate with every request copied (req/s)"),
                value: Fidelity::highest_complete(runs).map_or("none".into(), |r| r.to_string()),
                ratio_to_a: None,
            });
        }
        for run in &self.fidelity.get {
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "shadowd CPU per 10,000 copies at {} req/s GET, pinned (CPU-s)",
                    run.rate
                ),
                value: fmt(run.cpu_s_per_10k, 3),
                ratio_to_a: None,
            });
        }
        let threads = &self.fidelity.replay_threads;
        let mut rates: Vec<u64> = threads.iter().map(|r| r.rate).collect();
        rates.sort_unstable();
        rates.dedup();
        for rate in rates {
            let cpu = |kind| {
                super::throughput::median(
                    threads
                        .iter()
                        .filter(|r| r.rate == rate && r.kind == kind)
                        .filter_map(|r| r.cpu_s_per_10k)
                        .collect(),
                )
            };
            let (one, two) = (cpu(ONE_REPLAY_THREAD), cpu(TWO_REPLAY_THREADS));
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "shadowd CPU per 10,000 copies at {rate} req/s GET, pinned, 1 / 2 replay threads, runs alternated (CPU-s, medians)"
                ),
                value: format!("{} / {}", fmt(one, 3), fmt(two, 3)),
                ratio_to_a: None,
            });
        }
        for run in &self.fidelity.diffed {
            rows.push(Row {
                scenario: "B diff",
                figure: format!(
                    "shadowd CPU per 10,000 diffed copies at {} req/s GET JSON, pinned (CPU-s)",
                    run.rate
                ),
                value: fmt(run.cpu_s_per_10k, 3),
                ratio_to_a: None,
            });
            rows.push(Row {
                scenario: "B diff",
                figure: format!(
                    "copies diffed at {} req/s (diffed / copied, not diffed)",
                    run.rate
                ),
                value: format!(
                    "{} / {}, {}",
                    run.ledger.diff_compared, run.ledger.replay.copied, run.ledger.diff_lost
                ),
                ratio_to_a: None,
            });
        }
        let headline_hwm = self
            .fidelity
            .get
            .iter()
            .filter(|r| r.rate <= 20_000)
            .map(|r| r.shadowd_hwm_kib)
            .max();
        rows.push(Row {
            scenario: "B",
            figure: "shadowd peak RSS, GET runs up to 20k req/s (VmHWM, MiB)".into(),
            value: fmt(headline_hwm.map(|k| k as f64 / 1024.0), 1),
            ratio_to_a: None,
        });
        if let Some(run) = self.peak_hwm() {
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "shadowd peak RSS over all fidelity runs (VmHWM, MiB; {} at {} req/s)",
                    run.kind, run.rate
                ),
                value: fmt(Some(run.shadowd_hwm_kib as f64 / 1024.0), 1),
                ratio_to_a: None,
            });
        }
    }

    /// shadowd at rest: memory with and without idle connections, CPU with no traffic.
    fn footprint_rows(&self, rows: &mut Vec<Row>) {
        rows.push(Row {
            scenario: "B",
            figure: format!(
                "shadowd RSS at rest / with {} idle keep-alive connections (MiB)",
                self.footprint.connections
            ),
            value: format!(
                "{:.1} / {:.1}",
                self.footprint.rss_at_rest_kib as f64 / 1024.0,
                self.footprint.rss_idle_connections_kib as f64 / 1024.0
            ),
            ratio_to_a: None,
        });
        rows.push(Row {
            scenario: "B",
            figure: "shadowd CPU with no traffic (% of one core)".into(),
            value: fmt(Some(self.footprint.idle_cpu_percent), 1),
            ratio_to_a: None,
        });
    }

    /// The TC program's time per packet and per request, copying and idle.
    fn program_cost_rows(&self, rows: &mut Vec<Row>) {
        for run in &self.program_cost {
            rows.push(Row {
                scenario: run.scenario,
                figure: format!(
                    "TC program time at {} req/s, pinned{}: per packet (ns) / per request (µs) (bpf_stats)",
                    run.rate,
                    run.profile.suffix()
                ),
                value: format!("{:.0} / {:.2}", run.ns_per_packet(), run.us_per_request()),
                ratio_to_a: None,
            });
        }
    }

    /// How long after production a copy reaches the shadow, warm and fresh.
    fn delay_rows(&self, rows: &mut Vec<Row>) {
        for run in &self.delay {
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "copy delay at {} req/s, p50 / p99 / p99.9 (ms, wire, after the first 200 ms)",
                    run.rate
                ),
                value: format!(
                    "{:.3} / {:.3} / {:.3}",
                    run.wire.p50_ms, run.wire.p99_ms, run.wire.p99_9_ms
                ),
                ratio_to_a: None,
            });
            rows.push(Row {
                scenario: "B",
                figure: format!(
                    "copy delay at {} req/s, first 200 ms of a fresh shadowd, p50 / max (ms)",
                    run.rate
                ),
                value: format!("{:.3} / {:.3}", run.wire_cold.p50_ms, run.wire_cold.max_ms),
                ratio_to_a: None,
            });
        }
    }

    /// The largest VmHWM of the fidelity runs, and the run.
    pub(super) fn peak_hwm(&self) -> Option<&Run> {
        self.fidelity.all().max_by_key(|r| r.shadowd_hwm_kib)
    }
}
