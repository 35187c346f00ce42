//! Buffer bookkeeping: what was skipped, and the capture time of buffered bytes.

use std::time::SystemTime;

use bytes::{Buf, BytesMut};

use super::{Reader, State};
use crate::packet::Direction;

impl Reader {
    /// The reader no longer knows where it stands in the stream (nothing is buffered): a
    /// request reader passes over input until told where a message starts, a response
    /// reader searches for one from a point that may be inside a message.
    pub(super) fn lose_place(&mut self) {
        self.counters.resyncs += 1;
        self.pristine = false;
        self.suspect = true;
        self.state = match self.side {
            Direction::Request => State::Lost,
            Direction::Response => State::Resync,
        };
        self.compact();
    }

    /// Discards `n` buffered bytes while searching for a message start.
    pub(super) fn skip(&mut self, n: usize) {
        if n > 0 {
            self.count_skipped(n);
            self.advance(n);
        }
    }

    /// Discards the first `n` input bytes while searching for a message start.
    pub(super) fn skip_input(&mut self, input: &mut &[u8], n: usize, ts: SystemTime) {
        if n > 0 {
            self.touch(ts);
            self.count_skipped(n);
            *input = input.get(n..).unwrap_or_default();
        }
    }

    pub(super) fn count_skipped(&mut self, n: usize) {
        if self.pristine {
            // A stream picked up mid-message: this is its first resync.
            self.pristine = false;
            self.counters.resyncs += 1;
        }
        self.counters.bytes_skipped += n as u64;
    }

    pub(super) fn advance(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.fresh_from = self.fresh_from.saturating_sub(n);
        if self.fresh_from == 0 {
            self.buf_ts = self.last_ts;
        }
    }

    pub(super) fn touch(&mut self, ts: SystemTime) {
        if ts != self.last_ts {
            self.fresh_from = self.buf.len();
            self.last_ts = ts;
        }
    }

    /// Takes room for `more` buffered bytes from the parse budget, after giving back what
    /// the buffer no longer holds; false if the budget has none.
    pub(super) fn room(&mut self, more: usize) -> bool {
        self.release();
        // Room already taken (a body's reserved allocation) covers what fits in it.
        let need = (self.buf.len() + more).saturating_sub(self.charged);
        if need == 0 {
            return true;
        }
        let taken = self.parse.take(need);
        if taken {
            self.charged += need;
        }
        taken
    }

    /// Gives back to the parse budget what the buffer no longer holds (its capacity counts:
    /// room reserved for a body is held).
    pub(super) fn release(&mut self) {
        let held = self.buf.capacity();
        if self.charged > held {
            self.parse.give_back(self.charged - held);
            self.charged = held;
        }
    }

    /// Appends bytes that [`Reader::room`] made room for.
    pub(super) fn append(&mut self, bytes: &[u8], ts: SystemTime) {
        if bytes.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            self.buf_ts = ts;
            self.fresh_from = 0;
            self.last_ts = ts;
        } else {
            self.touch(ts);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Capture time of buffered byte `at`: exact for the latest two pushes, the older one's
    /// time for bytes of earlier pushes.
    pub(super) fn ts_at(&self, at: usize) -> SystemTime {
        if at >= self.fresh_from {
            self.last_ts
        } else {
            self.buf_ts
        }
    }

    pub(super) fn compact(&mut self) {
        // Empty, it lets go of its allocation, which may be shared with the message just
        // handed out: a connection between messages holds nothing.
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        self.release();
    }
}
