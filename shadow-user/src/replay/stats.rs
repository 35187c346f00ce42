//! Replay counters per shadow Mapping, the parts of the loss ledger: every request a group
//! with a shadow won is observed once, then ends as exactly one of sampled out, copied or
//! dropped (by reason) — or is still in flight.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingLabel {
    pub mapping: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub mapping: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub mapping: String,
    /// `1xx` … `5xx`.
    pub class: &'static str,
}

/// Why a copy was not delivered.
pub mod reason {
    /// The replay queue (or its byte budget, or the per-connection queue) was full.
    pub const QUEUE_FULL: &str = "queue_full";
    /// shadowd is shutting down.
    pub const SHUTDOWN: &str = "shutdown";
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// Counters of the replay path, registered as `shadowd_replay_*`.
#[derive(Debug, Clone)]
pub struct ReplayStats {
    pub observed: Family<MappingLabel, Counter>,
    pub sampled_out: Family<MappingLabel, Counter>,
    pub copied: Family<MappingLabel, Counter>,
    pub dropped: Family<DropLabels, Counter>,
    pub in_flight: Family<MappingLabel, Gauge>,
    pub responses: Family<StatusLabels, Counter>,
    pub latency: Family<MappingLabel, Histogram>,
    /// Bytes of copies waiting in the queues.
    pub queued_bytes: Gauge,
}

impl Default for ReplayStats {
    fn default() -> Self {
        ReplayStats {
            observed: Family::default(),
            sampled_out: Family::default(),
            copied: Family::default(),
            dropped: Family::default(),
            in_flight: Family::default(),
            responses: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            queued_bytes: Gauge::default(),
        }
    }
}

fn label(mapping: &str) -> MappingLabel {
    MappingLabel {
        mapping: mapping.to_string(),
    }
}

/// `1xx` … `5xx` for a status code (anything else counts as `5xx`: a broken shadow).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl ReplayStats {
    pub fn observed(&self, mapping: &str) {
        self.observed.get_or_create(&label(mapping)).inc();
    }

    pub fn sampled_out(&self, mapping: &str) {
        self.sampled_out.get_or_create(&label(mapping)).inc();
    }

    /// A copy entered the queue.
    pub fn queued(&self, mapping: &str) {
        self.in_flight.get_or_create(&label(mapping)).inc();
    }

    /// A copy left the queue unsent.
    pub fn dropped(&self, mapping: &str, reason: &'static str, was_queued: bool) {
        if was_queued {
            self.in_flight.get_or_create(&label(mapping)).dec();
        }
        self.dropped
            .get_or_create(&DropLabels {
                mapping: mapping.to_string(),
                reason,
            })
            .inc();
    }

    /// The shadow answered a copy.
    pub fn copied(&self, mapping: &str, status: u16, latency: Duration) {
        let label = label(mapping);
        self.in_flight.get_or_create(&label).dec();
        self.copied.get_or_create(&label).inc();
        self.latency
            .get_or_create(&label)
            .observe(latency.as_secs_f64());
        self.responses
            .get_or_create(&StatusLabels {
                mapping: mapping.to_string(),
                class: status_class(status),
            })
            .inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("replay");
        r.register(
            "observed_requests",
            "Requests won by a group with a shadow",
            self.observed.clone(),
        );
        r.register(
            "sampled_out_requests",
            "Requests not copied because of the shadow's weight",
            self.sampled_out.clone(),
        );
        r.register(
            "copied_requests",
            "Copies the shadow answered",
            self.copied.clone(),
        );
        r.register(
            "dropped_requests",
            "Copies not delivered, by reason",
            self.dropped.clone(),
        );
        r.register(
            "in_flight_requests",
            "Copies queued or being sent",
            self.in_flight.clone(),
        );
        r.register(
            "responses",
            "Shadow responses by status class",
            self.responses.clone(),
        );
        r.register(
            "latency_seconds",
            "Shadow latency: copy sent to first response byte",
            self.latency.clone(),
        );
        r.register(
            "queued_bytes",
            "Bytes of copies waiting to be sent",
            self.queued_bytes.clone(),
        );
    }
}
