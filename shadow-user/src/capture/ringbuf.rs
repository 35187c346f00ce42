//! Reader of the `ringbuf` output: takes the chunk records the TC program wrote into the BPF
//! ring buffer, puts each packet back together, and hands it to a [`FrameSink`].
//!
//! While packets keep coming the reader polls on its own timer (the poll interval bounds how
//! long a copy waits) and the program wakes no one: a wake-up is an interrupt on the
//! production CPU. Only after a quiet spell does the reader mark itself asleep in a map the
//! program reads; the next copy then wakes it.

use std::{
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{Array, MapData, RingBuf};
use shadow_common::{CHUNK_TRUNCATED, ChunkHeader, READER_ASLEEP};

use super::{
    frame::{FrameSink, hand_on},
    ports::SharedPorts,
    program::RingBufMaps,
    stats::RingStats,
};

/// How long the reader keeps polling on its own timer after the last record it found.
const BUSY_WINDOW: Duration = Duration::from_millis(50);
/// Poll timeout when asleep: bounds how late a stop request is noticed, and how long a copy
/// can wait if it was written just as the reader fell asleep.
const ASLEEP_POLL: Duration = Duration::from_millis(50);

/// Settings of the ring buffer output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingBufConfig {
    /// Bytes of the ring buffer: a power of two, at least one page.
    pub size: u32,
    /// How often the reader looks for new copies while traffic flows.
    pub poll_interval: Duration,
}

impl Default for RingBufConfig {
    fn default() -> Self {
        // 16 MiB holds about 40 ms of copies of a core saturated with small requests
        // (counted in the RSS twice: the kernel maps the data area twice for wrap-around).
        // A 1 ms poll keeps copy delays near a millisecond at a few thousand wake-ups a
        // second less than a 250 µs one would cost.
        RingBufConfig {
            size: 16 << 20,
            poll_interval: Duration::from_millis(1),
        }
    }
}

/// A packet being put back together from its chunks.
struct Assembly {
    header: ChunkHeader,
    bytes: Vec<u8>,
}

/// Puts packets back together: chunks of one packet arrive in order from one CPU, possibly
/// interleaved with other CPUs' packets.
#[derive(Default)]
pub struct Reassembler {
    /// Packet in progress, by CPU.
    pending: Vec<Option<Assembly>>,
}

/// What one record completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Nothing yet: more chunks of this packet follow.
    Partial,
    /// A whole packet, or the start of one cut at the program's size limit (then shorter
    /// than `header.frame_len`).
    Packet {
        header: ChunkHeader,
        bytes: &'a [u8],
    },
    /// The record was not a chunk header followed by its data.
    Malformed,
}

impl Reassembler {
    /// Takes one record; `incomplete` is called for every packet given up because its
    /// chunks stopped short (the ring was full for the rest).
    pub fn push<'a>(&'a mut self, record: &'a [u8], mut incomplete: impl FnMut()) -> Record<'a> {
        let header_len = std::mem::size_of::<ChunkHeader>();
        let Some(header_bytes) = record.get(..header_len) else {
            return Record::Malformed;
        };
        // SAFETY: `ChunkHeader` is plain integers (any bit pattern is valid); the read is
        // unaligned-safe and bounded by the slice checked above.
        let header = unsafe { header_bytes.as_ptr().cast::<ChunkHeader>().read_unaligned() };
        let Some(data) = record
            .get(header_len..)
            .and_then(|rest| rest.get(..header.chunk_len as usize))
        else {
            return Record::Malformed;
        };
        let copied_len = header.offset as usize + data.len();
        let whole = |header: &ChunkHeader| {
            if header.flags & CHUNK_TRUNCATED != 0 {
                copied_len >= shadow_common::MAX_RINGBUF_FRAME as usize
            } else {
                copied_len >= header.frame_len as usize
            }
        };
        let cpu = header.cpu as usize;
        if self.pending.len() <= cpu {
            self.pending.resize_with(cpu + 1, || None);
        }
        let slot = &mut self.pending[cpu];

        if header.offset == 0 {
            if slot.take().is_some() {
                incomplete();
            }
            if whole(&header) {
                // The common case: one record, no copy.
                return Record::Packet {
                    header,
                    bytes: data,
                };
            }
            let mut bytes = Vec::with_capacity(header.frame_len as usize);
            bytes.extend_from_slice(data);
            *slot = Some(Assembly { header, bytes });
            return Record::Partial;
        }
        match slot {
            Some(assembly)
                if assembly.header.sequence == header.sequence
                    && assembly.bytes.len() == header.offset as usize =>
            {
                assembly.bytes.extend_from_slice(data);
            }
            _ => {
                // A middle chunk of a packet whose start is gone.
                if slot.take().is_some() {
                    incomplete();
                }
                incomplete();
                return Record::Partial;
            }
        }
        if !whole(&header) {
            return Record::Partial;
        }
        let assembly = slot.as_ref().expect("extended above");
        Record::Packet {
            header: assembly.header,
            bytes: &assembly.bytes,
        }
    }

