//! [`HttpFlow`]: both directions of one connection. It interprets the heads its readers
//! delimit, frames bodies, pairs responses with requests, lets requests out only where
//! production's parser is known to stand (`place`, with `sync`), and stops when the
//! connection leaves HTTP/1.

mod place;

use std::{collections::VecDeque, ops::Range, sync::Arc, time::SystemTime};

use super::{
    Budgets, Counters, DropReason, HttpEvent, Keeping, KeptResponse, Limits, Notice, Request,
    Response, UnsupportedReason,
    head::{self, MethodKind, RequestHead},
    hold::Hold,
    pairing::{Pairing, Pending},
    reader::{BodyMode, Message, Reader, Step},
    sync::Sync,
};
use crate::packet::Direction;

/// Both directions of one captured HTTP/1 connection.
pub struct HttpFlow {
    limits: Limits,
    request: Reader,
    response: Reader,
    pairing: Pairing,
    next_sequence: u64,
    /// The request whose body is being read, and its sequence.
    current_request: Option<(RequestHead, u64)>,
    /// That request's body is coming out in pieces.
    streaming: Option<Streaming>,
    /// The response whose body is being read.
    current_response: Option<ResponseStart>,
    /// Request bytes waiting for the answer to a request that may switch protocols.
    hold: Option<Hold>,
    /// Where production's parser stands on the request stream.
    sync: Sync,
    /// Production's latest acknowledgements of the request stream, each with the payload of
    /// the response-stream segment that carried it.
    answer_acks: VecDeque<(Range<u64>, u64)>,
    /// Requests after this one are never read by production: it, or its answer, closes the
    /// connection.
    closes_after: Option<u64>,
    finished: bool,
    /// Whether final responses are kept for diffing, and the bodies' budget.
    keeping: Keeping,
    /// The status and fields of the response being kept.
    kept_head: Option<(u16, Vec<(String, String)>)>,
}

/// A request whose body is coming out in pieces.
#[derive(Debug, Clone, Copy)]
struct Streaming {
    sequence: u64,
    /// It is a POST (a stray CRLF may follow it).
    post: bool,
}

/// What a response head said, kept until its body ends.
#[derive(Debug, Clone, Copy)]
struct ResponseStart {
    status: u16,
    request_sequence: Option<u64>,
    interim: bool,
    /// The connection leaves HTTP/1 after this response.
    then: Option<UnsupportedReason>,
}

impl HttpFlow {
    /// A flow with budgets of its own (see [`HttpFlow::with_budgets`]).
    pub fn new(limits: Limits) -> Self {
        HttpFlow::with_budgets(limits, Budgets::new(&limits))
    }

    /// A flow whose parsers buffer, and whose requests awaiting confirmation are held, from
    /// `budgets`, which the flows of one table share.
    pub fn with_budgets(limits: Limits, budgets: Budgets) -> Self {
        HttpFlow {
            limits,
            keeping: budgets.keeping.clone(),
            kept_head: None,
            request: Reader::new(Direction::Request, limits, budgets.parse.clone()),
            response: Reader::new(Direction::Response, limits, budgets.parse),
            pairing: Pairing::default(),
            next_sequence: 0,
            current_request: None,
            streaming: None,
            current_response: None,
            hold: None,
            sync: Sync::synced(budgets.held),
            answer_acks: VecDeque::new(),
            closes_after: None,
            finished: false,
        }
    }

    /// In-order bytes of one direction, with the capture time of the segment they came from.
    pub fn push(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: SystemTime,
        out: &mut Vec<HttpEvent>,
    ) {
        match direction {
            Direction::Request => self.read_requests(data, ts, out),
            Direction::Response => self.read_responses(data, ts, out),
        }
    }

