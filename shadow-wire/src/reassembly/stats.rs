//! Counters of the reassembler, registered as `shadowd_reassembly_*`.

use super::acceptance::RejectReason;
use crate::{label_value, labels::DirectionLabel, packet::Direction};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Why bytes of a stream were given up as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The flow's out-of-order buffer limit was reached.
    FlowBufferFull,
    /// The global out-of-order buffer limit was reached.
    GlobalBufferFull,
    /// FIN or RST arrived while bytes before it were still missing.
    Closed,
    /// The flow went idle (or was evicted) with bytes missing.
    Expired,
    /// The stream was picked up after its start (no SYN seen).
    Midstream,
    /// Bytes waited longer than the hole timeout: the missing ones are not coming (a clone
    /// lost before the ring, or dropped by it).
    HoleTimeout,
}

impl GapReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::FlowBufferFull => "flow_buffer_full",
            GapReason::GlobalBufferFull => "global_buffer_full",
            GapReason::Closed => "closed",
            GapReason::Expired => "expired",
            GapReason::Midstream => "midstream",
            GapReason::HoleTimeout => "hole_timeout",
        }
    }
}

label_value!(GapReason, RejectReason);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GapLabel {
    pub reason: GapReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub reason: RejectReason,
}

/// Counters of the flow table.
#[derive(Debug, Clone)]
pub struct ReassemblyStats {
    /// Connections tracked now.
    pub flows: Gauge,
    /// Connections that started being tracked.
    pub flows_created: Counter,
    /// Connections ended by FIN (both ways) or RST.
    pub flows_closed: Counter,
    /// Connections forgotten after the idle timeout.
    pub flows_expired: Counter,
    /// Connections forgotten to make room for new ones (the table was full).
    pub flows_evicted: Counter,
    /// Connections no longer parsed: they left HTTP/1 for another protocol.
    pub flows_finished: Counter,
    /// Bytes held now behind a hole, waiting for the bytes before them.
    pub out_of_order_bytes: Gauge,
    /// Segments that arrived ahead of a hole.
    pub out_of_order_segments: Counter,
    /// Retransmitted or overlapping bytes, dropped.
    pub duplicate_bytes: Counter,
    /// Segments too far from their stream to belong to it.
    pub out_of_window_segments: Counter,
    /// In-order bytes handed on, by direction (labels `request`, `response`).
    pub delivered_bytes: Family<DirectionLabel, Counter>,
    /// The two counters of `delivered_bytes`, fetched once so the per-segment path does not
    /// look labels up.
    delivered_by_direction: [Counter; 2],
    /// Places where bytes are missing for good, by reason.
    pub gaps: Family<GapLabel, Counter>,
    /// Client segments production's stack drops, by reason: never reassembled.
    pub rejected_segments: Family<RejectLabel, Counter>,
    /// Connections whose client bytes began without a handshake the capture saw complete:
    /// their requests wait for production's answers to confirm them.
    pub unverified_flows: Counter,
    /// Connections forgotten mid-message that could not be remembered (the list was full):
    /// their next bytes may be taken for the start of a request.
    pub forgotten_not_kept: Counter,
}

impl Default for ReassemblyStats {
    fn default() -> Self {
        let delivered_bytes = Family::<DirectionLabel, Counter>::default();
        let counter = |direction: Direction| {
            delivered_bytes
                .get_or_create(&DirectionLabel { direction })
                .clone()
        };
        let delivered_by_direction = [counter(Direction::Request), counter(Direction::Response)];
        ReassemblyStats {
            flows: Gauge::default(),
            flows_created: Counter::default(),
            flows_closed: Counter::default(),
            flows_expired: Counter::default(),
            flows_evicted: Counter::default(),
            flows_finished: Counter::default(),
            out_of_order_bytes: Gauge::default(),
            out_of_order_segments: Counter::default(),
            duplicate_bytes: Counter::default(),
            out_of_window_segments: Counter::default(),
            delivered_bytes,
            delivered_by_direction,
            gaps: Family::default(),
            rejected_segments: Family::default(),
            unverified_flows: Counter::default(),
            forgotten_not_kept: Counter::default(),
        }
    }
}

impl ReassemblyStats {
    /// The delivered-bytes counter of `direction`.
    pub fn delivered(&self, direction: Direction) -> &Counter {
        match direction {
            Direction::Request => &self.delivered_by_direction[0],
            Direction::Response => &self.delivered_by_direction[1],
        }
    }

