//! Map layouts and constants shared by the TC program (`shadow-ebpf`) and `shadowd`.
//!
//! Everything here is `#[repr(C)]`, `Copy` and made of fixed-width integers so that both sides
//! agree on the bytes the kernel stores in BPF maps.
#![warn(missing_docs)]
#![no_std]

/// Name of the TC program attached at ingress.
pub const PROGRAM_INGRESS: &str = "shadow_ingress";
/// Name of the TC program attached at egress.
pub const PROGRAM_EGRESS: &str = "shadow_egress";

/// Array of [`PORT_ENTRIES`] flags indexed by TCP port (host byte order):
/// [`PORT_ANY_ADDRESS`] and/or [`PORT_LISTED_ENDPOINTS`], 0 = not captured. An array rather
/// than a hash map: the verifier inlines its lookup into a bounds check and a load, which
/// matters on a path every production packet takes. It is the pre-filter that spares
/// packets of every other port the lookup in [`MAP_CAPTURE_ENDPOINTS`].
pub const MAP_CAPTURE_PORTS: &str = "CAPTURE_PORTS";
/// [`MAP_CAPTURE_PORTS`] flag: the port is captured whatever the server's address.
pub const PORT_ANY_ADDRESS: u8 = 1;
/// [`MAP_CAPTURE_PORTS`] flag: the port is captured for the server addresses listed in
/// [`MAP_CAPTURE_ENDPOINTS`].
pub const PORT_LISTED_ENDPOINTS: u8 = 2;
/// Hash map from [`EndpointKey`] to 1: the production endpoints (server address and port)
/// whose connections are captured.
pub const MAP_CAPTURE_ENDPOINTS: &str = "CAPTURE_ENDPOINTS";
/// Entries of [`MAP_CAPTURE_PORTS`]: one per port.
pub const PORT_ENTRIES: u32 = 1 << 16;
/// Single-entry array holding [`KernelSettings`].
pub const MAP_CONFIG: &str = "CONFIG";
/// BPF ring buffer of [`ChunkHeader`]-prefixed packet copies (the `ringbuf` output).
pub const MAP_FRAMES: &str = "FRAMES";
/// Array of [`INTERFACE_SLOT_ENTRIES`] [`InterfaceSlots`], at the position
/// [`interface_position`] gives an interface index: the counters' slots of each attached
/// interface. An array, not a hash map, for the reason [`MAP_CAPTURE_PORTS`] is one: every
/// packet looks its slots up, and the verifier inlines an array lookup into a bounds check
/// and a load. An interface whose position another attached interface holds (their indexes
/// differ by a multiple of the entries) is listed in [`MAP_INTERFACE_SLOTS_SPILL`] instead.
pub const MAP_INTERFACE_SLOTS: &str = "INTERFACE_SLOTS";
/// Hash map from interface index to [`InterfaceSlots::slots`], for the rare interface whose
/// position in [`MAP_INTERFACE_SLOTS`] is taken.
pub const MAP_INTERFACE_SLOTS_SPILL: &str = "INTERFACE_SLOTS_SPILL";
/// Entries of [`MAP_INTERFACE_SLOTS`]: interface indexes grow as pods come and go, and two
/// attached interfaces collide only when theirs differ by a multiple of this.
pub const INTERFACE_SLOT_ENTRIES: u32 = 1 << 16;
/// Flag of [`InterfaceSlots::slots`]: the interface is the host side of a production pod's
/// veth, where requests to the pod leave (TC egress) and its answers arrive (TC ingress);
/// on every other interface requests arrive and answers leave. Carried by the slot the
/// program looks up anyway, so it costs no lookup of its own.
pub const SLOT_REQUESTS_LEAVE: u32 = 1 << 31;
/// Per-CPU array of [`Stats`], one entry per attachment slot.
pub const MAP_STATS: &str = "STATS";

