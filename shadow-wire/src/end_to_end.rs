//! Reassembly and HTTP parsing together: random pipelined requests, cut into random segments
//! delivered out of order, duplicated and overlapping, from an initial sequence number near
//! 2^32, come out exactly as sent; a lost segment drops only the requests it broke.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use crate::{
    http::{HttpEvent, HttpFlow, Limits as HttpLimits},
    packet::{Direction, Segment, tcp_flags},
    reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats, StreamHandler},
    testing::segments_of,
};

/// One request as it goes on the wire.
fn request_strategy() -> impl Strategy<Value = Vec<u8>> {
    let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,40}")
        .prop_map(|(name, value)| format!("{name}: {}\r\n", value.trim()));
    let body = proptest::collection::vec(any::<u8>(), 0..3000);
    let chunks = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..700), 0..6);
    (
        0u8..3,
        "/[a-z0-9/?=&%-]{0,30}",
        proptest::collection::vec(header, 0..5),
        body,
        chunks,
    )
        .prop_map(|(kind, target, headers, body, chunks)| {
            let mut head = String::new();
            let method = ["GET", "POST", "PUT"][usize::from(kind)];
            head.push_str(&format!(
                "{method} {target} HTTP/1.1\r\nHost: myservice\r\n"
            ));
            for header in headers.iter().filter(|h| {
                !h.to_ascii_lowercase().starts_with("content-length")
                    && !h.to_ascii_lowercase().starts_with("transfer-encoding")
            }) {
                head.push_str(header);
            }
            let mut wire = match kind {
                0 => format!("{head}\r\n").into_bytes(),
                1 => {
                    let mut wire =
                        format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                    wire.extend_from_slice(&body);
                    wire
                }
                _ => {
                    let mut wire = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
                    for chunk in &chunks {
                        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        wire.extend_from_slice(chunk);
                        wire.extend_from_slice(b"\r\n");
                    }
                    wire.extend_from_slice(b"0\r\n\r\n");
                    wire
                }
            };
            wire.shrink_to_fit();
            wire
        })
}

/// The server's initial sequence number in these flows.
const SERVER_ISN: u32 = 77_000;

/// Runs segments of the request direction through a fresh table, after a handshake; with
/// `answer`, production answers (one segment, acknowledging every request byte so far)
/// after each segment that completes a request of `ends`. Returns the events.
fn run_flow(
    isn: u32,
    segments: &[(usize, Vec<u8>)],
    ends: &[usize],
    answer: bool,
) -> Vec<HttpEvent> {
    let stats = ReassemblyStats::default();
    let mut table = FlowTable::new(Limits::default(), stats, |_| {
        HttpFlow::new(HttpLimits::default())
    });
    let mut out = Vec::new();
    let mut send = |direction, seq, ack, flags, payload: &[u8], ms, out: &mut Vec<_>| {
        send_segment(&mut table, direction, (seq, ack, flags), payload, ms, out);
    };
    send(Direction::Request, isn, 0, tcp_flags::SYN, b"", 0, &mut out);
    let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
    let client_data = isn.wrapping_add(1);
    send(
        Direction::Response,
        SERVER_ISN,
        client_data,
        syn_ack,
        b"",
        0,
        &mut out,
    );
    let answer_bytes: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let mut answered = 0u32;
    for (i, (offset, bytes)) in segments.iter().enumerate() {
        let seq = client_data.wrapping_add(*offset as u32);
        let ack = SERVER_ISN.wrapping_add(1);
        let ms = 1 + i as u64;
        send(
            Direction::Request,
            seq,
            ack,
            tcp_flags::ACK,
            bytes,
            ms,
            &mut out,
        );
        let end = offset + bytes.len();
        if answer && ends.iter().any(|&e| *offset < e && e <= end) {
            let seq = SERVER_ISN.wrapping_add(1).wrapping_add(answered);
            let ack = client_data.wrapping_add(end as u32);
            send(
                Direction::Response,
                seq,
                ack,
                tcp_flags::ACK,
                answer_bytes,
                ms,
                &mut out,
            );
            answered += answer_bytes.len() as u32;
        }
    }
    table.flush(SystemTime::UNIX_EPOCH + Duration::from_secs(100), &mut out);
    out.into_iter().map(|(_, event)| event).collect()
}

