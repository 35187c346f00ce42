//! Reassembly tests: a recording handler sees exactly the stream bytes, whatever the
//! segmentation, order, duplication and initial sequence number; lost bytes become gaps.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::{
    packet::{Segment, tcp_flags},
    testing::segments_of,
};

/// What a handler saw, per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Data(Direction, Vec<u8>),
    Gap(Direction),
    /// Where a gap said reading resumes.
    ResumeAt(Direction, u64),
    Acked(Direction, u64),
    Kind(GapKind),
    End(Direction),
}

/// Records what the table hands over; mid-message once it saw client bytes and no end.
#[derive(Default)]
struct Recorder {
    mid_request: bool,
}

impl StreamHandler for Recorder {
    type Event = Seen;
    fn data(&mut self, direction: Direction, data: &[u8], _: SystemTime, out: &mut Vec<Seen>) {
        self.mid_request |= direction == Direction::Request;
        out.push(Seen::Data(direction, data.to_vec()));
    }
    fn gap(&mut self, direction: Direction, resume_at: u64, kind: GapKind, out: &mut Vec<Seen>) {
        out.push(Seen::Gap(direction));
        out.push(Seen::ResumeAt(direction, resume_at));
        out.push(Seen::Kind(kind));
    }
    fn acked(
        &mut self,
        direction: Direction,
        offset: u64,
        _: std::ops::Range<u64>,
        out: &mut Vec<Seen>,
    ) {
        out.push(Seen::Acked(direction, offset));
    }
    fn mid_message(&self) -> bool {
        self.mid_request
    }
    fn end(&mut self, direction: Direction, out: &mut Vec<Seen>) {
        out.push(Seen::End(direction));
    }
}

/// The server's initial sequence number in the handshakes of these tests.
const SERVER_ISN: u32 = 0x8000_0000;

const CLIENT: &str = "198.18.0.1:40000";
const SERVER: &str = "198.18.0.2:80";

fn table(limits: Limits) -> (FlowTable<Recorder>, ReassemblyStats) {
    let stats = ReassemblyStats::default();
    (
        FlowTable::new(limits, stats.clone(), |_| Recorder::default()),
        stats,
    )
}

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Feeds one request-direction segment, acknowledging the server's SYN-ACK if it carries
/// ACK.
fn feed(
    table: &mut FlowTable<Recorder>,
    seq: u32,
    flags: u8,
    payload: &[u8],
    ms: u64,
) -> Vec<Seen> {
    send(
        table,
        Direction::Request,
        seq,
        SERVER_ISN.wrapping_add(1),
        flags,
        payload,
        ms,
    )
}

/// Feeds one segment travelling `direction`.
fn send(
    table: &mut FlowTable<Recorder>,
    direction: Direction,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
    ms: u64,
) -> Vec<Seen> {
    let (src, dst) = match direction {
        Direction::Request => (CLIENT, SERVER),
        Direction::Response => (SERVER, CLIENT),
    };
    let segment = Segment {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq,
        ack,
        flags,
        payload,
    };
    let mut out = Vec::new();
    table.segment(direction, &segment, at(ms), &mut out);
    out.into_iter().map(|(_, seen)| seen).collect()
}

/// The client's SYN with initial sequence number `isn`, and the server's SYN-ACK.
fn handshake(table: &mut FlowTable<Recorder>, isn: u32) -> Vec<Seen> {
    let mut seen = send(table, Direction::Request, isn, 0, tcp_flags::SYN, b"", 0);
    seen.extend(send(
        table,
        Direction::Response,
        SERVER_ISN,
        isn.wrapping_add(1),
        tcp_flags::SYN | tcp_flags::ACK,
        b"",
        0,
    ));
    seen
}

/// The events that are not acknowledgements.
fn without_acks(seen: Vec<Seen>) -> Vec<Seen> {
    // The kinds of gaps go with them too: these tests look at where bytes resume.
    seen.into_iter()
        .filter(|s| !matches!(s, Seen::Acked(..) | Seen::Kind(_)))
        .collect()
}

