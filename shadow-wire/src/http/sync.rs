//! Where production's parser stands on a request stream, and what that lets through.
//!
//! A copy must be of a request production read as one, so a request stream is *synced*
//! only where that is known: from the first byte of a connection production's stack was
//! seen to establish, and on from there message by message. After lost bytes, at a stream
//! picked up mid-way, or after a message production would have refused, it is not known:
//! the reader then takes a *candidate* start (the first byte of a stream picked up mid-way,
//! or the offset production's answer acknowledged while the reader stood exactly there) and
//! the requests it parses from it are held. An acknowledgement from production of exactly the last byte of one of
//! them confirms the parse: production's TCP stack had received that request and not a byte
//! more when it answered, so the candidate was a real start. The held requests are then
//! released and the stream is synced again. Held requests that are never confirmed (the
//! connection ends, the parse fails, more bytes are lost, the bound is reached) come out as
//! [`HttpEvent::Unconfirmed`], which is counted and never copied.

use std::collections::VecDeque;

use super::{HttpEvent, Request, SharedBudget};

/// The sync state of one request stream.
#[derive(Debug)]
pub(crate) struct Sync {
    synced: bool,
    /// Complete requests parsed from a candidate start, each with the stream offset just
    /// past its last byte, and whether production never reads it however it is confirmed
    /// (it follows one that closes the connection).
    held: VecDeque<(u64, Request, bool)>,
    held_bytes: usize,
    /// What `held_bytes` is taken from.
    budget: SharedBudget,
    /// No acknowledgement can come any more: the server's side of the connection ended.
    closed: bool,
}

impl Sync {
    /// A stream known from its first byte, holding from `budget` when it is not.
    pub fn synced(budget: SharedBudget) -> Sync {
        Sync {
            synced: true,
            held: VecDeque::new(),
            held_bytes: 0,
            budget,
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
    /// held otherwise. Returns false when holding it would hold more than `limit` bytes on
    /// this flow (beyond a first one), or more than the budget has left: everything held is then given up, and
    /// the caller must lose its place.
    pub fn request(
        &mut self,
        end: u64,
        request: Request,
        unread: bool,
        limit: usize,
        out: &mut Vec<HttpEvent>,
    ) -> bool {
        if self.synced && !unread {
            out.push(HttpEvent::Request(request));
            return true;
        }
        if self.closed || (self.synced && unread) {
            out.push(HttpEvent::Unconfirmed(request));
            return true;
        }
        let bytes = request.raw.len();
        // One request is always held, whatever its size within the body limit the reader
        // applies to held requests (`max_held_bytes`); the budget shared by all flows still
        // bounds it.
        let over = !self.held.is_empty() && self.held_bytes + bytes > limit;
        if over || !self.budget.take(bytes) {
            // Those held before it come out first: events keep the requests' order.
            self.lose(out);
            out.push(HttpEvent::Unconfirmed(request));
            return false;
        }
        self.held_bytes += bytes;
        self.held.push_back((end, request, unread));
        true
    }

    /// Production acknowledged every byte before `offset`. Returns true when that confirms
    /// the held requests (one of them ends exactly there): they are released, and the
    /// stream is synced. Requests numbered after `last_read` (production closes the
    /// connection before them) come out unconfirmed.
    pub fn acked(&mut self, offset: u64, last_read: Option<u64>, out: &mut Vec<HttpEvent>) -> bool {
        // Ends ascend: one look finds whether a held request ends exactly there.
        if self.synced
            || self
                .held
                .binary_search_by_key(&offset, |(end, _, _)| *end)
                .is_err()
        {
            return false;
        }
        self.synced = true;
        self.budget.give_back(std::mem::take(&mut self.held_bytes));
        out.extend(self.held.drain(..).map(|(_, request, unread)| {
            if unread || last_read.is_some_and(|last| request.sequence > last) {
                HttpEvent::Unconfirmed(request)
            } else {
                HttpEvent::Request(request)
            }
        }));
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
        self.budget.give_back(std::mem::take(&mut self.held_bytes));
        out.extend(
            self.held
                .drain(..)
                .map(|(_, request, _)| HttpEvent::Unconfirmed(request)),
        );
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        self.budget.give_back(self.held_bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;

    fn request(len: usize) -> Request {
        Request {
            raw: Bytes::from(vec![b'x'; len]),
            head_len: len,
            method: (0, 1),
            target: (0, 1),
            version: 1,
            headers: Vec::new(),
            host: None,
            body: (len, len),
            first_byte: SystemTime::UNIX_EPOCH,
            last_byte: SystemTime::UNIX_EPOCH,
            sequence: 0,
        }
    }

    #[test]
    fn flows_share_one_budget_and_give_it_back() {
        let budget = SharedBudget::new(100);
        let (mut a, mut b) = (Sync::synced(budget.clone()), Sync::synced(budget.clone()));
        let mut out = Vec::new();
        a.lose(&mut out);
        b.lose(&mut out);
        assert!(a.request(60, request(60), false, 1000, &mut out));
        assert_eq!(budget.used(), 60);
        // The second flow finds the budget short: it gives up what it holds.
        assert!(!b.request(50, request(50), false, 1000, &mut out));
        assert!(matches!(out[..], [HttpEvent::Unconfirmed(_)]));
        assert!(a.acked(60, None, &mut out));
        assert_eq!(budget.used(), 0);
        assert!(b.request(50, request(50), false, 1000, &mut out));
        // Over the flow's own bound: what it held comes out first, in order.
        let mut second = request(20);
        second.sequence = 1;
        out.clear();
        assert!(!b.request(70, second, false, 60, &mut out));
        let order: Vec<u64> = out
            .iter()
            .map(|e| match e {
                HttpEvent::Unconfirmed(r) => r.sequence,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, [0, 1]);
        drop(b);
        assert_eq!(budget.used(), 0, "a dropped flow gives its bytes back");
    }
}
