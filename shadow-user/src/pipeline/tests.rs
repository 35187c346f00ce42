//! Reassembly and HTTP parsing together: random pipelined requests, cut into random segments
//! delivered out of order, duplicated and overlapping, from an initial sequence number near
//! 2^32, come out exactly as sent; a lost segment drops only the requests it broke.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::{
    packet::{Segment, tcp_flags},
    reassembly::tests::segments_of,
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

/// Runs segments of the request direction through a fresh table; returns the events.
fn run_flow(isn: u32, segments: &[(usize, Vec<u8>)]) -> Vec<HttpEvent> {
    let stats = ReassemblyStats::default();
    let mut table = FlowTable::new(Limits::default(), stats, |_| {
        HttpFlow::new(HttpLimits::default())
    });
    let client = "198.18.0.1:40000".parse().unwrap();
    let server = "198.18.0.2:80".parse().unwrap();
    let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let mut out = Vec::new();
    let syn = Segment {
        src: client,
        dst: server,
        seq: isn,
        ack: 0,
        flags: tcp_flags::SYN,
        payload: b"",
    };
    table.segment(Direction::Request, &syn, at(0), &mut out);
    for (i, (offset, bytes)) in segments.iter().enumerate() {
        let segment = Segment {
            src: client,
            dst: server,
            seq: isn.wrapping_add(1).wrapping_add(*offset as u32),
            ack: 0,
            flags: tcp_flags::ACK,
            payload: bytes,
        };
        table.segment(Direction::Request, &segment, at(1 + i as u64), &mut out);
    }
    table.flush(at(100_000), &mut out);
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
        let events = run_flow(0u32.wrapping_sub(isn_back), &segments);
        prop_assert_eq!(requests(&events), sent);
        let dropped = events.iter().filter(|e| matches!(e, HttpEvent::Dropped { .. })).count();
        prop_assert_eq!(dropped, 0);
    }

    #[test]
    fn a_lost_segment_drops_only_the_requests_it_broke(
        sent in proptest::collection::vec(request_strategy(), 2..8),
        cuts in proptest::collection::vec(any::<usize>(), 4..60),
        lose in any::<usize>(),
    ) {
        let stream = sent.concat();
        let segments = segments_of(&stream, &cuts);
        prop_assume!(segments.len() >= 3);
        let lost = 1 + lose % (segments.len() - 2);
        let (lost_start, lost_bytes) = &segments[lost];
        let lost_end = lost_start + lost_bytes.len();
        let kept: Vec<_> = segments.iter().enumerate().filter(|(i, _)| *i != lost).map(|(_, s)| s.clone()).collect();
        let events = run_flow(u32::MAX - 100, &kept);

        // The requests whose bytes avoid the lost range, in order.
        let mut offset = 0;
        let mut expected = Vec::new();
        let mut started_before_gap = false;
        for request in &sent {
            let (start, end) = (offset, offset + request.len());
            offset = end;
            if end <= *lost_start || start >= lost_end {
                expected.push(request.clone());
            }
            started_before_gap |= start < *lost_start && *lost_start < end;
        }
        prop_assert_eq!(requests(&events), expected);
        let dropped = events
            .iter()
            .filter(|e| matches!(e, HttpEvent::Dropped { direction: Direction::Request, .. }))
            .count();
        // A request whose first bytes were seen before the gap is counted as dropped.
        prop_assert_eq!(dropped >= 1, started_before_gap);
    }
}
