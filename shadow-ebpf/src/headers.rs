//! Header walking for Ethernet, 802.1Q, IPv4, IPv6 (with extension headers) and TCP: finds
//! the TCP ports of a packet (and, when asked, its addresses), or says why there are none.
//!
//! Headers are read in place from the packet's linear part, where the kernel keeps them for
//! nearly every packet: a bounds check and a load, where `bpf_skb_load_bytes` would be a
//! helper call per field on every production packet. A field outside the linear part is
//! read with the helper.

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
            let address: [u8; 16] = load(ctx, self.l3 + v6_offset)?;
            Ok(EndpointKey::ipv6(address, port))
        } else {
            let address: [u8; 4] = load(ctx, self.l3 + v4_offset)?;
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
    let data_offset: u8 = load(ctx, l4 + 12)?;
    let flags: u8 = load(ctx, l4 + 13)?;
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
    let version_ihl: u8 = load(ctx, l3)?;
    let protocol: u8 = load(ctx, l3 + 9)?;
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
    let mut next: u8 = load(ctx, l3 + 6)?;
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
                next = load(ctx, offset)?;
                offset += 8;
            }
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                next = load(ctx, offset)?;
                let len: u8 = load(ctx, offset + 1)?;
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

/// Headers end well before this: a bound the verifier needs on every in-place offset.
const MAX_HEADER_OFFSET: usize = 512;

/// The `T` at `offset` of the packet: in place if the linear part holds it, else copied.
#[inline(always)]
fn load<T: Copy>(ctx: &TcContext, offset: usize) -> Result<T, Skip> {
    if offset < MAX_HEADER_OFFSET {
        let at = ctx.data() + offset;
        let past = at + core::mem::size_of::<T>();
        // SAFETY: reads a local just written. Opaque to the compiler, so the check below
        // stays `past > data_end`, the form the verifier learns the packet's bounds from; it
        // would otherwise turn `at + 1 > data_end` into `at >= data_end`, which it does not.
        let past = unsafe { core::ptr::read_volatile(&past) };
        if past <= ctx.data_end() {
            // SAFETY: `at..past` lies in the packet's linear part (checked just above, as
            // the verifier requires), and `T` is plain bytes.
            return Ok(unsafe { (at as *const T).read_unaligned() });
        }
    }
    ctx.load(offset).map_err(|_| Skip::Unparsed)
}

#[inline(always)]
fn load_be16(ctx: &TcContext, offset: usize) -> Result<u16, Skip> {
    load::<u16>(ctx, offset).map(u16::from_be)
}
