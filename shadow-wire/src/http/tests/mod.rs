//! Tests of [`HttpFlow`] as the reassembler drives it. Every fixture is fed whole, with
//! each push split at every byte boundary, and byte by byte: all runs must give the same
//! events and counters.

mod props;
mod requests;
mod responses;

use std::time::{Duration, SystemTime};

use super::{Counters, HttpEvent, HttpFlow, Limits, Request};
use crate::{packet::Direction, reassembly::GapKind};

pub(super) const REQ: Direction = Direction::Request;
pub(super) const RESP: Direction = Direction::Response;

/// One call the reassembler makes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Push(Direction, &'static [u8]),
    /// Bytes lost by the capture (as many as [`LOST`]): production acknowledged past them.
    Gap(Direction),
    /// This many bytes lost by the capture.
    Lose(Direction, u64),
    /// This many bytes lost that production was never seen to have either.
    Unacknowledged(Direction, u64),
    /// The stream was picked up after its start: a gap before its first byte.
    Pickup(Direction),
    /// A bare acknowledgement of every request byte pushed so far (no answer with it).
    Ack,
    /// Production answers (`204`), acknowledging every request byte pushed so far.
    Answer,
    /// Production sends these response bytes, acknowledging every request byte so far.
    Reply(&'static [u8]),
    /// Production answers, acknowledging all but the last this many request bytes.
    AnswerBefore(u64),
    End(Direction),
}

/// The answer of [`Op::Answer`].
pub(super) const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// Bytes an [`Op::Gap`] stands for.
pub(super) const LOST: u64 = 1000;

/// Capture time of the `i`th operation of a fixture.
pub(super) fn ts(i: usize) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + i as u64)
}

/// Runs `ops`, each push cut into the pieces `cut` returns; checks after every call that
/// the flow holds no more than a request (head and body), a response head and held bytes.
fn run<'a>(
    ops: &'a [Op],
    limits: Limits,
    cut: impl Fn(usize, &'a [u8]) -> Vec<&'a [u8]>,
) -> (Vec<HttpEvent>, Counters) {
    let mut flow = HttpFlow::new(limits);
    let mut out = Vec::new();
    let bound = buffer_bound(limits);
    let mut position = [0u64; 2];
    let at = |direction: Direction| usize::from(direction == RESP);
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Push(direction, data) => {
                for piece in cut(i, data) {
                    flow.push(direction, piece, ts(i), &mut out);
                    assert!(flow.buffered() <= bound, "buffered {}", flow.buffered());
                }
                position[at(direction)] += data.len() as u64;
            }
            Op::Gap(direction) | Op::Lose(direction, _) | Op::Unacknowledged(direction, _) => {
                let (lost, kind) = match *op {
                    Op::Lose(_, n) => (n, GapKind::CaptureLoss),
                    Op::Unacknowledged(_, n) => (n, GapKind::Unacknowledged),
                    _ => (LOST, GapKind::CaptureLoss),
                };
                position[at(direction)] += lost;
                flow.gap(direction, position[at(direction)], kind, &mut out);
            }
            Op::Pickup(direction) => flow.gap(direction, 0, GapKind::Pickup, &mut out),
            Op::Ack => {
                let here = position[1];
                flow.acked(REQ, position[0], here..here, &mut out)
            }
            Op::Answer | Op::AnswerBefore(_) | Op::Reply(_) => {
                let (before, answer) = match *op {
                    Op::AnswerBefore(n) => (n, ANSWER),
                    Op::Reply(bytes) => (0, bytes),
                    _ => (0, ANSWER),
                };
                let carrier = position[1]..position[1] + answer.len() as u64;
                flow.acked(REQ, position[0] - before, carrier, &mut out);
                flow.push(RESP, answer, ts(i), &mut out);
                position[1] += answer.len() as u64;
            }
            Op::End(direction) => flow.end(direction, &mut out),
        }
    }
    (joined(out), flow.counters())
}

/// Most bytes one flow may hold: a request (head and body, or a streamed body's buffered
/// part), a response head, held bytes of a possible protocol switch, and requests
/// awaiting confirmation.
pub(super) fn buffer_bound(limits: Limits) -> usize {
    let body = (limits.kept_body_limit() as usize).max(limits.stream_body_after.unwrap_or(0));
    4 * limits.max_head_bytes + 2 * body + limits.max_held_bytes
}

