//! The three scenarios and the CPU placements, and a `Stack`: the freshly started
//! servers (and shadowd) of one scenario run, stopped in order when the run ends, with what
//! production served, what the shadow received and shadowd's ledger.

use std::{path::Path, time::Duration};

use anyhow::Result;
use serde::Serialize;

use super::{
    cpustat::{self, CpuShare},
    metrics::Ledger,
    netns::Topology,
    nginx::{self, LogLine, Nginx},
    process::Proc,
    shadowd::Shadowd,
};

/// Where the production path runs: `Pinned` puts the client, production (and C's proxy) on
/// CPU 0, and shadowd, the shadow server and (for B's mirror output) the mirror peer's
/// receive processing (RPS) on CPU 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Placement {
    Pinned,
    Unpinned,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::Pinned => "pinned",
            Placement::Unpinned => "unpinned",
        }
    }

    /// The name in file names.
    pub fn slug(self) -> &'static str {
        self.name()
    }

    /// CPU of the client, production and C's proxy.
    pub fn production_cpu(self) -> Option<usize> {
        (self == Placement::Pinned).then_some(0)
    }

    /// CPU of shadowd and the shadow server.
    pub fn shadow_cpu(self) -> Option<usize> {
        (self == Placement::Pinned).then_some(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scenario {
    /// No shadowing.
    A,
    /// shadowd copies every request (weight 100), with its default ring buffer output.
    B,
    /// shadowd with `--capture-output mirror`: clones onto a mirror veth (throughput only,
    /// to show what the default output saves).
    BMirror,
    /// shadowd attached with a capture port nothing uses: the program runs on every packet
    /// and copies none (throughput only: the cost of being in the TC path at all).
    BIdle,
    /// B with the shadow's responses diffed with production's (`diff: true`).
    BDiff,
    /// B with `--replay-threads 2` (fixed rate only: what a second replay thread costs).
    BTwoThreads,
    /// A with CPU 1 kept busy (a spinning process), as B keeps it busy with shadowd and the
    /// shadow: a latency control that separates the program's cost on CPU 0 from what a busy
    /// CPU 1 does to CPU 0 on this VM.
    ABusy,
    /// An nginx proxy with `mirror` in the production path.
    C,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::A, Scenario::B, Scenario::C];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::A => "A",
            Scenario::B => "B",
            Scenario::BMirror => "B mirror",
            Scenario::BIdle => "B idle",
            Scenario::BDiff => "B diff",
            Scenario::BTwoThreads => "B, 2 replay threads",
            Scenario::ABusy => "A, CPU 1 busy",
            Scenario::C => "C",
        }
    }

    /// The name in file names.
    pub fn slug(self) -> &'static str {
        match self {
            Scenario::BMirror => "B-mirror",
            Scenario::BIdle => "B-idle",
            Scenario::BDiff => "B-diff",
            Scenario::BTwoThreads => "B-2-threads",
            Scenario::ABusy => "A-busy",
            other => other.name(),
        }
    }

    /// shadowd's `--capture-output`, for the scenarios that run it.
    pub fn capture_output(self) -> Option<&'static str> {
        match self {
            Scenario::B | Scenario::BIdle | Scenario::BDiff | Scenario::BTwoThreads => {
                Some("ringbuf")
            }
            Scenario::BMirror => Some("mirror"),
            Scenario::A | Scenario::ABusy | Scenario::C => None,
        }
    }

    /// shadowd's flags besides its output: none for B (production's endpoint captured, from
    /// its Mapping, as users run it); for B idle a capture port no traffic uses.
    pub fn shadowd_flags(self) -> &'static [&'static str] {
        match self {
            Scenario::BIdle => &["--capture-port", IDLE_CAPTURE_PORT],
            Scenario::BTwoThreads => &["--replay-threads", "2"],
            _ => &[],
        }
    }
}

const PRODUCTION_BEHIND_PROXY: &str = "127.0.0.1:8080";
/// B idle's capture port: nothing in the topology uses it.
pub const IDLE_CAPTURE_PORT: &str = "81";

/// What a finished run counted.
#[derive(Debug, Default)]
pub struct Outcome {
    pub production: Vec<LogLine>,
    pub shadow: Vec<LogLine>,
    /// shadowd's ledger at the end (B only).
    pub ledger: Option<Ledger>,
    /// shadowd's CPU seconds and copies since `begin`.
    pub shadowd_cpu_s: f64,
    pub copied_since_begin: u64,
    pub shadowd_hwm_kib: u64,
}

impl Outcome {
    /// Production responses other than 200 (C's proxy errors, aborted requests: 499).
    pub fn production_non_200(&self) -> usize {
        self.production.iter().filter(|l| l.status != 200).count()
    }
}

/// The servers of one run.
pub struct Stack<'t> {
    pub shadowd: Option<Shadowd<'t>>,
    /// A, CPU 1 busy: the spinning process.
    spinner: Option<Proc>,
    proxy: Option<Nginx>,
    production: Option<Nginx>,
    shadow: Option<Nginx>,
    /// (CPU seconds, copied) at `begin`.
    begin: (f64, u64),
    cpu_at_begin: Option<cpustat::Snapshot>,
    /// The RPS settings written, for the report.
    pub rps: Vec<String>,
    /// How busy the machine was, in % of both CPUs, with everything of this run started
    /// and idle: other work on the machine that the run competes with.
    pub background: f64,
}

