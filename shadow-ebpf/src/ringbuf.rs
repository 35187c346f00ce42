//! The `ringbuf` output: copies a packet into the `FRAMES` BPF ring buffer, in chunks, so
//! userspace reads it without a clone, a veth hop or a receive softirq on the production CPU.
//!
//! The ring buffer only accepts records of a size known when the program is verified, so a
//! packet goes in as huge chunks while more than a few large ones' worth remains (the last
//! of them perhaps partly filled), then large chunks, then one small tail if any is left.
//! Chunks of one packet share a per-CPU sequence number: userspace discards a packet whose
//! chunks did not all arrive (the ring filled up half-way) and counts it.

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    cty::c_void,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
    programs::TcContext,
};
use shadow_common::{
    CHUNK_TRUNCATED, ChunkHeader, HUGE_CHUNK, HUGE_CHUNK_FROM, HugeChunk, LARGE_CHUNK, LargeChunk,
    MAX_RINGBUF_FRAME, READER_ASLEEP, SMALL_CHUNK, SmallChunk,
};

/// Userspace sets the real size when it loads the program.
#[map]
static FRAMES: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Per-CPU packet number for [`ChunkHeader::sequence`].
#[map]
static SEQUENCE: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Whether the reader waits for a wake-up (see `shadow_common::MAP_READER_STATE`).
#[map]
static READER_STATE: Array<u32> = Array::with_max_entries(1, 0);

/// The packet could not be copied whole: the ring buffer is full (or the packet shrank
/// under us). Chunks already written are discarded by userspace.
pub struct RingFull;

/// Copies the packet behind `ctx` into the ring buffer.
#[inline(always)]
pub fn copy(ctx: &TcContext) -> Result<(), RingFull> {
    let frame_len = ctx.len();
    let (copy_len, flags) = if frame_len > MAX_RINGBUF_FRAME {
        (MAX_RINGBUF_FRAME, CHUNK_TRUNCATED)
    } else {
        (frame_len, 0)
    };
    // SAFETY: helpers without arguments.
    let (timestamp_ns, cpu) = unsafe { (bpf_ktime_get_ns(), bpf_get_smp_processor_id()) };
    let mut header = ChunkHeader {
        timestamp_ns,
        sequence: next_sequence(),
        cpu,
        frame_len,
        offset: 0,
        chunk_len: 0,
        flags,
    };
    let wakeup = wakeup_flag();
    // One loop per record type, so the verifier walks each path once.
    let huge = (HUGE_CHUNK_FROM as u32, MAX_HUGE_CHUNKS);
    if let Some(done) = write_run::<HugeChunk>(ctx, &mut header, copy_len, huge, wakeup) {
        return done;
    }
    let large = (SMALL_CHUNK as u32, MAX_LARGE_CHUNKS);
    if let Some(done) = write_run::<LargeChunk>(ctx, &mut header, copy_len, large, wakeup) {
        return done;
    }
    let remaining = copy_len - header.offset;
    if remaining == 0 {
        return Ok(());
    }
    header.chunk_len = remaining;
    write::<SmallChunk>(ctx, &header, wakeup)
}

/// Writes records of type `R` from `header.offset` while more than `above` of the packet's
/// `copy_len` bytes remain, at most `most` of them; the record that ends the packet carries
/// `wakeup`. The packet's outcome if it ended (or the ring filled), else `None`.
#[inline(always)]
fn write_run<R: ChunkRecord>(
    ctx: &TcContext,
    header: &mut ChunkHeader,
    copy_len: u32,
    (above, most): (u32, u32),
    wakeup: u64,
) -> Option<Result<(), RingFull>> {
    for _ in 0..most {
        let remaining = copy_len - header.offset;
        if remaining <= above {
            return None;
        }
        let chunk = remaining.min(R::CAPACITY as u32);
        header.chunk_len = chunk;
        if chunk == remaining {
            return Some(write::<R>(ctx, header, wakeup));
        }
        if let Err(full) = write::<R>(ctx, header, BPF_RB_NO_WAKEUP as u64) {
            return Some(Err(full));
        }
        header.offset += chunk;
    }
    None
}

/// Huge records a packet of up to [`MAX_RINGBUF_FRAME`] bytes needs before what is left
/// fits in large ones.
const MAX_HUGE_CHUNKS: u32 =
    (MAX_RINGBUF_FRAME - HUGE_CHUNK_FROM as u32).div_ceil(HUGE_CHUNK as u32);
/// Large records for what is left then: at most [`HUGE_CHUNK_FROM`] bytes.
const MAX_LARGE_CHUNKS: u32 = (HUGE_CHUNK_FROM / LARGE_CHUNK) as u32 + 1;

