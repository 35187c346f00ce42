//! From captured segments to HTTP messages: the reassembler feeds each flow's [`HttpFlow`],
//! and the events are counted here. The live capture thread uses [`HttpSink`]; `extract`
//! uses the same table and counters.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    active::SharedConfig,
    capture::{Direction, Frame, FrameSink},
    http::{HttpEvent, HttpFlow, Limits as HttpLimits},
    reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats, StreamHandler},
    replay::offer::{Offered, Offerer},
};

mod counters;
mod totals;

pub use counters::HttpCounters;
pub use totals::{CountedFlow, FlowTotals};

impl StreamHandler for HttpFlow {
    type Event = HttpEvent;

    fn data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: SystemTime,
        out: &mut Vec<HttpEvent>,
    ) {
        self.push(direction, data, ts, out);
    }

    fn gap(&mut self, direction: Direction, out: &mut Vec<HttpEvent>) {
        HttpFlow::gap(self, direction, out);
    }

    fn end(&mut self, direction: Direction, ts: SystemTime, out: &mut Vec<HttpEvent>) {
        HttpFlow::end(self, direction, ts, out);
    }

    fn is_finished(&self) -> bool {
        HttpFlow::is_finished(self)
    }
}

/// The live consumer of captured frames: reassembles, parses, counts.
pub struct HttpSink {
    table: FlowTable<CountedFlow>,
    offerer: Offerer,
    config: SharedConfig,
    counters: HttpCounters,
    events: Vec<(FlowKey, HttpEvent)>,
    last_expiry: SystemTime,
}

impl HttpSink {
    pub fn new(
        limits: Limits,
        http_limits: HttpLimits,
        reassembly: ReassemblyStats,
        counters: HttpCounters,
        totals: Arc<FlowTotals>,
        config: SharedConfig,
        offerer: Offerer,
    ) -> Self {
        HttpSink {
            offerer,
            table: FlowTable::new(limits, reassembly, move |_| {
                CountedFlow::new(HttpFlow::new(http_limits), totals.clone())
            }),
            config,
            counters,
            events: Vec::new(),
            last_expiry: SystemTime::UNIX_EPOCH,
        }
    }

    fn handle_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        // One load per batch: a reload swaps the table between batches, never inside one.
        let config = self.config.load_full();
        for (flow, event) in self.events.drain(..) {
            self.counters.count(&event);
            if let HttpEvent::Request(request) = &event {
                let offered = self.offerer.offer(flow, &config, request);
                if offered == Offered::NotShadowed {
                    self.counters.not_shadowed.inc();
                }
                tracing::debug!(
                    ?offered,
                    client = %flow.client,
                    server = %flow.server,
                    method = request.method_str(),
                    target = request.target_str(),
                    bytes = request.raw.len(),
                    "request"
                );
            }
        }
    }
}

impl FrameSink for HttpSink {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.table.segment(
            frame.direction,
            &frame.segment,
            frame.timestamp,
            &mut self.events,
        );
        // Under steady traffic the reader is never idle: expire by capture time too.
        self.idle(frame.timestamp);
        self.handle_events();
    }

    fn idle(&mut self, now: SystemTime) {
        if now.duration_since(self.last_expiry).unwrap_or_default() < Duration::from_secs(1) {
            return;
        }
        self.last_expiry = now;
        self.table.expire(now, &mut self.events);
        self.handle_events();
    }
}

#[cfg(test)]
mod tests;