impl<'t> Stack<'t> {
    /// Starts the shadow server, production, C's proxy and B's shadowd under `dir`.
    pub fn start(
        topology: &'t Topology,
        scenario: Scenario,
        placement: Placement,
        dir: &Path,
    ) -> Result<Stack<'t>> {
        Self::start_with_workers(topology, scenario, placement, dir, 1)
    }

    /// As `start`, with production's nginx running `production_workers` workers: for more
    /// client connections than one process may hold.
    pub fn start_with_workers(
        topology: &'t Topology,
        scenario: Scenario,
        placement: Placement,
        dir: &Path,
        production_workers: usize,
    ) -> Result<Stack<'t>> {
        let shadow_listen = format!("{}:80", Topology::SHADOW_ADDR);
        let front = format!("{}:80", Topology::PRODUCTION_ADDR);
        let shadow_dir = dir.join("shadow");
        nginx::origin_files(&shadow_dir)?;
        let shadow = Nginx::start(
            &topology.shadow,
            placement.shadow_cpu(),
            &shadow_dir,
            &nginx::origin(&shadow_dir, &shadow_listen, 1),
            &shadow_listen,
        )?;
        let production_listen = match scenario {
            Scenario::C => PRODUCTION_BEHIND_PROXY.to_string(),
            _ => front.clone(),
        };
        let production_dir = dir.join("production");
        nginx::origin_files(&production_dir)?;
        let production = Nginx::start(
            &topology.production,
            placement.production_cpu(),
            &production_dir,
            &nginx::origin(&production_dir, &production_listen, production_workers),
            &production_listen,
        )?;
        let proxy = match scenario {
            Scenario::C => {
                let proxy_dir = dir.join("proxy");
                Some(Nginx::start(
                    &topology.production,
                    placement.production_cpu(),
                    &proxy_dir,
                    &nginx::mirror_proxy(
                        &proxy_dir,
                        &front,
                        PRODUCTION_BEHIND_PROXY,
                        &shadow_listen,
                    ),
                    &front,
                )?)
            }
            _ => None,
        };
        let mut rps = Vec::new();
        let shadowd = match scenario.capture_output() {
            Some(output) => {
                let daemon = Shadowd::start(
                    &topology.production,
                    placement.shadow_cpu(),
                    (output, scenario.shadowd_flags()),
                    scenario == Scenario::BDiff,
                    &dir.join("shadowd"),
                )?;
                if output == "mirror" && placement == Placement::Pinned {
                    // CPU 1 only: mask 0b10.
                    rps = daemon.steer_mirror_rps("2")?;
                }
                Some(daemon)
            }
            None => None,
        };
        let spinner = match (scenario, placement.shadow_cpu()) {
            (Scenario::ABusy, Some(cpu)) => Some(Proc::spawn(
                "spinner",
                topology
                    .shadow
                    .command_on(Some(cpu), "sh")
                    .args(["-c", "while :; do :; done"]),
                &dir.join("spinner.log"),
                libc::SIGKILL,
            )?),
            _ => None,
        };
        let before = cpustat::snapshot();
        std::thread::sleep(Duration::from_millis(300));
        let background = cpustat::busy_percent(&before.until(&cpustat::snapshot()));
        Ok(Stack {
            shadowd,
            spinner,
            proxy,
            production: Some(production),
            shadow: Some(shadow),
            begin: (0.0, 0),
            cpu_at_begin: None,
            rps,
            background,
        })
    }

    /// Marks the start of the measured part (after a warm-up).
    pub fn begin(&mut self) -> Result<()> {
        if let Some(daemon) = &self.shadowd {
            self.begin = (daemon.cpu_seconds()?, daemon.ledger()?.replay.copied);
        }
        self.cpu_at_begin = Some(cpustat::snapshot());
        Ok(())
    }

    /// Where the machine's CPU time went since `begin` (call right after the load).
    pub fn cpu_shares(&self) -> Vec<CpuShare> {
        let now = cpustat::snapshot();
        self.cpu_at_begin
            .as_ref()
            .map(|then| then.until(&now))
            .unwrap_or_default()
    }

    /// Waits for shadowd to finish its copies, reads its figures, then stops everything
    /// (proxy, production, shadow, shadowd) and reads the access logs.
    pub fn finish(mut self) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        if let Some(daemon) = &self.shadowd {
            let mut ledger = daemon.settle(Duration::from_secs(20))?;
            if daemon.output == "mirror" {
                ledger.mirror_veth_dropped = daemon.mirror_veth_dropped()?;
            }
            daemon.save_metrics()?;
            outcome.shadowd_cpu_s = daemon.cpu_seconds()? - self.begin.0;
            outcome.copied_since_begin = ledger.replay.copied.saturating_sub(self.begin.1);
            outcome.shadowd_hwm_kib = daemon.hwm_kib()?;
            outcome.ledger = Some(ledger);
        }
        if let Some(proxy) = self.proxy.take() {
            proxy.stop()?;
        }
        if let Some(production) = self.production.take() {
            outcome.production = production.stop()?;
        }
        if let Some(shadow) = self.shadow.take() {
            outcome.shadow = shadow.stop()?;
        }
        if let Some(daemon) = self.shadowd.take() {
            daemon.stop();
        }
        if let Some(mut spinner) = self.spinner.take() {
            spinner.stop();
        }
        Ok(outcome)
    }
}