/// Most capture ports the kernel side holds.
pub const MAX_CAPTURE_PORTS: u32 = 1024;
/// Most production endpoints the kernel side holds: far above the pods a node runs (110 by
/// default) times their ports, at 16,384 × ~80 bytes of preallocated hash map. The lookup
/// costs the same however many are listed (the classifier bench measures 1 and 10,000).
pub const MAX_CAPTURE_ENDPOINTS: u32 = 16384;
/// Most attachments (interface × hook) with their own counters: 255 interfaces, above the
/// pods a node runs (110 by default, 250 at most in common setups). Slot 0 is the catch-all
/// for packets whose interface has no slot of its own.
pub const MAX_STATS_SLOTS: u32 = 512;
/// How many IPv6 extension headers the TC program walks before giving up on a packet.
pub const MAX_IPV6_EXT_HEADERS: u32 = 6;

/// TC ingress: its counters are in an interface's first slot ([`InterfaceSlots::slots`]).
pub const HOOK_INGRESS: u32 = 0;
/// TC egress: its counters are in the slot after ingress's.
pub const HOOK_EGRESS: u32 = 1;

/// [`KernelSettings::output`]: clone each packet onto the mirror veth.
pub const OUTPUT_MIRROR: u32 = 0;
/// [`KernelSettings::output`]: copy each packet into the [`MAP_FRAMES`] ring buffer.
pub const OUTPUT_RINGBUF: u32 = 1;

/// Settings userspace writes for the TC program (index 0 of [`MAP_CONFIG`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelSettings {
    /// [`OUTPUT_MIRROR`] or [`OUTPUT_RINGBUF`].
    pub output: u32,
    /// Interface index the clones are redirected to (egress of the mirror veth); with
    /// [`OUTPUT_MIRROR`], 0 = capture off.
    pub mirror_ifindex: u32,
    /// `skb->mark` carried by shadowd's own replay sockets: such packets are never cloned.
    /// 0 disables the loop guard. Always within [`KernelSettings::loop_guard_mask`].
    pub loop_guard_mark: u32,
    /// The bits of `skb->mark` the guard compares: other datapath components (kube-proxy,
    /// Cilium, Calico) set bits of their own on the same packets.
    pub loop_guard_mask: u32,
}
const _: () = assert!(core::mem::size_of::<KernelSettings>() == 16);

impl KernelSettings {
    /// Whether a packet marked `mark` is shadowd's own replay traffic, never to be copied:
    /// the guard's bits under its mask, whatever other components set beside them.
    #[inline(always)]
    pub fn guards(&self, mark: u32) -> bool {
        self.loop_guard_mark != 0 && mark & self.loop_guard_mask == self.loop_guard_mark
    }
}

/// Key of [`MAP_CAPTURE_ENDPOINTS`]: a server's address and TCP port as the packet carries
/// them. IPv4 addresses are IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so one map holds both.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// The address in network byte order, IPv4 mapped into IPv6.
    pub address: [u8; 16],
    /// The port, host byte order.
    pub port: u16,
    /// Zero: keeps the key's bytes (which the kernel hashes) fully defined.
    pub padding: u16,
}
const _: () = assert!(core::mem::size_of::<EndpointKey>() == 20);

impl EndpointKey {
    /// The key of an IPv4 endpoint (`octets` as the packet carries them).
    #[inline(always)]
    pub fn ipv4(octets: [u8; 4], port: u16) -> Self {
        let [a, b, c, d] = octets;
        EndpointKey {
            address: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
            port,
            padding: 0,
        }
    }

    /// The key of an IPv6 endpoint.
    #[inline(always)]
    pub fn ipv6(address: [u8; 16], port: u16) -> Self {
        EndpointKey {
            address,
            port,
            padding: 0,
        }
    }
}

/// Single-entry array: [`READER_ASLEEP`] while the ring buffer's reader waits for a wake-up,
/// 0 while it polls on its own timer. The program wakes the reader only when it is asleep
/// (and clears the flag), so a busy production CPU pays for no wake-ups at all.
pub const MAP_READER_STATE: &str = "READER_STATE";
/// Value of [`MAP_READER_STATE`]: the reader is asleep.
pub const READER_ASLEEP: u32 = 1;

