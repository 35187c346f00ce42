//! Header walking for Ethernet, 802.1Q, IPv4, IPv6 (with extension headers) and TCP: finds
//! the TCP ports of a packet, or says why there are none.

use aya_ebpf::programs::TcContext;
use shadow_common::{
    MAX_IPV6_EXT_HEADERS,
    proto::{
        ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, NEXTHDR_DEST,
        NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING, NOT_TCP,
    },
};

const IPV6_HLEN: usize = 40;

/// TCP source and destination ports, host byte order.
pub struct Ports {
    pub src: u16,
    pub dst: u16,
}

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
    let l4 = match ethertype {
        ETH_P_IP => ipv4_payload(ctx, l3)?,
        ETH_P_IPV6 => ipv6_payload(ctx, l3)?,
        _ => return Err(Skip::NotIp),
    };
    Ok(Ports {
        src: load_be16(ctx, l4)?,
        dst: load_be16(ctx, l4 + 2)?,
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