    /// Forgets the packet of `cpu` handed out by [`Reassembler::push`], if it was put
    /// together from several chunks.
    fn release(&mut self, cpu: u32) {
        if let Some(slot) = self.pending.get_mut(cpu as usize) {
            *slot = None;
        }
    }
}

/// Converts the program's `CLOCK_MONOTONIC` timestamps to wall-clock time.
struct Clock {
    /// Wall clock minus monotonic clock, re-measured now and then (the wall clock may step).
    offset: Duration,
    measured: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            offset: wall_minus_monotonic(),
            measured: Instant::now(),
        }
    }

    fn wall_time(&mut self, monotonic_ns: u64) -> SystemTime {
        if self.measured.elapsed() > Duration::from_secs(10) {
            self.offset = wall_minus_monotonic();
            self.measured = Instant::now();
        }
        SystemTime::UNIX_EPOCH + self.offset + Duration::from_nanos(monotonic_ns)
    }
}

fn wall_minus_monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let monotonic = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    wall.saturating_sub(monotonic)
}

/// Reads records until `stop` is set, handing each whole packet to `sink`.
fn run(
    maps: RingBufMaps,
    config: RingBufConfig,
    ports: &SharedPorts,
    sink: &mut dyn FrameSink,
    stats: &RingStats,
    stop: &AtomicBool,
) {
    let RingBufMaps {
        mut frames,
        mut reader_state,
    } = maps;
    let mut reassembler = Reassembler::default();
    let mut clock = Clock::new();
    // Start asleep: the first copy wakes the reader at once.
    let mut last_record = Instant::now() - BUSY_WINDOW;
    let mut asleep = false;
    while !stop.load(Ordering::Relaxed) {
        let found = drain(
            &mut frames,
            &mut reassembler,
            ports,
            sink,
            stats,
            &mut clock,
        );
        let now = Instant::now();
        if found > 0 {
            stats.blocks.inc();
            last_record = now;
            // Woken by the program (which cleared the flag), or found copies on a timeout.
            asleep = false;
        } else {
            sink.idle(SystemTime::now());
        }
        if now.duration_since(last_record) < BUSY_WINDOW {
            wait(&frames, config.poll_interval);
            continue;
        }
        if !asleep {
            set_state(&mut reader_state, READER_ASLEEP);
            asleep = true;
            // A copy written just before the flag was set woke no one: look once more.
            continue;
        }
        wait(&frames, ASLEEP_POLL);
    }
}

/// Hands every record in the ring buffer on; returns how many there were.
fn drain(
    frames: &mut RingBuf<MapData>,
    reassembler: &mut Reassembler,
    ports: &SharedPorts,
    sink: &mut dyn FrameSink,
    stats: &RingStats,
    clock: &mut Clock,
) -> u64 {
    let snapshot = ports.snapshot();
    let mut found = 0u64;
    while let Some(item) = frames.next() {
        found += 1;
        let delivered_from = match reassembler.push(&item, || {
            stats.ring_drops.inc();
        }) {
            Record::Partial => None,
            Record::Malformed => {
                stats.malformed_blocks.inc();
                None
            }
            Record::Packet { header, bytes } => {
                let timestamp = || clock.wall_time(header.timestamp_ns);
                hand_on(bytes, header.frame_len, timestamp, &snapshot, sink, stats);
                Some(header.cpu)
            }
        };
        if let Some(cpu) = delivered_from {
            reassembler.release(cpu);
        }
    }
    found
}

