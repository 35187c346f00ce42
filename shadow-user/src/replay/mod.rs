//! Replay: copies of matched requests go to their shadow services, byte-exact but for the
//! shadow Mapping's edits, in per-connection order, with the replies read and discarded.
//! Production never waits: the capture thread hands copies over without blocking, and a
//! copy that finds the replay byte budget full is dropped and counted.

pub mod body;
pub mod copy;
mod engine;
pub mod file;
pub mod job;
pub mod offer;
pub mod stats;
pub mod summary;
pub mod upstream;

pub use engine::{ReplaySender, start};
pub use stats::ReplayStats;
use upstream::UpstreamConfig;

/// Bounds of the replay path.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Bytes every copy waiting or being sent holds together, each with a fixed overhead
    /// ([`job::COPY_OVERHEAD`]): the only bound on how many copies and client connections
    /// replay keeps at once.
    pub max_bytes: usize,
    pub upstream: UpstreamConfig,
}

impl ReplaySettings {
    /// Default of [`ReplaySettings::max_bytes`].
    pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

    pub fn new(upstream: UpstreamConfig) -> Self {
        ReplaySettings {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            upstream,
        }
    }
}
