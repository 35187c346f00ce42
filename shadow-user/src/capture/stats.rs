//! Counters of the userspace capture path, shared by both readers (the mirror's AF_PACKET
//! ring and the BPF ring buffer): what they delivered and what they turned away.

use prometheus_client::{metrics::counter::Counter, registry::Registry};

use crate::metrics::Registered;

/// Counters kept by the capture thread.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Ring blocks walked (mirror), or ring buffer drains that found records.
    pub blocks: Counter,
    /// Frames read from the ring.
    pub frames: Counter,
    /// Bytes of those frames as they were on the wire.
    pub bytes: Counter,
    /// Frames cut short (by the kernel to fit a block, or by the program at its copy
    /// limit): never handed on.
    pub truncated: Counter,
    /// Frames that were not a parseable TCP segment.
    pub unparsed: Counter,
    /// TCP frames on no capture port (a port removed while clones were in flight).
    pub not_captured: Counter,
    /// Blocks whose frame offsets pointed outside the block, or ring buffer records shorter
    /// than their header says.
    pub malformed_blocks: Counter,
    /// Frames lost because the ring was full: dropped by the kernel (mirror,
    /// `PACKET_STATISTICS`), or packets whose ring buffer chunks stopped short.
    pub ring_drops: Counter,
    /// Times the kernel found the ring full and froze the queue.
    pub ring_freezes: Counter,
    /// Errors reported on the capture socket (mirror down or deleted).
    pub socket_errors: Counter,
}

impl ReaderStats {}

impl Registered for ReaderStats {
    /// Registers every counter under `shadowd_ring_*`.
    fn register_in(&self, registry: &mut Registry) {
        let ring = registry.sub_registry_with_prefix("ring");
        let counters = [
            (
                "blocks",
                "Capture ring blocks walked, or ring buffer drains that found records",
                &self.blocks,
            ),
            ("frames", "Frames read from the capture ring", &self.frames),
            (
                "bytes",
                "Bytes of frames read from the capture ring",
                &self.bytes,
            ),
            (
                "truncated_frames",
                "Frames cut short, not used",
                &self.truncated,
            ),
            (
                "unparsed_frames",
                "Frames that were not a TCP segment",
                &self.unparsed,
            ),
            (
                "not_captured_frames",
                "TCP frames on no capture port",
                &self.not_captured,
            ),
            (
                "malformed_blocks",
                "Ring blocks with out-of-range frame offsets, or short ring buffer records",
                &self.malformed_blocks,
            ),
            (
                "dropped_frames",
                "Frames lost because the ring or ring buffer was full",
                &self.ring_drops,
            ),
            (
                "freezes",
                "Times the kernel found the mirror's ring full",
                &self.ring_freezes,
            ),
            (
                "socket_errors",
                "Errors reported on the mirror's capture socket",
                &self.socket_errors,
            ),
        ];
        for (name, help, counter) in counters {
            ring.register(name, help, counter.clone());
        }
    }
}
