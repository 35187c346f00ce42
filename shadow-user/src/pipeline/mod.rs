//! From captured segments to HTTP messages: the reassembler feeds each flow's [`HttpFlow`],
//! and the events are counted here. The live capture thread uses [`HttpSink`]; `extract`
//! uses the same table and counters.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    active::SharedConfig,
    capture::{Frame, FrameSink},
    compare::{Comparison, Role},
    diff::DiffRequest,
    http::Response,
    http::{Budgets, HttpEvent, HttpFlow, Limits as HttpLimits},
    reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats},
    replay::{
        body::BodySender,
        offer::{Offered, Offerer, Shadowed},
        stats::Undelivered,
    },
};

mod counters;
mod pending;
mod totals;

pub use counters::HttpCounters;
pub use pending::{Pending, PendingResponses};
pub use totals::{CountedFlow, FlowTotals};

/// The live consumer of captured frames: reassembles, parses, counts.
pub struct HttpSink {
    table: FlowTable<CountedFlow>,
    offerer: Offerer,
    pending: PendingResponses,
    comparison: Arc<Comparison>,
    config: SharedConfig,
    counters: HttpCounters,
    events: Vec<(FlowKey, HttpEvent)>,
    /// The body senders of copies whose request is still streaming, with the request's
    /// number: at most one per tracked connection.
    streams: HashMap<FlowKey, (u64, BodySender)>,
    last_expiry: SystemTime,
    /// The configuration response keeping was last set for.
    keeping_for: Option<Arc<crate::active::ActiveConfig>>,
}

/// The counters the live pipeline updates.
#[derive(Clone)]
pub struct SinkMetrics {
    pub reassembly: ReassemblyStats,
    pub http: HttpCounters,
    pub totals: Arc<FlowTotals>,
    pub comparison: Arc<Comparison>,
}

impl HttpSink {
    pub fn new(
        limits: Limits,
        http_limits: HttpLimits,
        metrics: SinkMetrics,
        config: SharedConfig,
        offerer: Offerer,
    ) -> Self {
        let SinkMetrics {
            reassembly,
            http: counters,
            totals,
            comparison,
        } = metrics;
        let budgets = Budgets {
            keeping: comparison.differ.keeping.clone(),
            ..Budgets::new(&http_limits)
        };
        HttpSink {
            offerer,
            pending: PendingResponses::default(),
            comparison,
            table: {
                FlowTable::new(limits, reassembly, move |_| {
                    let flow = HttpFlow::with_budgets(http_limits, budgets.clone());
                    CountedFlow::new(flow, totals.clone())
                })
            },
            config,
            counters,
            events: Vec::new(),
            streams: HashMap::new(),
            last_expiry: SystemTime::UNIX_EPOCH,
            keeping_for: None,
        }
    }

    /// Production's responses are kept while some shadow Mapping diffs, up to the largest
    /// body any of them compares.
    fn keep_responses_for(&mut self, config: &Arc<crate::active::ActiveConfig>) {
        if self
            .keeping_for
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, config))
        {
            return;
        }
        self.keeping_for = Some(config.clone());
        (self.comparison.differ.keeping).set(crate::replay::file::diff_body_limit(config));
    }

    /// Credits a production response to its request's Mapping, if it was shadowed.
    fn production_response(&mut self, flow: FlowKey, response: &Response) {
        if response.is_interim() {
            return;
        }
        let Some(sequence) = response.request_sequence else {
            return;
        };
        if let Some(pending) = self.pending.take(flow, sequence) {
            let latency = response
                .first_byte
                .duration_since(pending.last_byte)
                .unwrap_or_default();
            self.comparison.record(
                &pending.mapping,
                Role::Production,
                response.status,
                latency,
                pending.id,
            );
            if let Some(diff) = pending.diff {
                (self.comparison.differ).answered(pending.id, pending.mapping, *diff, response);
            }
        }
    }

    /// Remembers a request offered for its production response, and logs it.
    fn offered(
        &mut self,
        flow: FlowKey,
        request: &crate::http::Request,
        (offered, shadowed): (Offered, Option<Shadowed>),
        streamed: bool,
    ) {
        if offered == Offered::NotShadowed {
            self.counters.not_shadowed.inc();
        }
        let diff = DiffRequest::of(offered, &shadowed, request, streamed);
        if let Some(Shadowed { mapping, id, .. }) = shadowed {
            let pending = Pending {
                mapping,
                last_byte: request.last_byte,
                id,
                diff,
            };
            self.pending.insert(flow, request.sequence, pending);
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

    fn handle_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        // One load per batch: a reload swaps the table between batches, never inside one.
        let config = self.config.load_full();
        self.keep_responses_for(&config);
        let mut events = std::mem::take(&mut self.events);
        for (flow, event) in events.drain(..) {
            self.counters.count(&event);
            if let HttpEvent::Response(response) = &event {
                self.production_response(flow, response);
            }
            if let HttpEvent::Unconfirmed(request) = &event {
                let shadowed = self.offerer.unconfirmed(&config, request);
                tracing::debug!(
                    shadowed,
                    client = %flow.client,
                    server = %flow.server,
                    method = request.method_str(),
                    target = request.target_str(),
                    "request never confirmed by production, not copied"
                );
            }
            match &event {
                HttpEvent::Request(request) => {
                    let offer = self.offerer.offer(flow, &config, request);
                    self.offered(flow, request, offer, false);
                }
                HttpEvent::RequestStreaming(request) => {
                    let (offered, shadowed, body) =
                        self.offerer.offer_streamed(flow, &config, request);
                    self.offered(flow, request, (offered, shadowed), true);
                    if let Some(body) = body {
                        // One streams at a time per connection: an earlier one left here
                        // would be a bug, and dropping it abandons its copy.
                        self.streams.insert(flow, (request.sequence, body));
                    }
                }
                HttpEvent::RequestBody { sequence, bytes } => {
                    if let Some((_, body)) = self.stream(flow, *sequence)
                        && !body.push(bytes.clone())
                    {
                        self.streams.remove(&flow);
                    }
                }
                HttpEvent::RequestEnd {
                    sequence,
                    last_byte,
                } => {
                    if self.stream(flow, *sequence).is_some()
                        && let Some((_, body)) = self.streams.remove(&flow)
                    {
                        body.end();
                    }
                    self.pending.ended(flow, *sequence, *last_byte);
                }
                HttpEvent::RequestBroken { sequence, unread } => {
                    if self.stream(flow, *sequence).is_some()
                        && let Some((_, mut body)) = self.streams.remove(&flow)
                    {
                        body.abandon(match unread {
                            true => Undelivered::Unconfirmed,
                            false => Undelivered::Incomplete,
                        });
                    }
                    // Nothing to compare: the copy was not completed.
                    self.pending.take(flow, *sequence);
                }
                _ => {}
            }
        }
        // Keep the buffer's capacity for the next batch.
        self.events = events;
    }

    /// The body sender of request `sequence` of `flow`, if it is the one streaming.
    fn stream(&mut self, flow: FlowKey, sequence: u64) -> Option<&mut (u64, BodySender)> {
        self.streams
            .get_mut(&flow)
            .filter(|(streaming, _)| *streaming == sequence)
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
        // Every flow ends its stream before it goes; this only guards against one that
        // did not, which would keep its copy waiting for ever.
        let table = &self.table;
        self.streams.retain(|flow, _| table.contains(flow));
    }
}