fn set_state(reader_state: &mut Array<MapData, u32>, value: u32) {
    if let Err(err) = reader_state.set(0, value, 0) {
        // Without the flag the program never wakes the reader; the asleep poll still
        // picks copies up, only later.
        tracing::warn!(error = %err, "updating the ring buffer reader state");
    }
}

fn wait(ring: &RingBuf<MapData>, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: ring.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask change.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

/// Runs the reader on its own thread.
pub fn spawn(
    maps: RingBufMaps,
    config: RingBufConfig,
    ports: SharedPorts,
    mut sink: Box<dyn FrameSink>,
    stats: Arc<RingStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shadowd-capture".into())
        .spawn(move || run(maps, config, &ports, sink.as_mut(), &stats, &stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(header: ChunkHeader, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // SAFETY: `ChunkHeader` is plain integers with no padding.
        out.extend_from_slice(unsafe {
            std::slice::from_raw_parts(
                (&raw const header).cast::<u8>(),
                std::mem::size_of::<ChunkHeader>(),
            )
        });
        out.extend_from_slice(data);
        out.resize(out.len() + 7, 0xEE); // trailing record padding is ignored
        out
    }

    fn chunk(cpu: u32, sequence: u32, frame_len: u32, offset: u32, data: &[u8]) -> Vec<u8> {
        record(
            ChunkHeader {
                timestamp_ns: 1,
                sequence,
                cpu,
                frame_len,
                offset,
                chunk_len: data.len() as u32,
                flags: 0,
            },
            data,
        )
    }

    fn packet(record: Record<'_>) -> Option<Vec<u8>> {
        match record {
            Record::Packet { bytes, .. } => Some(bytes.to_vec()),
            _ => None,
        }
    }

    #[test]
    fn a_single_chunk_is_a_whole_packet() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        let got = packet(r.push(&chunk(0, 1, 3, 0, b"abc"), || lost += 1));
        assert_eq!(got.as_deref(), Some(&b"abc"[..]));
        assert_eq!(lost, 0);
    }

    #[test]
    fn chunks_from_two_cpus_interleave() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        assert_eq!(
            r.push(&chunk(0, 7, 6, 0, b"abc"), || lost += 1),
            Record::Partial
        );
        assert_eq!(
            r.push(&chunk(1, 3, 4, 0, b"wx"), || lost += 1),
            Record::Partial
        );
        let first = packet(r.push(&chunk(0, 7, 6, 3, b"def"), || lost += 1));
        assert_eq!(first.as_deref(), Some(&b"abcdef"[..]));
        r.release(0);
        assert_eq!(
            packet(r.push(&chunk(0, 8, 1, 0, b"g"), || lost += 1)).as_deref(),
            Some(&b"g"[..]),
            "a released packet is not counted as incomplete"
        );
        let second = packet(r.push(&chunk(1, 3, 4, 2, b"yz"), || lost += 1));
        assert_eq!(second.as_deref(), Some(&b"wxyz"[..]));
        assert_eq!(lost, 0);
    }

    #[test]
    fn a_packet_cut_short_by_a_full_ring_is_counted_once_and_not_delivered() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        r.push(&chunk(0, 1, 6, 0, b"abc"), || lost += 1);
        // The rest of packet 1 never came; packet 2 starts.
        let next = packet(r.push(&chunk(0, 2, 2, 0, b"ok"), || lost += 1));
        assert_eq!(next.as_deref(), Some(&b"ok"[..]));
        assert_eq!(lost, 1);
    }

    #[test]
    fn a_middle_chunk_without_its_start_is_counted() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        assert_eq!(
            r.push(&chunk(0, 4, 6, 3, b"def"), || lost += 1),
            Record::Partial
        );
        assert_eq!(lost, 1);
        // A chunk of another packet at the expected offset is not glued on either.
        r.push(&chunk(0, 5, 6, 0, b"abc"), || lost += 1);
        assert_eq!(
            r.push(&chunk(0, 6, 6, 3, b"xyz"), || lost += 1),
            Record::Partial
        );
        assert_eq!(lost, 3);
    }

    #[test]
    fn short_records_are_malformed() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(&[0u8; 10], || {}), Record::Malformed);
        let mut bad = chunk(0, 1, 100, 0, b"abc");
        bad.truncate(std::mem::size_of::<ChunkHeader>() + 2);
        assert_eq!(r.push(&bad, || {}), Record::Malformed);
    }
}
