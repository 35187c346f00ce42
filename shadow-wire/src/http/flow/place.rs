//! Where the request reader stands relative to production's parser (see `sync`): what a
//! break in the stream does to it, and how production's answers show it again.
//!
//! Only two breaks are followed by reading on: a connection picked up mid-way (its first
//! byte may begin a request) and bytes the capture lost (production acknowledged past them,
//! so it read on). After anything the client can cause — a request production would refuse,
//! a hole it left on purpose, a pause past the idle timeout, bytes after a protocol switch
//! nothing decided — no request of the connection is copied any more (those parsed are
//! counted unconfirmed): a client that chooses where shadowd loses its place can also
//! choose what a resumed parse finds there.
//!
//! Production's acknowledgements count only when they come with the first segment of a
//! final answer: production had then read a whole request, and its stack had received
//! exactly the bytes acknowledged. Any other segment's ACK only says what arrived.

use std::ops::Range;

use super::HttpFlow;
use crate::{
    http::{DropReason, HttpEvent},
    packet::Direction,
    reassembly::GapKind,
};

/// Answer acknowledgements remembered per flow: a response head spans few segments.
const ANSWER_ACKS: usize = 8;

impl HttpFlow {
    /// What follows in `direction` resumes at stream offset `resume_at`, not known to
    /// continue what came before (`kind` says why): drops the message in progress
    /// (counted). A response reader searches for the next status line; a request reader
    /// reads on only as the module's rules allow.
    pub fn gap(
        &mut self,
        direction: Direction,
        resume_at: u64,
        kind: GapKind,
        out: &mut Vec<HttpEvent>,
    ) {
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
        if kind == GapKind::CaptureLoss && synced && self.request.skip_body_to(resume_at) {
            // The loss ends inside the Content-Length body being read: its known end is
            // where the next request starts.
            out.push(HttpEvent::Dropped {
                direction,
                reason: DropReason::Gap,
            });
            if let Some((_, sequence)) = self.current_request.take() {
                self.pairing.forget(sequence);
            }
            self.break_stream(false, out);
            return;
        }
        let pickup = kind == GapKind::Pickup && resume_at == 0 && self.request.at_start();
        if let Some(reason) = self.request.gap(resume_at)
            && synced
        {
            out.push(HttpEvent::Dropped { direction, reason });
        }
        match kind {
            GapKind::Pickup if pickup => self.request.resume(),
            GapKind::Pickup | GapKind::CaptureLoss => {}
            GapKind::Unacknowledged | GapKind::Resumed => self.sync.close(out),
        }
        self.sync.lose(out);
        self.request_lost(out);
    }

    /// True while the reader does not stand between requests: one is under way, or the
    /// reader lost its place.
    pub fn mid_request(&self) -> bool {
        !self.finished && (!self.request.is_idle() || self.request.is_lost())
    }

    /// Production's side acknowledged every byte of `direction` before `offset`, with a
    /// segment whose payload is `carrier` of the response stream: kept until a response
    /// head says whether that segment began an answer.
    pub fn acked(
        &mut self,
        direction: Direction,
        offset: u64,
        carrier: Range<u64>,
        _out: &mut Vec<HttpEvent>,
    ) {
        if self.finished || direction == Direction::Response {
            return;
        }
        if self.answer_acks.len() == ANSWER_ACKS {
            self.answer_acks.pop_front();
        }
        self.answer_acks.push_back((carrier, offset));
    }

    /// A final answer began at response offset `start`. The acknowledgement of the segment
    /// that carried its first byte is where production's stack stood: a candidate start
    /// for a reader that lost its place and stands exactly there, or the confirmation of
    /// held requests if one of them ends there (requests after `closes_after` are released
    /// as unconfirmed: production does not read them). Ahead of the reader (client bytes
    /// held back behind a lost segment), it is kept for when the reader gets there.
    pub(super) fn answered(&mut self, start: u64, out: &mut Vec<HttpEvent>) {
        let Some(ack) = self
            .answer_acks
            .iter()
            .rev()
            .find(|(carrier, _)| carrier.contains(&start))
            .map(|(_, ack)| *ack)
        else {
            return;
        };
        if self.request.remember_ack(ack) || self.sync.is_synced() {
            return;
        }
        if self.request.is_lost() {
            if ack == self.request.position() {
                self.request.resume();
            }
            return;
        }
        // A POST may be followed by a stray CRLF production read too.
        let blanks = if ack == self.request.position() {
            self.request.trailing_blanks()
        } else {
            0
        };
        if !self.sync.acked(ack, self.closes_after, out) && blanks > 0 {
            self.sync.acked(ack - blanks, self.closes_after, out);
        }
    }

    /// The request in progress is one production would refuse (malformed, or beyond the
    /// limits): servers answer 400 and close, so nothing after it on the connection is
    /// known to be a request, and nothing more of it is copied. Counted only where the
    /// stream was known to be at a message start: otherwise it was no message, and the
    /// reader waits for the next candidate.
    pub(super) fn request_refused(&mut self, reason: Option<DropReason>, out: &mut Vec<HttpEvent>) {
        if self.sync.is_synced() {
            if let Some(reason) = reason {
                out.push(HttpEvent::Dropped {
                    direction: Direction::Request,
                    reason,
                });
            }
            self.sync.close(out);
        }
        // From a candidate, bytes that begin no request only say the candidate was wrong.
        self.sync.lose(out);
        self.request_lost(out);
    }

    /// The request in progress found no room in the parse budget: production read it and
    /// shadowd could not. The drop is counted and the place lost as after capture loss: the
    /// requests after it wait for production's confirmation, and the connection is not
    /// given up as after a request production refuses.
    pub(super) fn request_unbuffered(&mut self, out: &mut Vec<HttpEvent>) {
        out.push(HttpEvent::Dropped {
            direction: Direction::Request,
            reason: DropReason::ParseBudgetFull,
        });
        self.sync.lose(out);
        self.request_lost(out);
    }

    /// Drops bytes held after a request that may switch protocols when nothing (or an
    /// ambiguous answer) decides what they are: parsed as HTTP/1 they could be a tunnel's
    /// plaintext. Nothing more of the connection is copied.
    pub(super) fn discard_hold(&mut self, out: &mut Vec<HttpEvent>) {
        if let Some(hold) = self.hold.take() {
            self.request.pass_over_held(hold.len());
            self.request.lose();
            self.sync.close(out);
            self.sync.lose(out);
            self.request_lost(out);
        }
    }
}
