//! The body of a copy sent while its request is still being captured: pieces pass from the
//! capture thread to the copy's task in order, each holding its share of the replay budget
//! until it is written, so memory follows how far the shadow lags, not the body's size. A
//! body that does not end well is abandoned: the task resets its shadow connection, so the
//! shadow never takes a cut-short request for a complete one.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

use super::{
    job::{Budget, Reservation},
    stats::Undelivered,
};

/// What a piece costs besides its bytes: its place in the channel and its allocation's
/// header. Charged so that a body sent in tiny segments cannot hold more memory than the
/// budget says.
pub const PIECE_OVERHEAD: usize = 128;
/// The least one streamed copy may hold unwritten; at most a sixteenth of the replay
/// budget otherwise, so that one shadow lagging on a large body cannot take it all.
pub const MIN_STREAM_BACKLOG: usize = 4 << 20;

#[derive(Debug)]
enum Piece {
    Bytes(Bytes, Held),
    End,
    Abandon(Undelivered),
}

/// A piece's shares of the replay budget and of its copy's backlog, given back on drop.
#[derive(Debug)]
pub struct Held {
    _budget: Reservation,
    _backlog: Reservation,
}

/// The capture side of a streamed body. Dropped without [`BodySender::end`], it abandons
/// the copy (reason `incomplete`).
pub struct BodySender {
    tx: mpsc::UnboundedSender<Piece>,
    budget: Budget,
    backlog: Budget,
    abandoned: Arc<OnceLock<Undelivered>>,
    done: bool,
}

/// The copy's side: the pieces, in order.
#[derive(Debug)]
pub struct BodyStream {
    rx: mpsc::UnboundedReceiver<Piece>,
    abandoned: Arc<OnceLock<Undelivered>>,
}

/// What comes next in a streamed body.
pub enum Next {
    /// Bytes to write; the budget share is given back when this is dropped.
    Bytes(Bytes, Held),
    /// The body is complete.
    End,
    /// The copy must not be completed, for this ledger reason.
    Abandon(Undelivered),
}

/// A connected pair, drawing on `budget`.
pub fn channel(budget: Budget) -> (BodySender, BodyStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let abandoned = Arc::new(OnceLock::new());
    let backlog = Budget::new(
        (budget.limit() / 16).max(MIN_STREAM_BACKLOG),
        Gauge::default(),
    );
    (
        BodySender {
            tx,
            budget,
            backlog,
            abandoned: abandoned.clone(),
            done: false,
        },
        BodyStream { rx, abandoned },
    )
}

impl BodySender {
    /// Passes `bytes` on. Returns false when the budget, or this copy's share of it, has
    /// no room for them: the copy is then abandoned (`queue_full`) and the sender is done.
    pub fn push(&mut self, bytes: Bytes) -> bool {
        if self.done {
            return false;
        }
        let cost = bytes.len() + PIECE_OVERHEAD;
        let held = self.backlog.reserve(cost).and_then(|backlog| {
            Some(Held {
                _budget: self.budget.reserve(cost)?,
                _backlog: backlog,
            })
        });
        match held {
            Some(held) => {
                // A task that ended early (its shadow failed) dropped its stream: nothing
                // to do then, its outcome is counted already.
                let _ = self.tx.send(Piece::Bytes(bytes, held));
                true
            }
            None => {
                self.abandon(Undelivered::QueueFull);
                false
            }
        }
    }

    /// The body is complete.
    pub fn end(mut self) {
        self.finish(Piece::End);
    }

    /// The body will not be completed.
    pub fn abandon(&mut self, why: Undelivered) {
        self.finish(Piece::Abandon(why));
    }

    fn finish(&mut self, piece: Piece) {
        if !std::mem::replace(&mut self.done, true) {
            if let Piece::Abandon(why) = piece {
                let _ = self.abandoned.set(why);
            }
            let _ = self.tx.send(piece);
        }
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        self.finish(Piece::Abandon(Undelivered::Incomplete));
    }
}

impl BodyStream {
    /// The next piece; a sender gone without a word abandons the copy.
    pub async fn next(&mut self) -> Next {
        match self.rx.recv().await {
            Some(Piece::Bytes(bytes, held)) => Next::Bytes(bytes, held),
            Some(Piece::End) => Next::End,
            Some(Piece::Abandon(why)) => Next::Abandon(why),
            None => Next::Abandon(Undelivered::Incomplete),
        }
    }

    /// Whether the copy was abandoned already, and why: a copy still waiting to be sent
    /// then never reaches the shadow at all.
    pub fn abandoned(&self) -> Option<Undelivered> {
        self.abandoned.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pieces_hold_the_budget_until_written_and_a_full_budget_abandons() {
        let budget = Budget::new(2 * PIECE_OVERHEAD + 10, Gauge::default());
        let (mut tx, mut rx) = channel(budget.clone());
        assert!(tx.push(Bytes::from_static(b"012345")));
        assert_eq!(budget.used(), 6 + PIECE_OVERHEAD, "bytes and overhead");
        assert!(rx.abandoned().is_none());
        assert!(!tx.push(Bytes::from_static(b"6789a")), "over the budget");
        assert_eq!(
            rx.abandoned(),
            Some(Undelivered::QueueFull),
            "known at once"
        );
        assert!(!tx.push(Bytes::from_static(b"x")), "done after abandoning");
        let Next::Bytes(bytes, held) = rx.next().await else {
            panic!("bytes first");
        };
        assert_eq!(&bytes[..], b"012345");
        drop(held);
        assert_eq!(budget.used(), 0);
        assert!(matches!(
            rx.next().await,
            Next::Abandon(Undelivered::QueueFull)
        ));
    }

    #[tokio::test]
    async fn one_copy_cannot_hold_more_than_its_share_of_the_budget() {
        let budget = Budget::new(1 << 30, Gauge::default());
        let (mut tx, rx) = channel(budget.clone());
        let piece = Bytes::from(vec![0u8; 1 << 20]);
        let mut pushed = 0;
        while tx.push(piece.clone()) {
            pushed += 1;
        }
        // A sixteenth of 1 GiB, less the overheads.
        assert_eq!(pushed, 63);
        assert_eq!(rx.abandoned(), Some(Undelivered::QueueFull));
        // Another copy still has room.
        let (mut other, _rx) = channel(budget);
        assert!(other.push(piece));
        drop(rx);
    }

    #[tokio::test]
    async fn a_sender_dropped_before_the_end_abandons_and_one_that_ended_does_not() {
        let budget = Budget::new(1000, Gauge::default());
        let (tx, mut rx) = channel(budget.clone());
        drop(tx);
        assert_eq!(rx.abandoned(), Some(Undelivered::Incomplete));
        assert!(matches!(
            rx.next().await,
            Next::Abandon(Undelivered::Incomplete)
        ));
        let (mut tx, mut rx) = channel(budget);
        assert!(tx.push(Bytes::from_static(b"ab")));
        tx.end();
        assert!(rx.abandoned().is_none());
        assert!(matches!(rx.next().await, Next::Bytes(..)));
        assert!(matches!(rx.next().await, Next::End));
    }
}