/// A ring buffer record type: a [`ChunkHeader`] followed by `CAPACITY` data bytes.
trait ChunkRecord: 'static {
    const CAPACITY: usize;
    /// # Safety
    /// `record` must point at a reserved record of this type.
    unsafe fn parts(record: *mut Self) -> (*mut ChunkHeader, *mut c_void);
}

impl ChunkRecord for SmallChunk {
    const CAPACITY: usize = SMALL_CHUNK;
    unsafe fn parts(record: *mut Self) -> (*mut ChunkHeader, *mut c_void) {
        // SAFETY: field projections of a valid record pointer.
        unsafe { (&raw mut (*record).header, (&raw mut (*record).data).cast()) }
    }
}

impl ChunkRecord for HugeChunk {
    const CAPACITY: usize = HUGE_CHUNK;
    unsafe fn parts(record: *mut Self) -> (*mut ChunkHeader, *mut c_void) {
        // SAFETY: field projections of a valid record pointer.
        unsafe { (&raw mut (*record).header, (&raw mut (*record).data).cast()) }
    }
}

impl ChunkRecord for LargeChunk {
    const CAPACITY: usize = LARGE_CHUNK;
    unsafe fn parts(record: *mut Self) -> (*mut ChunkHeader, *mut c_void) {
        // SAFETY: field projections of a valid record pointer.
        unsafe { (&raw mut (*record).header, (&raw mut (*record).data).cast()) }
    }
}

/// Writes one record: the header and `header.chunk_len` bytes of the packet from
/// `header.offset`.
#[inline(always)]
fn write<R: ChunkRecord>(
    ctx: &TcContext,
    header: &ChunkHeader,
    wakeup: u64,
) -> Result<(), RingFull> {
    let mut entry = FRAMES.reserve::<R>(0).ok_or(RingFull)?;
    let len = verifiable_len(header.chunk_len);
    if len == 0 || len > R::CAPACITY as u64 {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        return Err(RingFull);
    }
    // SAFETY: `entry` is a reserved record of type `R`; `len` bytes fit in its data (checked
    // above, on the very value passed) and `bpf_skb_load_bytes` bounds-checks the packet.
    let loaded = unsafe {
        let (record_header, data) = R::parts(entry.as_mut_ptr());
        *record_header = *header;
        load_bytes(ctx.skb.skb as *const c_void, header.offset, data, len)
    };
    if loaded != 0 {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        return Err(RingFull);
    }
    entry.submit(wakeup);
    Ok(())
}

/// The chunk length as a fresh value the compiler knows nothing about, so the bounds check
/// that follows is emitted on the very register passed to the helper: the verifier only
/// accepts a length it has seen checked, and the compiler would otherwise reuse an earlier
/// copy of the value whose bounds the verifier never saw.
#[inline(always)]
fn verifiable_len(len: u32) -> u64 {
    let len = u64::from(len);
    // SAFETY: reads a local just written.
    unsafe { core::ptr::read_volatile(&len) }
}

/// `bpf_skb_load_bytes` with a 64-bit length, so the bound checked on the length is the one
/// the verifier sees (the generated binding takes a `u32`, and the compiler may then pass a
/// wider register whose upper half the check did not cover).
#[inline(always)]
unsafe fn load_bytes(skb: *const c_void, offset: u32, to: *mut c_void, len: u64) -> i64 {
    // BPF_FUNC_skb_load_bytes.
    const HELPER: usize = 26;
    // SAFETY: BPF helpers are called through their number; the signature matches the
    // kernel's `bpf_skb_load_bytes(skb, offset, to, len)` with every argument in a register.
    let helper: unsafe extern "C" fn(*const c_void, u32, *mut c_void, u64) -> i64 =
        unsafe { core::mem::transmute(HELPER) };
    unsafe { helper(skb, offset, to, len) }
}

#[inline(always)]
fn next_sequence() -> u32 {
    match SEQUENCE.get_ptr_mut(0) {
        // SAFETY: a per-CPU value, only touched by this CPU while the program runs.
        Some(sequence) => unsafe {
            *sequence = (*sequence).wrapping_add(1);
            *sequence
        },
        None => 0,
    }
}

/// Wakes the reader only if it is asleep, and marks it awake so the CPUs' next copies do not
/// wake it again; while it polls on its own timer no copy costs a wake-up.
#[inline(always)]
fn wakeup_flag() -> u64 {
    let Some(state) = READER_STATE.get_ptr_mut(0) else {
        return BPF_RB_FORCE_WAKEUP as u64;
    };
    // SAFETY: an array value; a racing write from another CPU or from userspace is a plain
    // word store, and either outcome only costs or saves one wake-up.
    unsafe {
        if core::ptr::read_volatile(state) == READER_ASLEEP {
            core::ptr::write_volatile(state, 0);
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    }
}
