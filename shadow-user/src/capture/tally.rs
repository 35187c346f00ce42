//! Frame consumer that accounts for captured bytes per direction: raw payload bytes, and
//! stream bytes (each connection's sequence space counted once, however often a segment was
//! retransmitted or cloned).

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::frame::{Direction, Frame, FrameSink};
use crate::packet::tcp_flags;

/// Most one-way streams tracked at once; beyond it the oldest-idle one is evicted (counted).
pub const MAX_STREAMS: usize = 65_536;
/// A stream with no segment for this long is forgotten.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

/// Counters of the tally.
#[derive(Debug, Default, Clone)]
pub struct TallyStats {
    pub segments: Family<DirectionLabel, Counter>,
    pub payload_bytes: Family<DirectionLabel, Counter>,
    pub stream_bytes: Family<DirectionLabel, Counter>,
    pub streams: Gauge,
    pub streams_evicted: Counter,
}

impl TallyStats {
    /// Registers under `shadowd_capture_*`.
    pub fn register(&self, registry: &mut Registry) {
        let capture = registry.sub_registry_with_prefix("capture");
        capture.register("segments", "TCP segments captured", self.segments.clone());
        capture.register(
            "payload_bytes",
            "TCP payload bytes captured, retransmissions included",
            self.payload_bytes.clone(),
        );
        capture.register(
            "stream_bytes",
            "TCP stream bytes captured, each sequence number counted once",
            self.stream_bytes.clone(),
        );
        capture.register(
            "streams",
            "One-way TCP streams tracked",
            self.streams.clone(),
        );
        capture.register(
            "streams_evicted",
            "Streams forgotten because the table was full",
            self.streams_evicted.clone(),
        );
    }

    fn label(direction: Direction) -> DirectionLabel {
        DirectionLabel {
            direction: direction.as_str(),
        }
    }
}

struct StreamState {
    /// Next sequence number beyond the highest byte seen.
    high_water: u32,
    last_seen: SystemTime,
}

/// The interim consumer of the capture path.
pub struct StreamTally {
    streams: HashMap<(SocketAddr, SocketAddr), StreamState>,
    stats: TallyStats,
    last_sweep: SystemTime,
}

impl StreamTally {
    pub fn new(stats: TallyStats) -> Self {
        StreamTally {
            streams: HashMap::new(),
            stats,
            last_sweep: SystemTime::UNIX_EPOCH,
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(key) = self
            .streams
            .iter()
            .min_by_key(|(_, state)| state.last_seen)
            .map(|(key, _)| *key)
        {
            self.streams.remove(&key);
            self.stats.streams_evicted.inc();
        }
    }
}

impl FrameSink for StreamTally {
    fn frame(&mut self, frame: &Frame<'_>) {
        let segment = &frame.segment;
        let label = TallyStats::label(frame.direction);
        self.stats.segments.get_or_create(&label).inc();
        let payload_len = segment.payload.len() as u32;
        self.stats
            .payload_bytes
            .get_or_create(&label)
            .inc_by(u64::from(payload_len));

        let key = (segment.src, segment.dst);
        // Data starts one past the SYN's sequence number, else where pickup happened.
        let start = if segment.has(tcp_flags::SYN) {
            segment.seq.wrapping_add(1)
        } else {
            segment.seq
        };
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            self.evict_oldest();
        }
        let state = self.streams.entry(key).or_insert(StreamState {
            high_water: start,
            last_seen: frame.timestamp,
        });
        state.last_seen = frame.timestamp;
        let end = segment.seq.wrapping_add(payload_len);
        // Serial-number arithmetic (RFC 1982): `end` is ahead if the distance is positive.
        let advance = end.wrapping_sub(state.high_water) as i32;
        if advance > 0 && payload_len > 0 {
            state.high_water = end;
            self.stats
                .stream_bytes
                .get_or_create(&label)
                .inc_by(advance as u64);
        }
        if segment.has(tcp_flags::RST) || segment.has(tcp_flags::FIN) {
            self.streams.remove(&key);
        }
        self.stats.streams.set(self.streams.len() as i64);
    }

    fn idle(&mut self, now: SystemTime) {
        if now.duration_since(self.last_sweep).unwrap_or_default() < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        self.streams.retain(|_, state| {
            now.duration_since(state.last_seen).unwrap_or_default() < STREAM_IDLE_TIMEOUT
        });
        self.stats.streams.set(self.streams.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Segment;

    fn frame(seq: u32, flags: u8, payload: &[u8]) -> Frame<'_> {
        Frame {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
            direction: Direction::Request,
            segment: Segment {
                src: "198.18.0.1:40000".parse().unwrap(),
                dst: "198.18.0.2:80".parse().unwrap(),
                seq,
                ack: 0,
                flags,
                payload,
            },
        }
    }

    fn stream_bytes(stats: &TallyStats) -> u64 {
        stats
            .stream_bytes
            .get_or_create(&TallyStats::label(Direction::Request))
            .get()
    }

    #[test]
    fn retransmissions_count_once_across_wraparound() {
        let stats = TallyStats::default();
        let mut tally = StreamTally::new(stats.clone());
        let isn = u32::MAX - 3;
        tally.frame(&frame(isn, tcp_flags::SYN, b""));
        tally.frame(&frame(isn.wrapping_add(1), tcp_flags::ACK, b"hello"));
        tally.frame(&frame(isn.wrapping_add(1), tcp_flags::ACK, b"hello"));
        tally.frame(&frame(isn.wrapping_add(6), tcp_flags::ACK, b"world!"));
        assert_eq!(stream_bytes(&stats), 11);
        let payload = stats
            .payload_bytes
            .get_or_create(&TallyStats::label(Direction::Request))
            .get();
        assert_eq!(payload, 16);
        tally.frame(&frame(isn.wrapping_add(12), tcp_flags::FIN, b""));
        assert_eq!(stats.streams.get(), 0);
    }

    #[test]
    fn table_is_bounded() {
        let stats = TallyStats::default();
        let mut tally = StreamTally::new(stats.clone());
        for port in 0..(MAX_STREAMS as u32 + 10) {
            let mut f = frame(1, tcp_flags::ACK, b"x");
            f.segment.src.set_port((port % 65_536) as u16);
            f.segment.dst.set_port(80 + (port / 65_536) as u16);
            tally.frame(&f);
        }
        assert_eq!(tally.streams.len(), MAX_STREAMS);
        assert_eq!(stats.streams_evicted.get(), 10);
    }
}
