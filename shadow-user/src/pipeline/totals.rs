//! Counters each [`HttpFlow`] keeps for itself (resyncs, bytes skipped, unpaired responses),
//! added to process-wide totals when the flow leaves the table — however it leaves.

use std::{ops::Range, sync::Arc, time::SystemTime};

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::metrics::Registered;

use crate::{
    http::{HttpEvent, HttpFlow, StreamCounters},
    labels::DirectionLabel,
    packet::Direction,
    reassembly::{GapKind, StreamHandler},
};

/// Totals over the flows that have ended.
#[derive(Debug, Default)]
pub struct FlowTotals {
    pub resyncs: Family<DirectionLabel, Counter>,
    pub resync_skipped_bytes: Family<DirectionLabel, Counter>,
    pub body_skipped_bytes: Family<DirectionLabel, Counter>,
    pub unpaired_responses: Counter,
    pub pending_evicted: Counter,
}

impl FlowTotals {
    fn add(&self, direction: Direction, counters: &StreamCounters) {
        let label = DirectionLabel { direction };
        self.resyncs.get_or_create(&label).inc_by(counters.resyncs);
        self.resync_skipped_bytes
            .get_or_create(&label)
            .inc_by(counters.bytes_skipped);
        self.body_skipped_bytes
            .get_or_create(&label)
            .inc_by(counters.body_bytes_skipped);
    }

    /// Sum of a direction's value in `family`.
    pub fn of(family: &Family<DirectionLabel, Counter>, direction: Direction) -> u64 {
        family.get_or_create(&DirectionLabel { direction }).get()
    }
}

impl Registered for FlowTotals {
    /// Registers under `shadowd_http_*`.
    fn register_in(&self, registry: &mut Registry) {
        let http = registry.sub_registry_with_prefix("http");
        http.register(
            "resyncs",
            "Times a stream searched for the next message start (after a loss or mid-stream pickup)",
            self.resyncs.clone(),
        );
        http.register(
            "resync_skipped_bytes",
            "Bytes discarded while searching for a message start",
            self.resync_skipped_bytes.clone(),
        );
        http.register(
            "body_skipped_bytes",
            "Body bytes passed over unbuffered after a body over the size limit",
            self.body_skipped_bytes.clone(),
        );
        http.register(
            "unpaired_responses",
            "Responses whose request was lost, so they pair with none",
            self.unpaired_responses.clone(),
        );
        http.register(
            "pending_requests_evicted",
            "Requests forgotten while waiting for a response (queue full)",
            self.pending_evicted.clone(),
        );
    }
}

/// An [`HttpFlow`] whose counters reach [`FlowTotals`] when it is dropped.
pub struct CountedFlow {
    flow: HttpFlow,
    totals: Arc<FlowTotals>,
}

impl CountedFlow {
    pub fn new(flow: HttpFlow, totals: Arc<FlowTotals>) -> Self {
        CountedFlow { flow, totals }
    }
}

impl Drop for CountedFlow {
    fn drop(&mut self) {
        let counters = self.flow.counters();
        self.totals.add(Direction::Request, &counters.request);
        self.totals.add(Direction::Response, &counters.response);
        self.totals
            .unpaired_responses
            .inc_by(counters.unpaired_responses);
        self.totals.pending_evicted.inc_by(counters.pending_evicted);
    }
}

impl StreamHandler for CountedFlow {
    type Event = HttpEvent;

    fn data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: SystemTime,
        out: &mut Vec<HttpEvent>,
    ) {
        self.flow.push(direction, data, ts, out);
    }

    fn gap(
        &mut self,
        direction: Direction,
        resume_at: u64,
        kind: GapKind,
        out: &mut Vec<HttpEvent>,
    ) {
        self.flow.gap(direction, resume_at, kind, out);
    }

    fn acked(
        &mut self,
        direction: Direction,
        offset: u64,
        carrier: Range<u64>,
        out: &mut Vec<HttpEvent>,
    ) {
        self.flow.acked(direction, offset, carrier, out);
    }

    fn mid_message(&self) -> bool {
        self.flow.mid_request()
    }

    fn end(&mut self, direction: Direction, out: &mut Vec<HttpEvent>) {
        self.flow.end(direction, out);
    }

    fn is_finished(&self) -> bool {
        self.flow.is_finished()
    }
}
