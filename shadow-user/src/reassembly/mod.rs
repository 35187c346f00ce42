//! TCP stream reassembly, independent of where segments come from (live ring or pcap): a
//! bounded flow table holding both directions of each connection, turning cloned segments
//! into in-order bytes for a per-flow [`StreamHandler`] (the HTTP parser), and telling it
//! where bytes were lost so it never builds a message across a gap.

mod acceptance;
mod stats;
mod stream;
mod table;

#[cfg(test)]
pub(crate) mod tests;

use std::{net::SocketAddr, time::SystemTime};

pub use acceptance::RejectReason;
pub use stats::{GapReason, ReassemblyStats};
pub use table::{FlowTable, Limits};

use crate::capture::Direction;

/// A connection, named by its client and server ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

impl FlowKey {
    /// The key of a segment travelling `direction` from `src` to `dst`.
    pub fn of(direction: Direction, src: SocketAddr, dst: SocketAddr) -> FlowKey {
        match direction {
            Direction::Request => FlowKey {
                client: src,
                server: dst,
            },
            Direction::Response => FlowKey {
                client: dst,
                server: src,
            },
        }
    }
}

/// Consumer of one flow's reassembled streams (one value per flow).
pub trait StreamHandler {
    /// What the handler produces (requests, responses, drop notices).
    type Event;

    /// In-order bytes of `direction`, captured at `ts`.
    fn data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: SystemTime,
        out: &mut Vec<Self::Event>,
    );
    /// What follows in `direction` resumes at stream offset `resume_at` and is not known to
    /// continue what came before: bytes before it were lost for good, or (at a stream's start)
    /// the stream was picked up mid-way or its connection was not seen established, so
    /// nothing says where the receiver's parser stands.
    fn gap(&mut self, direction: Direction, resume_at: u64, out: &mut Vec<Self::Event>);
    /// The receiving side's TCP stack acknowledged every byte of `direction` before stream
    /// offset `offset` (the ACK of a segment travelling the other way): production had
    /// received exactly that much when it sent the segment.
    fn acked(&mut self, direction: Direction, offset: u64, out: &mut Vec<Self::Event>) {
        let _ = (direction, offset, out);
    }
    /// Like [`StreamHandler::gap`] at a stream's start, but what follows is known to
    /// continue a message already under way (its connection was forgotten mid-message):
    /// no byte of it may be taken for a message start until the other side shows one.
    fn lost(&mut self, direction: Direction, out: &mut Vec<Self::Event>) {
        self.gap(direction, 0, out);
    }
    /// True while a message of the client's stream is under way (read in part).
    fn mid_message(&self) -> bool {
        false
    }
    /// `direction` ended: FIN reached, RST, or the flow expired or was evicted.
    fn end(&mut self, direction: Direction, ts: SystemTime, out: &mut Vec<Self::Event>);
    /// True when nothing more of this flow is of interest (e.g. it upgraded to another
    /// protocol): its segments are then only counted.
    fn is_finished(&self) -> bool {
        false
    }
}
