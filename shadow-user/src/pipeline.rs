//! From captured segments to HTTP messages: the reassembler feeds each flow's [`HttpFlow`],
//! and the events are counted here. The live capture thread uses [`HttpSink`]; `extract`
//! uses the same table and counters.

use std::time::{Duration, SystemTime};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::{
    capture::{Direction, Frame, FrameSink},
    http::{HttpEvent, HttpFlow, Limits as HttpLimits},
    reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats, StreamHandler},
};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub direction: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Counts of HTTP events, registered as `shadowd_http_*`.
#[derive(Debug, Default, Clone)]
pub struct HttpCounters {
    pub requests: Counter,
    pub responses: Counter,
    pub dropped: Family<DropLabels, Counter>,
    pub unsupported: Family<ReasonLabel, Counter>,
    pub notices: Family<ReasonLabel, Counter>,
}

impl HttpCounters {
    /// Counts one event.
    pub fn count(&self, event: &HttpEvent) {
        match event {
            HttpEvent::Request(_) => {
                self.requests.inc();
            }
            HttpEvent::Response(_) => {
                self.responses.inc();
            }
            HttpEvent::Dropped { direction, reason } => {
                self.dropped
                    .get_or_create(&DropLabels {
                        direction: direction.as_str(),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            HttpEvent::Unsupported { reason } => {
                self.unsupported
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            HttpEvent::Notice { what } => {
                self.notices
                    .get_or_create(&ReasonLabel {
                        reason: what.as_str(),
                    })
                    .inc();
            }
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        let http = registry.sub_registry_with_prefix("http");
        http.register(
            "requests",
            "Complete requests extracted",
            self.requests.clone(),
        );
        http.register(
            "responses",
            "Complete responses extracted",
            self.responses.clone(),
        );
        http.register(
            "dropped_messages",
            "Messages that could not be produced, by reason",
            self.dropped.clone(),
        );
        http.register(
            "unsupported_flows",
            "Connections that stopped being HTTP/1",
            self.unsupported.clone(),
        );
        http.register(
            "notices",
            "Oddities in messages that were still produced",
            self.notices.clone(),
        );
    }
}

/// The live consumer of captured frames: reassembles, parses, counts.
pub struct HttpSink {
    table: FlowTable<HttpFlow>,
    counters: HttpCounters,
    events: Vec<(FlowKey, HttpEvent)>,
    last_expiry: SystemTime,
}

impl HttpSink {
    pub fn new(limits: Limits, reassembly: ReassemblyStats, counters: HttpCounters) -> Self {
        HttpSink {
            table: FlowTable::new(limits, reassembly, |_| HttpFlow::new(HttpLimits::default())),
            counters,
            events: Vec::new(),
            last_expiry: SystemTime::UNIX_EPOCH,
        }
    }

    fn handle_events(&mut self) {
        for (flow, event) in self.events.drain(..) {
            self.counters.count(&event);
            if let HttpEvent::Request(request) = &event {
                tracing::debug!(
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