/// Concatenates the data events of a direction.
fn bytes_of(events: &[Seen]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Seen::Data(_, data) => Some(data.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

#[test]
fn in_order_with_syn_and_fin() {
    let (mut t, stats) = table(Limits::default());
    let isn = u32::MAX - 2;
    let mut seen = handshake(&mut t, isn);
    seen.extend(feed(
        &mut t,
        isn.wrapping_add(1),
        tcp_flags::ACK,
        b"hello ",
        1,
    ));
    seen.extend(feed(
        &mut t,
        isn.wrapping_add(7),
        tcp_flags::ACK | tcp_flags::FIN,
        b"world",
        2,
    ));
    assert_eq!(bytes_of(&seen), b"hello world");
    assert_eq!(seen.last(), Some(&Seen::End(Direction::Request)));
    assert!(!seen.contains(&Seen::Gap(Direction::Request)));
    assert_eq!(stats.delivered(Direction::Request).get(), 11);
}

#[test]
fn reordered_duplicated_and_overlapping_segments() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = handshake(&mut t, 100);
    seen.extend(feed(&mut t, 107, tcp_flags::ACK, b"GHIJ", 1)); // ahead
    seen.extend(feed(&mut t, 101, tcp_flags::ACK, b"ABC", 2));
    seen.extend(feed(&mut t, 101, tcp_flags::ACK, b"ABC", 3)); // retransmission
    seen.extend(feed(&mut t, 103, tcp_flags::ACK, b"CDEFGH", 4)); // overlaps both sides
    assert_eq!(bytes_of(&seen), b"ABCDEFGHIJ");
    assert_eq!(stats.duplicate_bytes.get(), 3 + 1 + 2);
    assert_eq!(stats.out_of_order_bytes.get(), 0);
}

#[test]
fn midstream_pickup_starts_with_a_gap() {
    let (mut t, stats) = table(Limits::default());
    let seen = feed(&mut t, 5000, tcp_flags::ACK, b"tail of something", 0);
    assert_eq!(
        seen[..2],
        [
            Seen::Gap(Direction::Request),
            Seen::ResumeAt(Direction::Request, 0)
        ]
    );
    assert_eq!(bytes_of(&seen), b"tail of something");
    assert_eq!(stats.gaps_of(GapReason::Midstream), 1);
    assert_eq!(stats.unverified_flows.get(), 1);
    // A bare ACK of an unknown flow creates nothing.
    let (mut t, _) = table(Limits::default());
    assert!(feed(&mut t, 1, tcp_flags::ACK, b"", 0).is_empty());
    assert!(t.is_empty());
}

#[test]
fn a_hole_past_the_flow_buffer_limit_becomes_a_gap() {
    let limits = Limits {
        max_flow_buffer: 8,
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"AB", 1));
    seen.extend(feed(&mut t, 5, tcp_flags::ACK, b"EFGH", 2)); // "CD" lost
    assert_eq!(bytes_of(&seen), b"AB");
    seen.extend(feed(&mut t, 9, tcp_flags::ACK, b"IJKLM", 3)); // 9 bytes held > 8
    assert_eq!(bytes_of(&seen), b"ABEFGHIJKLM");
    let gap = seen
        .iter()
        .position(|e| *e == Seen::Gap(Direction::Request))
        .unwrap();
    assert_eq!(
        bytes_of(&seen[..gap]),
        b"AB",
        "the gap comes before the bytes after it"
    );
    assert_eq!(seen[gap + 1], Seen::ResumeAt(Direction::Request, 4));
    // Production never acknowledged the missing bytes: the client may have left them out.
    assert_eq!(seen[gap + 2], Seen::Kind(GapKind::Unacknowledged));
    assert_eq!(stats.gaps_of(GapReason::FlowBufferFull), 1);
    assert_eq!(stats.out_of_order_bytes.get(), 0);
}

#[test]
fn an_rst_with_a_hole_before_it_ends_both_directions_only_from_production() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"AB", 1));
    seen.extend(feed(&mut t, 5, tcp_flags::ACK, b"EF", 2));
    // The client's stack would reset only at the byte it has not sent: with bytes missing
    // here, where that is cannot be told, so the RST is not taken.
    assert!(feed(&mut t, 7, tcp_flags::RST, b"", 3).is_empty());
    assert_eq!(stats.rejected_of(RejectReason::RstOutOfWindow), 1);
    // Production's own RST is.
    let reset = send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        7,
        tcp_flags::RST | tcp_flags::ACK,
        b"",
        4,
    );
    seen.extend(reset);
    assert_eq!(bytes_of(&seen), b"ABEF");
    assert!(seen.contains(&Seen::Gap(Direction::Request)));
    assert!(without_acks(seen).ends_with(&[
        Seen::End(Direction::Request),
        Seen::End(Direction::Response)
    ]));
    assert!(t.is_empty());
    assert_eq!(stats.gaps_of(GapReason::Closed), 1);
}

