//! Bodies: kept in the buffer up to the limit (requests), kept up to a point and then given
//! out in pieces (requests whose copy is sent while they are captured), or passed over
//! unbuffered (responses, and bodies dropped as too large).

use std::time::SystemTime;

use bytes::Bytes;

use super::{BodyMode, BodyRead, Message, Reader, State, Step, malformed};
use crate::{
    http::{
        DropReason,
        body::{Body, Framing},
    },
    packet::Direction,
};

impl Reader {
    /// Starts the body of the ready head, its bytes becoming what `mode` says. Returns
    /// `BodyTooLarge` when a body is known to be over its limit: it is then passed over.
    pub fn start_body(&mut self, framing: Framing, mode: BodyMode) -> Option<DropReason> {
        let State::HeadReady { head_len } = self.state else {
            return None;
        };
        let mut read = BodyRead {
            head_len,
            body: match self.side {
                Direction::Request => Body::strict(framing),
                Direction::Response => Body::new(framing),
            },
            read: 0,
            mode,
            dropped: false,
        };
        let limit = match mode {
            BodyMode::Keep { limit } => Some(limit),
            BodyMode::Stream { limit, .. } => limit,
            BodyMode::Pass => None,
        };
        let mut dropped = None;
        match framing {
            Framing::Length(n) if limit.is_some_and(|limit| n > limit) => {
                read.mode = BodyMode::Pass;
                read.dropped = true;
                dropped = Some(DropReason::BodyTooLarge);
            }
            // One allocation for the buffered part, so body bytes are copied once, when the
            // parse budget has room for it (else the buffer grows as bytes come).
            Framing::Length(n) => {
                let want = match mode {
                    BodyMode::Keep { .. } => n as usize,
                    BodyMode::Stream { after, .. } => n.min(after) as usize,
                    BodyMode::Pass => 0,
                };
                if want > 0 && self.room(want) {
                    self.buf.reserve(want);
                }
            }
            _ => {}
        }
        if !read.buffers() {
            self.advance(head_len);
        }
        self.state = State::Body(read);
        dropped
    }

    /// Reads a body into the buffer: up to its limit, or up to where it starts streaming.
    pub(super) fn keep_body(
        &mut self,
        mut read: BodyRead,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let slice = read.within(input);
        // Room for what the body takes of the input, not for requests pipelined after it.
        let mut probe = read.body;
        let wanted = probe.feed(slice).map_or(slice.len(), |fed| fed.used);
        if wanted > 0 && !self.room(wanted) {
            // Every connection together buffers as much as the budget allows: this body
            // is passed over, framing followed, so the requests after it still count.
            self.buf.clear();
            self.compact();
            return Some(self.drop_body(read, DropReason::ParseBudgetFull));
        }
        let fed = match read.body.feed(slice) {
            Ok(fed) => fed,
            Err(bad) => {
                self.skip(self.buf.len());
                self.skip_input(input, bad.at, ts);
                self.lose_place();
                return Some(Step::Dropped(malformed("chunked framing")));
            }
        };
        read.read += fed.used as u64;
        self.append(&input[..fed.used], ts);
        *input = &input[fed.used..];
        if fed.done {
            let len = read.head_len + read.read as usize;
            let raw = self.buf.split_to(len.min(self.buf.len())).freeze();
            let message = self.message(read, Some(raw));
            self.begin_next();
            return Some(Step::Complete(message));
        }
        if input.is_empty() {
            self.state = State::Body(read);
            return Some(Step::Idle);
        }
        if let BodyMode::Stream { after, limit, .. } = read.mode
            && limit.is_none_or(|limit| read.read < limit)
        {
            // Past the buffered part: what is buffered goes out, the rest in pieces.
            read.mode = BodyMode::Stream {
                after,
                limit,
                started: true,
            };
            self.state = State::Body(read);
            let start = self.buf.split().freeze();
            self.compact();
            let head_len = read.head_len;
            return Some(Step::StreamStart { start, head_len });
        }
        // The body goes on past the limit: drop it and pass over the rest.
        self.buf.clear();
        self.compact();
        Some(self.drop_body(read, DropReason::BodyTooLarge))
    }

    /// A body that cannot be kept: what was read of it is dropped (and, streamed,
    /// abandoned), the rest passed over.
    fn drop_body(&mut self, mut read: BodyRead, reason: DropReason) -> Step {
        self.counters.body_bytes_skipped += read.read;
        read.mode = BodyMode::Pass;
        read.dropped = true;
        self.state = State::Body(read);
        Step::BodyDropped(reason)
    }

    /// Gives out the next piece of a streamed body, unbuffered.
    pub(super) fn stream_body(
        &mut self,
        mut read: BodyRead,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let slice = read.within(input);
        let fed = match read.body.feed(slice) {
            Ok(fed) => fed,
            Err(bad) => {
                self.skip_input(input, bad.at, ts);
                self.lose_place();
                return Some(Step::Dropped(malformed("chunked framing")));
            }
        };
        read.read += fed.used as u64;
        if fed.used > 0 {
            self.touch(ts);
        }
        let piece = Bytes::copy_from_slice(&input[..fed.used]);
        *input = &input[fed.used..];
        if fed.done {
            let message = self.message(read, Some(piece));
            self.begin_next();
            return Some(Step::Complete(message));
        }
        if input.is_empty() {
            self.state = State::Body(read);
            return Some(if piece.is_empty() {
                Step::Idle
            } else {
                Step::StreamPiece(piece)
            });
        }
        Some(self.drop_body(read, DropReason::BodyTooLarge))
    }

    /// Reads a body without buffering it.
    pub(super) fn pass_body(
        &mut self,
        mut read: BodyRead,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let fed = match &mut self.keeper {
            Some(keeper) => read
                .body
                .feed_payload(input, |payload| keeper.push(payload)),
            None => read.body.feed(input),
        };
        let fed = match fed {
            Ok(fed) => fed,
            Err(bad) => {
                self.keeper = None;
                self.skip_input(input, bad.at, ts);
                self.lose_place();
                return Some(if read.dropped {
                    Step::LostPlace
                } else {
                    Step::Dropped(malformed("chunked framing"))
                });
            }
        };
        read.read += fed.used as u64;
        if read.dropped {
            self.counters.body_bytes_skipped += fed.used as u64;
        }
        if fed.used > 0 {
            self.touch(ts);
        }
        *input = &input[fed.used..];
        if fed.done {
            self.begin_next();
            return (!read.dropped).then(|| Step::Complete(self.message(read, None)));
        }
        self.state = State::Body(read);
        Some(Step::Idle)
    }

    pub(super) fn message(&self, read: BodyRead, raw: Option<Bytes>) -> Message {
        Message {
            raw,
            streamed: matches!(read.mode, BodyMode::Stream { started: true, .. }),
            head_len: read.head_len,
            body_len: read.read,
            first_byte: self.message_ts,
            last_byte: self.last_ts,
        }
    }

    pub(super) fn begin_next(&mut self) {
        self.state = State::Head {
            line_checked: false,
        };
        self.compact();
    }
}
