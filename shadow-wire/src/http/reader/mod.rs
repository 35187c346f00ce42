//! One direction's byte machine: finds where messages start, delimits heads incrementally
//! and reads bodies, buffering only the message in progress.
//!
//! The buffer only ever holds the current message (or, while resynchronising, the current
//! line): each state takes from the input exactly the bytes it needs, so a completed
//! message is `split_to(len).freeze()` of the buffer and every byte is copied once. No byte
//! is ever read twice: a rejected head is passed over whole, so parsing stays linear in the
//! input whatever it holds.
//!
//! The two sides lose their place differently. A request stream only ever starts a message
//! where it is told to ([`Reader::gap`], [`Reader::resume`]): a copy must begin where
//! production's parser began one, so it never searches bytes for something that looks like
//! a request line. A response stream (measured, never copied) searches line by line for the
//! next status line.

use std::{collections::VecDeque, time::SystemTime};

use bytes::{Bytes, BytesMut};

use super::{DropReason, Limits, SharedBudget, StreamCounters, body::Body, resync};
use crate::packet::Direction;

mod body;
mod buffer;
mod start;

/// Most acknowledged offsets ahead of the reader remembered (see [`Reader::remember_ack`]).
const MAX_ACKS_AHEAD: usize = 64;

/// A complete message.
#[derive(Debug)]
pub(crate) struct Message {
    /// The whole message, when its body was kept; the body's last piece, when it was
    /// streamed.
    pub raw: Option<Bytes>,
    /// The head and body began as [`Step::StreamStart`] and went on as pieces.
    pub streamed: bool,
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
    /// A streamed body passed its buffered part: the head and the body so far. The rest
    /// follows as [`Step::StreamPiece`]s, and its last piece in [`Step::Complete`].
    StreamStart {
        start: Bytes,
        head_len: usize,
    },
    /// The next bytes of a streamed body.
    StreamPiece(Bytes),
    Dropped(DropReason),
    /// The body of the request in progress is dropped and passed over: the place in the
    /// stream is kept.
    BodyDropped(DropReason),
    /// The reader lost its place with no message to report (one already reported as
    /// dropped turned out malformed further on).
    LostPlace,
    /// The client opened with the HTTP/2 preface; the reader stopped.
    Http2,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Responses: searching for a message start, one line at a time.
    Resync,
    /// Requests: where the next message starts is unknown; input is passed over until the
    /// reader is told ([`Reader::resume`]).
    Lost,
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

/// What a body's bytes become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Buffered with the head, up to `limit` bytes: a longer body is dropped as
    /// `BodyTooLarge`.
    Keep { limit: u64 },
    /// Buffered with the head up to `after` bytes; a longer body then comes out in pieces
    /// (`started`), and is dropped as `BodyTooLarge` past `limit` bytes, if any.
    Stream {
        after: u64,
        limit: Option<u64>,
        started: bool,
    },
    /// Passed over unbuffered (responses, dropped bodies).
    Pass,
}

#[derive(Debug, Clone, Copy)]
struct BodyRead {
    head_len: usize,
    body: Body,
    /// Body bytes read so far.
    read: u64,
    mode: BodyMode,
    /// Already reported as dropped: its end produces nothing.
    dropped: bool,
}

impl BodyRead {
    /// The part of `input` this body may take in its mode: up to its limit when kept, up
    /// to where it starts streaming (or a policy limit below that) before it streams, up to
    /// the policy limit, if any, once it streams.
    fn within<'i>(&self, input: &'i [u8]) -> &'i [u8] {
        let limit = match self.mode {
            BodyMode::Keep { limit } => limit,
            BodyMode::Stream {
                after,
                limit,
                started: false,
            } => after.min(limit.unwrap_or(u64::MAX)),
            BodyMode::Stream { limit, .. } => limit.unwrap_or(u64::MAX),
            BodyMode::Pass => 0,
        };
        let room = limit.saturating_sub(self.read);
        &input[..input.len().min(usize::try_from(room).unwrap_or(usize::MAX))]
    }
}

pub(crate) struct Reader {
    side: Direction,
    limits: Limits,
    buf: BytesMut,
    state: State,
    /// Stream offset of the next input byte.
    position: u64,
    /// Requests: offsets production acknowledged that the reader has not reached yet,
    /// ascending.
    acks_ahead: VecDeque<u64>,
    /// The last byte read, if the reader has read the byte before `position`.
    last_byte: Option<u8>,
    /// Requests: the message about to start begins at a candidate start; the byte before
    /// it, if known.
    candidate: Option<Option<u8>>,
    /// Capture time of the push that delivered the oldest buffered byte.
    buf_ts: SystemTime,
    /// Buffer offset from which bytes came with the latest push (at `last_ts`).
    fresh_from: usize,
    last_ts: SystemTime,
    /// Capture time of the first byte of the message in progress.
    message_ts: SystemTime,
    /// Stream offset of that byte.
    message_start: u64,
    /// Nothing has been read yet: a start that needs skipping is a mid-stream pickup.
    pristine: bool,
    /// Requests: CR or LF bytes that may still come before the next request line.
    blank_allowance: u8,
    /// Requests: CR or LF bytes skipped since the last message ended.
    trailing_blanks: u8,
    /// The line being searched may begin inside a message: a partial line is then no
    /// message in progress.
    suspect: bool,
    counters: StreamCounters,
    /// What the buffer takes from; `charged` is taken, at least the buffer's length.
    parse: SharedBudget,
    charged: usize,
    /// Responses: collects the body being passed over, when it is kept for diffing.
    pub keeper: Option<super::BodyKeeper>,
}

