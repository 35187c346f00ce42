//! TCP stream reassembly, independent of where segments come from (live ring or pcap): a
//! bounded flow table holding both directions of each connection, turning cloned segments
//! into in-order bytes for a per-flow [`StreamHandler`] (the HTTP parser), and telling it
//! where bytes were lost so it never builds a message across a gap.

mod acceptance;
mod stats;
mod stream;
mod table;

#[cfg(test)]
mod tests;

use std::{net::SocketAddr, time::SystemTime};

pub use acceptance::RejectReason;
pub use stats::{GapReason, ReassemblyStats};
pub use table::{FlowTable, Limits};

use crate::packet::Direction;

/// A connection, named by its client and server ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The end that opened the connection.
    pub client: SocketAddr,
    /// The end that accepted it (production).
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

/// What is known about a break in a stream (see [`StreamHandler::gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapKind {
    /// The stream's first bytes, of a connection picked up after its start or not seen
    /// established: production's parser stands wherever the stream began.
    Pickup,
    /// Bytes the capture lost: the receiver acknowledged past them, so it read on.
    CaptureLoss,
    /// Bytes the receiver may never have had either: a hole given up at a buffer limit, a
    /// close or an expiry before the receiver acknowledged past it. The sender may have left
    /// it on purpose.
    Unacknowledged,
    /// The stream of a connection forgotten mid-message goes on: its first bytes are the
    /// middle of that message.
    Resumed,
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
    /// continue what came before; `kind` says what is known about the break.
    fn gap(
        &mut self,
        direction: Direction,
        resume_at: u64,
        kind: GapKind,
        out: &mut Vec<Self::Event>,
    );
    /// The receiving side's TCP stack acknowledged every byte of `direction` before stream
    /// offset `offset`: the ACK of a segment travelling the other way whose payload is
    /// `carrier` of its own stream. Production had received exactly that much when it sent
    /// the segment.
    fn acked(
        &mut self,
        direction: Direction,
        offset: u64,
        carrier: std::ops::Range<u64>,
        out: &mut Vec<Self::Event>,
    );
    /// True while a message of the client's stream is under way (read in part): a
    /// connection forgotten then must not have its next bytes taken for a new message.
    fn mid_message(&self) -> bool;
    /// `direction` ended: FIN reached, RST, or the flow expired or was evicted.
    fn end(&mut self, direction: Direction, out: &mut Vec<Self::Event>);
    /// True when nothing more of this flow is of interest (e.g. it upgraded to another
    /// protocol): its segments are then only counted.
    fn is_finished(&self) -> bool {
        false
    }
}