#[test]
fn idle_flows_expire_and_the_table_is_bounded() {
    let limits = Limits {
        max_flows: 2,
        idle_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let stats = ReassemblyStats::default();
    let mut t: FlowTable<Recorder> = FlowTable::new(limits, stats.clone(), |_| Recorder::default());
    let mut out = Vec::new();
    for port in 1..=3u16 {
        let segment = Segment {
            src: format!("198.18.0.1:{port}").parse().unwrap(),
            dst: SERVER.parse().unwrap(),
            seq: 0,
            ack: 0,
            flags: tcp_flags::SYN,
            payload: b"",
        };
        t.segment(Direction::Request, &segment, at(u64::from(port)), &mut out);
    }
    assert_eq!(t.len(), 2);
    assert_eq!(stats.flows_evicted.get(), 1);
    t.expire(at(20_000), &mut out);
    assert!(t.is_empty());
    assert_eq!(stats.flows_expired.get(), 2);
}

proptest! {
    #[test]
    fn any_segmentation_order_and_duplication_yields_the_stream(
        stream in proptest::collection::vec(any::<u8>(), 1..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        isn_back in 0u32..5000,
        shuffle in proptest::collection::vec(any::<u16>(), 0..40),
        dups in proptest::collection::vec(any::<u16>(), 0..10),
    ) {
        let isn = 0u32.wrapping_sub(isn_back);
        let mut segments = segments_of(&stream, &cuts);
        for (i, swap) in shuffle.iter().enumerate() {
            let len = segments.len();
            segments.swap(i % len, usize::from(*swap) % len);
        }
        for dup in &dups {
            let pick = segments[usize::from(*dup) % segments.len()].clone();
            segments.push(pick);
        }
        // Overlap: a segment spanning two neighbours, sent again.
        if segments.len() > 2 {
            let start = segments[0].0.min(segments[1].0);
            let end = (start + 50).min(stream.len());
            segments.push((start, stream[start..end].to_vec()));
        }
        let (mut t, stats) = table(Limits::default());
        let mut seen = handshake(&mut t, isn);
        for (offset, bytes) in &segments {
            seen.extend(feed(&mut t, isn.wrapping_add(1).wrapping_add(*offset as u32), tcp_flags::ACK, bytes, 1));
        }
        prop_assert_eq!(bytes_of(&seen), stream.clone());
        prop_assert!(!seen.contains(&Seen::Gap(Direction::Request)));
        prop_assert_eq!(stats.out_of_order_bytes.get(), 0);
    }

    #[test]
    fn a_lost_segment_is_a_gap_never_bridged(
        stream in proptest::collection::vec(any::<u8>(), 10..2000),
        cuts in proptest::collection::vec(any::<usize>(), 2..30),
        lose in any::<usize>(),
    ) {
        let segments = segments_of(&stream, &cuts);
        prop_assume!(segments.len() >= 3);
        let lost = 1 + lose % (segments.len() - 2); // never the first or last
        let (mut t, _) = table(Limits::default());
        let isn = u32::MAX - 7;
        let mut seen = handshake(&mut t, isn);
        for (i, (offset, bytes)) in segments.iter().enumerate() {
            if i != lost {
                seen.extend(feed(&mut t, isn.wrapping_add(1).wrapping_add(*offset as u32), tcp_flags::ACK, bytes, 1));
            }
        }
        let mut out = Vec::new();
        t.flush(at(5), &mut out);
        seen.extend(out.into_iter().map(|(_, s)| s));
        let gap = seen.iter().position(|e| *e == Seen::Gap(Direction::Request));
        prop_assert!(gap.is_some());
        let gap = gap.unwrap();
        let (lost_at, lost_bytes) = &segments[lost];
        prop_assert_eq!(bytes_of(&seen[..gap]), stream[..*lost_at].to_vec());
        prop_assert_eq!(bytes_of(&seen[gap..]), stream[lost_at + lost_bytes.len()..].to_vec());
    }
}

/// Production answers, acknowledging client offsets up to `acked` (ISN 0).
fn production_answer(table: &mut FlowTable<Recorder>, acked: u32, ms: u64) -> Vec<Seen> {
    send(
        table,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        1 + acked,
        tcp_flags::ACK,
        b"HTTP/1.1 200 OK\r\n",
        ms,
    )
}

#[test]
fn a_hole_that_waits_past_the_timeout_is_given_up_once_production_has_its_bytes() {
    let limits = Limits {
        hole_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"AB", 1));
    seen.extend(feed(&mut t, 5, tcp_flags::ACK, b"EF", 2)); // "CD" lost
    seen.extend(feed(&mut t, 7, tcp_flags::ACK, b"GH", 300));
    assert_eq!(bytes_of(&seen), b"AB", "still waiting within the timeout");
    // Production acknowledges bytes past the hole: they reached it, the capture lost them.
    production_answer(&mut t, 8, 350);
    // A later segment of the same stream notices the wait is over…
    seen.extend(feed(&mut t, 9, tcp_flags::ACK, b"IJ", 600));
    assert_eq!(bytes_of(&seen), b"ABEFGHIJ");
    assert!(seen.contains(&Seen::Gap(Direction::Request)));
    assert_eq!(stats.gaps_of(GapReason::HoleTimeout), 1);

    // …and so does the periodic sweep when the stream went quiet.
    seen.extend(feed(&mut t, 13, tcp_flags::ACK, b"MN", 700)); // "KL" lost
    production_answer(&mut t, 14, 800);
    let mut out = Vec::new();
    t.expire(at(1000), &mut out);
    assert!(out.is_empty(), "not yet");
    t.expire(at(1300), &mut out);
    let swept: Vec<Seen> = out.into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        swept,
        [
            Seen::Gap(Direction::Request),
            Seen::ResumeAt(Direction::Request, 12),
            Seen::Kind(GapKind::CaptureLoss),
            Seen::Data(Direction::Request, b"MN".to_vec())
        ]
    );
    assert_eq!(stats.gaps_of(GapReason::HoleTimeout), 2);
    assert_eq!(stats.out_of_order_bytes.get(), 0);
}

