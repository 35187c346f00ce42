//! One copy on its way to a shadow, and the share of the replay byte budget it holds until
//! it is done: its bytes and a fixed overhead, so the budget bounds the number of copies
//! (and of client connections with copies) as well as their bytes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;

use super::{
    body::BodyStream,
    copy::Copy,
    stats::{ReplayStats, Undelivered},
};
use crate::{
    active::ActiveConfig,
    config::Service,
    http::{KeptResponse, SharedBudget},
    reassembly::FlowKey,
    route::ShadowPlan,
};

/// A copy and where it goes.
pub struct Job {
    /// The captured client connection: copies of one connection go out in order, on one
    /// upstream connection while it lives.
    pub flow: FlowKey,
    /// Joins the copy's answer with production's (see `compare`).
    pub id: u64,
    /// The configuration the request was routed with (kept alive across reloads).
    config: Arc<ActiveConfig>,
    group: usize,
    pub copy: Copy,
    /// The rest of the body, for a copy sent while its request is still being captured.
    pub rest: Option<BodyStream>,
    _budget: Reservation,
    /// The ledger the copy is in flight in, from [`Job::queued`] until it is settled.
    ledger: Option<Arc<ReplayStats>>,
    /// The shadow's response is kept and diffed with production's.
    pub diff: bool,
    /// Where the copy goes: the shadow, or the diff's reference instance.
    pub target: Target,
}

/// Where a copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The shadow Mapping's service; the copy is in the Mapping's ledger.
    Shadow,
    /// The reference instance of the Mapping's `diff`: a second copy, only for the diff,
    /// outside the ledger.
    Reference,
}

impl Job {
    /// The shadow plan of the group the request was routed to.
    pub fn plan(&self) -> &ShadowPlan {
        // `new` only builds jobs for groups with a shadow, and the config is immutable.
        self.config.table.groups()[self.group]
            .shadow
            .as_ref()
            .unwrap_or_else(|| unreachable!("jobs are only made for groups with a shadow"))
    }

    pub fn mapping(&self) -> &str {
        &self.plan().name
    }

    /// The service the copy goes to.
    pub fn service(&self) -> &Service {
        let plan = self.plan();
        match (
            self.target,
            plan.diff.as_ref().and_then(|d| d.reference.as_ref()),
        ) {
            (Target::Reference, Some(reference)) => reference,
            _ => &plan.service,
        }
    }

    /// Counts the copy in flight in `stats`. From then on it is settled exactly once: by
    /// [`Job::copied`] or [`Job::dropped`], or, when the job goes away unsettled (a task
    /// dropped at shutdown, a panic, a stopped engine), as `shutdown` or `internal`.
    pub fn queued(&mut self, stats: &Arc<ReplayStats>) {
        if self.target == Target::Shadow {
            stats.queued(self.mapping());
        }
        self.ledger = Some(stats.clone());
    }

    /// The shadow answered; `kept`: its response, kept for diffing.
    pub fn copied(&mut self, status: u16, latency: Duration, kept: Option<KeptResponse>) {
        let Some(stats) = self.ledger.take() else {
            return;
        };
        let differ = &stats.comparison.differ;
        match self.target {
            Target::Shadow => {
                stats.copied(self.mapping(), status, latency, self.id);
                if self.diff {
                    match kept {
                        Some(kept) => differ.shadow(self.id, kept),
                        None => differ.gone(self.id),
                    }
                }
            }
            Target::Reference => match kept {
                Some(kept) => differ.reference(self.id, kept),
                None => differ.reference_gone(self.id),
            },
        }
    }

    /// The copy was not delivered, for `reason`.
    pub fn dropped(&mut self, reason: Undelivered) {
        let Some(stats) = self.ledger.take() else {
            return;
        };
        match self.target {
            Target::Shadow => {
                stats.dropped(self.mapping(), reason, true);
                if self.diff {
                    stats.comparison.differ.gone(self.id);
                }
            }
            Target::Reference => stats.comparison.differ.reference_gone(self.id),
        }
    }

    /// A keeper for the shadow's response body, when it is diffed.
    pub fn keeper(&self) -> Option<(usize, SharedBudget)> {
        let settings = self.plan().diff.as_ref().filter(|_| self.diff)?;
        let keeping = &self.ledger.as_ref()?.comparison.differ.keeping;
        Some((settings.options.max_body_bytes, keeping.budget.clone()))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let reason = match std::thread::panicking() {
            true => Undelivered::Internal,
            false => Undelivered::Shutdown,
        };
        self.dropped(reason);
    }
}

/// What replay keeps per copy besides its bytes, at most: the job, its connection's queue
/// entry and the task that sends it (a test checks these fit).
pub const COPY_OVERHEAD: usize = 3072;

/// The budget a copy of `copy` takes.
pub fn cost(copy: &Copy) -> usize {
    copy.len().saturating_add(COPY_OVERHEAD)
}

/// Bytes of copies waiting or being sent, bounded.
#[derive(Debug, Clone)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
    gauge: Gauge,
}

