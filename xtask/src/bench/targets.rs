//! Where the bench stands against the targets, and what it saw go wrong: losses,
//! ledger gaps, errors, load that could not be offered.

use super::{
    fidelity::Run,
    latency::LIGHT_RATE,
    report::{Report, Target},
    scenario::{Placement, Scenario},
    summary::{fmt, ratio},
    throughput::Profile,
};

/// Busy share of the machine, before a run's load, above which the run is flagged.
const BACKGROUND_LIMIT: f64 = 10.0;

impl Target {
    /// `value` (3 decimals), met when at least `limit`.
    fn at_least(target: &'static str, value: Option<f64>, limit: f64) -> Target {
        Target {
            target,
            measured: fmt(value, 3),
            met: value.map(|v| v >= limit),
        }
    }

    /// `value` (3 decimals), met when at most `limit`.
    fn at_most(target: &'static str, value: Option<f64>, limit: f64) -> Target {
        Target {
            target,
            measured: fmt(value, 3),
            met: value.map(|v| v <= limit),
        }
    }
}

impl Report {
    pub(super) fn target_rows(&self) -> Vec<Target> {
        let pinned = |s| self.throughput.median(Placement::Pinned, s);
        let tp = ratio(pinned(Scenario::B), pinned(Scenario::A));
        let idle = ratio(pinned(Scenario::BIdle), pinned(Scenario::A));
        let large = |s| {
            self.throughput
                .median_of(Profile::Large, Placement::Pinned, s)
        };
        let large_tp = ratio(large(Scenario::B), large(Scenario::A));
        let p99 = |s| self.latency.first()?.median(s, |r| r.p99_ms);
        let p99_ratio = ratio(p99(Scenario::B), p99(Scenario::A));
        let light = self.latency.iter().find(|l| l.rate == LIGHT_RATE);
        let light_p99 = |s| light?.median(s, |r| r.p99_ms);
        let light_ratio = ratio(light_p99(Scenario::B), light_p99(Scenario::A));
        let light_p99_9 = |s| light?.median(s, |r| r.p99_9_ms);
        let light_tail = ratio(light_p99_9(Scenario::B), light_p99_9(Scenario::A));
        let headline: Vec<&Run> = self
            .fidelity
            .get
            .iter()
            .filter(|r| [5_000, 10_000, 20_000].contains(&r.rate))
            .collect();
        let cpu_at = |rate| {
            headline
                .iter()
                .find(|r| r.rate == rate)
                .and_then(|r| r.cpu_s_per_10k)
        };
        let (cpu_5k, cpu_20k) = (cpu_at(5_000), cpu_at(20_000));
        let idle_mib = self.footprint.rss_idle_connections_kib as f64 / 1024.0;
        let delay_worst = self.delay.iter().map(|r| r.wire.p99_ms).reduce(f64::max);
        let shapes = &self.shapes;
        let concurrent_mib = shapes.concurrent.rss_kib as f64 / 1024.0;
        let (many, large) = (&shapes.uploads[0], &shapes.uploads[1]);
        let many_mib = many.copies.shadowd_hwm_kib as f64 / 1024.0;
        vec![
            Target::at_least("throughput B/A pinned >= 0.97", tp, 0.97),
            Target::at_least("throughput B idle/A pinned >= 0.99", idle, 0.99),
            Target::at_least(
                "throughput B/A pinned, 64 KiB responses >= 0.98",
                large_tp,
                0.98,
            ),
            Target::at_most(
                "latency p99 B/A <= 1.10 (at half of A's saturation)",
                p99_ratio,
                1.10,
            ),
            Target::at_most("latency p99 B/A <= 1.05 at 5k req/s", light_ratio, 1.05),
            Target::at_most("latency p99.9 B/A <= 1.25 at 5k req/s", light_tail, 1.25),
            Target {
                target: "fidelity 100.00 % at 5k / 10k / 20k req/s",
                measured: headline
                    .iter()
                    .map(|r| format!("{:.2} %", r.fidelity * 100.0))
                    .collect::<Vec<_>>()
                    .join(" / "),
                met: Some(headline.len() == 3 && headline.iter().all(|r| r.complete())),
            },
            Target::at_most(
                "shadowd CPU per 10k copies <= 0.10 CPU-s at 5k req/s",
                cpu_5k,
                0.10,
            ),
            Target::at_most(
                "shadowd CPU per 10k copies <= 0.06 CPU-s at 20k req/s",
                cpu_20k,
                0.06,
            ),
            Target {
                target: "RSS with 1000 idle connections <= 64 MiB",
                measured: format!("{idle_mib:.1} MiB"),
                met: Some(idle_mib <= 64.0),
            },
            Target::at_most("copy delay p99 <= 2 ms (worst rate)", delay_worst, 2.0),
            Target {
                target: "fidelity 100.00 % with a connection per request at 5k / 10k / 20k conn/s",
                measured: shapes
                    .churn
                    .iter()
                    .map(|r| format!("{:.2} % at {}", r.fidelity * 100.0, r.rate))
                    .collect::<Vec<_>>()
                    .join(" / "),
                met: Some(!shapes.churn.is_empty() && shapes.churn.iter().all(Run::complete)),
            },
            Target {
                target: "every copy of 50,000 open connections, shadowd RSS < 200 MiB",
                measured: format!(
                    "{} connections: {:.2} %, {concurrent_mib:.1} MiB",
                    shapes.concurrent.connections,
                    shapes.concurrent.copies.fidelity * 100.0
                ),
                met: Some(
                    shapes.concurrent.copies.shortfall == 0
                        && shapes.concurrent.copies.production_served > 0
                        && concurrent_mib < 200.0,
                ),
            },
            Target {
                target: "200 concurrent 8 MiB uploads byte-exact, shadowd VmHWM < 256 MiB",
                measured: format!(
                    "{} of {} byte-exact at the shadow, {many_mib:.1} MiB",
                    many.shadow_exact, many.count
                ),
                met: Some(many.complete() && many_mib < 256.0),
            },
            Target {
                target: "one 1 GiB upload copied whole and byte-exact",
                measured: format!(
                    "{:.0} MiB: {} at the shadow, VmHWM {:.1} MiB",
                    large.bytes_each as f64 / (1 << 20) as f64,
                    if large.complete() {
                        "byte-exact"
                    } else {
                        "not whole"
                    },
                    large.copies.shadowd_hwm_kib as f64 / 1024.0
                ),
                met: Some(large.complete()),
            },
        ]
    }