#[test]
fn a_hole_production_waits_for_too_is_not_given_up_by_the_timeout() {
    let limits = Limits {
        hole_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"AB", 1));
    // A client that leaves a hole on purpose, and fills it much later: production waits
    // for the bytes as well, and reads them in their place.
    seen.extend(feed(&mut t, 5, tcp_flags::ACK, b"EF", 2));
    seen.extend(feed(&mut t, 7, tcp_flags::ACK, b"GH", 3000));
    let mut out = Vec::new();
    t.expire(at(4000), &mut out);
    seen.extend(out.into_iter().map(|(_, s)| s));
    assert_eq!(bytes_of(&seen), b"AB");
    seen.extend(feed(&mut t, 3, tcp_flags::ACK, b"CD", 5000));
    assert_eq!(bytes_of(&seen), b"ABCDEFGH");
    assert!(!seen.contains(&Seen::Gap(Direction::Request)));
    assert_eq!(stats.gaps_of(GapReason::HoleTimeout), 0);
}

#[test]
fn a_blind_rst_does_not_end_the_connection() {
    let (mut t, stats) = table(Limits::default());
    handshake(&mut t, 0);
    feed(&mut t, 1, tcp_flags::ACK, b"GET", 1);
    let blind = send(
        &mut t,
        Direction::Request,
        1 << 20,
        0,
        tcp_flags::RST,
        b"",
        2,
    );
    assert!(blind.is_empty(), "{blind:?}");
    assert_eq!(stats.rejected_of(RejectReason::RstOutOfWindow), 1);
    let next = feed(&mut t, 4, tcp_flags::ACK, b" /", 3);
    assert_eq!(bytes_of(&next), b" /");
    // One where the stream stands ends it.
    let real = send(&mut t, Direction::Request, 6, 0, tcp_flags::RST, b"", 4);
    assert!(real.contains(&Seen::End(Direction::Request)));
    assert!(t.is_empty());
}

#[test]
fn a_handshake_seen_complete_verifies_the_start() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = handshake(&mut t, 7);
    seen.extend(feed(&mut t, 8, tcp_flags::ACK, b"GET", 1));
    assert_eq!(
        without_acks(seen),
        [Seen::Data(Direction::Request, b"GET".to_vec())]
    );
    assert_eq!(stats.unverified_flows.get(), 0);
}

#[test]
fn without_the_syn_ack_the_start_is_not_verified() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = send(&mut t, Direction::Request, 7, 0, tcp_flags::SYN, b"", 0);
    seen.extend(feed(&mut t, 8, tcp_flags::ACK, b"GET", 1));
    // Announced once: the next bytes follow on.
    seen.extend(feed(&mut t, 11, tcp_flags::ACK, b" /", 2));
    assert_eq!(
        seen,
        [
            Seen::Gap(Direction::Request),
            Seen::ResumeAt(Direction::Request, 0),
            Seen::Kind(GapKind::Pickup),
            Seen::Data(Direction::Request, b"GET".to_vec()),
            Seen::Data(Direction::Request, b" /".to_vec())
        ]
    );
    assert_eq!(stats.unverified_flows.get(), 1);
    assert_eq!(stats.gaps_of(GapReason::Midstream), 0);
}