impl Budget {
    pub fn new(limit: usize, gauge: Gauge) -> Self {
        Budget {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
            gauge,
        }
    }

    /// Takes `bytes` of the budget, or `None` when that would exceed it.
    pub(super) fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|n| *n <= self.limit)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.gauge.set(next as i64);
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes held until the job (or a body piece) is done or dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let now = self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        self.budget.gauge.set(now as i64);
    }
}

/// Why no job was made.
#[derive(Debug)]
pub enum NoJob {
    /// The byte budget has no room now; the copy is handed back.
    NoRoom(Copy, Option<BodyStream>),
    /// The group has no shadow.
    NoShadow,
}

/// Makes a job for a request routed to `group` of `config`, if the group has a shadow and the
/// budget has room; `rest` brings the body's remainder when it is still being captured.
pub fn make(
    flow: FlowKey,
    id: u64,
    config: Arc<ActiveConfig>,
    group: usize,
    copy: Copy,
    rest: Option<BodyStream>,
    budget: &Budget,
) -> Result<Job, NoJob> {
    if config
        .table
        .groups()
        .get(group)
        .and_then(|g| g.shadow.as_ref())
        .is_none()
    {
        return Err(NoJob::NoShadow);
    }
    let Some(reservation) = budget.reserve(cost(&copy)) else {
        return Err(NoJob::NoRoom(copy, rest));
    };
    Ok(Job {
        flow,
        id,
        config,
        group,
        copy,
        rest,
        _budget: reservation,
        ledger: None,
        diff: false,
        target: Target::Shadow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Diagnostics,
        reassembly::FlowKey,
        replay::stats::DropLabels,
        route::{self, RouteTable},
    };

    fn job(budget: &Budget) -> Job {
        let table = RouteTable::build(
            &[
                route::tests::mapping("p", "/", "p"),
                route::tests::shadow("s", "/", "s"),
            ],
            &mut Diagnostics::default(),
        );
        let config = Arc::new(ActiveConfig {
            table,
            ..ActiveConfig::default()
        });
        let copy = Copy {
            head: bytes::Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            body: bytes::Bytes::new(),
            head_request: false,
        };
        let flow = FlowKey {
            client: "198.18.0.1:1000".parse().unwrap(),
            server: "198.18.0.2:80".parse().unwrap(),
        };
        make(flow, 1, config, 0, copy, None, budget).unwrap_or_else(|_| panic!("room"))
    }

    /// (copied, in flight, dropped by reason) of Mapping `s`.
    fn ledger(stats: &ReplayStats) -> (u64, i64, Vec<(Undelivered, u64)>) {
        let label = crate::labels::MappingLabel {
            mapping: "s".into(),
        };
        let dropped = Undelivered::ALL
            .iter()
            .map(|reason| {
                let labels = DropLabels {
                    mapping: "s".into(),
                    reason: *reason,
                };
                (*reason, stats.dropped.get_or_create(&labels).get())
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        (
            stats.copied.get_or_create(&label).get(),
            stats.in_flight.get_or_create(&label).get(),
            dropped,
        )
    }

    #[test]
    fn a_queued_copy_is_settled_exactly_once_however_it_ends() {
        let budget = Budget::new(1 << 20, Gauge::default());
        let stats = Arc::new(ReplayStats::default());
        // Never queued: nothing to settle.
        drop(job(&budget));
        assert_eq!(ledger(&stats), (0, 0, vec![]));
        // Copied, then dropped: counted once, as copied.
        let mut copied = job(&budget);
        copied.queued(&stats);
        copied.copied(200, Duration::from_millis(1), None);
        copied.dropped(Undelivered::Timeout);
        drop(copied);
        assert_eq!(ledger(&stats), (1, 0, vec![]));
        // Dropped for a reason: that reason only.
        let mut failed = job(&budget);
        failed.queued(&stats);
        failed.dropped(Undelivered::Timeout);
        drop(failed);
        assert_eq!(ledger(&stats), (1, 0, vec![(Undelivered::Timeout, 1)]));
        // Gone unsettled: a task dropped at shutdown.
        let mut abandoned = job(&budget);
        abandoned.queued(&stats);
        drop(abandoned);
        assert_eq!(
            ledger(&stats),
            (
                1,
                0,
                vec![(Undelivered::Timeout, 1), (Undelivered::Shutdown, 1)]
            )
        );
        // Gone with a panicking task.
        let mut crashed = job(&budget);
        crashed.queued(&stats);
        let panicked = std::thread::spawn(move || {
            let _job = crashed;
            panic!("a bug in a replay task");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(
            ledger(&stats),
            (
                1,
                0,
                vec![
                    (Undelivered::Timeout, 1),
                    (Undelivered::Shutdown, 1),
                    (Undelivered::Internal, 1)
                ]
            )
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_budget_bounds_and_releases() {
        let budget = Budget::new(100, Gauge::default());
        let a = budget.reserve(60).expect("room");
        assert!(budget.reserve(50).is_none());
        let b = budget.reserve(40).expect("room");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
