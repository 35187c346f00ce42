//! What production's TCP stack accepts of a client's segments, judged from what the capture
//! sees of both directions: the TC program runs before netfilter and the TCP stack, so it
//! also copies segments that production refuses (forged, out of a connection, or dropped by
//! a policy). Only the ACK field can be checked this way, and it is what an off-path sender
//! cannot know: the server's sequence numbers.

use super::stream::Stream;
use crate::packet::{Segment, tcp_flags};

/// How far behind the server's highest sequence number a client's ACK may be: what can be
/// in flight towards the client, bounded by the largest receive window Linux grants
/// (`tcp_rmem` tops out well below this).
const ACK_LAG: i64 = 64 << 20;

/// How far beyond the highest server byte the capture saw a client's ACK may be: server
/// segments lost by the capture itself (a full ring) must not make the client's later
/// segments look forged.
const ACK_LEAD: i64 = 16 << 20;

/// Why a client segment was judged one that production's stack drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Neither SYN nor RST, and no ACK: RFC 9293 §3.10.7.4 drops it in every synchronised
    /// state, and Linux before even looking at the payload.
    NoAck,
    /// It acknowledges server bytes that were never sent, or far older than any in flight
    /// (RFC 5961 §5): what a sender that never saw the server's SYN-ACK writes.
    UnacceptableAck,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoAck => "no_ack",
            RejectReason::UnacceptableAck => "unacceptable_ack",
        }
    }
}

/// What the ACK of a client segment shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCheck {
    /// It acknowledges bytes the server sent: the client has seen the server's side.
    Acceptable,
    /// Nothing of the server's side was seen yet to check it against.
    Unknown,
    Rejected(RejectReason),
}

/// True for segments production's stack drops before looking at anything else.
pub fn lacks_ack(segment: &Segment<'_>) -> bool {
    segment.flags & (tcp_flags::ACK | tcp_flags::SYN | tcp_flags::RST) == 0
}

/// Checks a client segment's ACK against the server's stream as captured.
pub fn check_ack(segment: &Segment<'_>, server: &Stream) -> AckCheck {
    if !segment.has(tcp_flags::ACK) {
        return AckCheck::Rejected(RejectReason::NoAck);
    }
    let Some(at) = server.position(segment.ack) else {
        return AckCheck::Unknown;
    };
    let sent = server.sent_end() as i64;
    // Known from its SYN, the server's stream holds no byte before offset 0.
    let oldest = if server.is_from_syn() {
        (sent - ACK_LAG).max(0)
    } else {
        sent - ACK_LAG
    };
    if at < oldest || at > sent + ACK_LEAD {
        return AckCheck::Rejected(RejectReason::UnacceptableAck);
    }
    AckCheck::Acceptable
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    const SERVER_ISN: u32 = 0xFFFF_FFF0;

    fn client_segment(flags: u8, ack: u32) -> Segment<'static> {
        Segment {
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.0.2:80".parse().unwrap(),
            seq: 1,
            ack,
            flags,
            payload: b"GET / HTTP/1.1\r\n\r\n",
        }
    }

    /// A server stream that sent its SYN and `sent` bytes.
    fn server(sent: usize) -> Stream {
        let mut stream = Stream::default();
        stream.syn(SERVER_ISN);
        let data = vec![b'x'; sent];
        stream.segment(
            SERVER_ISN.wrapping_add(1),
            &data,
            false,
            SystemTime::UNIX_EPOCH,
            &mut |_, _| {},
        );
        stream
    }

    #[test]
    fn a_segment_without_ack_is_dropped_by_the_stack() {
        assert!(lacks_ack(&client_segment(tcp_flags::FIN, 0)));
        assert!(!lacks_ack(&client_segment(tcp_flags::SYN, 0)));
        assert!(!lacks_ack(&client_segment(tcp_flags::RST, 0)));
        assert_eq!(
            check_ack(&client_segment(0, SERVER_ISN.wrapping_add(1)), &server(0)),
            AckCheck::Rejected(RejectReason::NoAck)
        );
    }

    #[test]
    fn the_ack_must_lie_within_what_the_server_sent() {
        let server = server(100);
        let check = |ack: u32| check_ack(&client_segment(tcp_flags::ACK, ack), &server);
        // The SYN-ACK itself, some of the data, all of it.
        for acked in [0u32, 50, 100] {
            let ack = SERVER_ISN.wrapping_add(1).wrapping_add(acked);
            assert_eq!(check(ack), AckCheck::Acceptable, "{acked}");
        }
        // Before the server's first byte; a guess anywhere in the sequence space.
        assert_eq!(
            check(SERVER_ISN),
            AckCheck::Rejected(RejectReason::UnacceptableAck)
        );
        assert_eq!(
            check(SERVER_ISN.wrapping_add(1 << 31)),
            AckCheck::Rejected(RejectReason::UnacceptableAck)
        );
        // Server segments the capture lost may be acknowledged, within a bound.
        assert_eq!(
            check(SERVER_ISN.wrapping_add(101 + (1 << 20))),
            AckCheck::Acceptable
        );
        assert_eq!(
            check(SERVER_ISN.wrapping_add(101 + (32 << 20))),
            AckCheck::Rejected(RejectReason::UnacceptableAck)
        );
    }

    #[test]
    fn without_the_server_side_nothing_can_be_told() {
        let segment = client_segment(tcp_flags::ACK, 12345);
        assert_eq!(check_ack(&segment, &Stream::default()), AckCheck::Unknown);
    }
}
