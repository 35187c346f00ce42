//! Bodies: kept in the buffer up to the limit (requests), or passed over unbuffered
//! (responses, and bodies dropped as too large).

use std::time::SystemTime;

use bytes::Bytes;

use super::{BodyRead, Message, Reader, State, Step, malformed};
use crate::{
    capture::Direction,
    http::{
        DropReason,
        body::{Body, Framing},
    },
};

impl Reader {
    /// Starts the body of the ready head; `keep` buffers it as part of the message. Returns
    /// `BodyTooLarge` when a kept body is known to be over the limit: it is then passed over.
    pub fn start_body(&mut self, framing: Framing, keep: bool) -> Option<DropReason> {
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
            keep,
            dropped: false,
        };
        let mut dropped = None;
        match framing {
            Framing::Length(n) if keep && n > self.limits.max_body_bytes as u64 => {
                read.keep = false;
                read.dropped = true;
                dropped = Some(DropReason::BodyTooLarge);
            }
            // One allocation for the whole message: body bytes are copied once.
            Framing::Length(n) if keep => self.buf.reserve(n as usize),
            _ => {}
        }
        if !read.keep {
            self.advance(head_len);
        }
        self.state = State::Body(read);
        dropped
    }

    /// Reads a body into the buffer, up to the body limit.
    pub(super) fn keep_body(
        &mut self,
        mut read: BodyRead,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let room = self
            .limits
            .max_body_bytes
            .saturating_sub(read.read as usize);
        let slice = &input[..input.len().min(room)];
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
        // The body goes on past the limit: drop it and pass over the rest.
        self.counters.body_bytes_skipped += read.read;
        self.buf.clear();
        self.compact();
        read.keep = false;
        read.dropped = true;
        self.state = State::Body(read);
        Some(Step::Dropped(DropReason::BodyTooLarge))
    }

    /// Reads a body without buffering it.
    pub(super) fn pass_body(
        &mut self,
        mut read: BodyRead,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let fed = match read.body.feed(input) {
            Ok(fed) => fed,
            Err(bad) => {
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
