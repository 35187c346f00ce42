//! Where the request reader stands relative to production's parser (see `sync`): what a
//! loss does to it, and how production's answers show it again.
//!
//! Production's acknowledgements count only when they come with the first segment of a
//! final answer: production had then read a whole request, and its stack had received
//! exactly the bytes acknowledged. Any other segment's ACK only says what arrived (a client
//! controls where its segments end), and bare ACKs are not even captured live.

use super::HttpFlow;
use crate::{
    capture::Direction,
    http::{DropReason, HttpEvent},
};

/// Answer acknowledgements remembered per flow: a response head spans few segments.
const ANSWER_ACKS: usize = 8;

impl HttpFlow {
    /// What follows in `direction` resumes at stream offset `resume_at`, not known to
    /// continue what came before: drops the message in progress (counted). A response
    /// reader searches for the next status line. A request reader knows where it stands
    /// only in two cases: at the very start of a stream picked up mid-way (its first byte is
    /// a candidate start), and inside a `Content-Length` body that the loss ends within (the
    /// next request starts where the body ends). Anywhere else it waits for production's
    /// answer to show where a request starts: bytes after a loss may be a body.
    pub fn gap(&mut self, direction: Direction, resume_at: u64, out: &mut Vec<HttpEvent>) {
        if self.finished {
            return;
        }
        if direction == Direction::Response {
            if let Some(reason) = self.response.gap(resume_at) {
                out.push(HttpEvent::Dropped { direction, reason });
            }
            self.response_lost(out);
            return;
        }
        // Held bytes after a request that may switch protocols: their answer may be what
        // was lost.
        self.discard_hold(out);
        let synced = self.sync.is_synced();
        if synced && self.request.skip_body_to(resume_at) {
            out.push(HttpEvent::Dropped {
                direction,
                reason: DropReason::Gap,
            });
            if let Some((_, sequence)) = self.current_request.take() {
                self.pairing.forget(sequence);
            }
            return;
        }
        let pickup = resume_at == 0 && self.request.at_start();
        if let Some(reason) = self.request.gap(resume_at)
            && synced
        {
            out.push(HttpEvent::Dropped { direction, reason });
        }
        if pickup {
            self.request.resume();
        }
        self.sync.lose(out);
        self.request_lost();
    }

    /// The client's stream continues a request already under way whose start was not read
    /// (its connection was forgotten mid-message): nothing of it is a candidate start until
    /// production's answer shows where the reader stands.
    pub fn lost(&mut self, out: &mut Vec<HttpEvent>) {
        if self.finished {
            return;
        }
        self.discard_hold(out);
        self.request.lose();
        self.sync.lose(out);
        self.request_lost();
    }

    /// True while the reader does not stand between requests: one is under way, or the
    /// reader lost its place.
    pub fn mid_request(&self) -> bool {
        !self.finished && (!self.request.is_idle() || self.request.is_lost())
    }

    /// Production's side acknowledged every byte of `direction` before `offset`, with a
    /// segment whose bytes begin where the response reader stands: kept until a response
    /// head says whether that segment began an answer.
    pub fn acked(&mut self, direction: Direction, offset: u64, _out: &mut Vec<HttpEvent>) {
        if self.finished || direction == Direction::Response {
            return;
        }
        if self.answer_acks.len() == ANSWER_ACKS {
            self.answer_acks.pop_front();
        }
        self.answer_acks
            .push_back((self.response.position(), offset));
    }

    /// A final answer began at response offset `start`. The acknowledgement of the segment
    /// that carried its first byte is where production's parser stood: a candidate start
    /// for a reader that lost its place and stands exactly there, or the confirmation of
    /// held requests if one of them ends there. Ahead of the reader (client bytes held back
    /// behind a lost segment), it is kept for when the reader gets there.
    pub(super) fn answered(&mut self, start: u64, out: &mut Vec<HttpEvent>) {
        // The segment holding the answer's first byte is the last one starting at or before
        // it; it stays for answers pipelined behind this one in the same segment.
        let Some(at) = self
            .answer_acks
            .iter()
            .rposition(|(from, _)| *from <= start)
        else {
            return;
        };
        self.answer_acks.drain(..at);
        let ack = self.answer_acks[0].1;
        if self.request.remember_ack(ack) || self.sync.is_synced() {
            return;
        }
        if self.request.is_lost() {
            if ack == self.request.position() {
                self.request.resume();
            }
        } else {
            self.sync.acked(ack, out);
        }
    }

    /// The request in progress is one production would refuse (malformed, or beyond the
    /// limits): servers answer 400 and close, so nothing after it on the connection is
    /// known to be a request. The reader has lost its place; only production can show
    /// where the next request starts. Counted only where the stream was known to be at a
    /// message start: otherwise it was no message.
    pub(super) fn request_refused(&mut self, reason: DropReason, out: &mut Vec<HttpEvent>) {
        if self.sync.is_synced() {
            out.push(HttpEvent::Dropped {
                direction: Direction::Request,
                reason,
            });
        }
        self.sync.lose(out);
        self.request_lost();
    }

    /// Drops bytes held after a request that may switch protocols when nothing (or an
    /// ambiguous answer) decides what they are: parsed as HTTP/1 they could be a tunnel's
    /// plaintext. The reader then waits for production to show where a request starts.
    pub(super) fn discard_hold(&mut self, out: &mut Vec<HttpEvent>) {
        if let Some(hold) = self.hold.take() {
            self.request.pass_over_held(hold.len());
            self.request.lose();
            self.sync.lose(out);
            self.request_lost();
        }
    }
}
