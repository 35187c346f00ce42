//! shadowd under test: the release binary started in the production namespace on the
//! production interface, with a Mapping file that copies every request (weight 100) to the
//! shadow; its metrics, CPU time and memory; receive steering for its mirror veth.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    metrics::{Ledger, Scrape},
    netns::{Netns, Topology},
    process::{self, Proc},
    signals,
};

/// The shadow Mapping whose ledger the bench reads.
pub const SHADOW_MAPPING: &str = "bench-shadow";
const ADMIN: &str = "127.0.0.1:8877";
/// How long settling waits for bytes held out of order to be given up.
const HOLE_GRACE: Duration = Duration::from_secs(3);

/// Production and shadow Mappings for every path; with `diff`, the shadow's responses are
/// diffed with production's.
pub fn mappings(diff: bool) -> String {
    format!(
        "apiVersion: ambassador/v0
kind: Mapping
name: bench-production
prefix: /
service: {}
---
apiVersion: ambassador/v0
kind: Mapping
name: {SHADOW_MAPPING}
prefix: /
service: {}
shadow: true
weight: 100
{}",
        Topology::PRODUCTION_NAME,
        Topology::SHADOW_NAME,
        if diff { "diff: true\n" } else { "" }
    )
}

/// The binary `cargo xtask bench` builds.
pub fn binary() -> PathBuf {
    super::super::setup::workspace_root().join("target/release/shadowd")
}

/// A running `shadowd run`.
pub struct Shadowd<'ns> {
    ns: &'ns Netns,
    proc: Proc,
    pub log: PathBuf,
    /// `--capture-output`: `ringbuf` or `mirror`.
    pub output: &'static str,
}

impl<'ns> Shadowd<'ns> {
    /// Starts shadowd in `ns` on `cpu` (if given) with `--capture-output output` and `flags`,
    /// diffing responses if `diff`, and waits for `/readyz`.
    pub fn start(
        ns: &'ns Netns,
        cpu: Option<usize>,
        (output, flags): (&'static str, &[&str]),
        diff: bool,
        dir: &Path,
    ) -> Result<Shadowd<'ns>> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("mappings.yaml");
        std::fs::write(&config, mappings(diff))?;
        let log = dir.join("shadowd.log");
        let binary = binary();
        let proc = Proc::spawn(
            "shadowd",
            ns.command_on(cpu, binary.to_str().context("utf-8 path")?)
                .args(["run", "--interface", Topology::PRODUCTION_IF])
                .args(flags)
                .args(["--capture-output", output, "--config"])
                .arg(&config)
                .env("RUST_LOG", "info"),
            &log,
            libc::SIGTERM,
        )?;
        let mut daemon = Shadowd {
            ns,
            proc,
            log,
            output,
        };
        signals::wait_for(Duration::from_secs(30), "shadowd /readyz", || {
            if daemon.proc.exited().is_some() {
                return Some(false);
            }
            (ns.http_get(ADMIN, "/readyz").map(|(code, _)| code) == Some(200)).then_some(true)
        })
        .and_then(|ready| {
            if ready {
                Ok(())
            } else {
                bail!("shadowd exited:\n{}", daemon.log_text())
            }
        })?;
        Ok(daemon)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn scrape(&self) -> Result<Scrape> {
        match self.ns.http_get(ADMIN, "/metrics") {
            Some((200, body)) => Ok(Scrape::parse(&body)),
            other => bail!("shadowd /metrics: {other:?}"),
        }
    }

    /// Saves the current `/metrics` text beside the log (the evidence behind a ledger).
    pub fn save_metrics(&self) -> Result<()> {
        match self.ns.http_get(ADMIN, "/metrics") {
            Some((200, body)) => Ok(std::fs::write(
                self.log.with_file_name("metrics.txt"),
                body,
            )?),
            other => bail!("shadowd /metrics: {other:?}"),
        }
    }

    pub fn ledger(&self) -> Result<Ledger> {
        Ok(Ledger::from_scrape(
            &self.scrape()?,
            SHADOW_MAPPING,
            self.output,
        ))
    }

    /// Waits (up to `timeout`) until nothing is in flight and the observed count holds
    /// still for 250 ms: every request seen has ended one way or another. Bytes held out of
    /// order behind a hole get up to `HOLE_GRACE` more to be given up (shadowd's hole
    /// timeout is 1 s), so what is still held after that is reported, not waited for.
    pub fn settle(&self, timeout: Duration) -> Result<Ledger> {
        let mut last: Option<u64> = None;
        let mut quiet_since: Option<Instant> = None;
        let outcome = signals::wait_for(timeout, "shadowd to settle", || {
            let ledger = self.ledger().ok()?;
            let quiet = ledger.replay.in_flight == 0 && last == Some(ledger.replay.observed);
            last = Some(ledger.replay.observed);
            if !quiet {
                quiet_since = None;
                std::thread::sleep(Duration::from_millis(250));
                return None;
            }
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if ledger.out_of_order_bytes == 0 || since.elapsed() >= HOLE_GRACE {
                return Some(ledger);
            }
            std::thread::sleep(Duration::from_millis(250));
            None
        });
        match outcome {
            Ok(ledger) => Ok(ledger),
            // Report what it is, unsettled: the in-flight count is part of the ledger.
            Err(_) if signals::check().is_ok() => self.ledger(),
            Err(err) => Err(err),
        }
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        process::cpu_seconds(self.pid())
    }

    pub fn rss_kib(&self) -> Result<u64> {
        process::status_kib(self.pid(), "VmRSS")
    }

    pub fn hwm_kib(&self) -> Result<u64> {
        process::status_kib(self.pid(), "VmHWM")
    }

    /// Steers the mirror peer's receive processing (where the clones are queued into the
    /// capture ring) to the CPUs in `mask` with RPS, on every receive queue; returns the
    /// paths written.
    pub fn steer_mirror_rps(&self, mask: &str) -> Result<Vec<String>> {
        let script = format!(
            "set -e; for q in /sys/class/net/shadow0-peer/queues/rx-*; do \
             echo {mask} > $q/rps_cpus; echo $q/rps_cpus=$(cat $q/rps_cpus); done"
        );
        let out = process::output(self.ns.command("sh").args(["-c", &script]))?;
        let written: Vec<String> = out.lines().map(str::to_string).collect();
        if written.is_empty() {
            bail!("no receive queues under /sys/class/net/shadow0-peer/queues");
        }
        Ok(written)
    }

    /// The mirror veth's drop counter (`tx_dropped` of `shadow0`): clones the kernel turned
    /// away before the capture ring, which shadowd's metrics do not see.
    pub fn mirror_veth_dropped(&self) -> Result<u64> {
        let out = process::output(
            self.ns
                .command("cat")
                .arg("/sys/class/net/shadow0/statistics/tx_dropped"),
        )?;
        Ok(out.trim().parse()?)
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        self.proc.stop()
    }
}
