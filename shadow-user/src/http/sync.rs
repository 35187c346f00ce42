//! Where production's parser stands on a request stream, and what that lets through.
//!
//! A copy must be of a request production read as one, so a request stream is *synced*
//! only where that is known: from the first byte of a connection production's stack was
//! seen to establish, and on from there message by message. After lost bytes, at a stream
//! picked up mid-way, or after a message production would have refused, it is not known:
//! the reader then takes a *candidate* start (the first byte after the loss, or an offset
//! production acknowledged while the reader stood exactly there) and the requests it parses
//! from it are held. An acknowledgement from production of exactly the last byte of one of
//! them confirms the parse: production's TCP stack had received that request and not a byte
//! more when it answered, so the candidate was a real start. The held requests are then
//! released and the stream is synced again. Held requests that are never confirmed (the
//! connection ends, the parse fails, more bytes are lost, the bound is reached) come out as
//! [`HttpEvent::Unconfirmed`], which is counted and never copied.

use std::collections::VecDeque;

use super::{HttpEvent, Request};

/// The sync state of one request stream.
#[derive(Debug)]
pub(crate) struct Sync {
    synced: bool,
    /// Complete requests parsed from a candidate start, each with the stream offset just
    /// past its last byte.
    held: VecDeque<(u64, Request)>,
    held_bytes: usize,
    /// No acknowledgement can come any more: the server's side of the connection ended.
    closed: bool,
}

impl Sync {
    /// A stream known from its first byte.
    pub fn synced() -> Sync {
        Sync {
            synced: true,
            held: VecDeque::new(),
            held_bytes: 0,
            closed: false,
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Bytes of the held requests.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A complete request that ends at stream offset `end`: out at once on a synced stream,
    /// held otherwise. Returns false when holding it would hold more than `limit` bytes:
    /// everything held is then given up, and the caller must lose its place.
    pub fn request(
        &mut self,
        end: u64,
        request: Request,
        limit: usize,
        out: &mut Vec<HttpEvent>,
    ) -> bool {
        if self.synced {
            out.push(HttpEvent::Request(request));
            return true;
        }
        if self.closed {
            out.push(HttpEvent::Unconfirmed(request));
            return true;
        }
        if self.held_bytes + request.raw.len() > limit {
            out.push(HttpEvent::Unconfirmed(request));
            self.lose(out);
            return false;
        }
        self.held_bytes += request.raw.len();
        self.held.push_back((end, request));
        true
    }

    /// Production acknowledged every byte before `offset`. Returns true when that confirms
    /// the held requests (one of them ends exactly there): they are released, and the
    /// stream is synced.
    pub fn acked(&mut self, offset: u64, out: &mut Vec<HttpEvent>) -> bool {
        if self.synced || !self.held.iter().any(|(end, _)| *end == offset) {
            return false;
        }
        self.synced = true;
        self.held_bytes = 0;
        out.extend(
            self.held
                .drain(..)
                .map(|(_, request)| HttpEvent::Request(request)),
        );
        true
    }

    /// Where production's parser stands is no longer known: held requests are given up.
    pub fn lose(&mut self, out: &mut Vec<HttpEvent>) {
        self.synced = false;
        self.give_up(out);
    }

    /// The server's side ended: nothing held can be confirmed any more, nor can anything
    /// parsed later.
    pub fn close(&mut self, out: &mut Vec<HttpEvent>) {
        self.closed = true;
        self.give_up(out);
    }

    fn give_up(&mut self, out: &mut Vec<HttpEvent>) {
        self.held_bytes = 0;
        out.extend(
            self.held
                .drain(..)
                .map(|(_, request)| HttpEvent::Unconfirmed(request)),
        );
    }
}
