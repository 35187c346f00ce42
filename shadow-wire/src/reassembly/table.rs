//! The flow table: finds or creates the connection of each segment, feeds its streams, and
//! enforces the limits (flows, out-of-order bytes per flow and in all, idle time), counting
//! every limit hit.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use super::{
    FlowKey, GapKind, StreamHandler,
    acceptance::{self, AckCheck, RejectReason},
    stats::{GapReason, ReassemblyStats},
    stream::Stream,
};
use crate::{
    packet::Direction,
    packet::{Segment, tcp_flags},
};

/// Bounds of the table.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections tracked at once; the least recently active is evicted beyond it.
    pub max_flows: usize,
    /// Out-of-order bytes one direction may hold before its hole is given up.
    pub max_flow_buffer: usize,
    /// Out-of-order bytes all flows together may hold.
    pub max_total_buffer: usize,
    /// A connection with no segment for this long is ended.
    pub idle_timeout: Duration,
    /// Bytes waiting this long for a hole to fill give the hole up: a retransmission would
    /// have come by then, and a clone lost by capture never comes.
    pub hole_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 65_536,
            max_flow_buffer: 4 << 20,
            max_total_buffer: 256 << 20,
            idle_timeout: Duration::from_secs(60),
            hole_timeout: Duration::from_secs(1),
        }
    }
}

/// How many flows eviction looks at to pick the least recently active (approximate LRU
/// without a second index).
const EVICTION_SAMPLE: usize = 16;

/// Most connections remembered as forgotten mid-message (see [`FlowTable::forgotten`]).
const MAX_FORGOTTEN: usize = 16_384;

struct Flow<H> {
    request: Stream,
    response: Stream,
    handler: H,
    last_seen: SystemTime,
    finished: bool,
    /// The client acknowledged the server's SYN-ACK as captured: production's stack
    /// established this connection.
    established: bool,
    /// Production was seen to accept the connection: established, or it sent data on it
    /// (its stack answers segments of connections it does not have with RST only).
    accepted: bool,
    /// The highest offset of the client's stream production acknowledged: bytes before it
    /// reached production, so a hole there is the capture's loss, not the client's.
    request_acked: u64,
    /// The handler was told how the client's bytes begin (see `announce`).
    announced: bool,
    /// The connection was forgotten before, mid-message: its next client bytes continue a
    /// message, and none may be taken for a start.
    resumed: bool,
    /// A client SYN on this established connection: a new connection on the same ports, or a
    /// forgery the stack answers with a challenge ACK. Only the server's SYN-ACK of it says
    /// which.
    pending_syn: Option<u32>,
}

impl<H> Flow<H> {
    fn new(handler: H, ts: SystemTime) -> Self {
        Flow {
            request: Stream::default(),
            response: Stream::default(),
            handler,
            last_seen: ts,
            finished: false,
            established: false,
            accepted: false,
            request_acked: 0,
            announced: false,
            resumed: false,
            pending_syn: None,
        }
    }

    fn pending_bytes(&self) -> usize {
        self.request.pending_bytes() + self.response.pending_bytes()
    }

