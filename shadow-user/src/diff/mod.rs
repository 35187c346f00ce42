//! Response diffing in the daemon: production's responses (kept by capture) and the
//! shadow's (kept by replay) meet by copy id on a thread of their own, and are compared
//! field by field with noise learnt from production. The capture thread and replay only hand
//! halves over, never waiting: a full queue drops the half, counted.

mod curl;
pub mod report;
mod state;

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

pub use report::MappingReport;
pub use state::ProductionHalf;
use state::{Compared, State};

use crate::{
    config::diff::DiffSettings,
    http::{Keeping, KeptResponse, Request, Response},
    labels::{MappingLabel, label_value},
    replay::offer::{Offered, Shadowed},
};

/// Halves queued for the worker, at most.
const QUEUE: usize = 4096;

/// Why a response that was to be diffed was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lost {
    /// The worker's queue was full.
    QueueFull,
    /// Its other side never came in time (the copy failed, or production's answer was not
    /// captured whole).
    Unmatched,
    /// Production's response was not kept (capture lost its place in it).
    NotKept,
    /// The reference instance did not answer: that copy was diffed without it.
    NoReference,
    /// The shadow did not answer the copy (its drop reason is in the ledger).
    Unanswered,
}

impl Lost {
    pub fn as_str(self) -> &'static str {
        match self {
            Lost::QueueFull => "queue_full",
            Lost::Unmatched => "unmatched",
            Lost::NotKept => "not_kept",
            Lost::NoReference => "no_reference",
            Lost::Unanswered => "unanswered",
        }
    }
}

label_value!(Lost);

/// Whether the two responses were equal in every compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Equal,
    Different,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Equal => "equal",
            Outcome::Different => "different",
        }
    }
}

label_value!(Outcome);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    mapping: String,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LostLabels {
    reason: Lost,
}

/// A request whose copy's responses are diffed, waiting for production's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRequest {
    pub settings: Arc<DiffSettings>,
    /// As captured: for a streamed request, its head and the body's start.
    pub request: Request,
    pub streamed: bool,
}

impl DiffRequest {
    /// What waits for production's answer to `request` (`streamed`: its body came in
    /// pieces), if the offer queued a copy to diff.
    pub fn of(
        offered: Offered,
        shadowed: &Option<Shadowed>,
        request: &Request,
        streamed: bool,
    ) -> Option<Box<DiffRequest>> {
        let settings = shadowed.as_ref()?.diff.clone()?;
        // Only a queued copy gets an answer to diff.
        (offered == Offered::Queued).then(|| {
            Box::new(DiffRequest {
                settings,
                request: request.clone(),
                streamed,
            })
        })
    }
}

/// One half on its way to the worker.
enum Half {
    Production(u64, ProductionHalf),
    Shadow(u64, KeptResponse),
    Reference(u64, KeptResponse),
    ReferenceGone(u64),
    Gone(u64),
    /// Answered once every half sent before it is handled.
    Drained(mpsc::Sender<()>),
}

#[derive(Clone, Default)]
struct Metrics {
    compared: Family<OutcomeLabels, Counter>,
    lost: Family<LostLabels, Counter>,
    flagged: Family<MappingLabel, Gauge>,
    waiting: Gauge,
}

/// The diffing of every shadow Mapping that asks for it.
pub struct Differ {
    /// Started with the first half.
    sender: OnceLock<SyncSender<Half>>,
    state: Arc<Mutex<State>>,
    metrics: Metrics,
    /// Whether capture keeps production's responses, and the budget kept bodies share.
    pub keeping: Keeping,
    /// Wait for room in the queue instead of dropping (offline replay only).
    waits: AtomicBool,
}

impl std::fmt::Debug for Differ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Differ").finish_non_exhaustive()
    }
}

impl Default for Differ {
    fn default() -> Self {
        Differ::new(false)
    }
}

impl Differ {
    /// A differ whose samples show credentials in request fields if `show_credentials`.
    pub fn new(show_credentials: bool) -> Self {
        Differ {
            sender: OnceLock::new(),
            state: Arc::new(Mutex::new(State::new(show_credentials))),
            metrics: Metrics::default(),
            keeping: Keeping::default(),
            waits: AtomicBool::new(false),
        }
    }

    /// Whether samples show production's credentials from now on.
    pub fn show_credentials(&self, show: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .show_credentials = show;
    }

    /// From now on, halves wait for room in the queue instead of being dropped: offline
    /// replay, where nothing is live and the report must hold every copy.
    pub fn wait_for_room(&self) {
        self.waits.store(true, Ordering::Relaxed);
    }

