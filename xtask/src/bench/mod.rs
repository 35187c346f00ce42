//! `cargo xtask bench`: the end-to-end benchmark. Client, production and shadow run in
//! their own network namespaces; scenarios A (no shadowing), B (shadowd) and C (nginx
//! `mirror`) alternate on freshly started servers, pinned to CPUs and not; the report goes
//! to stdout, `target/bench/report.md` and `target/bench/report.json`. `--micro` runs the
//! criterion benchmarks of the capture pipeline instead.

mod clients;
mod commands;
mod cpustat;
mod delay;
mod fidelity;
mod figures;
mod footprint;
mod latency;
mod load;
mod metrics;
mod netns;
mod nginx;
mod pcap;
mod plan;
mod process;
mod program_cost;
mod render;
mod report;
mod scenario;
mod shadowd;
mod shapes;
mod signals;
mod summary;
mod targets;
mod throughput;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::{setup, test};
pub use clients::{OpenConnectionsArgs, serve as open_connections};
use commands::Commands;
use netns::Topology;
use plan::Plan;

/// Debian packages the bench runs (nginx's `mirror` and `stub_status` are built in).
const DEBIAN_PACKAGES: &[&str] = &[
    "nginx",
    "wrk",
    "tcpdump",
    "iproute2",
    "util-linux",
    "bpftool",
];
/// The fixed-rate load generator, from crates.io.
const OHA_VERSION: &str = "1.16.0";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A short run (under 3 minutes): one round, short loads, the three headline rates.
    #[arg(long)]
    quick: bool,
    /// Only the criterion micro-benchmarks (reassembly and HTTP parsing, one core; the TC
    /// program's cost per packet, as root).
    #[arg(long, conflicts_with = "quick")]
    micro: bool,
    /// Only the traffic shapes (connection churn, many open connections, uploads), printed
    /// and written to `target/bench/shapes.json`; with `--quick`, their short versions.
    #[arg(long, conflicts_with = "micro")]
    shapes: bool,
}

/// What every phase shares: the topology, a directory per run, the commands run.
pub struct Bench {
    pub topology: Topology,
    pub plan: Plan,
    pub commands: Commands,
    work: PathBuf,
    runs: usize,
}

impl Bench {
    /// A fresh directory for the next run's servers and logs, named after it.
    pub fn run_dir(&mut self, label: &str) -> Result<PathBuf> {
        self.runs += 1;
        let dir = self.work.join(format!("{:03}-{label}", self.runs));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    setup::run()?;
    if args.micro {
        test::status(test::cargo().args([
            "bench",
            "--package",
            "shadow-wire",
            "--bench",
            "pipeline",
            "--bench",
            "adversarial",
        ]))?;
        test::status(test::cargo().args(["bench", "--package", "shadow-diff"]))?;
        // Loads the TC program: measures as root, says it skipped otherwise.
        return test::status(test::cargo().args([
            "bench",
            "--package",
            "shadow-user",
            "--bench",
            "classifier",
        ]));
    }
    if !test::is_root() {
        bail!("cargo xtask bench needs root: it creates namespaces and loads BPF programs");
    }
    setup::install_debian(DEBIAN_PACKAGES)?;
    setup::install_cargo_tool("oha", OHA_VERSION, &["oha", "--version"])?;
    test::status(test::cargo().args([
        "build",
        "--release",
        "--package",
        "shadow-user",
        "--bin",
        "shadowd",
    ]))?;

    signals::install();
    process::raise_fd_limit()?;
    for name in netns::remove_stale() {
        println!("bench: removed namespace {name} left by an earlier run");
    }
    let out = setup::workspace_root().join("target/bench");
    let work = out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {work:?}"))?;
    }
    std::fs::create_dir_all(&work)?;

    let plan = Plan::new(args.quick);
    println!(
        "bench: {} run, about {} s of load",
        plan.name,
        plan.load_seconds()
    );
    let started = std::time::Instant::now();
    let load_at_start = report::load_average();
    let mut bench = Bench {
        topology: Topology::new(),
        plan,
        commands: Commands::default(),
        work,
        runs: 0,
    };
    if args.shapes {
        let shapes = shapes::run(&mut bench)?;
        drop(bench);
        std::fs::write(
            out.join("shapes.json"),
            serde_json::to_string_pretty(&shapes)?,
        )?;
        println!("bench: wrote {}", out.join("shapes.json").display());
        return Ok(());
    }
    let throughput = throughput::run(&mut bench)?;
    let latency = latency::run(&mut bench, &throughput)?;
    let fidelity = fidelity::run(&mut bench)?;
    let footprint = footprint::run(&mut bench)?;
    let delay = delay::run(&mut bench)?;
    let shapes = shapes::run(&mut bench)?;
    let program_cost = program_cost::run(&mut bench)?;
    let report = report::Report::new(
        &bench,
        load_at_start,
        throughput,
        latency,
        fidelity,
        footprint,
        delay,
        shapes,
        program_cost,
        started.elapsed(),
    )?;
    drop(bench);
    print!("{}", report.table());
    std::fs::write(out.join("report.md"), report.markdown())?;
    std::fs::write(out.join("report.json"), report.json()?)?;
    std::fs::write(out.join("throughput.svg"), report.throughput_figure())?;
    std::fs::write(out.join("latency.svg"), report.latency_figure())?;
    println!(
        "bench: wrote {} and {} (logs of every run under {})",
        out.join("report.md").display(),
        out.join("report.json").display(),
        out.join("work").display()
    );
    Ok(())
}
