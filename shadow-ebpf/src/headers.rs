//! Header walking for Ethernet, 802.1Q, IPv4, IPv6 (with extension headers) and TCP: finds
//! the TCP ports of a packet (and, when asked, its addresses), or says why there are none.

use aya_ebpf::programs::TcContext;
use shadow_common::{
    EndpointKey, MAX_IPV6_EXT_HEADERS,
    proto::{
        ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, NEXTHDR_DEST,
        NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING, NOT_TCP,
    },
};

const IPV6_HLEN: usize = 40;

/// What the classifier needs of a TCP segment.
pub struct Ports {
    /// Source and destination ports, host byte order.
    pub src: u16,
    pub dst: u16,
    /// A bare ACK: no payload and none of SYN, FIN, RST. Reassembly has no use for it.
    pub bare_ack: bool,
    /// Where the IP header starts, and whether it is IPv6: the addresses are read from it
    /// only for ports captured by endpoint.
    l3: usize,
    ipv6: bool,
}

impl Ports {
    /// The source's address and port, as a key of the endpoint map.
    #[inline(always)]
    pub fn src_endpoint(&self, ctx: &TcContext) -> Result<EndpointKey, Skip> {
        self.endpoint(ctx, 12, 8, self.src)
    }

    /// The destination's address and port, as a key of the endpoint map.
    #[inline(always)]
    pub fn dst_endpoint(&self, ctx: &TcContext) -> Result<EndpointKey, Skip> {
        self.endpoint(ctx, 16, 24, self.dst)
    }

    /// The address at `v4_offset` (IPv4) or `v6_offset` (IPv6) of the IP header, with `port`.
    #[inline(always)]
    fn endpoint(
        &self,
        ctx: &TcContext,
        v4_offset: usize,
        v6_offset: usize,
        port: u16,
    ) -> Result<EndpointKey, Skip> {
        if self.ipv6 {
            let address: [u8; 16] = ctx.load(self.l3 + v6_offset).map_err(|_| Skip::Unparsed)?;
            Ok(EndpointKey::ipv6(address, port))
        } else {
            let address: [u8; 4] = ctx.load(self.l3 + v4_offset).map_err(|_| Skip::Unparsed)?;
            Ok(EndpointKey::ipv4(address, port))
        }
    }
}

const TCP_SYN_FIN_RST: u8 = 0x07;

/// Why a packet has no ports to look at.
pub enum Skip {
    NotIp,
    NotTcp,
    Unparsed,
    Ipv6ExtUnwalked,
}

/// Reads the TCP ports of the packet, walking at most one VLAN tag.
#[inline(always)]
pub fn tcp_ports(ctx: &TcContext) -> Result<Ports, Skip> {
    // The ethertype is the last field of the Ethernet header.
    let mut offset = ETH_HLEN - 2;
    let mut ethertype = load_be16(ctx, offset)?;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        offset += 4;
        ethertype = load_be16(ctx, offset)?;
    }
    let l3 = offset + 2;
    // The IP packet's end from its own length field (Ethernet padding is not payload);
    // 0 for a length the header cannot say (GSO/BIG TCP super-packets): assume payload.
    let (l4, ip_end) = match ethertype {
        ETH_P_IP => {
            let total = usize::from(load_be16(ctx, l3 + 2)?);
            (
                ipv4_payload(ctx, l3)?,
                if total == 0 { 0 } else { l3 + total },
            )
        }
        ETH_P_IPV6 => {
            let payload = usize::from(load_be16(ctx, l3 + 4)?);
            (
                ipv6_payload(ctx, l3)?,
                if payload == 0 {
                    0
                } else {
                    l3 + IPV6_HLEN + payload
                },
            )
        }
        _ => return Err(Skip::NotIp),
    };
    let data_offset: u8 = ctx.load(l4 + 12).map_err(|_| Skip::Unparsed)?;
    let flags: u8 = ctx.load(l4 + 13).map_err(|_| Skip::Unparsed)?;
    let header_end = l4 + usize::from(data_offset >> 4) * 4;
    let has_payload = ip_end == 0 || ip_end > header_end;
    Ok(Ports {
        src: load_be16(ctx, l4)?,
        dst: load_be16(ctx, l4 + 2)?,
        bare_ack: !has_payload && flags & TCP_SYN_FIN_RST == 0,
        l3,
        ipv6: ethertype == ETH_P_IPV6,
    })
}

/// Offset of the TCP header in an IPv4 packet.
#[inline(always)]
fn ipv4_payload(ctx: &TcContext, l3: usize) -> Result<usize, Skip> {
    let version_ihl: u8 = ctx.load(l3).map_err(|_| Skip::Unparsed)?;
    let protocol: u8 = ctx.load(l3 + 9).map_err(|_| Skip::Unparsed)?;
    if protocol != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    // A non-first fragment carries no TCP header.
    let frag = load_be16(ctx, l3 + 6)?;
    if frag & 0x1FFF != 0 {
        return Err(Skip::Unparsed);
    }
    let ihl = usize::from(version_ihl & 0x0F) * 4;
    if ihl < 20 {
        return Err(Skip::Unparsed);
    }
    Ok(l3 + ihl)
}

/// Offset of the TCP header in an IPv6 packet, after walking the usual extension headers.
#[inline(always)]
fn ipv6_payload(ctx: &TcContext, l3: usize) -> Result<usize, Skip> {
    let mut next: u8 = ctx.load(l3 + 6).map_err(|_| Skip::Unparsed)?;
    let mut offset = l3 + IPV6_HLEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP => return Ok(offset),
            NEXTHDR_FRAGMENT => {
                // Only the first fragment (offset 0) has the TCP header.
                let frag = load_be16(ctx, offset + 2)?;
                if frag & 0xFFF8 != 0 {
                    return Err(Skip::Unparsed);
                }
                next = ctx.load(offset).map_err(|_| Skip::Unparsed)?;
                offset += 8;
            }
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                next = ctx.load(offset).map_err(|_| Skip::Unparsed)?;
                let len: u8 = ctx.load(offset + 1).map_err(|_| Skip::Unparsed)?;
                offset += (usize::from(len) + 1) * 8;
            }
            other if NOT_TCP.contains(&other) => return Err(Skip::NotTcp),
            _ => return Err(Skip::Ipv6ExtUnwalked),
        }
    }
    if next == IPPROTO_TCP {
        Ok(offset)
    } else {
        Err(Skip::Ipv6ExtUnwalked)
    }
}

#[inline(always)]
fn load_be16(ctx: &TcContext, offset: usize) -> Result<u16, Skip> {
    ctx.load::<u16>(offset)
        .map(u16::from_be)
        .map_err(|_| Skip::Unparsed)
}
