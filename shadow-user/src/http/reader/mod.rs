//! One direction's byte machine: finds where messages start, delimits heads incrementally
//! and reads bodies, buffering only the message in progress.
//!
//! The buffer only ever holds the current message (or, while resynchronising, the current
//! line): each state takes from the input exactly the bytes it needs, so a completed
//! message is `split_to(len).freeze()` of the buffer and every byte is copied once. Bytes
//! that must be looked at again after a dropped head are replayed as input.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::{DropReason, Limits, StreamCounters, body::Body, resync};
use crate::capture::Direction;

mod body;
mod buffer;
mod start;

/// An empty buffer with more capacity than this is replaced, so an idle flow does not keep
/// the allocation of its largest message.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A complete message.
#[derive(Debug)]
pub(crate) struct Message {
    /// The whole message, when its body was kept.
    pub raw: Option<Bytes>,
    pub head_len: usize,
    pub body_len: u64,
    pub first_byte: SystemTime,
    pub last_byte: SystemTime,
}

/// What [`Reader::next`] found.
#[derive(Debug)]
pub(crate) enum Step {
    /// All input used.
    Idle,
    /// A complete head starts the buffer ([`Reader::head`]); the caller must answer with
    /// [`Reader::start_body`] or [`Reader::reject`] before calling `next` again.
    Head,
    Complete(Message),
    Dropped(DropReason),
    /// The client opened with the HTTP/2 preface; the reader stopped.
    Http2,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Searching for a message start, one line at a time.
    Resync,
    /// In a head; `line_checked` once its first line was confirmed.
    Head {
        line_checked: bool,
    },
    /// A complete head of `head_len` bytes awaits the caller.
    HeadReady {
        head_len: usize,
    },
    Body(BodyRead),
    Stopped,
}

#[derive(Debug, Clone, Copy)]
struct BodyRead {
    head_len: usize,
    body: Body,
    /// Body bytes read so far.
    read: u64,
    /// Kept in the buffer (requests), or passed over (responses, dropped bodies).
    keep: bool,
    /// Already reported as dropped: its end produces nothing.
    dropped: bool,
}

pub(crate) struct Reader {
    side: Direction,
    limits: Limits,
    buf: BytesMut,
    state: State,
    /// Bytes to read again before the next input (the tail of a dropped head).
    replay: Bytes,
    replay_ts: SystemTime,
    /// Capture time of the push that delivered the oldest buffered byte.
    buf_ts: SystemTime,
    /// Buffer offset from which bytes came with the latest push (at `last_ts`).
    fresh_from: usize,
    last_ts: SystemTime,
    /// Capture time of the first byte of the message in progress.
    message_ts: SystemTime,
    /// Nothing has been read yet: a start that needs skipping is a mid-stream pickup.
    pristine: bool,
    /// The line being searched may begin inside a message (see [`resync::line_start`]).
    suspect: bool,
    counters: StreamCounters,
}

impl Reader {
    pub fn new(side: Direction, limits: Limits) -> Reader {
        Reader {
            side,
            limits,
            buf: BytesMut::new(),
            state: State::Resync,
            replay: Bytes::new(),
            replay_ts: SystemTime::UNIX_EPOCH,
            buf_ts: SystemTime::UNIX_EPOCH,
            fresh_from: 0,
            last_ts: SystemTime::UNIX_EPOCH,
            message_ts: SystemTime::UNIX_EPOCH,
            pristine: true,
            suspect: false,
            counters: StreamCounters::default(),
        }
    }

    pub fn counters(&self) -> StreamCounters {
        self.counters
    }

    /// True between messages: nothing of a message is buffered.
    pub fn is_idle(&self) -> bool {
        self.replay.is_empty()
            && match self.state {
                State::Resync | State::Head { .. } => !self.in_progress(),
                State::HeadReady { .. } | State::Body(_) | State::Stopped => false,
            }
    }

    /// Bytes held: the buffer and what waits to be replayed.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.replay.len()
    }

    /// Capture time of the first byte of the message in progress.
    pub fn message_ts(&self) -> SystemTime {
        self.message_ts
    }

    /// The complete head after [`Step::Head`].
    pub fn head(&self) -> &[u8] {
        match self.state {
            State::HeadReady { head_len } => self.buf.get(..head_len).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Advances through `input` (consuming what it reads) until something happens.
    pub fn next(&mut self, input: &mut &[u8], ts: SystemTime) -> Step {
        while !self.replay.is_empty() {
            let replay = std::mem::take(&mut self.replay);
            let mut rest: &[u8] = &replay;
            let step = self.step(&mut rest, self.replay_ts);
            let used = replay.len() - rest.len();
            let rest = replay.slice(used..);
            // A drop during the replay queued its own replay, which comes first.
            self.replay = if matches!(self.state, State::Stopped) {
                Bytes::new()
            } else if self.replay.is_empty() {
                rest
            } else {
                [self.replay.as_ref(), rest.as_ref()].concat().into()
            };
            if !matches!(step, Step::Idle) {
                return step;
            }
        }
        self.step(input, ts)
    }

    fn step(&mut self, input: &mut &[u8], ts: SystemTime) -> Step {
        loop {
            let step = match self.state {
                State::Resync => self.resync(input, ts),
                State::Head { line_checked } => self.read_head(line_checked, input, ts),
                State::HeadReady { .. } => {
                    self.drop_head();
                    Some(Step::Dropped(malformed("head left unanswered")))
                }
                State::Body(read) if read.keep => self.keep_body(read, input, ts),
                State::Body(read) => self.pass_body(read, input, ts),
                State::Stopped => {
                    *input = &[];
                    Some(Step::Idle)
                }
            };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Bytes were lost: drops the message in progress (returns `Gap` if there was one) and
    /// resynchronises.
    pub fn gap(&mut self) -> Option<DropReason> {
        let in_progress = self.in_progress();
        if matches!(self.state, State::Stopped) {
            return None;
        }
        // The resync is counted once, below, even for a stream that was just picked up.
        self.pristine = false;
        self.skip(self.buf.len());
        self.counters.bytes_skipped += self.replay.len() as u64;
        self.replay = Bytes::new();
        self.enter_resync();
        in_progress.then_some(DropReason::Gap)
    }

    /// The stream ended: completes a body delimited by close, or drops the message in
    /// progress as `Truncated`. The reader stops.
    pub fn end(&mut self) -> Option<Result<Message, DropReason>> {
        let outcome = match self.state {
            State::Body(read) if !read.dropped && matches!(read.body, Body::UntilClose) => {
                let raw = read.keep.then(|| self.buf.split().freeze());
                Some(Ok(self.message(read, raw)))
            }
            _ if self.in_progress() => Some(Err(DropReason::Truncated)),
            _ => None,
        };
        if outcome.is_none() {
            self.counters.bytes_skipped += (self.buf.len() + self.replay.len()) as u64;
        }
        self.stop();
        outcome
    }

    /// Stops reading for good; later input is ignored.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.buf = BytesMut::new();
        self.replay = Bytes::new();
    }

    /// A message has begun and not been reported. While searching, that is a line begun
    /// at a line start (or at the stream's start) that can still become a start line.
    fn in_progress(&self) -> bool {
        match self.state {
            State::Resync => {
                !self.suspect && !self.buf.is_empty() && resync::viable_line(self.side, &self.buf)
            }
            State::Head { .. } => !self.buf.is_empty(),
            State::HeadReady { .. } => true,
            State::Body(read) => !read.dropped,
            State::Stopped => false,
        }
    }
}

fn malformed(what: &'static str) -> DropReason {
    DropReason::Malformed { what }
}
