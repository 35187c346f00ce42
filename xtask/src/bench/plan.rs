//! How long and how hard each phase runs, full or `--quick`.

use std::time::Duration;

/// Durations, rounds and rates of one bench run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: &'static str,
    /// Rounds of A B C (per placement) for throughput and latency.
    pub rounds: usize,
    pub warm_up: Duration,
    /// wrk connections and threads.
    pub connections: usize,
    pub saturation: Duration,
    pub latency: Duration,
    pub fidelity: Duration,
    /// GET rates tried in order; past the listed ones the sweep goes on in `get_step`s
    /// while fidelity holds at 100 % and the load generator keeps up.
    pub get_rates: Vec<u64>,
    pub get_step: Option<u64>,
    pub get_max: u64,
    /// GET rates with the client unpinned, from where the pinned client gives up.
    pub get_unpinned_rates: Vec<u64>,
    /// 64 KiB POST rates, the same way.
    pub post_rates: Vec<u64>,
    /// GET rates of B diff (JSON responses, diffed), each run `fidelity` long.
    pub diff_rates: Vec<u64>,
    pub post_step: Option<u64>,
    pub post_max: u64,
    pub idle_connections: usize,
    pub idle_hold: Duration,
    pub delay_rates: Vec<u64>,
    pub delay: Duration,
    /// The rate at which the TC program's time per packet is measured, `fidelity` long.
    pub program_cost_rate: u64,
    /// GET rates at which one and two replay threads are compared, `thread_rounds` times.
    pub thread_rates: Vec<u64>,
    pub thread_rounds: usize,
    /// GET rates with a connection per request, each run `fidelity` long.
    pub churn_rates: Vec<u64>,
    /// Client connections open at once, each sending a request now and then.
    pub concurrent_connections: usize,
    /// Requests a second those connections send in all.
    pub concurrent_rate: u64,
    /// Uploads at once, their size and the time each is paced over.
    pub uploads: usize,
    pub upload_bytes: u64,
    pub upload_time: Duration,
    /// One large upload, paced like a client on a 1 Gbit/s link.
    pub large_upload_bytes: u64,
    pub large_upload_time: Duration,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                name: "quick",
                rounds: 1,
                warm_up: Duration::from_secs(1),
                connections: 64,
                saturation: Duration::from_secs(3),
                latency: Duration::from_secs(4),
                fidelity: Duration::from_secs(3),
                get_rates: vec![5_000, 10_000, 20_000],
                get_step: None,
                get_max: 20_000,
                get_unpinned_rates: Vec::new(),
                post_rates: vec![1_000, 2_000],
                diff_rates: vec![5_000],
                post_step: None,
                post_max: 2_000,
                idle_connections: 1_000,
                idle_hold: Duration::from_secs(2),
                delay_rates: vec![5_000],
                delay: Duration::from_secs(3),
                program_cost_rate: 5_000,
                thread_rates: vec![5_000, 20_000],
                thread_rounds: 1,
                churn_rates: vec![5_000],
                concurrent_connections: 5_000,
                concurrent_rate: 5_000,
                uploads: 20,
                upload_bytes: 8 << 20,
                upload_time: Duration::from_secs(5),
                large_upload_bytes: 256 << 20,
                large_upload_time: Duration::from_secs(3),
            }
        } else {
            Plan {
                name: "full",
                rounds: 3,
                warm_up: Duration::from_secs(2),
                connections: 64,
                saturation: Duration::from_secs(10),
                latency: Duration::from_secs(15),
                fidelity: Duration::from_secs(10),
                get_rates: vec![5_000, 10_000, 20_000],
                get_step: Some(10_000),
                get_max: 150_000,
                get_unpinned_rates: vec![40_000],
                post_rates: vec![1_000, 2_000, 4_000],
                diff_rates: vec![5_000, 20_000],
                post_step: Some(2_000),
                post_max: 20_000,
                idle_connections: 1_000,
                idle_hold: Duration::from_secs(3),
                delay_rates: vec![5_000, 20_000],
                delay: Duration::from_secs(8),
                program_cost_rate: 5_000,
                thread_rates: vec![5_000, 20_000],
                thread_rounds: 2,
                churn_rates: vec![5_000, 10_000, 20_000],
                concurrent_connections: 50_000,
                concurrent_rate: 5_000,
                uploads: 200,
                upload_bytes: 8 << 20,
                upload_time: Duration::from_secs(20),
                large_upload_bytes: 1 << 30,
                large_upload_time: Duration::from_secs(10),
            }
        }
    }

    /// Seconds of load in the planned phases (the open-ended sweeps counted at their
    /// listed rates), for the start message.
    pub fn load_seconds(&self) -> u64 {
        let runs = |d: Duration, n: usize| d.as_secs() * n as u64;
        runs(
            self.saturation + self.warm_up,
            self.rounds * super::throughput::RUNS_PER_ROUND,
        ) + runs(self.latency + self.warm_up, self.rounds * 3)
            + runs(
                self.fidelity,
                self.get_rates.len() + self.post_rates.len() + self.diff_rates.len(),
            )
            + self.idle_hold.as_secs()
            + runs(self.delay, self.delay_rates.len())
            + runs(
                self.fidelity,
                3 + 2 * self.thread_rates.len() * self.thread_rounds,
            )
            + runs(self.fidelity, self.churn_rates.len())
            + ((self.concurrent_connections * super::shapes::ROUNDS) as u64)
                .div_ceil(self.concurrent_rate.max(1))
            + (self.upload_time + self.large_upload_time).as_secs()
    }

    /// The next rate of a sweep after `rate`, if any.
    pub fn next_rate(listed: &[u64], step: Option<u64>, max: u64, rate: u64) -> Option<u64> {
        match listed.iter().position(|r| *r == rate) {
            Some(i) if i + 1 < listed.len() => Some(listed[i + 1]),
            _ => step.map(|step| rate + step).filter(|next| *next <= max),
        }
    }
}
