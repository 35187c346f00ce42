//! The report as text: the stdout table, `report.md` and `report.json`.

use std::fmt::Write as _;

use anyhow::Result;

use super::{
    cpustat,
    report::{Report, Row},
};

fn ratio(row: &Row) -> String {
    row.ratio_to_a.map_or(String::new(), |r| format!("{r:.3}"))
}

impl Report {
    /// The summary and the targets, aligned for a terminal.
    pub fn table(&self) -> String {
        let header = ["scenario", "figure", "value", "ratio to A"];
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.to_string(),
                    r.figure.clone(),
                    r.value.clone(),
                    ratio(r),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 4]| {
            format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}\n",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            )
        };
        let mut out = String::from("\n");
        out.push_str(&line(header));
        out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 6));
        out.push('\n');
        for row in &cells {
            out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
        }
        out.push_str("\ntargets:\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "  {:<4} {:<55} {}",
                match t.met {
                    Some(true) => "met",
                    Some(false) => "MISS",
                    None => "?",
                },
                t.target,
                t.measured
            );
        }
        if !self.findings.is_empty() {
            out.push_str("\nfindings:\n");
            for f in &self.findings {
                let _ = writeln!(out, "  - {f}");
            }
        }
        let _ = writeln!(
            out,
            "\nmachine: {} cores, {}, kernel {}; load average {} at start, {} at end; {} s\n",
            self.machine.cores,
            self.machine.cpu,
            self.machine.kernel,
            self.machine.load_average_at_start,
            self.machine.load_average_at_end,
            self.duration_s
        );
        out
    }

    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# shadowd end-to-end benchmark\n");
        let _ = writeln!(
            md,
            "{} · {} run, {} s · {} cores ({}), {}, kernel {}, {} · load average {} at start, {} at end\n",
            self.date,
            if self.plan.contains("\"quick\"") {
                "quick"
            } else {
                "full"
            },
            self.duration_s,
            m.cores,
            m.cpu,
            m.os,
            m.kernel,
            m.memory
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" "),
            m.load_average_at_start,
            m.load_average_at_end
        );
        for (tool, version) in &self.versions {
            let _ = writeln!(md, "- {tool}: {version}");
        }
        md.push_str(TOPOLOGY);
        md.push_str(HOW_TO_RUN);
        md.push_str("\n![throughput](throughput.svg)\n\n![latency](latency.svg)\n");
        md.push_str(
            "\n## Summary\n\n| scenario | figure | value | ratio to A |\n|---|---|---:|---:|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                r.scenario,
                r.figure,
                r.value,
                ratio(r)
            );
        }
        md.push_str("\n## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "?",
            };
            let _ = writeln!(md, "| {} | {} | {met} |", t.target, t.measured);
        }
        md.push_str("\n## Findings\n\n");
        if self.findings.is_empty() {
            md.push_str("Nothing lost, no errors.\n");
        }
        for f in &self.findings {
            let _ = writeln!(md, "- {f}");
        }
        self.details(&mut md);
        md.push_str("\n## nginx and shadowd settings\n\n");
        for s in &self.nginx_settings {
            let _ = writeln!(md, "- {s}");
        }
        md.push_str("\n## Commands (one of each kind, as run)\n\n");
        for (kind, cmd) in &self.commands {
            let _ = writeln!(md, "- {kind}:\n  `{cmd}`");
        }
        md
    }

    fn details(&self, md: &mut String) {
        self.throughput_details(md);
        self.latency_details(md);
        self.fidelity_details(md);
        self.footprint_details(md);
        self.shapes_details(md);
        self.delay_details(md);
    }

    /// The saturated throughput runs, every round.
    fn throughput_details(&self, md: &mut String) {
        md.push_str("\n## Every run\n\n### Saturated throughput (wrk)\n\nCPUs: the whole machine's time during the load (us user, sy system, si softirq and irq, id idle, in %; IPIs received per second).\n\n| round | placement | scenario | req/s | errors | production non-200 | production served | shadow received | shadowd CPU-s | verdict | ledger | CPUs |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|\n");
        for s in &self.throughput.samples {
            let _ = writeln!(
                md,
                "| {} | {}{} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {}; {:.0} % busy before the load |",
                s.round,
                s.placement.name(),
                s.profile.suffix(),
                s.scenario.name(),
                s.wrk.requests_per_sec,
                s.wrk.errors,
                s.production_non_200,
                s.production_served,
                s.shadow_received,
                s.shadowd_cpu_s.map_or(String::new(), |c| format!("{c:.2}")),
                s.verdict.as_deref().unwrap_or_default(),
                s.ledger.as_ref().map_or(String::new(), |l| l.describe()),
                cpustat::describe(&s.cpus),
                s.background
            );
        }
        let _ = writeln!(
            md,
            "\nRPS of the mirror peer (pinned B mirror runs): {}\n",
            self.throughput.rps_settings.join(", ")
        );
    }

    /// The fixed-rate latency runs, every round at every rate.
    fn latency_details(&self, md: &mut String) {
        for latency in &self.latency {
            let _ = writeln!(
                md,
                "### Latency at {} req/s ({}), pinned (oha, latency from when each request was due)\n\n| round | scenario | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | non-200 | CPUs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
                latency.rate, latency.why
            );
            for s in &latency.samples {
                let r = &s.result;
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {}; {:.0} % busy before the load |",
                    s.round,
                    s.scenario.name(),
                    r.achieved_rate,
                    r.p50_ms,
                    r.p99_ms,
                    r.p99_9_ms,
                    r.max_ms,
                    r.errors,
                    r.non_200,
                    cpustat::describe(&s.cpus),
                    s.background
                );
            }
            md.push('\n');
        }
    }

    /// Every fidelity run (the shapes' and the idle connections' among them).
    fn fidelity_details(&self, md: &mut String) {
        md.push_str("\n### Fidelity of B (oha at fixed rates; fresh servers and shadowd per rate; pinned unless the kind says otherwise)\n\n| kind | rate | achieved | production | shadow | fidelity | shortfall | counted by shadowd | verdict | CPU-s per 10k | VmHWM MiB | ledger | CPUs |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|\n");
        let runs = self.fidelity.all();
        for r in runs
            .chain(std::iter::once(&self.footprint.copies))
            .chain(self.shapes.runs())
        {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {} | {} | {:.4} % | {} | {} | {} | {} | {:.1} | {} | {}; {:.0} % busy before the load |",
                r.kind,
                r.rate,
                r.load.achieved_rate,
                r.production_served,
                r.shadow_received,
                r.fidelity * 100.0,
                r.shortfall,
                r.counted,
                r.verdict,
                r.cpu_s_per_10k.map_or("-".into(), |c| format!("{c:.3}")),
                r.shadowd_hwm_kib as f64 / 1024.0,
                r.ledger.describe(),
                cpustat::describe(&r.cpus),
                r.background
            );
        }
        let _ = writeln!(
            md,
            "\nGET sweep (pinned) ended: {}. GET sweep (unpinned) ended: {}. POST sweep ended: {}.",
            self.fidelity.get_end, self.fidelity.get_unpinned_end, self.fidelity.post_end
        );
    }

    /// shadowd's memory and idle cost.
    fn footprint_details(&self, md: &mut String) {
        let f = &self.footprint;
        let _ = writeln!(
            md,
            "\n### Memory and idle cost\n\nshadowd VmRSS {:.1} MiB at rest ({:.1} % of a core with no traffic), {:.1} MiB with {} idle keep-alive client connections open ({} flows in its table); VmHWM {:.1} MiB. The copies of those connections' requests are in the fidelity table (\"1,000 idle connections\").",
            f.rss_at_rest_kib as f64 / 1024.0,
            f.idle_cpu_percent,
            f.rss_idle_connections_kib as f64 / 1024.0,
            f.connections,
            f.flows_tracked,
            f.hwm_kib as f64 / 1024.0
        );
    }

    /// The traffic shapes: open connections, and the uploads compared byte for byte.
    fn shapes_details(&self, md: &mut String) {
        let c = &self.shapes.concurrent;
        let _ = writeln!(
            md,
            "\n### Traffic shapes\n\nIn the fidelity table: GETs with a connection per request (`oha --disable-keepalive`), {} client connections opened by {} client processes to production's nginx with {} workers (a process may hold only as many as the open-file limit) and all held open while each sent {} requests ({} a second in all; {:.1} s in all; shadowd VmRSS {:.1} MiB with them open, {} flows in its table), and the uploads below (`PUT`, Content-Length, each paced evenly; production and shadow store them, and each stored file is compared byte for byte with what the client sent).\n\n| uploads | size each | paced over | production byte-exact | shadow byte-exact | shadowd VmHWM MiB | verdict |\n|---|---:|---:|---:|---:|---:|---|",
            c.connections,
            c.client_processes,
            c.production_workers,
            c.rounds,
            c.rate,
            c.seconds,
            c.rss_kib as f64 / 1024.0,
            c.flows_tracked,
        );
        for u in &self.shapes.uploads {
            let _ = writeln!(
                md,
                "| {} × {} | {:.0} MiB | {:.1} s | {} | {} | {:.1} | {} |",
                u.count,
                u.kind,
                u.bytes_each as f64 / (1 << 20) as f64,
                u.seconds,
                u.production_exact,
                u.shadow_exact,
                u.copies.shadowd_hwm_kib as f64 / 1024.0,
                u.copies.verdict
            );
        }
    }

    /// How long each copy took to reach the shadow.
    fn delay_details(&self, md: &mut String) {
        md.push_str("\n### Copy delay (production receives → shadow receives the copy)\n\n| rate | achieved | requests | matched | wire p50 ms | p99 | p99.9 | max | first 200 ms: matched, p50, max | nginx $msec p50 ms | p99 | tcpdump |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n");
        for r in &self.delay {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {}, {:.3}, {:.3} | {:.0} | {:.0} | {} |",
                r.rate,
                r.load.achieved_rate,
                r.production_requests,
                r.wire.matched,
                r.wire.p50_ms,
                r.wire.p99_ms,
                r.wire.p99_9_ms,
                r.wire.max_ms,
                r.wire_cold.matched,
                r.wire_cold.p50_ms,
                r.wire_cold.max_ms,
                r.logged.p50_ms,
                r.logged.p99_ms,
                r.tcpdump.join("; ")
            );
        }
        md.push_str("\nWire times are the kernel's receive timestamps of the request line (tcpdump on `srv0` in production's namespace and on `shd1` in the shadow's), matched by a unique random path per request; the first 200 ms of load (a freshly started shadowd resolving the shadow and opening its connections) are reported apart. nginx `$msec` has millisecond resolution and is taken when the request is logged.\n");
    }
}