#[test]
fn without_the_clients_syn_the_start_is_not_verified() {
    // The SYN-ACK and the client's ACK of it were captured, the client's SYN was not: the
    // connection is established, but the capture cannot tell where the client's stream
    // began.
    let (mut t, stats) = table(Limits::default());
    let mut seen = send(
        &mut t,
        Direction::Response,
        SERVER_ISN,
        8,
        tcp_flags::SYN | tcp_flags::ACK,
        b"",
        0,
    );
    seen.extend(feed(&mut t, 8, tcp_flags::ACK, b"", 1));
    seen.extend(feed(&mut t, 8, tcp_flags::ACK, b"GET", 2));
    assert!(
        without_acks(seen).starts_with(&[Seen::Gap(Direction::Request)]),
        "the client's first bytes come after a gap"
    );
    assert_eq!(stats.unverified_flows.get(), 1);
}

#[test]
fn segments_production_drops_are_counted_and_go_no_further() {
    let (mut t, stats) = table(Limits::default());
    // No ACK at all: no flow is even created.
    assert!(feed(&mut t, 1, 0, b"POST /x HTTP/1.1\r\n\r\n", 0).is_empty());
    assert!(t.is_empty());
    assert_eq!(stats.rejected_of(RejectReason::NoAck), 1);
    assert_eq!(stats.rejected_of(RejectReason::UnacceptableAck), 0);
    // An ACK of server bytes never sent: what a sender that never saw the SYN-ACK writes.
    handshake(&mut t, 100);
    let forged = send(
        &mut t,
        Direction::Request,
        101,
        SERVER_ISN.wrapping_add(1 << 30),
        tcp_flags::ACK,
        b"POST /x HTTP/1.1\r\n\r\n",
        1,
    );
    assert!(forged.is_empty(), "{forged:?}");
    assert_eq!(stats.rejected_of(RejectReason::UnacceptableAck), 1);
    // The real client's bytes at the same place still come through.
    let real = feed(&mut t, 101, tcp_flags::ACK, b"GET / HTTP/1.1\r\n\r\n", 2);
    assert_eq!(bytes_of(&real), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(stats.unverified_flows.get(), 0);
}

#[test]
fn acknowledgements_are_reported_as_offsets_of_the_other_stream() {
    let (mut t, _) = table(Limits::default());
    let isn = u32::MAX - 1;
    handshake(&mut t, isn);
    feed(
        &mut t,
        isn.wrapping_add(1),
        tcp_flags::ACK,
        b"GET / HTTP/1.1\r\n\r\n",
        1,
    );
    let answer = send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        isn.wrapping_add(1 + 18),
        tcp_flags::ACK,
        b"HTTP/1.1 200 OK\r\n",
        2,
    );
    assert_eq!(answer[0], Seen::Acked(Direction::Request, 18));
    // The FIN takes a sequence number but is no byte: its ACK stands for the end.
    feed(
        &mut t,
        isn.wrapping_add(19),
        tcp_flags::ACK | tcp_flags::FIN,
        b"",
        3,
    );
    let answer = send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(18),
        isn.wrapping_add(1 + 19),
        tcp_flags::ACK,
        b"more",
        4,
    );
    assert_eq!(answer[0], Seen::Acked(Direction::Request, 18));
    // A server RST acknowledges nothing: it answers bytes it refused too.
    let rst = send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(22),
        isn.wrapping_add(1 + 19),
        tcp_flags::ACK | tcp_flags::RST,
        b"",
        5,
    );
    assert!(!rst.iter().any(|s| matches!(s, Seen::Acked(..))), "{rst:?}");
}

#[test]
fn a_full_table_evicts_connections_never_established_first() {
    let limits = Limits {
        max_flows: 2,
        ..Limits::default()
    };
    let stats = ReassemblyStats::default();
    let mut t: FlowTable<Recorder> = FlowTable::new(limits, stats.clone(), |_| Recorder::default());
    // An established connection, idle since, then a forged one, then another.
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"GET", 1);
    for port in [2u16, 3] {
        let segment = Segment {
            src: format!("198.18.0.9:{port}").parse().unwrap(),
            dst: SERVER.parse().unwrap(),
            seq: 0,
            ack: 1,
            flags: tcp_flags::ACK,
            payload: b"forged",
        };
        t.segment(
            Direction::Request,
            &segment,
            at(10 + u64::from(port)),
            &mut Vec::new(),
        );
    }
    assert_eq!(stats.flows_evicted.get(), 1);
    // The established connection is still there: its next bytes are no pickup.
    let next = feed(&mut t, 104, tcp_flags::ACK, b" /", 20);
    assert_eq!(
        without_acks(next),
        [Seen::Data(Direction::Request, b" /".to_vec())]
    );
}

