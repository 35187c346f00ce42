//! For each captured request: the group it belongs to, the sampling decision (the shadow's
//! `weight`, independently per request), the copy, and the hand-off to the engine — all on
//! the capture thread, none of it waiting.

use std::sync::Arc;

use super::{
    ReplaySender,
    body::{self, BodySender},
    copy,
    job::{self, Budget, NoJob},
    stats::{ReplayStats, Undelivered},
};
use crate::{active::ActiveConfig, config::diff::DiffSettings, http::Request, reassembly::FlowKey};

/// A request won by a group with a shadow: its shadow Mapping and the id that joins its
/// two answers (0 when no copy was made).
#[derive(Debug, Clone, PartialEq)]
pub struct Shadowed {
    pub mapping: String,
    pub id: u64,
    /// The copy's responses are diffed (sampled by the Mapping's diff weight), so.
    pub diff: Option<Arc<DiffSettings>>,
}

/// What happened to one request at the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// No group, or a group without a shadow: not copied.
    NotShadowed,
    SampledOut,
    Queued,
    Dropped,
}

/// The capture side of replay.
pub struct Offerer {
    stats: ReplayStats,
    sender: ReplaySender,
    /// Wait for room instead of dropping (offline replay only, never on live capture).
    wait_for_room: bool,
    budget: Budget,
    rng: fastrand::Rng,
    next_id: u64,
}

impl Offerer {
    pub fn new(stats: ReplayStats, sender: ReplaySender, max_bytes: usize) -> Self {
        let budget = Budget::new(max_bytes, stats.queued_bytes.clone());
        Offerer {
            stats,
            sender,
            wait_for_room: false,
            budget,
            rng: fastrand::Rng::new(),
            next_id: 0,
        }
    }

    /// An offerer that waits for room in the budget (called from a blocking thread).
    pub fn waiting(mut self) -> Self {
        self.wait_for_room = true;
        self
    }

    /// Routes `request` of connection `flow` with `config` and, if its group has a shadow,
    /// samples and queues its copy. Returns the outcome and, for a shadowed group, its
    /// Mapping and the request's join id.
    pub fn offer(
        &mut self,
        flow: FlowKey,
        config: &Arc<ActiveConfig>,
        request: &Request,
    ) -> (Offered, Option<Shadowed>) {
        let (offered, shadowed, _) = self.offer_with(flow, config, request, false);
        (offered, shadowed)
    }

    /// [`Offerer::offer`] for a request whose body is still being captured (`request` holds
    /// its head and the body so far): a queued copy comes with the sender its remaining
    /// body goes through.
    pub fn offer_streamed(
        &mut self,
        flow: FlowKey,
        config: &Arc<ActiveConfig>,
        request: &Request,
    ) -> (Offered, Option<Shadowed>, Option<BodySender>) {
        self.offer_with(flow, config, request, true)
    }

    fn offer_with(
        &mut self,
        flow: FlowKey,
        config: &Arc<ActiveConfig>,
        request: &Request,
        streamed: bool,
    ) -> (Offered, Option<Shadowed>, Option<BodySender>) {
        let Some(group) = config.table.route_position(request) else {
            return (Offered::NotShadowed, None, None);
        };
        let Some(plan) = config.table.groups()[group].shadow.as_ref() else {
            return (Offered::NotShadowed, None, None);
        };
        self.stats.observed(&plan.name);
        let mut shadowed = Shadowed {
            mapping: plan.name.clone(),
            id: 0,
            diff: None,
        };
        if !self.sample(plan.weight) {
            self.stats.sampled_out(&plan.name);
            return (Offered::SampledOut, Some(shadowed), None);
        }
        self.next_id += 1;
        shadowed.id = self.next_id;
        shadowed.diff = plan
            .diff
            .as_ref()
            .filter(|settings| self.sample(settings.weight))
            .cloned();
        let mut copy = copy::build(request, plan);
        // The diff's reference instance gets the same copy, when it is whole.
        let reference = shadowed
            .diff
            .as_ref()
            .filter(|settings| settings.reference.is_some() && !streamed)
            .map(|_| copy.clone());
        let (mut body, mut rest) = match streamed {
            true => {
                let (tx, rx) = body::channel(self.budget.clone());
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        loop {
            let id = shadowed.id;
            match job::make(flow, id, config.clone(), group, copy, rest, &self.budget) {
                Ok(mut job) => {
                    job.diff = shadowed.diff.is_some();
                    self.sender.submit(job);
                    if let Some(reference) = reference {
                        self.offer_reference(flow, config, group, id, reference);
                    }
                    return (Offered::Queued, Some(shadowed), body);
                }
                // Offline only: wait for copies in flight to free their bytes.
                Err(NoJob::NoRoom(back, back_rest))
                    if self.wait_for_room && copy_fits(&back, &self.budget) =>
                {
                    (copy, rest) = (back, back_rest);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(_) => {
                    // Nobody will read the body: its sender must not count anything.
                    if let Some(mut sender) = body.take() {
                        sender.abandon(Undelivered::QueueFull);
                    }
                    self.stats
                        .dropped(&plan.name, Undelivered::QueueFull, false);
                    return (Offered::Dropped, Some(shadowed), None);
                }
            }
        }
    }

    /// Queues the copy `id` for the diff's reference instance too; with no room, the diff
    /// goes on without it.
    fn offer_reference(
        &mut self,
        flow: FlowKey,
        config: &Arc<ActiveConfig>,
        group: usize,
        id: u64,
        copy: copy::Copy,
    ) {
        // A lane of their own: a slow reference never holds up the connection's copies to
        // the shadow, which the engine sends in order per client connection.
        let lane = FlowKey {
            client: flow.client,
            server: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        match job::make(lane, id, config.clone(), group, copy, None, &self.budget) {
            Ok(mut job) => {
                job.diff = true;
                job.target = job::Target::Reference;
                self.sender.submit(job);
            }
            Err(_) => self.stats.comparison.differ.reference_gone(id),
        }
    }

    /// Counts `request`, which production was never shown to read, in the ledger of the
    /// shadow Mapping it would have been copied to, if any: observed, and dropped as
    /// `unconfirmed`. Returns whether a group with a shadow won it.
    pub fn unconfirmed(&mut self, config: &Arc<ActiveConfig>, request: &Request) -> bool {
        let plan = config
            .table
            .route_position(request)
            .and_then(|group| config.table.groups()[group].shadow.as_ref());
        if let Some(plan) = plan {
            self.stats.observed(&plan.name);
            self.stats
                .dropped(&plan.name, Undelivered::Unconfirmed, false);
        }
        plan.is_some()
    }

    /// True with probability `weight`/100.
    fn sample(&mut self, weight: u8) -> bool {
        weight >= 100 || (weight > 0 && self.rng.u8(0..100) < weight)
    }
}

/// Whether `copy` could ever fit in the budget (a copy larger than the whole budget never
/// will: waiting for it would wait forever).
fn copy_fits(copy: &super::copy::Copy, budget: &Budget) -> bool {
    job::cost(copy) <= budget.limit()
}

#[cfg(test)]
mod tests;
