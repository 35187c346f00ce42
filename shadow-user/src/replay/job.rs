//! One copy on its way to a shadow, and the share of the replay byte budget it holds until
//! it is done: its bytes and a fixed overhead, so the budget bounds the number of copies
//! (and of client connections with copies) as well as their bytes.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use prometheus_client::metrics::gauge::Gauge;

use super::{body::BodyStream, copy::Copy};
use crate::{active::ActiveConfig, reassembly::FlowKey, route::ShadowPlan};

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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