    /// `direction` ended (FIN, RST or expiry): a response delimited by close completes
    /// here; any other partial message is dropped as `Truncated`. A close-delimited
    /// response's `last_byte` is its last data byte, not `_ts`, which for an expiry would
    /// be the sweep time.
    pub fn end(&mut self, direction: Direction, out: &mut Vec<HttpEvent>) {
        if self.finished {
            return;
        }
        // Held bytes after a request that may switch protocols: nothing will decide what
        // they are now.
        self.discard_hold(out);
        let reader = match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        };
        let synced = self.sync.is_synced();
        match reader.end() {
            Some(Ok(message)) => match direction {
                Direction::Request => self.request_complete(message, out),
                Direction::Response => self.response_complete(message, out),
            },
            Some(Err(reason)) if direction == Direction::Response || synced => {
                out.push(HttpEvent::Dropped { direction, reason })
            }
            _ => {}
        }
        match direction {
            Direction::Request => {
                if let Some((_, sequence)) = self.current_request.take() {
                    self.pairing.forget(sequence);
                }
                self.break_stream(false, out);
            }
            Direction::Response => {
                self.current_response = None;
                // A response cut off gives its kept part back now, not when the flow goes.
                self.kept_head = None;
                self.response.keeper = None;
                // No answer will come to confirm requests.
                self.sync.close(out);
            }
        }
    }

    /// True once the flow stopped being HTTP/1 (upgrade, tunnel, HTTP/2): the caller may
    /// stop feeding it.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What this flow passed over so far.
    pub fn counters(&self) -> Counters {
        Counters {
            request: self.request.counters(),
            response: self.response.counters(),
            unpaired_responses: self.pairing.unpaired,
            pending_evicted: self.pairing.evicted,
        }
    }

    /// Bytes held by the flow, both directions.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.request.buffered()
            + self.response.buffered()
            + self.hold.as_ref().map_or(0, Hold::len)
            + self.sync.held_bytes()
    }

    fn read_requests(&mut self, data: &[u8], ts: SystemTime, out: &mut Vec<HttpEvent>) {
        let mut input = data;
        while !self.finished {
            if let Some(hold) = &mut self.hold {
                if hold.push(input, ts, self.limits.max_head_bytes) {
                    return;
                }
                // The answer is long in coming: what follows may be the other protocol.
                self.discard_hold(out);
                continue;
            }
            match self.request.next(&mut input, ts) {
                Step::Idle => return,
                Step::Head => self.request_head(out),
                Step::Complete(message) if message.streamed => self.stream_end(message, out),
                Step::Complete(message) => self.request_complete(message, out),
                Step::StreamStart { start, head_len } => {
                    self.stream_start(start, head_len, ts, out)
                }
                Step::StreamPiece(bytes) => {
                    if let Some(streaming) = self.streaming {
                        let sequence = streaming.sequence;
                        out.push(HttpEvent::RequestBody { sequence, bytes });
                    }
                }
                Step::BodyDropped(reason) => {
                    out.push(HttpEvent::Dropped {
                        direction: Direction::Request,
                        reason,
                    });
                    // Skipped exactly: the order of requests is intact.
                    if let Some((_, sequence)) = self.current_request.take() {
                        self.pairing.forget(sequence);
                    }
                    self.break_stream(false, out);
                }
                Step::Dropped(DropReason::ParseBudgetFull) => self.request_unbuffered(out),
                Step::Dropped(reason) => self.request_refused(Some(reason), out),
                Step::LostPlace => self.request_refused(None, out),
                Step::Http2 => self.finish(UnsupportedReason::Http2, out),
            }
        }
    }

    fn request_head(&mut self, out: &mut Vec<HttpEvent>) {
        let parsed = head::parse_request(self.request.head(), self.limits.max_headers)
            .and_then(|head| head.framing().map(|framing| (head, framing)));
        let (head, framing) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.request.reject();
                self.request_refused(Some(reason), out);
                return;
            }
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let pending = Pending {
            sequence,
            first_byte: self.request.message_ts(),
            kind: head.kind,
            paired: true,
        };
        self.pairing.push(pending, self.response.is_idle());
        // A long body streams where production's parser is known to stand and will read
        // this request; anywhere else it is kept whole, as a held request must be.
        let unread = self.closes_after.is_some_and(|last| sequence > last);
        let mode = match self.limits.stream_body_after {
            Some(after) if self.sync.is_synced() && !unread => BodyMode::Stream {
                after: after as u64,
                limit: self.limits.max_body_bytes.map(|limit| limit as u64),
                started: false,
            },
            _ => BodyMode::Keep {
                limit: self.limits.kept_body_limit(),
            },
        };
        if let Some(reason) = self.request.start_body(framing, mode) {
            out.push(HttpEvent::Dropped {
                direction: Direction::Request,
                reason,
            });
            self.pairing.forget(sequence);
            return;
        }
        self.current_request = Some((head, sequence));
    }

    fn request_complete(&mut self, message: Message, out: &mut Vec<HttpEvent>) {
        let (Some((mut head, sequence)), Some(raw)) = (self.current_request.take(), message.raw)
        else {
            return;
        };
        let switches = head.kind == MethodKind::Connect || head.upgrade;
        if &raw[head.method.0..head.method.1] == b"POST" {
            // What every server skips after a POST: a stray CRLF ending its body.
            self.request.allow_blank_lines(4);
        }
        let request = Request {
            body: (message.head_len.min(raw.len()), raw.len()),
            raw,
            head_len: message.head_len,
            method: head.method,
            target: head.target,
            version: head.version,
            headers: std::mem::take(&mut head.headers),
            host: head.host,
            first_byte: message.first_byte,
            last_byte: message.last_byte,
            sequence,
        };
        // Production closes the connection before reading it.
        let unread = self.closes_after.is_some_and(|last| sequence > last);
        if !head.persists && !unread {
            self.closes_after = Some(sequence);
        }
        let end = self.request.position();
        if !self
            .sync
            .request(end, request, unread, self.limits.max_held_bytes, out)
        {
            self.request.lose();
            self.request_lost(out);
            return;
        }
        if !self.sync.is_synced() && self.request.reached_ack() {
            // Production answered this request's end before the reader got there.
            self.sync.acked(end, self.closes_after, out);
        }
        if switches {
            self.may_switch(&head, sequence);
        }
    }

    /// A request that may switch protocols ended: what the client sends next waits for
    /// production's answer.
    fn may_switch(&mut self, head: &RequestHead, sequence: u64) {
        if self.pairing.contains(sequence) {
            // A CONNECT with a body is framed one way by Go and another by llhttp: after a
            // refusal, what follows is no known request.
            let ambiguous = head.kind == MethodKind::Connect && head.fields.has_body_fields();
            self.hold = Some(Hold::new(sequence, ambiguous));
        }
    }

    /// The request in progress passed its buffered part: it comes out now, its body so far
    /// with it, and the rest in pieces.
    fn stream_start(
        &mut self,
        start: bytes::Bytes,
        head_len: usize,
        ts: SystemTime,
        out: &mut Vec<HttpEvent>,
    ) {
        let Some((head, sequence)) = &self.current_request else {
            return;
        };
        let post = start.get(head.method.0..head.method.1) == Some(b"POST".as_slice());
        self.streaming = Some(Streaming {
            sequence: *sequence,
            post,
        });
        out.push(HttpEvent::RequestStreaming(Request {
            body: (head_len.min(start.len()), start.len()),
            raw: start,
            head_len,
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers.clone(),
            host: head.host,
            first_byte: self.request.message_ts(),
            last_byte: ts,
            sequence: *sequence,
        }));
    }

    /// A streaming request's body ended with `message`'s last piece.
    fn stream_end(&mut self, message: Message, out: &mut Vec<HttpEvent>) {
        let (Some((head, sequence)), Some(streaming)) =
            (self.current_request.take(), self.streaming.take())
        else {
            return;
        };
        if let Some(bytes) = message.raw.filter(|piece| !piece.is_empty()) {
            out.push(HttpEvent::RequestBody { sequence, bytes });
        }
        out.push(HttpEvent::RequestEnd {
            sequence,
            last_byte: message.last_byte,
        });
        if streaming.post {
            self.request.allow_blank_lines(4);
        }
        // It streamed only because production reads it: nothing closed before it.
        if !head.persists {
            self.closes_after = Some(sequence);
        }
        if head.kind == MethodKind::Connect || head.upgrade {
            self.may_switch(&head, sequence);
        }
    }

    /// The streaming request, if any, will not complete (or, `unread`, will not be read by
    /// production): its copy is abandoned.
    fn break_stream(&mut self, unread: bool, out: &mut Vec<HttpEvent>) {
        if let Some(streaming) = self.streaming.take() {
            out.push(HttpEvent::RequestBroken {
                sequence: streaming.sequence,
                unread,
            });
        }
    }

    fn request_lost(&mut self, out: &mut Vec<HttpEvent>) {
        self.pairing.request_lost();
        if let Some((_, sequence)) = self.current_request.take() {
            self.pairing.forget(sequence);
        }
        self.break_stream(false, out);
    }

    /// Parses held request bytes: the answer said the connection stays HTTP/1.
    fn release(&mut self, out: &mut Vec<HttpEvent>) {
        if let Some(hold) = self.hold.take() {
            for (part, ts) in hold.into_pushes() {
                self.read_requests(&part, ts, out);
            }
        }
    }

    fn read_responses(&mut self, data: &[u8], ts: SystemTime, out: &mut Vec<HttpEvent>) {
        let mut input = data;
        while !self.finished {
            match self.response.next(&mut input, ts) {
                // Response bodies are never streamed, nor kept (so never dropped).
                Step::Idle
                | Step::Http2
                | Step::StreamStart { .. }
                | Step::StreamPiece(_)
                | Step::BodyDropped(_) => {
                    return;
                }
                // Only request bodies are dropped, so only they can lose the place so.
                Step::LostPlace => self.response_lost(out),
                Step::Head => self.response_head(out),
                Step::Complete(message) => self.response_complete(message, out),
                Step::Dropped(reason) => {
                    out.push(HttpEvent::Dropped {
                        direction: Direction::Response,
                        reason,
                    });
                    self.response_lost(out);
                }
            }
        }
    }

    fn response_head(&mut self, out: &mut Vec<HttpEvent>) {
        let pending = self.pairing.front(self.response.message_ts());
        let parsed =
            head::parse_response(self.response.head(), self.limits.max_headers).and_then(|head| {
                let framing = head.framing(pending.map(|p| p.kind))?;
                Ok((head, framing))
            });
        let (head, framing) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.response.reject();
                out.push(HttpEvent::Dropped {
                    direction: Direction::Response,
                    reason,
                });
                self.response_lost(out);
                return;
            }
        };
        if head::length_with_chunked(head.fields, framing) {
            out.push(HttpEvent::Notice {
                what: Notice::ContentLengthWithChunked,
            });
        }
        let status = head.status;
        let interim = (100..200).contains(&status) && status != 101;
        if !interim {
            // An answer that closes the connection: nothing sent after its request is read.
            if !head.persists
                && let Some(p) = pending
            {
                let last = self.closes_after.map_or(p.sequence, |l| l.min(p.sequence));
                self.closes_after = Some(last);
                // Production closes before reading the request still streaming.
                if self.streaming.is_some_and(|s| s.sequence > last) {
                    self.break_stream(true, out);
                }
            }
            // Production began a final answer: its stack had then received exactly the
            // request bytes this segment acknowledges.
            self.answered(self.response.message_start(), out);
        }
        let connect = pending.is_some_and(|p| p.kind == MethodKind::Connect);
        let then = if status == 101 {
            Some(UnsupportedReason::Upgrade)
        } else if connect && (200..300).contains(&status) {
            Some(UnsupportedReason::Connect)
        } else {
            None
        };
        if !interim && pending.is_some() {
            self.pairing.pop();
        }
        // Kept for diffing: the head's fields now, while they are in the buffer, the body
        // as it is passed over.
        self.kept_head = None;
        self.response.keeper = None;
        if !interim && let Some(keeper) = self.keeping.keeper() {
            self.kept_head = super::head_fields(self.response.head());
            self.response.keeper = self.kept_head.is_some().then_some(keeper);
        }
        self.current_response = Some(ResponseStart {
            status,
            request_sequence: pending.filter(|p| p.paired).map(|p| p.sequence),
            interim,
            then,
        });
        self.response.start_body(framing, BodyMode::Pass);
        let decided = pending.and_then(|p| {
            self.hold
                .as_ref()
                .filter(|h| h.sequence == p.sequence)
                .map(|h| h.ambiguous)
        });
        if let Some(ambiguous) = decided
            && !interim
            && then.is_none()
        {
            if ambiguous {
                self.discard_hold(out);
            } else {
                // Not switching after all: what the client sent meanwhile is HTTP/1.
                self.release(out);
            }
        }
    }

    fn response_complete(&mut self, message: Message, out: &mut Vec<HttpEvent>) {
        let Some(start) = self.current_response.take() else {
            return;
        };
        if !start.interim && start.request_sequence.is_none() {
            self.pairing.unpaired += 1;
        }
        out.push(HttpEvent::Response(Response {
            status: start.status,
            request_sequence: start.request_sequence,
            first_byte: message.first_byte,
            last_byte: message.last_byte,
            head_len: message.head_len,
            body_len: message.body_len,
            kept: self.kept_head.take().zip(self.response.keeper.take()).map(
                |((status, headers), keeper)| {
                    Arc::new(KeptResponse {
                        status,
                        headers,
                        body: keeper.finish(),
                    })
                },
            ),
        }));
        if let Some(reason) = start.then {
            self.finish(reason, out);
        }
    }

    fn response_lost(&mut self, out: &mut Vec<HttpEvent>) {
        self.current_response = None;
        self.kept_head = None;
        self.response.keeper = None;
        self.pairing.response_lost();
        // The answer that would decide about held bytes may have been lost.
        self.discard_hold(out);
    }

    fn finish(&mut self, reason: UnsupportedReason, out: &mut Vec<HttpEvent>) {
        self.sync.close(out);
        out.push(HttpEvent::Unsupported { reason });
        self.finished = true;
        self.request.stop();
        self.response.stop();
        self.hold = None;
        self.current_request = None;
        self.break_stream(false, out);
        self.current_response = None;
        self.kept_head = None;
        self.response.keeper = None;
        self.pairing.clear();
    }
}