/// The flow of the tests' client and server ports.
fn key() -> FlowKey {
    FlowKey {
        client: CLIENT.parse().unwrap(),
        server: SERVER.parse().unwrap(),
    }
}

#[test]
fn a_new_connection_on_the_same_ports_replaces_the_old_only_when_the_server_accepts_it() {
    let (mut t, stats) = table(Limits::default());
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"GET /a", 1);
    assert!(t.contains(&key()));
    // A SYN on the same ports the server answers with a challenge ACK (not a SYN-ACK of
    // it): a forgery, or a stale retransmission. The connection goes on as it was.
    let forged = send(&mut t, Direction::Request, 5000, 0, tcp_flags::SYN, b"", 2);
    assert!(forged.is_empty(), "{forged:?}");
    send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        107,
        tcp_flags::ACK,
        b"",
        3,
    );
    let more = feed(&mut t, 107, tcp_flags::ACK, b" HTTP", 4);
    assert_eq!(
        without_acks(more),
        [Seen::Data(Direction::Request, b" HTTP".to_vec())]
    );
    // A SYN the server accepts: the old connection ends and the new one starts from its
    // first byte, verified by its own handshake.
    send(&mut t, Direction::Request, 9000, 0, tcp_flags::SYN, b"", 5);
    let replaced = send(
        &mut t,
        Direction::Response,
        7777,
        9001,
        tcp_flags::SYN | tcp_flags::ACK,
        b"",
        6,
    );
    assert!(
        replaced.contains(&Seen::End(Direction::Request)),
        "{replaced:?}"
    );
    assert!(
        replaced.contains(&Seen::End(Direction::Response)),
        "{replaced:?}"
    );
    let first = send(
        &mut t,
        Direction::Request,
        9001,
        7778,
        tcp_flags::ACK,
        b"GET /b",
        7,
    );
    assert_eq!(
        without_acks(first),
        [Seen::Data(Direction::Request, b"GET /b".to_vec())]
    );
    assert_eq!(stats.flows_created.get(), 2);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_connection_forgotten_mid_message_resumes_as_such_unless_it_starts_anew() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"POST /upload", 1);
    let mut out = Vec::new();
    // Idle a moment less than the timeout: kept.
    t.expire(at(1 + 9_999), &mut out);
    assert!(t.contains(&key()));
    t.expire(at(1 + 10_000), &mut out);
    assert!(!t.contains(&key()) && t.is_empty());
    assert_eq!(stats.flows_expired.get(), 1);
    assert_eq!(stats.forgotten_not_kept.get(), 0, "remembered");
    // Remembered across later sweeps, well within ten timeouts.
    t.expire(at(15_000), &mut out);
    // Its next bytes continue a message: none may be taken for a start.
    let resumed = feed(&mut t, 113, tcp_flags::ACK, b" more body", 20_000);
    assert_eq!(
        resumed[..3],
        [
            Seen::Gap(Direction::Request),
            Seen::ResumeAt(Direction::Request, 0),
            Seen::Kind(GapKind::Resumed)
        ]
    );
    // A connection that starts with a handshake is new, whatever was forgotten.
    let (mut t, _) = table(limits);
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"POST /upload", 1);
    t.expire(at(20_000), &mut Vec::new());
    let mut fresh = handshake(&mut t, 500);
    fresh.extend(feed(&mut t, 501, tcp_flags::ACK, b"GET", 20_001));
    assert_eq!(
        without_acks(fresh),
        [Seen::Data(Direction::Request, b"GET".to_vec())]
    );
    // Forgotten for ten timeouts, a connection is gone for good: its bytes are a pickup.
    let (mut t, _) = table(limits);
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"POST /upload", 1);
    t.expire(at(20_000), &mut Vec::new());
    t.expire(at(20_000 + 100_000), &mut Vec::new());
    let later = feed(&mut t, 113, tcp_flags::ACK, b"x", 120_001);
    assert_eq!(later[2], Seen::Kind(GapKind::Pickup));
}