/// `events` with each streamed request joined back into one `Request`, where it completed,
/// as its copy reaches the shadow: where the pieces fall depends on how the stream was
/// cut, the request must not. A broken one leaves nothing (its `Dropped` stays).
pub(super) fn joined(events: Vec<HttpEvent>) -> Vec<HttpEvent> {
    let mut out = Vec::new();
    let mut open: Option<(Request, Vec<u8>)> = None;
    for event in events {
        match event {
            HttpEvent::RequestStreaming(request) => {
                assert!(open.is_none(), "one streaming request at a time");
                let raw = request.raw.to_vec();
                open = Some((request, raw));
            }
            HttpEvent::RequestBody { sequence, bytes } => {
                let (request, raw) = open.as_mut().expect("a piece after its start");
                assert_eq!(request.sequence, sequence);
                raw.extend_from_slice(&bytes);
            }
            HttpEvent::RequestEnd {
                sequence,
                last_byte,
            } => {
                let (mut request, raw) = open.take().expect("an end after its start");
                assert_eq!(request.sequence, sequence);
                request.raw = raw.into();
                request.body.1 = request.raw.len();
                request.last_byte = last_byte;
                out.push(HttpEvent::Request(request));
            }
            HttpEvent::RequestBroken { sequence, .. } => {
                let (request, _) = open.take().expect("a break after its start");
                assert_eq!(request.sequence, sequence);
            }
            other => out.push(other),
        }
    }
    out
}

/// Events of `ops` under `limits`, after checking that every way of cutting the pushes
/// gives the same.
pub(super) fn events_with(ops: &[Op], limits: Limits) -> (Vec<HttpEvent>, Counters) {
    let whole = run(ops, limits, |_, data| vec![data]);
    for (i, op) in ops.iter().enumerate() {
        let Op::Push(_, data) = op else { continue };
        for k in 1..data.len() {
            let split = run(ops, limits, |j, data| {
                if j == i {
                    vec![&data[..k], &data[k..]]
                } else {
                    vec![data]
                }
            });
            assert_eq!(split, whole, "push {i} split at byte {k}");
        }
    }
    let bytewise = run(ops, limits, |_, data| data.chunks(1).collect());
    assert_eq!(bytewise, whole, "byte by byte");
    whole
}

pub(super) fn events(ops: &[Op]) -> Vec<HttpEvent> {
    events_with(ops, Limits::default()).0
}

/// One line per event, for readable assertions.
pub(super) fn summary(events: &[HttpEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            HttpEvent::Request(r) => format!(
                "request {} {} {} body {}",
                r.sequence,
                r.method_str(),
                r.target_str(),
                r.body().len()
            ),
            HttpEvent::Unconfirmed(r) => format!(
                "unconfirmed {} {} {} body {}",
                r.sequence,
                r.method_str(),
                r.target_str(),
                r.body().len()
            ),
            HttpEvent::Response(r) => format!(
                "response {} to {:?} body {}",
                r.status, r.request_sequence, r.body_len
            ),
            HttpEvent::Dropped { direction, reason } => {
                format!("dropped {} {}", direction.as_str(), reason.as_str())
            }
            HttpEvent::Unsupported { reason } => format!("unsupported {}", reason.as_str()),
            HttpEvent::Notice { what } => format!("notice {}", what.as_str()),
            HttpEvent::RequestStreaming(r) => format!(
                "streaming {} {} {} body {}",
                r.sequence,
                r.method_str(),
                r.target_str(),
                r.body().len()
            ),
            HttpEvent::RequestBody { sequence, bytes } => {
                format!("piece {sequence} {}", bytes.len())
            }
            HttpEvent::RequestEnd { sequence, .. } => format!("end {sequence}"),
            HttpEvent::RequestBroken { sequence, unread } => {
                format!("broken {sequence} unread {unread}")
            }
        })
        .collect()
}

pub(super) fn requests(events: &[HttpEvent]) -> Vec<&Request> {
    events
        .iter()
        .filter_map(|event| match event {
            HttpEvent::Request(request) => Some(request),
            _ => None,
        })
        .collect()
}

/// Small limits, so the limit fixtures stay small enough to split everywhere.
pub(super) fn small_limits() -> Limits {
    Limits {
        max_head_bytes: 96,
        max_headers: Some(4),
        max_body_bytes: Some(32),
        stream_body_after: None,
        max_held_bytes: 128,
        max_held_total_bytes: 1 << 20,
        max_parse_total_bytes: 1 << 20,
    }
}
