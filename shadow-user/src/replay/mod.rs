//! Replay: copies of matched requests go to their shadow services, byte-exact but for the
//! shadow Mapping's edits, in per-connection order, with the replies read and discarded.
//! Production never waits: the capture thread only ever `try_send`s into bounded queues.

pub mod copy;
mod engine;
pub mod file;
pub mod job;
pub mod offer;
pub mod stats;
pub mod summary;
pub mod upstream;

use std::time::Duration;

pub use engine::{ReplaySender, start};
pub use stats::ReplayStats;
use upstream::UpstreamConfig;

/// Bounds of the replay path.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Copies waiting for a worker (all connections together).
    pub queue_capacity: usize,
    /// Bytes of copies waiting (all queues together).
    pub max_queued_bytes: usize,
    /// Copies waiting per captured client connection.
    pub per_flow_queue: usize,
    /// Captured client connections with a worker at once.
    pub max_flows: usize,
    /// A connection's worker ends after this long without a copy.
    pub flow_idle: Duration,
    pub upstream: UpstreamConfig,
}

impl ReplaySettings {
    pub fn new(upstream: UpstreamConfig) -> Self {
        ReplaySettings {
            queue_capacity: 8192,
            max_queued_bytes: 256 << 20,
            per_flow_queue: 256,
            max_flows: 4096,
            flow_idle: Duration::from_secs(5),
            upstream,
        }
    }
}
