//! Parses a captured Ethernet frame into a TCP segment view: addresses, ports, sequence
//! numbers, flags and payload, borrowing the frame's bytes.
//!
//! Checksums are never validated: clones taken before the NIC (or veth) finalises them carry
//! partial checksums under offload. So a segment production's stack drops for a bad
//! checksum is taken as sent; reassembly keeps the first copy of any byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use shadow_common::proto::{
    ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, NEXTHDR_DEST,
    NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING, NOT_TCP,
};

/// Which way a segment travels relative to the captured service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → service: the destination port is a capture port.
    Request,
    /// Service → client: the source port is a capture port.
    Response,
}

impl Direction {
    /// Label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }

    /// The direction the peer's segments travel.
    pub fn other(self) -> Direction {
        match self {
            Direction::Request => Direction::Response,
            Direction::Response => Direction::Request,
        }
    }
}

/// TCP flag bits as in the header's 13th byte.
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers: opens a connection.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is valid.
    pub const URG: u8 = 0x20;
}

/// One TCP segment, borrowing its payload from the captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The sender's address and port.
    pub src: SocketAddr,
    /// The receiver's address and port.
    pub dst: SocketAddr,
    /// The sequence number of the first payload byte (or of the SYN or FIN).
    pub seq: u32,
    /// The next sequence number the sender expects from the receiver (with `ACK`).
    pub ack: u32,
    /// The TCP flags ([`tcp_flags`]).
    pub flags: u8,
    /// The TCP payload.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// True when every flag in `mask` is set.
    pub fn has(&self, mask: u8) -> bool {
        self.flags & mask == mask
    }
}

/// Why a frame did not yield a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The frame carries neither IPv4 nor IPv6.
    #[error("frame is not IPv4 or IPv6 (ethertype {ethertype:#06x})")]
    NotIp {
        /// The frame's EtherType.
        ethertype: u16,
    },
    /// The IP packet carries no TCP.
    #[error("IP packet is not TCP (protocol {protocol})")]
    NotTcp {
        /// The IP protocol number.
        protocol: u8,
    },
    /// The frame ends inside a header.
    #[error("frame cut short in the {layer} header")]
    Truncated {
        /// The header it ends in.
        layer: &'static str,
    },
    /// An IP fragment.
    #[error("IP fragment: TCP segments are reassembled by the kernel, not here")]
    Fragment,
    /// A link type this parser does not read.
    #[error("capture link type {link} is not supported")]
    UnsupportedLink {
        /// The capture's link type.
        link: i32,
    },
    /// An IPv6 extension header this parser does not walk.
    #[error("IPv6 extension header {next_header} is not walked")]
    Ipv6Extension {
        /// Its next-header value.
        next_header: u8,
    },
}

/// Parses an Ethernet frame (at most one VLAN tag) down to its TCP segment.
pub fn parse_ethernet(frame: &[u8]) -> Result<Segment<'_>, PacketError> {
    let truncated = |layer| PacketError::Truncated { layer };
    if frame.len() < ETH_HLEN {
        return Err(truncated("ethernet"));
    }
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if frame.len() < ETH_HLEN + 4 {
            return Err(truncated("vlan"));
        }
        ethertype = be16(frame, 16);
        l3 += 4;
    }
    by_ethertype(ethertype, &frame[l3..])
}

/// Link-layer header types of capture files (the pcap LINKTYPE_* values handled here).
pub mod linktype {
    /// `LINKTYPE_ETHERNET`: Ethernet II frames.
    pub const ETHERNET: i32 = 1;
    /// `LINKTYPE_RAW`: IPv4 or IPv6 packets with no link header.
    pub const RAW: i32 = 101;
    /// `LINKTYPE_LINUX_SLL`: Linux cooked capture, version 1.
    pub const LINUX_SLL: i32 = 113;
    /// `LINKTYPE_IPV4`: IPv4 packets with no link header.
    pub const IPV4: i32 = 228;
    /// `LINKTYPE_IPV6`: IPv6 packets with no link header.
    pub const IPV6: i32 = 229;
    /// `LINKTYPE_LINUX_SLL2`: Linux cooked capture, version 2.
    pub const LINUX_SLL2: i32 = 276;
}

