//! The two TC entry points (ingress and egress) and the copy decision they share: clone onto
//! the mirror veth, or copy into the ring buffer, as userspace configured.
//!
//! Fails open by construction: every path returns `TCX_NEXT` (`TC_ACT_UNSPEC`), the packet
//! is only read, and errors only change which counter is incremented. `TCX_NEXT` rather
//! than a verdict matters: any other return value ends the TCX chain, so programs attached
//! after this one (a CNI's, say) would be skipped for production traffic.

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::TcContext,
};
use aya_log_ebpf::warn;
use shadow_common::{
    EndpointKey, HOOK_EGRESS, HOOK_INGRESS, INTERFACE_SLOT_ENTRIES, InterfaceSlots, KernelSettings,
    MAX_CAPTURE_ENDPOINTS, MAX_STATS_SLOTS, OUTPUT_RINGBUF, PORT_ANY_ADDRESS, PORT_ENTRIES,
    PORT_LISTED_ENDPOINTS, SLOT_REQUESTS_LEAVE, Stats, interface_position,
};

use crate::{
    headers::{Ports, Skip, tcp_ports},
    ringbuf,
};

#[map]
static CAPTURE_PORTS: Array<u8> = Array::with_max_entries(PORT_ENTRIES, 0);

#[map]
static CAPTURE_ENDPOINTS: HashMap<EndpointKey, u8> =
    HashMap::with_max_entries(MAX_CAPTURE_ENDPOINTS, 0);

#[map]
static CONFIG: Array<KernelSettings> = Array::with_max_entries(1, 0);

#[map]
static INTERFACE_SLOTS: Array<InterfaceSlots> = Array::with_max_entries(INTERFACE_SLOT_ENTRIES, 0);

/// Interfaces whose entry in `INTERFACE_SLOTS` another one holds: at most every one attached.
#[map]
static INTERFACE_SLOTS_SPILL: HashMap<u32, u32> = HashMap::with_max_entries(MAX_STATS_SLOTS / 2, 0);

#[map]
static STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_STATS_SLOTS, 0);

/// Per-CPU time of the last clone-failure log line, so a downed mirror logs once a second
/// per CPU instead of once per packet.
#[map]
static LAST_FAILURE_LOG_NS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const FAILURE_LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// "Run the next program; if none, let the packet go on as the kernel would": the one
/// return value that leaves the rest of the TCX chain and the packet untouched.
const TCX_NEXT: i32 = TC_ACT_UNSPEC;

#[classifier]
pub fn shadow_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, HOOK_INGRESS);
    TCX_NEXT
}

#[classifier]
pub fn shadow_egress(ctx: TcContext) -> i32 {
    observe(&ctx, HOOK_EGRESS);
    TCX_NEXT
}