    pub(super) fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.throughput_findings(&mut out);
        self.latency_findings(&mut out);
        self.fidelity_findings(&mut out);
        self.delay_findings(&mut out);
        self.disturbed_findings(&mut out);
        out
    }

    /// Throughput rounds with wrk errors, or whose shadow missed copies at saturation.
    fn throughput_findings(&self, out: &mut Vec<String>) {
        for s in &self.throughput.samples {
            if s.wrk.errors > 0 {
                out.push(format!(
                    "throughput round {} {}{} {}: wrk counted {} errors",
                    s.round,
                    s.placement.name(),
                    s.profile.suffix(),
                    s.scenario.name(),
                    s.wrk.errors
                ));
            }
            // A copies nothing, nor does B idle, by design.
            if !matches!(s.scenario, Scenario::A | Scenario::BIdle)
                && s.shadow_received != s.production_served
            {
                out.push(format!(
                    "throughput round {} {}{} {}: shadow received {} of {} at saturation{}",
                    s.round,
                    s.placement.name(),
                    s.profile.suffix(),
                    s.scenario.name(),
                    s.shadow_received,
                    s.production_served,
                    s.ledger
                        .as_ref()
                        .map(|l| format!(" — {}", l.describe()))
                        .unwrap_or_default()
                ));
            }
        }
    }

    /// Latency rounds with errors, or that could not offer their rate.
    fn latency_findings(&self, out: &mut Vec<String>) {
        for s in self.latency.iter().flat_map(|l| &l.samples) {
            let r = &s.result;
            if r.errors + r.non_200 > 0 || r.achieved_rate < 0.95 * r.target_rate as f64 {
                out.push(format!(
                    "latency round {} {}: {} errors, {} non-200, achieved {:.0} of {} req/s",
                    s.round,
                    s.scenario.name(),
                    r.errors,
                    r.non_200,
                    r.achieved_rate,
                    r.target_rate
                ));
            }
        }
    }

    /// Fidelity runs and uploads that did not copy everything whole.
    fn fidelity_findings(&self, out: &mut Vec<String>) {
        let runs = self.fidelity.all();
        for run in runs
            .chain(std::iter::once(&self.footprint.copies))
            .chain(self.shapes.runs())
        {
            if run.verdict != "complete" || run.short_copies > 0 || run.load.errors > 0 {
                out.push(format!(
                    "fidelity {} at {} req/s: {}; {}{}{}",
                    run.kind,
                    run.rate,
                    run.verdict,
                    run.ledger.describe(),
                    if run.short_copies > 0 {
                        format!("; {} copies shorter than the body", run.short_copies)
                    } else {
                        String::new()
                    },
                    if run.load.errors > 0 {
                        format!("; oha counted {} errors", run.load.errors)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        for upload in &self.shapes.uploads {
            if !upload.complete() {
                out.push(format!(
                    "{}: of {} uploads, {} byte-exact at production and {} at the shadow",
                    upload.kind, upload.count, upload.production_exact, upload.shadow_exact
                ));
            }
        }
    }

    /// Copy-delay runs whose captures dropped packets or could not match every request.
    fn delay_findings(&self, out: &mut Vec<String>) {
        for run in &self.delay {
            for capture in &run.tcpdump {
                if !capture.contains(" 0 packets dropped") {
                    out.push(format!(
                        "copy delay at {} req/s: tcpdump {capture}",
                        run.rate
                    ));
                }
            }
            if run.wire.matched + run.wire_cold.matched < run.production_requests {
                out.push(format!(
                    "copy delay at {} req/s: {} of {} requests matched at both ends; {}",
                    run.rate,
                    run.wire.matched + run.wire_cold.matched,
                    run.production_requests,
                    run.ledger.describe()
                ));
            }
        }
    }

    /// Runs that started with the machine busy with other work.
    fn disturbed_findings(&self, out: &mut Vec<String>) {
        let mut disturbed = Vec::new();
        for s in &self.throughput.samples {
            disturbed.push((
                format!(
                    "throughput {} {}{} {}",
                    s.round,
                    s.placement.name(),
                    s.profile.suffix(),
                    s.scenario.name()
                ),
                s.background,
            ));
        }
        for l in &self.latency {
            for s in &l.samples {
                disturbed.push((
                    format!("latency {} {} at {}", s.round, s.scenario.name(), l.rate),
                    s.background,
                ));
            }
        }
        for r in self
            .fidelity
            .all()
            .chain(std::iter::once(&self.footprint.copies))
        {
            disturbed.push((format!("fidelity {} at {}", r.kind, r.rate), r.background));
        }
        for r in &self.delay {
            disturbed.push((format!("copy delay at {}", r.rate), r.background));
        }
        let total = disturbed.len();
        disturbed.retain(|(_, busy)| *busy > BACKGROUND_LIMIT);
        if !disturbed.is_empty() {
            out.push(format!(
                "{} of {total} runs started with the machine more than {BACKGROUND_LIMIT:.0} % busy with other work (their figures are disturbed): {}",
                disturbed.len(),
                disturbed
                    .iter()
                    .map(|(what, busy)| format!("{what} ({busy:.0} %)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}