/// Bytes of packet data in a small ring buffer record (a packet that short, or the tail of
/// a longer one).
pub const SMALL_CHUNK: usize = 224;
/// Bytes of packet data in a large record: a full 1500-byte-MTU frame fits in one.
pub const LARGE_CHUNK: usize = 2016;
/// Bytes of packet data in a huge record (16 KiB with its header): a GSO frame goes in a few
/// of these rather than 33 large ones, since each record costs the production CPU a
/// reservation and a submission besides its bytes.
pub const HUGE_CHUNK: usize = 16 * 1024 - 32;
/// Packets (or what is left of one) longer than this go into huge records, the last one
/// perhaps partly filled (a 9,000-byte jumbo frame takes one huge record, about twice its
/// size in the ring buffer); what is left below it goes into large records, which waste less
/// of the ring buffer.
pub const HUGE_CHUNK_FROM: usize = 4 * LARGE_CHUNK;
/// The longest packet copied whole, in large records' worth; longer packets (beyond a
/// 64 KiB GSO frame) are copied up to that length and flagged [`CHUNK_TRUNCATED`].
pub const MAX_CHUNKS: u32 = 34;
/// Longest packet copied whole into the ring buffer.
pub const MAX_RINGBUF_FRAME: u32 = MAX_CHUNKS * LARGE_CHUNK as u32;
/// [`ChunkHeader::flags`]: the packet was longer than [`MAX_RINGBUF_FRAME`].
pub const CHUNK_TRUNCATED: u32 = 1;

/// Head of every ring buffer record: which packet the chunk belongs to and where it goes.
/// One packet's chunks are written in order by one CPU under one `sequence`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkHeader {
    /// `CLOCK_MONOTONIC` time the program saw the packet.
    pub timestamp_ns: u64,
    /// Per-CPU packet number: chunks of one packet share it.
    pub sequence: u32,
    /// CPU that copied the packet.
    pub cpu: u32,
    /// Length of the whole packet (`skb->len`), L2 header included.
    pub frame_len: u32,
    /// Where this chunk's bytes start in the packet.
    pub offset: u32,
    /// Bytes of packet data following the header.
    pub chunk_len: u32,
    /// [`CHUNK_TRUNCATED`] or 0.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<ChunkHeader>() == 32);

/// A ring buffer record of [`SMALL_CHUNK`] data bytes.
#[repr(C)]
pub struct SmallChunk {
    /// Where the data comes from, and how much of it is valid.
    pub header: ChunkHeader,
    /// The packet's bytes, from `header.offset`; only `header.chunk_len` of them are valid.
    pub data: [u8; SMALL_CHUNK],
}

/// A ring buffer record of [`LARGE_CHUNK`] data bytes.
#[repr(C)]
pub struct LargeChunk {
    /// Where the data comes from, and how much of it is valid.
    pub header: ChunkHeader,
    /// The packet's bytes, from `header.offset`; only `header.chunk_len` of them are valid.
    pub data: [u8; LARGE_CHUNK],
}

/// A ring buffer record of [`HUGE_CHUNK`] data bytes.
#[repr(C)]
pub struct HugeChunk {
    /// Where the data comes from, and how much of it is valid.
    pub header: ChunkHeader,
    /// The packet's bytes, from `header.offset`; only `header.chunk_len` of them are valid.
    pub data: [u8; HUGE_CHUNK],
}

/// Value of [`MAP_INTERFACE_SLOTS`]: whose entry it is, and its slots.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSlots {
    /// The interface's index; 0 (no interface has it) for a free entry.
    pub ifindex: u32,
    /// Its ingress counters' slot in [`MAP_STATS`] (egress's is the next), with
    /// [`SLOT_REQUESTS_LEAVE`] set for a pod-side interface.
    pub slots: u32,
}
const _: () = assert!(core::mem::size_of::<InterfaceSlots>() == 8);

/// Where interface `ifindex`'s entry of [`MAP_INTERFACE_SLOTS`] is.
#[inline(always)]
pub const fn interface_position(ifindex: u32) -> u32 {
    ifindex & (INTERFACE_SLOT_ENTRIES - 1)
}

