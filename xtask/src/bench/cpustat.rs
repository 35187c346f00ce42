//! Where the CPUs' time went during a load: per-CPU user, system and softirq shares from
//! `/proc/stat`, and the inter-processor interrupts (function-call and reschedule IPIs, as
//! RPS sends) from `/proc/interrupts`.

use std::time::Instant;

use serde::Serialize;

/// Counters at one moment.
pub struct Snapshot {
    at: Instant,
    /// Per CPU: user+nice, system, softirq+irq, idle+iowait, steal (ticks).
    cpus: Vec<[u64; 5]>,
    ipis: Vec<u64>,
}

/// One CPU's shares of the interval, in percent.
#[derive(Debug, Clone, Serialize)]
pub struct CpuShare {
    pub cpu: usize,
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    pub idle: f64,
    pub steal: f64,
    /// IPIs received per second.
    pub ipis_per_s: f64,
}

pub fn snapshot() -> Snapshot {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            [at(0) + at(1), at(2), at(5) + at(6), at(3) + at(4), at(7)]
        })
        .collect::<Vec<_>>();
    let interrupts = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
    let mut ipis = vec![0u64; cpus.len()];
    for line in interrupts.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("CAL:") || trimmed.starts_with("RES:") {
            for (cpu, value) in trimmed
                .split_whitespace()
                .skip(1)
                .take(ipis.len())
                .enumerate()
            {
                ipis[cpu] += value.parse::<u64>().unwrap_or(0);
            }
        }
    }
    Snapshot {
        at: Instant::now(),
        cpus,
        ipis,
    }
}

impl Snapshot {
    /// Shares from `self` (earlier) to `later`.
    pub fn until(&self, later: &Snapshot) -> Vec<CpuShare> {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        self.cpus
            .iter()
            .zip(&later.cpus)
            .enumerate()
            .map(|(cpu, (a, b))| {
                let d: Vec<f64> = (0..5).map(|i| b[i].saturating_sub(a[i]) as f64).collect();
                let total = d.iter().sum::<f64>().max(1.0);
                let pct = |i: usize| d[i] / total * 100.0;
                CpuShare {
                    cpu,
                    user: pct(0),
                    system: pct(1),
                    softirq: pct(2),
                    idle: pct(3),
                    steal: pct(4),
                    ipis_per_s: later
                        .ipis
                        .get(cpu)
                        .unwrap_or(&0)
                        .saturating_sub(*self.ipis.get(cpu).unwrap_or(&0))
                        as f64
                        / seconds,
                }
            })
            .collect()
    }
}

/// Mean busy share (100 − idle) over all CPUs, in percent.
pub fn busy_percent(shares: &[CpuShare]) -> f64 {
    if shares.is_empty() {
        return 0.0;
    }
    shares.iter().map(|s| 100.0 - s.idle).sum::<f64>() / shares.len() as f64
}

/// `cpu0 us 20 sy 50 si 30 id 0 ipi 41k/s; cpu1 …` for logs and reports.
pub fn describe(shares: &[CpuShare]) -> String {
    shares
        .iter()
        .map(|s| {
            format!(
                "cpu{} us {:.0} sy {:.0} si {:.0} id {:.0} ipi {:.1}k/s",
                s.cpu,
                s.user,
                s.system,
                s.softirq,
                s.idle,
                s.ipis_per_s / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
