//! Reader of the `ringbuf` output: takes the chunk records the TC program wrote into the BPF
//! ring buffer, puts each packet back together, and hands it to a [`FrameSink`].
//!
//! While packets keep coming the reader polls on its own timer (the poll interval bounds how
//! long a copy waits) and the program wakes no one: a wake-up is an interrupt on the
//! production CPU. Only after a quiet spell does the reader mark itself asleep in a map the
//! program reads; the next copy then wakes it.

use std::{
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

mod chunks;
mod consumer;

use aya::maps::{Array, MapData};
use shadow_common::READER_ASLEEP;

use self::{
    chunks::{Reassembler, Record},
    consumer::Consumer,
};
use super::{
    CaptureError,
    frame::{FrameSink, hand_on},
    heartbeat::ReaderControl,
    scope::SharedScope,
    stats::ReaderStats,
};

/// How long the reader keeps polling on its own timer after the last record it found.
const BUSY_WINDOW: Duration = Duration::from_millis(50);
/// Poll timeout when asleep: bounds how late a stop request is noticed, and how long a copy
/// can wait if it was written just as the reader fell asleep.
const ASLEEP_POLL: Duration = Duration::from_millis(50);

/// Settings of the ring buffer output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingBufConfig {
    /// Bytes of the ring buffer: a power of two, at least `settings::MIN_RINGBUF_SIZE`.
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
    mut frames: Consumer,
    mut reader_state: Array<MapData, u32>,
    config: RingBufConfig,
    scope: &SharedScope,
    sink: &mut dyn FrameSink,
    stats: &ReaderStats,
    control: &ReaderControl,
) {
    let mut reassembler = Reassembler::default();
    let mut clock = Clock::new();
    // Start asleep: the first copy wakes the reader at once.
    let mut last_record = Instant::now() - BUSY_WINDOW;
    let mut asleep = false;
    while control.next_pass() {
        let found = drain(
            &mut frames,
            &mut reassembler,
            scope,
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
    frames: &mut Consumer,
    reassembler: &mut Reassembler,
    scope: &SharedScope,
    sink: &mut dyn FrameSink,
    stats: &ReaderStats,
    clock: &mut Clock,
) -> usize {
    let snapshot = scope.snapshot();
    frames.drain(|record| {
        let delivered_from = match reassembler.push(record, || {
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
    })
}

fn set_state(reader_state: &mut Array<MapData, u32>, value: u32) {
    if let Err(err) = reader_state.set(0, value, 0) {
        // Without the flag the program never wakes the reader; the asleep poll still
        // picks copies up, only later.
        tracing::warn!(error = %err, "updating the ring buffer reader state");
    }
}

fn wait(ring: &Consumer, timeout: Duration) {
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

/// The maps the ring buffer's reader works with.
pub struct RingBufMaps {
    /// The copies (a `BPF_MAP_TYPE_RINGBUF`).
    pub frames: MapData,
    /// The reader's asleep/awake flag (`shadow_common::MAP_READER_STATE`).
    pub reader_state: Array<MapData, u32>,
}

/// Maps the ring buffer and runs the reader on its own thread.
pub fn spawn(
    maps: RingBufMaps,
    config: RingBufConfig,
    scope: SharedScope,
    mut sink: Box<dyn FrameSink>,
    stats: Arc<ReaderStats>,
    control: ReaderControl,
) -> Result<std::thread::JoinHandle<()>, CaptureError> {
    let RingBufMaps {
        frames,
        reader_state,
    } = maps;
    let frames = Consumer::new(frames, config.size).map_err(CaptureError::RingBufMap)?;
    std::thread::Builder::new()
        .name("shadowd-capture".into())
        .spawn(move || {
            let _alive = control.heartbeat().until_end();
            run(
                frames,
                reader_state,
                config,
                &scope,
                sink.as_mut(),
                &stats,
                &control,
            )
        })
        .map_err(CaptureError::Thread)
}