/// Classifies the packet, clones it when it belongs to a captured connection, and counts the
/// outcome. Never fails: a missing map entry just means nothing is counted.
#[inline(always)]
fn observe(ctx: &TcContext, hook: u32) {
    // SAFETY: `skb` is the context pointer the kernel handed the program; reading its fields
    // is what the verifier allows for TC programs.
    let (ifindex, mark) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).mark) };
    let (slot, requests_leave) = slot_of(ifindex, hook);
    let Some(stats) = STATS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: a per-CPU map value is only touched by this CPU while the program runs.
    let stats = unsafe { &mut *stats };
    stats.seen += 1;

    let ports = match tcp_ports(ctx) {
        Ok(ports) => ports,
        Err(Skip::NotIp) => return stats.not_ip += 1,
        Err(Skip::NotTcp) => return stats.not_tcp += 1,
        Err(Skip::Unparsed) => return stats.unparsed += 1,
        Err(Skip::Ipv6ExtUnwalked) => return stats.ipv6_ext_unwalked += 1,
    };
    let is_request = is_server(ctx, &ports, End::Destination);
    let is_response = !is_request && is_server(ctx, &ports, End::Source);
    if !is_request && !is_response {
        return stats.not_matched += 1;
    }
    // Cloning costs the production CPU; a bare ACK carries nothing reassembly uses.
    if ports.bare_ack {
        return stats.bare_ack += 1;
    }

    let Some(config) = CONFIG.get(0).copied() else {
        return stats.mirror_unset += 1;
    };
    if config.guards(mark) {
        return stats.loop_guarded += 1;
    }
    // Production receives requests and sends answers: a request going away from it or an
    // answer coming towards it is someone else's (or forged to pass for production's own).
    // Towards production is ingress, except on a pod's veth, where it is egress.
    let towards_production = if requests_leave {
        HOOK_EGRESS
    } else {
        HOOK_INGRESS
    };
    if (is_request && hook != towards_production) || (is_response && hook == towards_production) {
        return stats.wrong_direction += 1;
    }

    let handed_over = if config.output == OUTPUT_RINGBUF {
        ringbuf::copy(ctx).is_ok()
    } else if config.mirror_ifindex == 0 {
        return stats.mirror_unset += 1;
    } else {
        match ctx.clone_redirect(config.mirror_ifindex, 0) {
            Ok(()) => true,
            Err(err) => {
                log_clone_failure(ctx, config.mirror_ifindex, err);
                false
            }
        }
    };
    if handed_over {
        if is_request {
            stats.cloned_request += 1;
        } else {
            stats.cloned_response += 1;
        }
        stats.cloned_bytes += u64::from(ctx.len());
    } else {
        stats.clone_failed += 1;
    }
}

/// One end of a segment.
#[derive(Clone, Copy)]
enum End {
    Source,
    Destination,
}

/// Whether `end` of the segment is a captured server: its port is captured at any address,
/// or its address and port are listed. The port flag comes first, so packets of other ports
/// never pay for reading addresses and the hash lookup.
#[inline(always)]
fn is_server(ctx: &TcContext, ports: &Ports, end: End) -> bool {
    let port = match end {
        End::Source => ports.src,
        End::Destination => ports.dst,
    };
    let flags = CAPTURE_PORTS.get(u32::from(port)).copied().unwrap_or(0);
    if flags & PORT_ANY_ADDRESS != 0 {
        return true;
    }
    if flags & PORT_LISTED_ENDPOINTS == 0 {
        return false;
    }
    let key = match end {
        End::Source => ports.src_endpoint(ctx),
        End::Destination => ports.dst_endpoint(ctx),
    };
    let Ok(key) = key else {
        return false;
    };
    // SAFETY: the values are plain bytes written whole by userspace.
    unsafe { CAPTURE_ENDPOINTS.get(&key) }.is_some()
}

/// The counters' slot of this interface and hook (the catch-all slot 0 for an interface
/// without one), and whether requests leave through it. One inlined array load for every
/// attached interface but one whose entry another holds.
#[inline(always)]
fn slot_of(ifindex: u32, hook: u32) -> (u32, bool) {
    let slots = match INTERFACE_SLOTS.get(interface_position(ifindex)) {
        Some(entry) if entry.ifindex == ifindex => entry.slots,
        // SAFETY: values are plain integers written whole by userspace.
        _ => unsafe { INTERFACE_SLOTS_SPILL.get(&ifindex) }
            .copied()
            .unwrap_or(0),
    };
    let base = slots & !SLOT_REQUESTS_LEAVE;
    (
        if base == 0 { 0 } else { base + hook },
        slots & SLOT_REQUESTS_LEAVE != 0,
    )
}

#[inline(always)]
fn log_clone_failure(ctx: &TcContext, mirror_ifindex: u32, err: i64) {
    let Some(last) = LAST_FAILURE_LOG_NS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: helper without arguments; per-CPU value only touched by this CPU.
    let now = unsafe { bpf_ktime_get_ns() };
    let last = unsafe { &mut *last };
    if now.wrapping_sub(*last) >= FAILURE_LOG_INTERVAL_NS {
        *last = now;
        warn!(
            ctx,
            "clone to mirror ifindex {} failed: {}; production traffic unaffected",
            mirror_ifindex,
            err
        );
    }
}
