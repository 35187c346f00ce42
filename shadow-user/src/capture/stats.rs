//! Counters of the userspace capture path: what the ring delivered and what it turned away.

use prometheus_client::{metrics::counter::Counter, registry::Registry};

/// Counters kept by the capture thread.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Ring blocks walked.
    pub blocks: Counter,
    /// Frames read from the ring.
    pub frames: Counter,
    /// Bytes of those frames as they were on the wire.
    pub bytes: Counter,
    /// Frames the kernel had to cut to fit a block: never handed on.
    pub truncated: Counter,
    /// Frames that were not a parseable TCP segment.
    pub unparsed: Counter,
    /// TCP frames on no capture port (a port removed while clones were in flight).
    pub not_captured: Counter,
    /// Blocks whose frame offsets pointed outside the block.
    pub malformed_blocks: Counter,
    /// Frames the kernel dropped because the ring was full (`PACKET_STATISTICS`).
    pub ring_drops: Counter,
    /// Times the kernel found the ring full and froze the queue.
    pub ring_freezes: Counter,
    /// Errors reported on the capture socket (mirror down or deleted).
    pub socket_errors: Counter,
}

impl RingStats {
    /// Registers every counter under `shadowd_ring_*`.
    pub fn register(&self, registry: &mut Registry) {
        let ring = registry.sub_registry_with_prefix("ring");
        let counters = [
            ("blocks", "Capture ring blocks walked", &self.blocks),
            ("frames", "Frames read from the capture ring", &self.frames),
            (
                "bytes",
                "Bytes of frames read from the capture ring",
                &self.bytes,
            ),
            (
                "truncated_frames",
                "Frames cut short by the kernel, not used",
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
                "Ring blocks with out-of-range frame offsets",
                &self.malformed_blocks,
            ),
            (
                "dropped_frames",
                "Frames dropped by the kernel: ring full",
                &self.ring_drops,
            ),
            (
                "freezes",
                "Times the kernel found the ring full",
                &self.ring_freezes,
            ),
            (
                "socket_errors",
                "Errors reported on the capture socket",
                &self.socket_errors,
            ),
        ];
        for (name, help, counter) in counters {
            ring.register(name, help, counter.clone());
        }
    }
}