const HOW_TO_RUN: &str = "
## How to run

As root: `cargo xtask bench` (the full run, about 15 minutes), `cargo xtask bench --quick`
(under 3 minutes: one round, short loads, the 5k/10k/20k rates), `cargo xtask bench --micro`
(the criterion benchmarks of reassembly and HTTP parsing, and of the TC program per packet). It installs what is missing (nginx,
wrk, tcpdump from Debian; oha from crates.io), builds `target/release/shadowd`, and leaves the
logs, nginx configurations and shadowd's final `/metrics` of every run under
`target/bench/work/`.
";

const TOPOLOGY: &str = "
## Set-up

Three network namespaces: the client (`cli0`, 198.18.0.1) reaches production (`srv0`,
198.18.0.2:80, the interface shadowd watches) over a veth; production reaches the shadow
(`shd1`, 198.18.1.2:80) over another. Production and shadow are nginx answering 1 KiB over
keep-alive. Scenarios, each on freshly started servers, alternated A B C A B C …:

- **A** — baseline, no shadowing.
- **B** — shadowd attached to `srv0`, copying every request (shadow Mapping weight 100),
  with its default output: the TC program copies packets into a BPF ring buffer.
- **B mirror** (saturated throughput, pinned, only) — the same with `--capture-output
  mirror`: the TC program clones packets onto the `shadow0` veth, read with an AF_PACKET ring.
- **B idle** (saturated throughput, pinned, only) — shadowd attached with `--capture-port
  81`, which nothing uses: the program runs on every production packet and copies none,
  which is what being in the TC path costs by itself.
- **C** — an nginx proxy with `mirror /mirror;` in front of production, mirroring to the
  shadow (through a loopback hop in the same nginx, see the settings below).

**Pinned**: client, production and C's proxy on CPU 0 (`taskset -c 0`); shadowd and the
shadow nginx on CPU 1; for B mirror, also the mirror peer's receive processing (RPS mask `2`
on every `/sys/class/net/shadow0-peer/queues/rx-*/rps_cpus` in shadowd's namespace), so that
only the TC program and the clone itself run on the production CPU.
**Unpinned**: no `taskset`, no RPS.

Load: `wrk -t2 -c64` for saturated throughput (closed loop, as fast as production answers);
`oha -q RATE -c64 --latency-correction` for fixed rates (open loop; latency counted from when
each request was due, so stalls are not hidden). Counts come from the production and shadow
nginx access logs; the loss ledger from shadowd's `/metrics`.
";
