//! Byte budgets the flows of one table share: what their parsers buffer of messages in
//! progress, and the requests they hold awaiting production's confirmation. Many
//! connections each within their own limits must not add up to memory without end (a flood
//! of connections that each send most of a head and stop, or forged segments on connections
//! that never answer).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::Limits;

/// Bytes taken and given back by many holders, at most `limit` at once.
#[derive(Debug, Clone)]
pub struct SharedBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl SharedBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> SharedBudget {
        SharedBudget {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Bytes taken now, by every holder.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes`; false (and nothing taken) if they do not fit.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|next| *next <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The budgets of one flow table.
#[derive(Debug, Clone)]
pub struct Budgets {
    /// Requests awaiting confirmation (`max_held_total_bytes`).
    pub held: SharedBudget,
    /// Messages in progress in the parsers' buffers (`max_parse_total_bytes`).
    pub parse: SharedBudget,
    /// Responses kept for diffing: whether, and the bodies' budget.
    pub keeping: super::Keeping,
}

impl Budgets {
    /// Fresh budgets of the sizes `limits` give.
    pub fn new(limits: &Limits) -> Budgets {
        Budgets {
            held: SharedBudget::new(limits.max_held_total_bytes),
            parse: SharedBudget::new(limits.max_parse_total_bytes),
            keeping: super::Keeping::default(),
        }
    }
}