/// What the TC program counted for one attachment on one CPU. Every packet increments `seen`
/// and exactly one of the outcome counters listed on [`Stats::outcomes_total`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets the program ran on.
    pub seen: u64,
    /// Not IPv4 or IPv6 (ARP, LLDP, …).
    pub not_ip: u64,
    /// IP but not TCP.
    pub not_tcp: u64,
    /// Headers cut short, or a non-first IPv4 fragment: no ports to read.
    pub unparsed: u64,
    /// IPv6 with an extension header the program does not walk (ESP, AH, too many).
    pub ipv6_ext_unwalked: u64,
    /// TCP on ports that are not capture ports.
    pub not_matched: u64,
    /// Capture-port bare ACKs (no payload, no SYN/FIN/RST): not cloned, reassembly does not
    /// need them.
    pub bare_ack: u64,
    /// Capture-port packets carrying the loop-guard mark (shadowd's own replay traffic).
    pub loop_guarded: u64,
    /// Capture-port packets seen while no mirror interface is configured.
    pub mirror_unset: u64,
    /// To a capture port but leaving (egress), or from one but arriving (ingress): not a
    /// request production received nor an answer it sent — its own calls to other
    /// services, the answers to them, or packets forged to look like production's.
    pub wrong_direction: u64,
    /// Request-direction packets cloned or copied (destination port is a capture port).
    pub cloned_request: u64,
    /// Response-direction packets cloned or copied (source port is a capture port).
    pub cloned_response: u64,
    /// The packet could not be handed over: `bpf_clone_redirect` failed (mirror interface
    /// down or gone) or the ring buffer was full. Production unaffected.
    pub clone_failed: u64,
    /// Bytes of cloned or copied packets, including L2–L4 headers.
    pub cloned_bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Stats>() == 14 * 8);

impl Stats {
    /// Sum of the outcome counters: equals `seen` when every packet was accounted for.
    pub fn outcomes_total(&self) -> u64 {
        self.not_ip
            + self.not_tcp
            + self.unparsed
            + self.ipv6_ext_unwalked
            + self.not_matched
            + self.bare_ack
            + self.loop_guarded
            + self.mirror_unset
            + self.wrong_direction
            + self.cloned_request
            + self.cloned_response
            + self.clone_failed
    }

    /// Adds `other` field by field (used to sum per-CPU values).
    pub fn accumulate(&mut self, other: &Stats) {
        self.seen += other.seen;
        self.not_ip += other.not_ip;
        self.not_tcp += other.not_tcp;
        self.unparsed += other.unparsed;
        self.ipv6_ext_unwalked += other.ipv6_ext_unwalked;
        self.not_matched += other.not_matched;
        self.bare_ack += other.bare_ack;
        self.loop_guarded += other.loop_guarded;
        self.mirror_unset += other.mirror_unset;
        self.wrong_direction += other.wrong_direction;
        self.cloned_request += other.cloned_request;
        self.cloned_response += other.cloned_response;
        self.clone_failed += other.clone_failed;
        self.cloned_bytes += other.cloned_bytes;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all four are `repr(C)`, made only of integers, with no padding (checked by the
    // size assertions above), so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::KernelSettings {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ChunkHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::InterfaceSlots {}
    // SAFETY: `repr(C)`, integers and a byte array only, no padding (size asserted above).
    unsafe impl aya::Pod for super::EndpointKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Stats {}
}

/// Protocol numbers both sides' header parsers use.
pub mod proto {
    /// Ethernet header length without VLAN tags.
    pub const ETH_HLEN: usize = 14;
    /// EtherType of IPv4.
    pub const ETH_P_IP: u16 = 0x0800;
    /// EtherType of IPv6.
    pub const ETH_P_IPV6: u16 = 0x86DD;
    /// EtherType of an 802.1Q VLAN tag.
    pub const ETH_P_8021Q: u16 = 0x8100;
    /// EtherType of an 802.1ad (QinQ) VLAN tag.
    pub const ETH_P_8021AD: u16 = 0x88A8;
    /// IP protocol number of TCP.
    pub const IPPROTO_TCP: u8 = 6;
    /// IPv6 extension headers shaped (next header, length in 8-octet units - 1).
    pub const NEXTHDR_HOP: u8 = 0;
    /// IPv6 hop-by-hop options.
    pub const NEXTHDR_ROUTING: u8 = 43;
    /// IPv6 routing header.
    pub const NEXTHDR_FRAGMENT: u8 = 44;
    /// IPv6 fragment header.
    pub const NEXTHDR_DEST: u8 = 60;
    /// Next-header values that end the walk: not TCP (ICMP, UDP, ICMPv6, none, SCTP, UDP-Lite).
    pub const NOT_TCP: [u8; 6] = [1, 17, 58, 59, 132, 136];
}