impl Reader {
    pub fn new(side: Direction, limits: Limits, parse: SharedBudget) -> Reader {
        Reader {
            side,
            limits,
            buf: BytesMut::new(),
            state: match side {
                Direction::Request => State::Head {
                    line_checked: false,
                },
                Direction::Response => State::Resync,
            },
            position: 0,
            acks_ahead: VecDeque::new(),
            last_byte: None,
            candidate: None,
            buf_ts: SystemTime::UNIX_EPOCH,
            fresh_from: 0,
            last_ts: SystemTime::UNIX_EPOCH,
            message_ts: SystemTime::UNIX_EPOCH,
            message_start: 0,
            pristine: true,
            blank_allowance: 0,
            trailing_blanks: 0,
            suspect: false,
            counters: StreamCounters::default(),
            parse,
            charged: 0,
            keeper: None,
        }
    }

    pub fn counters(&self) -> StreamCounters {
        self.counters
    }

    /// True between messages: nothing of a message is buffered.
    pub fn is_idle(&self) -> bool {
        match self.state {
            State::Resync | State::Lost | State::Head { .. } => !self.in_progress(),
            State::HeadReady { .. } | State::Body(_) | State::Stopped => false,
        }
    }

    /// True while passing over input until told where a message starts.
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Stream offset of the next input byte: after a complete message, where it ended.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes held in the buffer.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
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
        loop {
            // `position` stays exact between states: passing over stops at an offset.
            let start = *input;
            let step = self.step(input, ts);
            let used = start.len() - input.len();
            if used > 0 {
                self.position += used as u64;
                self.last_byte = Some(start[used - 1]);
            }
            if let Some(step) = step {
                self.release();
                return step;
            }
        }
    }

    /// One state's work on `input`; None to go on with the next state.
    fn step(&mut self, input: &mut &[u8], ts: SystemTime) -> Option<Step> {
        match self.state {
            State::Resync => self.resync(input, ts),
            State::Lost => self.pass_over(input, ts),
            State::Head { line_checked } => self.read_head(line_checked, input, ts),
            State::HeadReady { .. } => {
                self.reject();
                Some(Step::Dropped(malformed("head left unanswered")))
            }
            State::Body(read) => match read.mode {
                BodyMode::Keep { .. } | BodyMode::Stream { started: false, .. } => {
                    self.keep_body(read, input, ts)
                }
                BodyMode::Stream { .. } => self.stream_body(read, input, ts),
                BodyMode::Pass => self.pass_body(read, input, ts),
            },
            State::Stopped => {
                *input = &[];
                Some(Step::Idle)
            }
        }
    }

    /// What follows resumes at stream offset `resume_at`, not known to continue what came
    /// before: drops the message in progress (returns `Gap` if there was one). A request
    /// reader then takes the next byte as the start of a message, a response reader searches
    /// for one.
    pub fn gap(&mut self, resume_at: u64) -> Option<DropReason> {
        if matches!(self.state, State::Stopped) {
            return None;
        }
        let in_progress = self.in_progress();
        // The resync is counted once, below, even for a stream that was just picked up.
        self.pristine = false;
        self.skip(self.buf.len());
        self.position = resume_at;
        self.last_byte = None;
        self.lose_place();
        in_progress.then_some(DropReason::Gap)
    }

    /// Requests: bytes before `resume_at` were lost inside the `Content-Length` body being
    /// read, which ends at or after it: the body is passed over to its known end, so the
    /// next request starts where it would have. Returns false, changing nothing, anywhere
    /// else (the next message's start is then unknown).
    pub fn skip_body_to(&mut self, resume_at: u64) -> bool {
        let State::Body(mut read) = self.state else {
            return false;
        };
        let Body::Length { remaining } = read.body else {
            return false;
        };
        let end = self.position + remaining;
        if resume_at < self.position || resume_at > end {
            return false;
        }
        if read.buffers() {
            self.counters.body_bytes_skipped += read.read;
            self.buf.clear();
            self.compact();
        }
        read.body = Body::Length {
            remaining: end - resume_at,
        };
        read.read += resume_at - self.position;
        read.mode = BodyMode::Pass;
        read.dropped = true;
        self.state = State::Body(read);
        self.position = resume_at;
        self.last_byte = None;
        true
    }

    /// Nothing has been read, nor lost: the reader is at the stream's very start.
    pub fn at_start(&self) -> bool {
        self.pristine && self.position == 0 && self.buf.is_empty()
    }

    /// Requests: CR or LF bytes skipped since the last message ended (a stray CRLF after a
    /// POST), which production's acknowledgement of that message may include.
    pub fn trailing_blanks(&self) -> u64 {
        u64::from(self.trailing_blanks)
    }

    /// Stream offset of the first byte of the message in progress.
    pub fn message_start(&self) -> u64 {
        self.message_start
    }

    /// Requests: `bytes` held outside the reader (after a request that may switch
    /// protocols) were given up: they count as passed over, and the reader's position moves
    /// past them.
    pub fn pass_over_held(&mut self, bytes: usize) {
        self.counters.bytes_skipped += bytes as u64;
        self.position += bytes as u64;
        if bytes > 0 {
            self.last_byte = None;
        }
    }

    /// Requests: the next input byte is a candidate start: a message begins there if a
    /// request line does (see [`resync::may_start_at_candidate`]).
    pub fn resume(&mut self) {
        if matches!(self.state, State::Lost) {
            self.candidate = Some(self.last_byte);
            self.state = State::Head {
                line_checked: false,
            };
        }
    }

    /// Requests: production acknowledged every byte before `offset`, which the reader has not
    /// reached yet (the capture holds bytes back while it waits for a lost segment, and
    /// production's answers keep coming meanwhile). Lost, the reader resumes there; parsing,
    /// [`Reader::reached_ack`] tells when a message ends there. Returns false (and forgets
    /// it) when `offset` is not ahead.
    pub fn remember_ack(&mut self, offset: u64) -> bool {
        if offset <= self.position {
            return false;
        }
        while self
            .acks_ahead
            .front()
            .is_some_and(|&front| front <= self.position)
        {
            self.acks_ahead.pop_front();
        }
        if let Err(at) = self.acks_ahead.binary_search(&offset)
            && self.acks_ahead.len() < MAX_ACKS_AHEAD
        {
            self.acks_ahead.insert(at, offset);
        }
        true
    }

    /// True when production acknowledged exactly the bytes up to where the reader stands;
    /// forgets every remembered offset up to there.
    pub fn reached_ack(&mut self) -> bool {
        let mut reached = false;
        while let Some(&front) = self.acks_ahead.front()
            && front <= self.position
        {
            reached |= front == self.position;
            self.acks_ahead.pop_front();
        }
        reached
    }

    /// Lost: passes over input up to the next offset production acknowledged, where a
    /// message may start, or all of it.
    fn pass_over(&mut self, input: &mut &[u8], ts: SystemTime) -> Option<Step> {
        while let Some(&front) = self.acks_ahead.front()
            && front < self.position
        {
            self.acks_ahead.pop_front();
        }
        let skip = match self.acks_ahead.front() {
            Some(&at) => ((at - self.position) as usize).min(input.len()),
            None => input.len(),
        };
        if skip > 0 {
            // `next` sets it too, but only after `resume` below has taken it.
            self.last_byte = Some(input[skip - 1]);
        }
        self.skip_input(input, skip, ts);
        if self.acks_ahead.front() == Some(&(self.position + skip as u64)) {
            self.acks_ahead.pop_front();
            self.resume();
            return None;
        }
        Some(Step::Idle)
    }

    /// Requests: passes over everything from here (and drops what is buffered) until
    /// [`Reader::resume`].
    pub fn lose(&mut self) {
        if !matches!(self.state, State::Stopped | State::Lost) {
            self.pristine = false;
            self.skip(self.buf.len());
            self.lose_place();
        }
    }

    /// The stream ended: completes a body delimited by close, or drops the message in
    /// progress as `Truncated`. The reader stops.
    pub fn end(&mut self) -> Option<Result<Message, DropReason>> {
        let outcome = match self.state {
            State::Body(read) if !read.dropped && matches!(read.body, Body::UntilClose) => {
                let raw = read.buffers().then(|| self.buf.split().freeze());
                Some(Ok(self.message(read, raw)))
            }
            _ if self.in_progress() => Some(Err(DropReason::Truncated)),
            _ => None,
        };
        if outcome.is_none() {
            self.counters.bytes_skipped += self.buf.len() as u64;
        }
        self.stop();
        outcome
    }

    /// Stops reading for good; later input is ignored.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.buf = BytesMut::new();
        self.release();
    }

    /// A message has begun and not been reported. While searching, that is a line begun
    /// at a line start (or at the stream's start) that can still become a status line.
    fn in_progress(&self) -> bool {
        match self.state {
            State::Resync => {
                !self.suspect && !self.buf.is_empty() && resync::viable_status_line(&self.buf)
            }
            State::Head { .. } => !self.buf.is_empty(),
            State::HeadReady { .. } => true,
            State::Body(read) => !read.dropped,
            State::Lost | State::Stopped => false,
        }
    }
}

impl BodyRead {
    /// The body's bytes go into the buffer (so far).
    fn buffers(&self) -> bool {
        matches!(
            self.mode,
            BodyMode::Keep { .. } | BodyMode::Stream { started: false, .. }
        )
    }
}

fn malformed(what: &'static str) -> DropReason {
    DropReason::Malformed { what }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.parse.give_back(self.charged);
    }
}
