//! Replay counters per shadow Mapping, the parts of the loss ledger: every request a group
//! with a shadow won is observed once, then ends as exactly one of sampled out, copied or
//! dropped (by reason) — or is still in flight.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::metrics::Registered;

use crate::{
    compare::{Comparison, Role},
    labels::{MappingLabel, label_value},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub mapping: String,
    pub reason: Undelivered,
}

/// Why a copy was not delivered: the `reason` of `shadowd_replay_dropped_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Undelivered {
    /// Never copied: production was not shown to have read it as a request (its connection
    /// was not seen established, and no answer acknowledged its last byte).
    Unconfirmed,
    /// A copy sent while its request was still being captured did not get the rest of it
    /// (capture lost bytes of the body, the client's connection ended in it, or its framing
    /// broke): its shadow connection was reset, so the shadow never took it for a complete
    /// request.
    Incomplete,
    /// The replay byte budget was full: copies waiting or being sent hold all of it.
    QueueFull,
    /// No connection could be made to the shadow service.
    ConnectFailed,
    /// The service's circuit breaker is open after failed connects.
    CircuitOpen,
    /// The copy's write or the reply took longer than the copy's timeout.
    Timeout,
    /// The shadow closed the connection before its reply was complete.
    Reset,
    /// The reply is not HTTP/1 as the replay client reads it.
    BadResponse,
    /// Another I/O error on an open connection.
    Io,
    /// shadowd is shutting down.
    Shutdown,
    /// A replay task failed (a bug, logged): what became of its copy is unknown.
    Internal,
}

impl Undelivered {
    /// Every reason, in report order.
    pub const ALL: [Undelivered; 11] = [
        Undelivered::Unconfirmed,
        Undelivered::Incomplete,
        Undelivered::QueueFull,
        Undelivered::ConnectFailed,
        Undelivered::CircuitOpen,
        Undelivered::Timeout,
        Undelivered::Reset,
        Undelivered::BadResponse,
        Undelivered::Io,
        Undelivered::Shutdown,
        Undelivered::Internal,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Undelivered::Unconfirmed => "unconfirmed",
            Undelivered::Incomplete => "incomplete",
            Undelivered::QueueFull => "queue_full",
            Undelivered::ConnectFailed => "connect_failed",
            Undelivered::CircuitOpen => "circuit_open",
            Undelivered::Timeout => "timeout",
            Undelivered::Reset => "reset",
            Undelivered::BadResponse => "bad_response",
            Undelivered::Io => "io",
            Undelivered::Shutdown => "shutdown",
            Undelivered::Internal => "internal",
        }
    }
}

label_value!(Undelivered);

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of the replay path, registered as `shadowd_replay_*`.
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    pub observed: Family<MappingLabel, Counter>,
    pub sampled_out: Family<MappingLabel, Counter>,
    pub copied: Family<MappingLabel, Counter>,
    pub dropped: Family<DropLabels, Counter>,
    pub in_flight: Family<MappingLabel, Gauge>,
    /// Where shadow answers go to be compared with production's.
    pub comparison: Arc<Comparison>,
    /// Budget bytes held by copies waiting or being sent (their bytes and overhead).
    pub queued_bytes: Gauge,
    /// Captured client connections with a copy waiting or being sent: the only ones replay
    /// keeps anything for.
    pub active_flows: Gauge,
    /// Copies in flight over every Mapping: what shutdown abandons if it cannot wait longer.
    pub in_flight_total: Gauge,
}

fn label(mapping: &str) -> MappingLabel {
    MappingLabel {
        mapping: mapping.to_string(),
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
        self.in_flight_total.inc();
    }

    /// A copy left the queue unsent.
    pub fn dropped(&self, mapping: &str, reason: Undelivered, was_queued: bool) {
        if was_queued {
            self.in_flight.get_or_create(&label(mapping)).dec();
            self.in_flight_total.dec();
        }
        self.dropped
            .get_or_create(&DropLabels {
                mapping: mapping.to_string(),
                reason,
            })
            .inc();
    }

    /// The shadow answered copy `id`.
    pub fn copied(&self, mapping: &str, status: u16, latency: Duration, id: u64) {
        let label = label(mapping);
        self.in_flight.get_or_create(&label).dec();
        self.in_flight_total.dec();
        self.copied.get_or_create(&label).inc();
        self.comparison
            .record(mapping, Role::Shadow, status, latency, id);
    }
}

impl Registered for ReplayStats {
    /// A new set, registered in `registry`, with the comparison the shadow's answers go to.
    fn register(registry: &mut Registry) -> Self {
        let mut metrics = Self::default();
        metrics.register_in(registry);
        metrics.comparison = Arc::new(Comparison::register(registry));
        metrics
    }

    fn register_in(&self, registry: &mut Registry) {
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
            "queued_bytes",
            "Replay budget bytes held by copies waiting or being sent",
            self.queued_bytes.clone(),
        );
        r.register(
            "active_connections",
            "Captured client connections with a copy waiting or being sent",
            self.active_flows.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_in_flight_follows_every_mapping() {
        let stats = ReplayStats::default();
        stats.queued("a");
        stats.queued("b");
        stats.queued("b");
        stats.copied("a", 200, Duration::from_millis(1), 1);
        stats.dropped("b", Undelivered::Shutdown, true);
        // Dropped before it was queued: nothing was in flight.
        stats.dropped("b", Undelivered::QueueFull, false);
        assert_eq!(stats.in_flight_total.get(), 1);
        assert_eq!(stats.in_flight.get_or_create(&label("b")).get(), 1);
    }

    #[test]
    fn every_part_of_the_ledger_is_exported_per_mapping() {
        let mut registry = Registry::default();
        let stats = ReplayStats::register(&mut registry);
        stats.observed("a");
        stats.observed("a");
        stats.observed("a");
        stats.sampled_out("a");
        stats.queued("a");
        stats.copied("a", 200, Duration::from_millis(1), 1);
        stats.dropped("a", Undelivered::QueueFull, false);
        stats.queued("b");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"replay_observed_requests_total{mapping="a"} 3"#,
            r#"replay_sampled_out_requests_total{mapping="a"} 1"#,
            r#"replay_copied_requests_total{mapping="a"} 1"#,
            r#"replay_dropped_requests_total{mapping="a",reason="queue_full"} 1"#,
            r#"replay_in_flight_requests{mapping="a"} 0"#,
            r#"replay_in_flight_requests{mapping="b"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