    fn stream(&self, direction: Direction) -> &Stream {
        match direction {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    fn stream_mut(&mut self, direction: Direction) -> &mut Stream {
        self.stream_and_handler(direction).0
    }

    /// The stream of `direction` and the handler, borrowed together.
    fn stream_and_handler(&mut self, direction: Direction) -> (&mut Stream, &mut H) {
        let stream = match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        };
        (stream, &mut self.handler)
    }

    /// True when the client's stream is known from its first byte, in a connection
    /// production's stack established: the first byte then begins the first request.
    fn verified_start(&self) -> bool {
        self.established && self.request.is_from_syn()
    }
}

impl<H: StreamHandler> Flow<H> {
    /// Takes in what `segment` brings to its direction: its SYN, what it acknowledges of the
    /// other direction, and its payload, handed to the handler in stream order.
    fn take_in(
        &mut self,
        direction: Direction,
        segment: &Segment<'_>,
        ts: SystemTime,
        stats: &ReassemblyStats,
        scratch: &mut Vec<H::Event>,
    ) {
        let rst = segment.has(tcp_flags::RST);
        let syn = segment.has(tcp_flags::SYN);
        let fin = segment.has(tcp_flags::FIN);
        if syn {
            self.stream_mut(direction).syn(segment.seq);
        }
        let data_seq = if syn {
            segment.seq.wrapping_add(1)
        } else {
            segment.seq
        };
        // The stack never reads data on an RST, nor on a SYN (TCP Fast Open aside, which
        // is not followed).
        let payload = if rst || syn { &[][..] } else { segment.payload };
        if segment.has(tcp_flags::ACK) && !rst {
            take_ack(
                self,
                direction,
                segment.ack,
                data_seq,
                payload.len(),
                scratch,
            );
        }
        if !payload.is_empty() {
            announce(self, direction, stats, scratch);
        }
        let (stream, handler) = self.stream_and_handler(direction);
        let mut delivered = 0u64;
        let outcome = stream.segment(data_seq, payload, fin, ts, &mut |data, at| {
            delivered += data.len() as u64;
            handler.data(direction, data, at, scratch);
        });
        stats.delivered(direction).inc_by(delivered);
        stats.duplicate_bytes.inc_by(outcome.duplicate_bytes);
        if outcome.buffered_bytes > 0 {
            stats.out_of_order_segments.inc();
        }
        if outcome.out_of_window {
            stats.out_of_window_segments.inc();
        }
    }

    /// Why the holes of `direction` must be given up now, if they must: what waits for a
    /// hole is bounded by this stream's share first, then by everyone's (`elsewhere` is what
    /// the other flows hold), and by how long it waited.
    fn holes_to_give_up(
        &self,
        direction: Direction,
        limits: &Limits,
        elsewhere: usize,
        now: SystemTime,
    ) -> Option<GapReason> {
        let stream = self.stream(direction);
        let over_flow = stream.pending_bytes() > limits.max_flow_buffer;
        let over_total = elsewhere + self.pending_bytes() > limits.max_total_buffer;
        let stale = hole_given_up(
            stream,
            direction,
            self.request_acked,
            now,
            limits.hole_timeout,
        );
        [
            (over_flow, GapReason::FlowBufferFull),
            (over_total, GapReason::GlobalBufferFull),
            (stale, GapReason::HoleTimeout),
        ]
        .into_iter()
        .find_map(|(given_up, reason)| given_up.then_some(reason))
    }

    /// Gives up every hole of `direction` for `reason`, handing on what waited behind them.
    fn give_up_holes(
        &mut self,
        direction: Direction,
        reason: GapReason,
        stats: &ReassemblyStats,
        scratch: &mut Vec<H::Event>,
    ) {
        let request_acked = self.request_acked;
        let (stream, handler) = self.stream_and_handler(direction);
        let mut delivered = 0;
        skip_holes(
            stream,
            direction,
            handler,
            scratch,
            &mut delivered,
            stats,
            (reason, request_acked),
        );
        stats.delivered(direction).inc_by(delivered);
    }