#[test]
fn bytes_held_out_of_order_are_counted_until_their_flow_ends_however_it_ends() {
    let held = |t: &mut FlowTable<Recorder>, isn: u32, ms: u64| {
        handshake(t, isn);
        feed(t, isn.wrapping_add(1), tcp_flags::ACK, b"AB", ms);
        feed(t, isn.wrapping_add(5), tcp_flags::ACK, b"EFGH", ms + 1); // "CD" missing
    };
    // Ended by production's RST.
    let (mut t, stats) = table(Limits::default());
    held(&mut t, 0, 1);
    assert_eq!(stats.out_of_order_bytes.get(), 4);
    assert_eq!(stats.out_of_order_segments.get(), 1);
    send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        7,
        tcp_flags::RST | tcp_flags::ACK,
        b"",
        3,
    );
    assert_eq!(stats.out_of_order_bytes.get(), 0);
    // Ended by idling out.
    let (mut t, stats) = table(Limits::default());
    held(&mut t, 0, 1);
    t.expire(at(1_000_000), &mut Vec::new());
    assert_eq!(stats.out_of_order_bytes.get(), 0);
    // Two flows: what one gives back leaves the other's count.
    let (mut t, stats) = table(Limits::default());
    held(&mut t, 0, 1);
    let other = Segment {
        src: "198.18.0.1:40001".parse().unwrap(),
        dst: SERVER.parse().unwrap(),
        seq: 9,
        ack: 1,
        flags: tcp_flags::ACK,
        payload: b"XYZ",
    };
    // Picked up mid-way: its first bytes are delivered, those after a hole held.
    t.segment(Direction::Request, &other, at(2), &mut Vec::new());
    let ahead = Segment { seq: 20, ..other };
    t.segment(Direction::Request, &ahead, at(3), &mut Vec::new());
    assert_eq!(stats.out_of_order_bytes.get(), 4 + 3);
    feed(&mut t, 3, tcp_flags::ACK, b"CD", 4);
    assert_eq!(stats.out_of_order_bytes.get(), 3);
}

#[test]
fn what_all_flows_hold_out_of_order_is_bounded_together() {
    let limits = Limits {
        max_total_buffer: 6,
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    handshake(&mut t, 0);
    feed(&mut t, 1, tcp_flags::ACK, b"AB", 1);
    feed(&mut t, 5, tcp_flags::ACK, b"EFGH", 2); // 4 held
    assert_eq!(stats.gaps_of(GapReason::GlobalBufferFull), 0);
    let other = |seq: u32, payload: &'static [u8]| Segment {
        src: "198.18.0.1:40001".parse().unwrap(),
        dst: SERVER.parse().unwrap(),
        seq,
        ack: 1,
        flags: tcp_flags::ACK,
        payload,
    };
    let mut out = Vec::new();
    t.segment(Direction::Request, &other(100, b"x"), at(3), &mut out);
    // Two more held bytes reach the bound, not past it.
    t.segment(Direction::Request, &other(110, b"yz"), at(4), &mut out);
    assert_eq!(stats.gaps_of(GapReason::GlobalBufferFull), 0);
    assert_eq!(stats.out_of_order_bytes.get(), 6);
    // One more is past it: the flow that grew gives up its holes (two).
    t.segment(Direction::Request, &other(120, b"!"), at(5), &mut out);
    assert_eq!(stats.gaps_of(GapReason::GlobalBufferFull), 2);
    assert_eq!(
        stats.out_of_order_bytes.get(),
        4,
        "the first flow's bytes stay held"
    );
}

#[test]
fn segments_far_outside_their_stream_are_counted_and_dropped() {
    let (mut t, stats) = table(Limits::default());
    handshake(&mut t, 0);
    feed(&mut t, 1, tcp_flags::ACK, b"AB", 1);
    // The stream stands at offset 2 (sequence number 3): exactly 2^30 ahead still belongs
    // to it, one more does not.
    let edge = feed(&mut t, 3 + (1 << 30), tcp_flags::ACK, b"!", 2);
    assert!(bytes_of(&edge).is_empty());
    assert_eq!(stats.out_of_window_segments.get(), 0);
    assert_eq!(stats.out_of_order_bytes.get(), 1);
    let far = feed(&mut t, 4 + (1 << 30), tcp_flags::ACK, b"far away", 2);
    assert!(bytes_of(&far).is_empty());
    assert_eq!(stats.out_of_window_segments.get(), 1);
    assert_eq!(stats.out_of_order_bytes.get(), 1);
    let next = feed(&mut t, 3, tcp_flags::ACK, b"CD", 3);
    assert_eq!(bytes_of(&next), b"CD");
}

#[test]
fn held_bytes_a_later_segment_covered_whole_count_as_duplicates() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 5, tcp_flags::ACK, b"EF", 1)); // held
    assert_eq!(stats.out_of_order_bytes.get(), 2);
    // A retransmission from the hole on, past the held bytes: they were sent twice.
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"ABCDEFGH", 2));
    assert_eq!(bytes_of(&seen), b"ABCDEFGH");
    assert_eq!(stats.duplicate_bytes.get(), 2);
    assert_eq!(stats.out_of_order_bytes.get(), 0);
}