/// Parses a captured frame of the given pcap link type down to its TCP segment.
pub fn parse_link(link: i32, frame: &[u8]) -> Result<Segment<'_>, PacketError> {
    let truncated = PacketError::Truncated { layer: "link" };
    match link {
        linktype::ETHERNET => parse_ethernet(frame),
        linktype::IPV4 => parse_ipv4(frame),
        linktype::IPV6 => parse_ipv6(frame),
        // Raw IP: the version nibble says which.
        linktype::RAW => match frame.first().map(|b| b >> 4) {
            Some(4) => parse_ipv4(frame),
            Some(6) => parse_ipv6(frame),
            _ => Err(truncated),
        },
        // Linux "cooked" captures (`tcpdump -i any`): protocol at 14 (v1) or 0 (v2).
        linktype::LINUX_SLL if frame.len() >= 16 => by_ethertype(be16(frame, 14), &frame[16..]),
        linktype::LINUX_SLL2 if frame.len() >= 20 => by_ethertype(be16(frame, 0), &frame[20..]),
        linktype::LINUX_SLL | linktype::LINUX_SLL2 => Err(truncated),
        other => Err(PacketError::UnsupportedLink { link: other }),
    }
}

fn by_ethertype(ethertype: u16, packet: &[u8]) -> Result<Segment<'_>, PacketError> {
    match ethertype {
        ETH_P_IP => parse_ipv4(packet),
        ETH_P_IPV6 => parse_ipv6(packet),
        _ => Err(PacketError::NotIp { ethertype }),
    }
}

/// Parses an IPv4 packet (no link header) down to its TCP segment.
pub fn parse_ipv4(packet: &[u8]) -> Result<Segment<'_>, PacketError> {
    if packet.len() < 20 {
        return Err(PacketError::Truncated { layer: "ipv4" });
    }
    let ihl = usize::from(packet[0] & 0x0F) * 4;
    let total_len = usize::from(be16(packet, 2));
    if ihl < 20 || packet.len() < ihl || total_len < ihl {
        return Err(PacketError::Truncated { layer: "ipv4" });
    }
    if packet[9] != IPPROTO_TCP {
        return Err(PacketError::NotTcp {
            protocol: packet[9],
        });
    }
    if be16(packet, 6) & 0x3FFF != 0 {
        return Err(PacketError::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(
        packet[12], packet[13], packet[14], packet[15],
    ));
    let dst = IpAddr::V4(Ipv4Addr::new(
        packet[16], packet[17], packet[18], packet[19],
    ));
    // GSO frames may carry total_len 0; otherwise trust it over the frame (Ethernet padding).
    let end = if total_len == 0 {
        packet.len()
    } else {
        total_len.min(packet.len())
    };
    parse_tcp(src, dst, &packet[ihl..end])
}

/// Parses an IPv6 packet (no link header) down to its TCP segment.
pub fn parse_ipv6(packet: &[u8]) -> Result<Segment<'_>, PacketError> {
    if packet.len() < 40 {
        return Err(PacketError::Truncated { layer: "ipv6" });
    }
    let payload_len = usize::from(be16(packet, 4));
    let src = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&packet[8..24]).unwrap_or_default(),
    ));
    let dst = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&packet[24..40]).unwrap_or_default(),
    ));
    let end = if payload_len == 0 {
        packet.len()
    } else {
        (40 + payload_len).min(packet.len())
    };
    let mut next = packet[6];
    let mut offset = 40;
    loop {
        match next {
            IPPROTO_TCP => return parse_tcp(src, dst, &packet[offset..end]),
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                if end < offset + 8 {
                    return Err(PacketError::Truncated { layer: "ipv6" });
                }
                next = packet[offset];
                offset += (usize::from(packet[offset + 1]) + 1) * 8;
            }
            NEXTHDR_FRAGMENT => return Err(PacketError::Fragment),
            other if NOT_TCP.contains(&other) => {
                return Err(PacketError::NotTcp { protocol: other });
            }
            other => return Err(PacketError::Ipv6Extension { next_header: other }),
        }
        if offset > end {
            return Err(PacketError::Truncated { layer: "ipv6" });
        }
    }
}

fn parse_tcp(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> Result<Segment<'_>, PacketError> {
    if tcp.len() < 20 {
        return Err(PacketError::Truncated { layer: "tcp" });
    }
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    if data_offset < 20 || tcp.len() < data_offset {
        return Err(PacketError::Truncated { layer: "tcp" });
    }
    Ok(Segment {
        src: SocketAddr::new(src, be16(tcp, 0)),
        dst: SocketAddr::new(dst, be16(tcp, 2)),
        seq: be32(tcp, 4),
        ack: be32(tcp, 8),
        flags: tcp[13],
        payload: &tcp[data_offset..],
    })
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
pub(crate) mod tests;
