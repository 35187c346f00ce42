//! Frame fixtures for the packet parser, and a builder other tests reuse.

use super::*;

/// Builds an Ethernet + IPv4/IPv6 + TCP frame carrying `payload`.
pub(crate) fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
            let total = u16::try_from(20 + tcp.len()).unwrap();
            frame.extend_from_slice(&[0x45, 0]);
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&[0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&u16::try_from(tcp.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&[IPPROTO_TCP, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed address families"),
    }
    frame.extend_from_slice(&tcp);
    frame
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn ipv4_segment_fields() {
    let frame = tcp_frame(
        addr("198.18.0.1:40000"),
        addr("198.18.0.2:80"),
        7,
        tcp_flags::ACK,
        b"GET /",
    );
    let seg = parse_ethernet(&frame).unwrap();
    assert_eq!(seg.src, addr("198.18.0.1:40000"));
    assert_eq!(seg.dst, addr("198.18.0.2:80"));
    assert_eq!(seg.seq, 7);
    assert!(seg.has(tcp_flags::ACK));
    assert!(!seg.has(tcp_flags::SYN));
    assert_eq!(seg.payload, b"GET /");
}

#[test]
fn ipv6_segment_fields() {
    let frame = tcp_frame(
        addr("[fd00::1]:40000"),
        addr("[fd00::2]:8080"),
        u32::MAX,
        tcp_flags::SYN,
        b"",
    );
    let seg = parse_ethernet(&frame).unwrap();
    assert_eq!(seg.dst, addr("[fd00::2]:8080"));
    assert_eq!(seg.seq, u32::MAX);
    assert!(seg.payload.is_empty());
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut frame = tcp_frame(addr("198.18.0.1:1"), addr("198.18.0.2:2"), 1, 0, b"x");
    frame.extend_from_slice(&[0; 6]);
    assert_eq!(parse_ethernet(&frame).unwrap().payload, b"x");
}

#[test]
fn vlan_tag_is_walked() {
    let plain = tcp_frame(addr("198.18.0.1:1"), addr("198.18.0.2:2"), 1, 0, b"abc");
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&plain[12..]);
    assert_eq!(parse_ethernet(&tagged).unwrap().payload, b"abc");
}

#[test]
fn non_tcp_and_non_ip_are_reported() {
    let mut frame = tcp_frame(addr("198.18.0.1:1"), addr("198.18.0.2:2"), 1, 0, b"");
    frame[14 + 9] = 17;
    assert_eq!(
        parse_ethernet(&frame),
        Err(PacketError::NotTcp { protocol: 17 })
    );
    frame[12] = 0x08;
    frame[13] = 0x06;
    assert_eq!(
        parse_ethernet(&frame),
        Err(PacketError::NotIp { ethertype: 0x0806 })
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let frame = tcp_frame(addr("[fd00::1]:1"), addr("[fd00::2]:2"), 1, 0, b"");
    for len in 0..frame.len() {
        assert!(parse_ethernet(&frame[..len]).is_err(), "length {len}");
    }
    let frame = tcp_frame(addr("198.18.0.1:1"), addr("198.18.0.2:2"), 1, 0, b"");
    for len in 0..frame.len() {
        assert!(parse_ethernet(&frame[..len]).is_err(), "length {len}");
    }
}

#[test]
fn ipv6_hop_by_hop_header_is_walked() {
    let plain = tcp_frame(addr("[fd00::1]:1"), addr("[fd00::2]:2"), 1, 0, b"hi");
    let mut frame = plain[..14 + 40].to_vec();
    frame[14 + 6] = 0; // hop-by-hop
    let payload_len = u16::from_be_bytes([frame[18], frame[19]]) + 8;
    frame[18..20].copy_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(&[IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]);
    frame.extend_from_slice(&plain[14 + 40..]);
    assert_eq!(parse_ethernet(&frame).unwrap().payload, b"hi");
}

#[test]
fn fragments_are_reported() {
    let mut frame = tcp_frame(addr("198.18.0.1:1"), addr("198.18.0.2:2"), 1, 0, b"");
    frame[14 + 6] = 0x20; // more fragments
    assert_eq!(parse_ethernet(&frame), Err(PacketError::Fragment));
}
