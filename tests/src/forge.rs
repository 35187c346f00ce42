//! Forged TCP segments, written with a raw socket inside a namespace: what an off-path
//! sender can put on the wire without ever opening a connection (no handshake, guessed
//! sequence and acknowledgement numbers), from any source address. The IPv4 and TCP headers
//! and their checksums are built here.

use std::net::SocketAddrV4;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::netns::Netns;

/// TCP flag bits.
pub mod flags {
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgement valid.
    pub const ACK: u8 = 0x10;
}

/// One segment to forge.
#[derive(Debug, Clone, Copy)]
pub struct Forged<'a> {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// TCP flags ([`flags`]).
    pub flags: u8,
    /// The payload.
    pub payload: &'a [u8],
}

/// Sends each of `segments` from a raw socket in `ns`.
pub fn send(ns: &Netns, segments: &[Forged<'_>]) {
    ns.enter(|| {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))
            .expect("raw socket (needs CAP_NET_RAW)");
        // The source address is the forger's choice, not the namespace's.
        socket.set_header_included_v4(true).expect("IP_HDRINCL");
        for segment in segments {
            let bytes = ipv4_packet(segment);
            // A raw socket sends to an address; the port is in the header built here.
            let to = SockAddr::from(SocketAddrV4::new(*segment.dst.ip(), 0));
            let sent = socket.send_to(&bytes, &to).expect("send forged segment");
            assert_eq!(sent, bytes.len());
        }
    });
}

/// The IPv4 header (20 bytes) and TCP segment of `segment`, checksummed.
fn ipv4_packet(segment: &Forged<'_>) -> Vec<u8> {
    let tcp = tcp_segment(segment);
    let mut ip = Vec::with_capacity(20 + tcp.len());
    ip.extend_from_slice(&[0x45, 0]);
    ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&segment.src.ip().octets());
    ip.extend_from_slice(&segment.dst.ip().octets());
    let sum = !fold(
        ip.chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]]))),
    );
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// One's-complement sum of 16-bit words.
fn fold(words: impl Iterator<Item = u32>) -> u16 {
    let mut sum: u32 = words.sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// The TCP header (20 bytes, no options) and payload of `segment`, checksummed.
fn tcp_segment(segment: &Forged<'_>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(20 + segment.payload.len());
    bytes.extend_from_slice(&segment.src.port().to_be_bytes());
    bytes.extend_from_slice(&segment.dst.port().to_be_bytes());
    bytes.extend_from_slice(&segment.seq.to_be_bytes());
    bytes.extend_from_slice(&segment.ack.to_be_bytes());
    bytes.push(5 << 4);
    bytes.push(segment.flags);
    bytes.extend_from_slice(&65_535u16.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(segment.payload);
    let checksum = checksum(segment, &bytes);
    bytes[16..18].copy_from_slice(&checksum.to_be_bytes());
    bytes
}

/// The Internet checksum of the IPv4 pseudo-header and `tcp` (RFC 9293 §3.1).
fn checksum(segment: &Forged<'_>, tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + tcp.len() + 1);
    pseudo.extend_from_slice(&segment.src.ip().octets());
    pseudo.extend_from_slice(&segment.dst.ip().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(tcp);
    if pseudo.len() % 2 == 1 {
        pseudo.push(0);
    }
    !fold(
        pseudo
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]]))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment checksummed here verifies to zero when summed with its checksum.
    #[test]
    fn the_checksum_verifies() {
        let segment = Forged {
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.0.2:80".parse().unwrap(),
            seq: 1,
            ack: 2,
            flags: flags::ACK | flags::PSH,
            payload: b"GET / HTTP/1.1\r\n\r\n!",
        };
        let bytes = tcp_segment(&segment);
        assert_eq!(checksum(&segment, &bytes), 0);
        let packet = ipv4_packet(&segment);
        let header = packet[..20]
            .chunks(2)
            .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])));
        assert_eq!(!fold(header), 0);
    }
}