    /// Tells the handler that `direction` ended, once, when every byte up to its FIN came.
    fn end_if_complete(&mut self, direction: Direction, scratch: &mut Vec<H::Event>) {
        let (stream, handler) = self.stream_and_handler(direction);
        if stream.complete() && !stream.ended {
            stream.ended = true;
            handler.end(direction, scratch);
        }
    }
}

/// Connections being reassembled, each with its handler.
pub struct FlowTable<H: StreamHandler> {
    /// Boxed: a flow is over a kilobyte, and the table keeps up to an eighth of its slots
    /// free and doubles as it grows; inline, 50,000 connections took 96 MiB of slots (and
    /// moved every flow on each doubling), boxed the slots take 3 MiB.
    flows: HashMap<FlowKey, Box<Flow<H>>>,
    limits: Limits,
    stats: ReassemblyStats,
    total_buffered: usize,
    new_handler: Box<dyn FnMut(&FlowKey) -> H + Send>,
    scratch: Vec<H::Event>,
    /// Connections expired or evicted while a client message was under way, with when:
    /// if they go on, their next bytes are the middle of that message. A sender that pauses
    /// longer than the idle timeout must not get its next bytes read as a new request.
    forgotten: HashMap<FlowKey, SystemTime>,
    /// `forgotten` ran full: until it has room again, every connection picked up mid-way
    /// is taken as one forgotten mid-message.
    forgotten_full: bool,
}

impl<H: StreamHandler> FlowTable<H> {
    /// An empty table; `new_handler` makes the handler of each new connection.
    pub fn new(
        limits: Limits,
        stats: ReassemblyStats,
        new_handler: impl FnMut(&FlowKey) -> H + Send + 'static,
    ) -> Self {
        FlowTable {
            flows: HashMap::new(),
            limits,
            stats,
            total_buffered: 0,
            new_handler: Box::new(new_handler),
            scratch: Vec::new(),
            forgotten: HashMap::new(),
            forgotten_full: false,
        }
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether connection `key` is tracked.
    pub fn contains(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Whether no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Takes in one captured segment; events it completes are appended to `out`.
    pub fn segment(
        &mut self,
        direction: Direction,
        segment: &Segment<'_>,
        ts: SystemTime,
        out: &mut Vec<(FlowKey, H::Event)>,
    ) {
        let key = FlowKey::of(direction, segment.src, segment.dst);
        if direction == Direction::Request && acceptance::lacks_ack(segment) {
            self.stats.rejected(RejectReason::NoAck);
            return;
        }
        if !self.find_or_create(key, direction, segment, ts, out) {
            return;
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen = ts;
        let rst = segment.has(tcp_flags::RST);
        if direction == Direction::Request && !accept_client_segment(flow, segment, &self.stats) {
            return;
        }
        if flow.finished {
            // Only counted from here; idle expiry removes it if no RST does.
            if rst {
                self.remove(key);
            }
            return;
        }
        if direction == Direction::Response && !segment.payload.is_empty() && !rst {
            flow.accepted = true;
        }

        let before = flow.pending_bytes();
        flow.take_in(direction, segment, ts, &self.stats, &mut self.scratch);
        // What the other flows hold waiting for holes.
        let elsewhere = self.total_buffered - before;
        if let Some(reason) = flow.holes_to_give_up(direction, &self.limits, elsewhere, ts) {
            flow.give_up_holes(direction, reason, &self.stats, &mut self.scratch);
        }
        flow.end_if_complete(direction, &mut self.scratch);
        self.total_buffered = elsewhere + flow.pending_bytes();
        self.stats
            .out_of_order_bytes
            .set(self.total_buffered as i64);

        let finished = flow.handler.is_finished();
        let both_ended = flow.request.ended && flow.response.ended;
        out.extend(self.scratch.drain(..).map(|event| (key, event)));
        if rst {
            self.close(key, ts, GapReason::Closed, out);
        } else if both_ended {
            self.remove(key);
            self.stats.flows_closed.inc();
        } else if finished {
            self.finish(key);
        }
    }

    /// Makes sure `key` has a flow if `segment` can start or continue one; false when the
    /// segment is of no use (a bare ACK or RST of an unknown connection).
    fn find_or_create(
        &mut self,
        key: FlowKey,
        direction: Direction,
        segment: &Segment<'_>,
        ts: SystemTime,
        out: &mut Vec<(FlowKey, H::Event)>,
    ) -> bool {
        let syn = segment.has(tcp_flags::SYN);
        let ack = segment.has(tcp_flags::ACK);
        if let Some(flow) = self.flows.get_mut(&key) {
            if syn && !ack && direction == Direction::Request && flow.request.is_anchored() {
                // A new connection on the ports of one that never closed cleanly, or a
                // forged SYN: the server's SYN-ACK of it decides.
                flow.pending_syn = Some(segment.seq);
            } else if syn
                && ack
                && direction == Direction::Response
                && let Some(isn) = flow.pending_syn
                && segment.ack == isn.wrapping_add(1)
            {
                self.close(key, ts, GapReason::Closed, out);
                self.create(key, ts, out);
                if let Some(flow) = self.flows.get_mut(&key) {
                    flow.request.syn(isn);
                }
            }
            return true;
        }
        let rst = segment.has(tcp_flags::RST);
        let fin = segment.has(tcp_flags::FIN);
        if rst || (segment.payload.is_empty() && !syn && !fin) {
            return false;
        }
        self.create(key, ts, out);
        if let Some(flow) = self.flows.get_mut(&key) {
            let forgotten = self.forgotten.remove(&key).is_some() || self.forgotten_full;
            flow.resumed = forgotten && !syn;
        }
        true
    }

    /// A new flow for `key`, evicting one if the table is full.
    fn create(&mut self, key: FlowKey, ts: SystemTime, out: &mut Vec<(FlowKey, H::Event)>) {
        if self.flows.len() >= self.limits.max_flows {
            self.evict(ts, out);
        }
        let handler = (self.new_handler)(&key);
        self.flows.insert(key, Box::new(Flow::new(handler, ts)));
        self.stats.flows_created.inc();
        self.stats.flows.set(self.flows.len() as i64);
    }

    /// Ends flows idle for longer than the limit, and gives up holes older than the hole
    /// timeout (by capture time).
    pub fn expire(&mut self, now: SystemTime, out: &mut Vec<(FlowKey, H::Event)>) {
        self.give_up_stale_holes(now, out);
        let timeout = self.limits.idle_timeout;
        // A connection idle ten times the timeout after being forgotten is gone for good.
        self.forgotten.retain(|_, at| {
            now.duration_since(*at).unwrap_or_default() < timeout.saturating_mul(10)
        });
        self.forgotten_full &= self.forgotten.len() >= MAX_FORGOTTEN / 2;
        let idle: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, flow)| now.duration_since(flow.last_seen).unwrap_or_default() >= timeout)
            .map(|(key, _)| *key)
            .collect();
        for key in idle {
            self.close(key, now, GapReason::Expired, out);
            self.stats.flows_expired.inc();
        }
    }

    /// Gives up the holes bytes have waited behind for longer than the hole timeout, in flows
    /// that went quiet (busy flows do it as their segments arrive).
    fn give_up_stale_holes(&mut self, now: SystemTime, out: &mut Vec<(FlowKey, H::Event)>) {
        let timeout = self.limits.hole_timeout;
        let stale = |flow: &Flow<H>, direction: Direction| {
            hole_given_up(
                flow.stream(direction),
                direction,
                flow.request_acked,
                now,
                timeout,
            )
        };
        let keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, flow)| {
                !flow.finished
                    && (stale(flow, Direction::Request) || stale(flow, Direction::Response))
            })
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            let before = flow.pending_bytes();
            for direction in [Direction::Request, Direction::Response] {
                if stale(flow, direction) {
                    flow.give_up_holes(
                        direction,
                        GapReason::HoleTimeout,
                        &self.stats,
                        &mut self.scratch,
                    );
                    flow.end_if_complete(direction, &mut self.scratch);
                }
            }
            self.total_buffered -= before - flow.pending_bytes();
            out.extend(self.scratch.drain(..).map(|event| (key, event)));
        }
        self.stats
            .out_of_order_bytes
            .set(self.total_buffered as i64);
    }

    /// Ends every flow (end of a capture file, or shutdown).
    pub fn flush(&mut self, now: SystemTime, out: &mut Vec<(FlowKey, H::Event)>) {
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            self.close(key, now, GapReason::Expired, out);
        }
    }

    /// Evicts the least recently active of a sample of flows.
    fn evict(&mut self, now: SystemTime, out: &mut Vec<(FlowKey, H::Event)>) {
        let oldest = self
            .flows
            .iter()
            .take(EVICTION_SAMPLE)
            // Connections production was never seen to accept go first: a flood of forged
            // segments must not push out real connections.
            .min_by_key(|(_, flow)| (flow.accepted, flow.last_seen))
            .map(|(key, _)| *key);
        if let Some(key) = oldest {
            self.close(key, now, GapReason::Expired, out);
            self.stats.flows_evicted.inc();
        }
    }

    /// Ends both directions of a flow, declaring the bytes still missing as lost, and
    /// removes it.
    fn close(
        &mut self,
        key: FlowKey,
        now: SystemTime,
        reason: GapReason,
        out: &mut Vec<(FlowKey, H::Event)>,
    ) {
        let Some(mut flow) = self.flows.remove(&key) else {
            return;
        };
        // A connection that goes on after this was mid-message, or spoke another protocol.
        if reason == GapReason::Expired && (flow.finished || flow.handler.mid_message()) {
            if self.forgotten.len() < MAX_FORGOTTEN {
                self.forgotten.insert(key, now);
            } else {
                self.forgotten_full = true;
                self.stats.forgotten_not_kept.inc();
            }
        }
        self.total_buffered -= flow.pending_bytes();
        self.stats
            .out_of_order_bytes
            .set(self.total_buffered as i64);
        self.stats.flows.set(self.flows.len() as i64);
        if flow.finished {
            return;
        }
        for direction in [Direction::Request, Direction::Response] {
            if flow.stream(direction).ended {
                continue;
            }
            if flow.stream(direction).has_hole() {
                flow.give_up_holes(direction, reason, &self.stats, &mut self.scratch);
            }
            let (stream, handler) = flow.stream_and_handler(direction);
            stream.ended = true;
            handler.end(direction, &mut self.scratch);
        }
        if reason == GapReason::Closed {
            self.stats.flows_closed.inc();
        }
        out.extend(self.scratch.drain(..).map(|event| (key, event)));
    }

    fn remove(&mut self, key: FlowKey) {
        if let Some(flow) = self.flows.remove(&key) {
            self.total_buffered -= flow.pending_bytes();
            self.stats
                .out_of_order_bytes
                .set(self.total_buffered as i64);
            self.stats.flows.set(self.flows.len() as i64);
        }
    }

    /// Stops parsing a flow but keeps a small entry so its remaining segments are ignored.
    fn finish(&mut self, key: FlowKey) {
        if let Some(flow) = self.flows.get_mut(&key) {
            self.total_buffered -= flow.pending_bytes();
            flow.request = Stream::default();
            flow.response = Stream::default();
            flow.finished = true;
            self.stats.flows_finished.inc();
        }
    }
}

