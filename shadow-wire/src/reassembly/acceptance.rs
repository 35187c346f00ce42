//! What production's TCP stack accepts of a client's segments, judged from what the capture
//! sees of both directions: the TC program runs before netfilter and the TCP stack, so it
//! also copies segments that production refuses (forged, out of a connection, or dropped by
//! a policy). The ACK field is checked, as it is what an off-path sender cannot know (the
//! server's sequence numbers), and an RST must land where the stream stands (RFC 5961 §3).

use super::stream::Stream;
use crate::packet::{Segment, tcp_flags};

/// How far behind the server's highest sequence number a client's ACK may be: what can be
/// in flight towards the client, bounded by the largest receive window Linux grants
/// (`tcp_rmem` tops out well below this).
const ACK_LAG: i64 = 64 << 20;

/// Why a client segment was judged one that production's stack drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Neither SYN nor RST, and no ACK: RFC 9293 §3.10.7.4 drops it in every synchronised
    /// state, and Linux before even looking at the payload.
    NoAck,
    /// It acknowledges server bytes that were never sent, or far older than any in flight
    /// (RFC 5961 §5: SND.UNA − MAX.SND.WND ≤ SEG.ACK ≤ SND.NXT): what a sender that never
    /// saw the server's SYN-ACK writes. When the capture itself lost the server's latest
    /// segments, a real client's ACK of them lands here too: its bytes then count as lost.
    UnacceptableAck,
    /// An RST whose sequence number is not where the client's stream stands: the stack
    /// ignores it, or answers with a challenge ACK (RFC 5961 §3).
    RstOutOfWindow,
    /// Data with the URG flag: the stack takes the urgent byte out of the stream (unless
    /// the server set SO_OOBINLINE), so the bytes it reads differ from the segment's.
    Urgent,
}

impl RejectReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoAck => "no_ack",
            RejectReason::UnacceptableAck => "unacceptable_ack",
            RejectReason::RstOutOfWindow => "rst_out_of_window",
            RejectReason::Urgent => "urgent",
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

/// True if a client RST at `seq` lands exactly where the client's stream stands (the
/// next byte, or past a FIN), with nothing missing before it: only then does the stack
/// reset the connection (RFC 5961 §3).
pub fn rst_in_window(seq: u32, client: &Stream) -> bool {
    let Some(at) = client.position(seq) else {
        return true;
    };
    let next = client.next_offset() as i64;
    client.pending_bytes() == 0 && (at == next || at == client.sent_end() as i64)
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
    if at < oldest || at > sent {
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
        // Nothing beyond what the server sent: a client that saw the SYN-ACK cannot get
        // bytes with a made-up ACK past it accepted either.
        for beyond in [101u32, 1101, 1 << 20] {
            assert_eq!(
                check(SERVER_ISN.wrapping_add(1).wrapping_add(beyond)),
                AckCheck::Rejected(RejectReason::UnacceptableAck),
                "{beyond}"
            );
        }
    }

    #[test]
    fn an_rst_must_land_where_the_stream_stands() {
        let mut client = Stream::default();
        client.syn(99);
        client.segment(
            100,
            b"GET / HTTP/1.1\r\n",
            false,
            SystemTime::UNIX_EPOCH,
            &mut |_, _| {},
        );
        assert!(rst_in_window(116, &client));
        assert!(!rst_in_window(115, &client));
        assert!(!rst_in_window(117, &client));
        assert!(!rst_in_window(100 + (1 << 20), &client));
        assert!(rst_in_window(5, &Stream::default()), "nothing to tell");
    }

    #[test]
    fn an_ack_may_lag_what_the_server_sent_by_at_most_a_receive_window() {
        let lag = ACK_LAG as u32;
        let from_syn = server(ACK_LAG as usize + 1000);
        let check =
            |server: &Stream, ack: u32| check_ack(&client_segment(tcp_flags::ACK, ack), server);
        let offset = |acked: u32| SERVER_ISN.wrapping_add(1).wrapping_add(acked);
        assert_eq!(check(&from_syn, offset(1000)), AckCheck::Acceptable);
        assert_eq!(
            check(&from_syn, offset(999)),
            AckCheck::Rejected(RejectReason::UnacceptableAck)
        );
        assert_eq!(check(&from_syn, offset(lag + 1000)), AckCheck::Acceptable);
        // Picked up mid-way: the client may acknowledge bytes from before the first one
        // captured, as far back as the window.
        let mut midway = Stream::default();
        let first = 100_000_000u32;
        midway.segment(
            first,
            &[b'x'; 100],
            false,
            SystemTime::UNIX_EPOCH,
            &mut |_, _| {},
        );
        assert_eq!(check(&midway, first + 100), AckCheck::Acceptable);
        assert_eq!(check(&midway, first - 1000), AckCheck::Acceptable);
        assert_eq!(check(&midway, first + 100 - lag), AckCheck::Acceptable);
        assert_eq!(
            check(&midway, first + 99 - lag),
            AckCheck::Rejected(RejectReason::UnacceptableAck)
        );
    }

    #[test]
    fn an_rst_after_the_clients_fin_lands_past_it() {
        let mut client = Stream::default();
        client.syn(99);
        client.segment(
            100,
            b"GET / HTTP/1.1\r\n\r\n",
            true,
            SystemTime::UNIX_EPOCH,
            &mut |_, _| {},
        );
        // The FIN takes sequence number 118; the stack then expects 119.
        assert!(rst_in_window(119, &client));
        assert!(!rst_in_window(120, &client));
    }

    #[test]
    fn reject_reasons_are_labelled_as_the_metrics_document() {
        let labels: Vec<&str> = [
            RejectReason::NoAck,
            RejectReason::UnacceptableAck,
            RejectReason::RstOutOfWindow,
            RejectReason::Urgent,
        ]
        .into_iter()
        .map(RejectReason::as_str)
        .collect();
        assert_eq!(
            labels,
            ["no_ack", "unacceptable_ack", "rst_out_of_window", "urgent"]
        );
    }

    #[test]
    fn without_the_server_side_nothing_can_be_told() {
        let segment = client_segment(tcp_flags::ACK, 12345);
        assert_eq!(check_ack(&segment, &Stream::default()), AckCheck::Unknown);
    }
}