fn requests(events: &[HttpEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            HttpEvent::Request(request) => Some(request.raw.to_vec()),
            _ => None,
        })
        .collect()
}

/// Where each request of `sent` ends in their concatenation.
fn ends_of(sent: &[Vec<u8>]) -> Vec<usize> {
    sent.iter()
        .scan(0, |end, request| {
            *end += request.len();
            Some(*end)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn requests_survive_any_segmentation_order_and_duplication(
        sent in proptest::collection::vec(request_strategy(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..60),
        shuffle in proptest::collection::vec(any::<u16>(), 0..60),
        dups in proptest::collection::vec(any::<u16>(), 0..10),
        isn_back in 0u32..20_000,
    ) {
        let stream = sent.concat();
        let mut segments = segments_of(&stream, &cuts);
        for (i, swap) in shuffle.iter().enumerate() {
            let len = segments.len();
            segments.swap(i % len, usize::from(*swap) % len);
        }
        for dup in &dups {
            segments.push(segments[usize::from(*dup) % segments.len()].clone());
        }
        let start = segments[0].0;
        let end = (start + 100).min(stream.len());
        segments.push((start, stream[start..end].to_vec()));
        let events = run_flow(0u32.wrapping_sub(isn_back), &segments, &[], false);
        prop_assert_eq!(requests(&events), sent);
        let dropped = events.iter().filter(|e| matches!(e, HttpEvent::Dropped { .. })).count();
        prop_assert_eq!(dropped, 0);
    }

    #[test]
    fn a_lost_segment_costs_only_what_production_cannot_confirm(
        sent in proptest::collection::vec(request_strategy(), 2..8),
        cuts in proptest::collection::vec(any::<usize>(), 4..60),
        lose in any::<usize>(),
    ) {
        let stream = sent.concat();
        let ends = ends_of(&sent);
        let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).take(sent.len()).collect();
        let segments = segments_of(&stream, &cuts);
        prop_assume!(segments.len() >= 3);
        let lost = 1 + lose % (segments.len() - 2);
        let (lost_start, lost_bytes) = &segments[lost];
        let (lost_start, lost_end) = (*lost_start, lost_start + lost_bytes.len());
        let kept: Vec<_> = segments.iter().enumerate().filter(|(i, _)| *i != lost).map(|(_, s)| s.clone()).collect();
        let events = run_flow(u32::MAX - 100, &kept, &ends, true);
        let emitted = requests(&events);

        // The request the loss begins in, if it begins inside one, and whether the loss ends
        // inside its Content-Length body (whose end then says where the next one starts).
        let broken = starts.iter().zip(&ends).position(|(&s, &e)| s < lost_start && lost_start < e);
        let in_body = broken.is_some_and(|k| {
            let request = &sent[k];
            let head = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let framed = String::from_utf8_lossy(&request[..head]).contains("Content-Length");
            framed && lost_start >= starts[k] + head && lost_end <= ends[k]
        });
        // Otherwise the first answer after the loss that acknowledged exactly a request
        // start is where reading resumes (answers acknowledge the ends of the segments that
        // complete requests).
        let answered: Vec<usize> = kept
            .iter()
            .map(|(offset, bytes)| (*offset, offset + bytes.len()))
            .filter(|&(from, to)| ends.iter().any(|&e| from < e && e <= to))
            .map(|(_, to)| to)
            .collect();
        let resume = if in_body {
            Some(ends[broken.unwrap()])
        } else {
            answered.iter().copied().filter(|&a| a > lost_end).find(|a| starts.contains(a))
        };
        let expected: Vec<Vec<u8>> = sent
            .iter()
            .enumerate()
            .filter(|&(k, _)| ends[k] <= lost_start || resume.is_some_and(|r| starts[k] >= r))
            .map(|(_, request)| request.clone())
            .collect();
        prop_assert_eq!(emitted, expected);
        let dropped = events
            .iter()
            .filter(|e| matches!(e, HttpEvent::Dropped { direction: Direction::Request, .. }))
            .count();
        // A request whose first bytes were seen before the loss is counted as dropped.
        prop_assert_eq!(dropped, usize::from(broken.is_some()));
    }
}

/// One segment of the connection these tests use, travelling `direction`, with
/// `(seq, ack, flags)`, captured at `ms`.
fn send_segment<H: StreamHandler>(
    table: &mut FlowTable<H>,
    direction: Direction,
    (seq, ack, flags): (u32, u32, u8),
    payload: &[u8],
    ms: u64,
    out: &mut Vec<(FlowKey, H::Event)>,
) {
    let client: std::net::SocketAddr = "198.18.0.1:40000".parse().unwrap();
    let server: std::net::SocketAddr = "198.18.0.2:80".parse().unwrap();
    let (src, dst) = match direction {
        Direction::Request => (client, server),
        Direction::Response => (server, client),
    };
    let segment = Segment {
        src,
        dst,
        seq,
        ack,
        flags,
        payload,
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    table.segment(direction, &segment, at, out);
}

/// Sends one segment through `table` (SYN or SYN-ACK when `payload` is empty); returns
/// the requests it let out, by target.
fn feed_one(
    table: &mut FlowTable<HttpFlow>,
    direction: Direction,
    seq: u32,
    ack: u32,
    payload: &[u8],
    ms: u64,
) -> Vec<String> {
    let flags = match (payload.is_empty(), direction) {
        (true, Direction::Request) => tcp_flags::SYN,
        (true, Direction::Response) => tcp_flags::SYN | tcp_flags::ACK,
        (false, _) => tcp_flags::ACK,
    };
    let mut out = Vec::new();
    send_segment(table, direction, (seq, ack, flags), payload, ms, &mut out);
    out.into_iter()
        .filter_map(|(_, event)| match event {
            HttpEvent::Request(request) => Some(request.target_str().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connection_forgotten_mid_request_is_copied_no_more() {
    let limits = Limits::default();
    let mut table = FlowTable::new(limits, ReassemblyStats::default(), |_| {
        HttpFlow::new(HttpLimits::default())
    });
    let (c, s) = (1000u32, SERVER_ISN);
    feed_one(&mut table, Direction::Request, c, 0, b"", 0);
    feed_one(&mut table, Direction::Response, s, c + 1, b"", 0);
    let head = b"POST /real HTTP/1.1\r\nHost: myservice\r\nX-Note: ";
    assert!(feed_one(&mut table, Direction::Request, c + 1, s + 1, head, 1).is_empty());
    // The client pauses past the idle timeout: the connection is forgotten mid-request.
    let idle = limits.idle_timeout.as_millis() as u64 + 1000;
    table.expire(
        SystemTime::UNIX_EPOCH + Duration::from_millis(idle),
        &mut Vec::new(),
    );
    assert!(table.is_empty());
    // Its next bytes end that head, and look like a request of their own.
    let rest = b"GET /admin HTTP/1.1\r\n\r\n";
    let next = c + 1 + head.len() as u32;
    assert!(feed_one(&mut table, Direction::Request, next, s + 1, rest, idle + 1).is_empty());
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let after = next + rest.len() as u32;
    assert!(
        feed_one(
            &mut table,
            Direction::Response,
            s + 1,
            after,
            answer,
            idle + 2
        )
        .is_empty()
    );
    // Nothing of the connection is copied any more: a client that pauses on purpose
    // chooses where shadowd loses its place.
    let following = b"GET /next HTTP/1.1\r\nHost: myservice\r\n\r\n";
    let seen = feed_one(
        &mut table,
        Direction::Request,
        after,
        s + 1 + answer.len() as u32,
        following,
        idle + 3,
    );
    assert!(seen.is_empty(), "{seen:?}");
    let end = after + following.len() as u32;
    let confirmed = feed_one(
        &mut table,
        Direction::Response,
        s + 1 + answer.len() as u32,
        end,
        answer,
        idle + 4,
    );
    assert!(confirmed.is_empty(), "{confirmed:?}");
}