/// What a segment of `direction` acknowledges of the other side, taken before its own bytes
/// (an answer's ACK comes before the answer): how far production has read the requests,
/// and, for a segment carrying `payload_len` bytes from `data_seq`, which of its bytes carry
/// the acknowledgement.
fn take_ack<H: StreamHandler>(
    flow: &mut Flow<H>,
    direction: Direction,
    ack: u32,
    data_seq: u32,
    payload_len: usize,
    scratch: &mut Vec<H::Event>,
) {
    let other = direction.other();
    let Some(offset) = flow.stream_mut(other).acked_offset(ack) else {
        return;
    };
    if other == Direction::Request {
        flow.request_acked = flow.request_acked.max(offset);
    }
    if payload_len > 0 {
        // Picked up mid-way, the segment's first byte is about to be offset 0.
        let from = flow.stream_mut(direction).position(data_seq).unwrap_or(0);
        let from = u64::try_from(from).unwrap_or(0);
        let carrier = from..from + payload_len as u64;
        flow.handler.acked(other, offset, carrier, scratch);
    }
}

/// Gives up every hole of `stream`, telling the handler where each jump lands before it,
/// and whether the receiver had those bytes (it acknowledged up to `request_acked` of the
/// client's stream).
fn skip_holes<H: StreamHandler>(
    stream: &mut Stream,
    direction: Direction,
    handler: &mut H,
    scratch: &mut Vec<H::Event>,
    delivered: &mut u64,
    stats: &ReassemblyStats,
    (reason, request_acked): (GapReason, u64),
) {
    loop {
        let resume_at = stream.resume_offset();
        let kind = if direction == Direction::Response || request_acked >= resume_at {
            GapKind::CaptureLoss
        } else {
            GapKind::Unacknowledged
        };
        handler.gap(direction, resume_at, kind, scratch);
        stats.gap(reason);
        let skipped = stream.skip_hole(&mut |data, at| {
            *delivered += data.len() as u64;
            handler.data(direction, data, at, scratch);
        });
        if !skipped || !stream.has_hole() || stream.pending_bytes() == 0 {
            break;
        }
    }
}