    /// Counts a gap of `reason`.
    pub fn gap(&self, reason: GapReason) {
        self.gaps.get_or_create(&GapLabel { reason }).inc();
    }

    /// Counts a client segment production's stack drops for `reason`.
    pub fn rejected(&self, reason: RejectReason) {
        self.rejected_segments
            .get_or_create(&RejectLabel { reason })
            .inc();
    }

    /// The client segments dropped for `reason` so far.
    pub fn rejected_of(&self, reason: RejectReason) -> u64 {
        self.rejected_segments
            .get_or_create(&RejectLabel { reason })
            .get()
    }

    /// The gaps of `reason` so far.
    pub fn gaps_of(&self, reason: GapReason) -> u64 {
        self.gaps.get_or_create(&GapLabel { reason }).get()
    }
}

impl ReassemblyStats {
    /// Registers every counter in `registry`, under `reassembly_`.
    pub fn register_in(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("reassembly");
        r.register("flows", "Connections tracked", self.flows.clone());
        r.register(
            "flows_created",
            "Connections started tracking",
            self.flows_created.clone(),
        );
        r.register(
            "flows_closed",
            "Connections ended by FIN or RST",
            self.flows_closed.clone(),
        );
        r.register(
            "flows_expired",
            "Connections dropped after going idle",
            self.flows_expired.clone(),
        );
        r.register(
            "flows_evicted",
            "Connections dropped because the table was full",
            self.flows_evicted.clone(),
        );
        r.register(
            "flows_finished",
            "Connections no longer parsed (other protocol)",
            self.flows_finished.clone(),
        );
        r.register(
            "out_of_order_bytes",
            "Bytes held waiting for a hole to fill",
            self.out_of_order_bytes.clone(),
        );
        r.register(
            "out_of_order_segments",
            "Segments held out of order",
            self.out_of_order_segments.clone(),
        );
        r.register(
            "duplicate_bytes",
            "Retransmitted or overlapping bytes dropped",
            self.duplicate_bytes.clone(),
        );
        r.register(
            "out_of_window_segments",
            "Segments too far from their stream to belong to it",
            self.out_of_window_segments.clone(),
        );
        r.register(
            "delivered_bytes",
            "In-order stream bytes handed to the parser",
            self.delivered_bytes.clone(),
        );
        r.register(
            "gaps",
            "Stream bytes given up as lost, by reason",
            self.gaps.clone(),
        );
        r.register(
            "rejected_segments",
            "Client segments production's TCP stack drops (no ACK, or one no real peer could send), by reason",
            self.rejected_segments.clone(),
        );
        r.register(
            "unverified_flows",
            "Connections whose client bytes began without a handshake seen complete",
            self.unverified_flows.clone(),
        );
        r.register(
            "forgotten_not_kept",
            "Connections expired or evicted mid-message that could not be remembered as such",
            self.forgotten_not_kept.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn every_counter_is_registered_with_its_reason_labels() {
        let mut registry = Registry::default();
        let stats = ReassemblyStats::default();
        stats.register_in(&mut registry);
        stats.gap(GapReason::HoleTimeout);
        stats.rejected(RejectReason::Urgent);
        stats.delivered(Direction::Response).inc_by(7);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for name in [
            "reassembly_flows ",
            "reassembly_flows_created_total",
            "reassembly_flows_closed_total",
            "reassembly_flows_expired_total",
            "reassembly_flows_evicted_total",
            "reassembly_flows_finished_total",
            "reassembly_out_of_order_bytes",
            "reassembly_out_of_order_segments_total",
            "reassembly_duplicate_bytes_total",
            "reassembly_out_of_window_segments_total",
            "reassembly_delivered_bytes_total{direction=\"response\"} 7",
            "reassembly_gaps_total{reason=\"hole_timeout\"} 1",
            "reassembly_rejected_segments_total{reason=\"urgent\"} 1",
            "reassembly_unverified_flows_total",
            "reassembly_forgotten_not_kept_total",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
    }

    #[test]
    fn gap_reasons_are_labelled_as_the_metrics_document() {
        let labels: Vec<&str> = [
            GapReason::FlowBufferFull,
            GapReason::GlobalBufferFull,
            GapReason::Closed,
            GapReason::Expired,
            GapReason::Midstream,
            GapReason::HoleTimeout,
        ]
        .into_iter()
        .map(GapReason::as_str)
        .collect();
        assert_eq!(
            labels,
            [
                "flow_buffer_full",
                "global_buffer_full",
                "closed",
                "expired",
                "midstream",
                "hole_timeout"
            ]
        );
    }
}
