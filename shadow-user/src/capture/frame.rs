//! What the packet reader hands onward: one cloned frame at a time, borrowed from the ring,
//! with its capture time and direction, and the trait its consumer implements.

use std::time::SystemTime;

use super::{scope::CaptureScope, stats::ReaderStats};
use crate::packet::{Direction, Segment, parse_ethernet};

/// One cloned TCP segment, valid only during the call that receives it: its bytes live in
/// the capture ring, which is handed back to the kernel right after.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Kernel receive timestamp of the clone.
    pub timestamp: SystemTime,
    pub direction: Direction,
    pub segment: Segment<'a>,
}

/// The consumer of captured frames. Called on the capture thread: an implementation must not
/// block (the kernel ring fills and drops while it waits), and must copy whatever it keeps.
pub trait FrameSink: Send {
    /// One segment of a captured connection.
    fn frame(&mut self, frame: &Frame<'_>);

    /// Called when the reader found nothing new for a while, so time-based work (idle flow
    /// expiry) can run without traffic.
    fn idle(&mut self, _now: SystemTime) {}
}

/// Counts one copied frame and hands it to `sink` as a segment of a captured connection, or
/// counts why not: cut short, not a TCP segment, or of no captured server (a copy made
/// before the scope changed, or a stray frame). `wire_len` is the frame's length on the wire.
/// Shared by both readers.
pub(super) fn hand_on(
    data: &[u8],
    wire_len: u32,
    timestamp: impl FnOnce() -> SystemTime,
    scope: &CaptureScope,
    sink: &mut dyn FrameSink,
    stats: &ReaderStats,
) {
    stats.frames.inc();
    stats.bytes.inc_by(u64::from(wire_len));
    if data.len() < wire_len as usize {
        stats.truncated.inc();
        return;
    }
    let Ok(segment) = parse_ethernet(data) else {
        stats.unparsed.inc();
        return;
    };
    let direction = if scope.is_server(segment.dst) {
        Direction::Request
    } else if scope.is_server(segment.src) {
        Direction::Response
    } else {
        stats.not_captured.inc();
        return;
    };
    sink.frame(&Frame {
        timestamp: timestamp(),
        direction,
        segment,
    });
}