/// True when the bytes `stream` holds have waited long enough for the hole before them
/// (by capture time) to be given up. In the client's stream, also only once production
/// acknowledged bytes past the hole: then they reached production and the capture lost
/// them. Before that production waits for them too (a client can leave a hole on purpose
/// and fill it later), and so does the reader; the flow and global buffer limits still
/// bound what waits.
fn hole_given_up(
    stream: &Stream,
    direction: Direction,
    request_acked: u64,
    now: SystemTime,
    timeout: Duration,
) -> bool {
    let waited = stream
        .waiting_since()
        .is_some_and(|since| now.duration_since(since).unwrap_or_default() >= timeout);
    waited && (direction == Direction::Response || request_acked >= stream.resume_offset())
}

/// Judges a client segment by its ACK (see [`acceptance`]); false when production's stack
/// drops it, which is then counted and goes no further.
fn accept_client_segment<H>(
    flow: &mut Flow<H>,
    segment: &Segment<'_>,
    stats: &ReassemblyStats,
) -> bool {
    let syn = segment.has(tcp_flags::SYN);
    if segment.has(tcp_flags::RST) && !acceptance::rst_in_window(segment.seq, &flow.request) {
        // A blind RST must not end a connection production keeps.
        stats.rejected(RejectReason::RstOutOfWindow);
        return false;
    }
    if segment.has(tcp_flags::URG) && !segment.payload.is_empty() {
        // Production reads these bytes without their urgent one: a hole, never a copy.
        stats.rejected(RejectReason::Urgent);
        return false;
    }
    let carries = !segment.payload.is_empty() || segment.has(tcp_flags::FIN);
    if syn || !carries {
        return true;
    }
    match acceptance::check_ack(segment, &flow.response) {
        AckCheck::Rejected(reason) => {
            stats.rejected(reason);
            false
        }
        AckCheck::Acceptable => {
            // Only the server's own SYN-ACK, seen from its start, proves the handshake.
            flow.established |= flow.response.is_from_syn();
            flow.accepted |= flow.established;
            true
        }
        AckCheck::Unknown => true,
    }
}

/// Before the first bytes of a direction: tells the handler when it cannot know that they
/// begin a message (see [`StreamHandler::gap`]) — a stream picked up mid-way, or client
/// bytes not preceded by a handshake the capture saw complete.
fn announce<H: StreamHandler>(
    flow: &mut Flow<H>,
    direction: Direction,
    stats: &ReassemblyStats,
    scratch: &mut Vec<H::Event>,
) {
    let midstream = !flow.stream_mut(direction).is_anchored();
    match direction {
        Direction::Request if !flow.announced => {
            flow.announced = true;
            if midstream {
                stats.gap(GapReason::Midstream);
            }
            if flow.resumed {
                stats.unverified_flows.inc();
                flow.handler.gap(direction, 0, GapKind::Resumed, scratch);
            } else if !flow.verified_start() {
                stats.unverified_flows.inc();
                flow.handler.gap(direction, 0, GapKind::Pickup, scratch);
            }
        }
        Direction::Response if midstream => {
            stats.gap(GapReason::Midstream);
            flow.handler.gap(direction, 0, GapKind::Pickup, scratch);
        }
        _ => {}
    }
}