#[test]
fn bytes_missing_before_a_fin_are_a_gap_when_the_connection_ends() {
    let (mut t, stats) = table(Limits::default());
    let mut seen = handshake(&mut t, 0);
    seen.extend(feed(&mut t, 1, tcp_flags::ACK, b"AB", 1));
    // The FIN comes after bytes the capture lost (sequence 3 to 5).
    seen.extend(feed(&mut t, 6, tcp_flags::ACK | tcp_flags::FIN, b"", 2));
    assert!(
        !seen.contains(&Seen::End(Direction::Request)),
        "not complete"
    );
    let reset = send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        7,
        tcp_flags::RST | tcp_flags::ACK,
        b"",
        3,
    );
    let request_side: Vec<&Seen> = reset
        .iter()
        .filter(|s| {
            matches!(
                s,
                Seen::Gap(Direction::Request) | Seen::End(Direction::Request)
            )
        })
        .collect();
    assert_eq!(
        request_side,
        [
            &Seen::Gap(Direction::Request),
            &Seen::End(Direction::Request)
        ]
    );
    assert_eq!(stats.gaps_of(GapReason::Closed), 1);
}

#[test]
fn a_response_stream_picked_up_mid_way_starts_with_a_gap() {
    let (mut t, stats) = table(Limits::default());
    let seen = send(
        &mut t,
        Direction::Response,
        900,
        1,
        tcp_flags::ACK,
        b"rest of a body",
        0,
    );
    assert_eq!(
        without_acks(seen),
        [
            Seen::Gap(Direction::Response),
            Seen::ResumeAt(Direction::Response, 0),
            Seen::Data(Direction::Response, b"rest of a body".to_vec())
        ]
    );
    assert_eq!(stats.gaps_of(GapReason::Midstream), 1);
}

#[test]
fn urgent_data_is_dropped_as_the_stack_reads_it_otherwise() {
    let (mut t, stats) = table(Limits::default());
    handshake(&mut t, 0);
    let urgent = feed(&mut t, 1, tcp_flags::ACK | tcp_flags::URG, b"AB", 1);
    assert!(bytes_of(&urgent).is_empty());
    assert_eq!(stats.rejected_of(RejectReason::Urgent), 1);
    // URG on a segment with no data moves nothing: not rejected.
    feed(&mut t, 1, tcp_flags::ACK | tcp_flags::URG, b"", 2);
    assert_eq!(stats.rejected_of(RejectReason::Urgent), 1);
}

#[test]
fn a_connection_closed_by_both_fins_leaves_the_table_and_bytes_skipped_count_as_delivered() {
    let limits = Limits {
        max_flow_buffer: 4,
        ..Limits::default()
    };
    let (mut t, stats) = table(limits);
    handshake(&mut t, 0);
    feed(&mut t, 1, tcp_flags::ACK, b"AB", 1);
    feed(&mut t, 5, tcp_flags::ACK, b"EFG", 2); // held
    feed(&mut t, 8, tcp_flags::ACK | tcp_flags::FIN, b"HI", 3); // past the flow's share
    assert_eq!(stats.gaps_of(GapReason::FlowBufferFull), 1);
    assert_eq!(stats.delivered(Direction::Request).get(), 2 + 3 + 2);
    send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        11,
        tcp_flags::ACK | tcp_flags::FIN,
        b"",
        4,
    );
    assert!(t.is_empty(), "both ends closed");
    assert_eq!(stats.flows_closed.get(), 1);
}

#[test]
fn only_a_connection_that_went_idle_mid_message_is_remembered_as_forgotten() {
    // Reset mid-message: it ended, it is not resumed by a later one on the same ports.
    let (mut t, stats) = table(Limits::default());
    handshake(&mut t, 100);
    feed(&mut t, 101, tcp_flags::ACK, b"POST /upload", 1);
    send(
        &mut t,
        Direction::Response,
        SERVER_ISN.wrapping_add(1),
        113,
        tcp_flags::RST | tcp_flags::ACK,
        b"",
        2,
    );
    assert!(t.is_empty());
    let later = feed(&mut t, 5000, tcp_flags::ACK, b"GET", 3);
    assert_eq!(later[2], Seen::Kind(GapKind::Pickup), "{later:?}");
    assert_eq!(stats.forgotten_not_kept.get(), 0);
}