    /// Returns once every half handed over so far has been handled.
    pub fn drain(&self) {
        let (done, wait) = mpsc::channel();
        let sender = self.sender.get_or_init(|| self.start());
        if sender.send(Half::Drained(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Production answered copy `id` (capture thread).
    pub fn production(&self, id: u64, half: ProductionHalf) {
        self.send(Half::Production(id, half));
    }

    /// Production answered copy `id` of `request` (shadow Mapping `mapping`) with
    /// `response`: handed over if capture kept it.
    pub fn answered(&self, id: u64, mapping: String, request: DiffRequest, response: &Response) {
        match &response.kept {
            Some(kept) => self.production(
                id,
                ProductionHalf {
                    mapping,
                    settings: request.settings,
                    request: request.request,
                    streamed: request.streamed,
                    response: kept.clone(),
                },
            ),
            None => self.not_kept(id),
        }
    }

    /// Production's answer to copy `id` could not be kept.
    pub fn not_kept(&self, id: u64) {
        self.lost(Lost::NotKept);
        self.send(Half::Gone(id));
    }

    /// The shadow answered copy `id` (replay).
    pub fn shadow(&self, id: u64, response: KeptResponse) {
        self.send(Half::Shadow(id, response));
    }

    /// Copy `id` was not answered by the shadow (counted): production's half stops waiting.
    pub fn gone(&self, id: u64) {
        self.lost(Lost::Unanswered);
        self.send(Half::Gone(id));
    }

    /// The diff's reference instance answered copy `id`.
    pub fn reference(&self, id: u64, response: KeptResponse) {
        self.send(Half::Reference(id, response));
    }

    /// The diff's reference instance will not answer copy `id` (counted): the copy is
    /// diffed without it.
    pub fn reference_gone(&self, id: u64) {
        self.lost(Lost::NoReference);
        self.send(Half::ReferenceGone(id));
    }

    fn send(&self, half: Half) {
        let sender = self.sender.get_or_init(|| self.start());
        let sent = match self.waits.load(Ordering::Relaxed) {
            true => sender.send(half).is_ok(),
            false => match sender.try_send(half) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
        };
        if !sent {
            self.lost(Lost::QueueFull);
        }
    }

    fn lost(&self, reason: Lost) {
        self.metrics
            .lost
            .get_or_create(&LostLabels { reason })
            .inc();
    }

    fn start(&self) -> SyncSender<Half> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let state = self.state.clone();
        let metrics = self.metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("shadowd-diff".into())
            .spawn(move || work(&receiver, &state, &metrics));
        if let Err(err) = spawned {
            // Without the thread every half is dropped as queue_full: the channel is closed.
            tracing::error!(%err, "cannot start the diff thread; responses will not be diffed");
        }
        sender
    }

    /// The report of every Mapping that diffed.
    pub fn report(&self) -> Vec<MappingReport> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report()
    }

    /// Registers `shadowd_diff_compared_total`, `shadowd_diff_lost_total`,
    /// `shadowd_diff_flagged_fields` and `shadowd_diff_waiting`.
    pub fn register_in(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("diff");
        r.register(
            "compared",
            "Copies whose production and shadow responses were diffed, by shadow Mapping and outcome",
            self.metrics.compared.clone(),
        );
        r.register(
            "lost",
            "Responses to diff that were not, by reason",
            self.metrics.lost.clone(),
        );
        r.register(
            "flagged_fields",
            "Fields whose production-vs-shadow difference rate exceeds their noise, by shadow Mapping",
            self.metrics.flagged.clone(),
        );
        r.register(
            "waiting",
            "Responses waiting for the other side's",
            self.metrics.waiting.clone(),
        );
    }
}

/// The worker: takes halves until every sender is gone, expiring halves that wait too long
/// and refreshing the flagged gauges once a second.
fn work(receiver: &Receiver<Half>, state: &Mutex<State>, metrics: &Metrics) {
    let mut compared = Vec::new();
    let mut last_refresh = Instant::now();
    loop {
        let half = match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(half) => Some(half),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        match half {
            Some(Half::Production(id, half)) => state.production(id, half, now, &mut compared),
            Some(Half::Shadow(id, response)) => state.shadow(id, response, now, &mut compared),
            Some(Half::Reference(id, response)) => {
                state.reference(id, response, now, &mut compared)
            }
            Some(Half::ReferenceGone(id)) => state.reference_gone(id, now, &mut compared),
            Some(Half::Gone(id)) => state.gone(id),
            Some(Half::Drained(done)) => {
                let _ = done.send(());
            }
            None => {}
        }
        let expired = state.expire(now);
        if expired > 0 {
            metrics
                .lost
                .get_or_create(&LostLabels {
                    reason: Lost::Unmatched,
                })
                .inc_by(expired);
        }
        metrics.waiting.set(state.waiting() as i64);
        for Compared { mapping, equal } in compared.drain(..) {
            let outcome = match equal {
                true => Outcome::Equal,
                false => Outcome::Different,
            };
            metrics
                .compared
                .get_or_create(&OutcomeLabels { mapping, outcome })
                .inc();
        }
        if now.duration_since(last_refresh) >= Duration::from_secs(1) {
            last_refresh = now;
            for (mapping, flagged) in state.flagged() {
                metrics
                    .flagged
                    .get_or_create(&MappingLabel { mapping })
                    .set(flagged as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests;
