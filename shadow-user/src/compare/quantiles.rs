//! A fixed, lock-free latency histogram with fine log-scale buckets, for the p50/p90/p99
//! that `/diag` and `shadowd status` show (Prometheus gets its own coarser histogram).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Buckets grow by 5 % from 10 µs: 400 of them reach past 45 minutes, longer than any
/// copy waits for its answer.
const FIRST_BUCKET_NS: f64 = 10_000.0;
const GROWTH: f64 = 1.05;
const BUCKETS: usize = 400;

/// Counts of latencies per bucket.
pub struct Quantiles {
    buckets: Box<[AtomicU64; BUCKETS]>,
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles {
            buckets: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl std::fmt::Debug for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantiles")
            .field("count", &self.count())
            .finish()
    }
}

fn bucket_of(latency: Duration) -> usize {
    let ns = latency.as_nanos() as f64;
    if ns <= FIRST_BUCKET_NS {
        return 0;
    }
    (((ns / FIRST_BUCKET_NS).ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
}

/// Upper bound of bucket `i`.
fn bound_of(i: usize) -> Duration {
    Duration::from_nanos((FIRST_BUCKET_NS * GROWTH.powi(i as i32)) as u64)
}

impl Quantiles {
    pub fn record(&self, latency: Duration) {
        self.buckets[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The latency below which a fraction `q` of the recorded ones lie (bucket upper bound,
    /// so at most 5 % high); `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bound_of(i));
            }
        }
        Some(bound_of(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_past_the_last_bucket_counts_in_it() {
        let q = Quantiles::default();
        q.record(Duration::from_secs(1_000_000));
        assert_eq!(q.count(), 1);
        assert_eq!(q.quantile(1.0), Some(bound_of(BUCKETS - 1)));
        assert!(bound_of(BUCKETS - 1) > Duration::from_secs(45 * 60));
    }

    #[test]
    fn quantiles_are_within_one_bucket() {
        let q = Quantiles::default();
        for ms in 1..=100u64 {
            q.record(Duration::from_millis(ms));
        }
        let within = |got: Duration, want_ms: f64| {
            let got = got.as_secs_f64() * 1000.0;
            got >= want_ms && got <= want_ms * 1.06
        };
        assert!(
            within(q.quantile(0.5).unwrap(), 50.0),
            "{:?}",
            q.quantile(0.5)
        );
        assert!(
            within(q.quantile(0.99).unwrap(), 99.0),
            "{:?}",
            q.quantile(0.99)
        );
        assert_eq!(q.count(), 100);
        assert!(Quantiles::default().quantile(0.5).is_none());
    }
}
