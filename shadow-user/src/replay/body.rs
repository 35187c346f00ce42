//! The body of a copy sent while its request is still being captured: pieces pass from the
//! capture thread to the copy's task in order, each holding its share of the replay budget
//! until it is written, so memory follows how far the shadow lags, not the body's size. A
//! body that does not end well is abandoned: the task resets its shadow connection, so the
//! shadow never takes a cut-short request for a complete one.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    job::{Budget, Reservation},
    stats::reason,
};

#[derive(Debug)]
enum Piece {
    Bytes(Bytes, Reservation),
    End,
    Abandon(&'static str),
}

/// The capture side of a streamed body. Dropped without [`BodySender::end`], it abandons
/// the copy (reason `incomplete`).
pub struct BodySender {
    tx: mpsc::UnboundedSender<Piece>,
    budget: Budget,
    done: bool,
}

/// The copy's side: the pieces, in order.
#[derive(Debug)]
pub struct BodyStream {
    rx: mpsc::UnboundedReceiver<Piece>,
}

/// What comes next in a streamed body.
pub enum Next {
    /// Bytes to write; the budget share is given back when this is dropped.
    Bytes(Bytes, Reservation),
    /// The body is complete.
    End,
    /// The copy must not be completed, for this ledger reason.
    Abandon(&'static str),
}

/// A connected pair, drawing on `budget`.
pub fn channel(budget: Budget) -> (BodySender, BodyStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        BodySender {
            tx,
            budget,
            done: false,
        },
        BodyStream { rx },
    )
}

impl BodySender {
    /// Passes `bytes` on. Returns false when the budget has no room for them: the copy is
    /// then abandoned (`queue_full`) and the sender is done.
    pub fn push(&mut self, bytes: Bytes) -> bool {
        if self.done {
            return false;
        }
        match self.budget.reserve(bytes.len()) {
            Some(reservation) => {
                // A task that ended early (its shadow failed) dropped its stream: nothing
                // to do then, its outcome is counted already.
                let _ = self.tx.send(Piece::Bytes(bytes, reservation));
                true
            }
            None => {
                self.abandon(reason::QUEUE_FULL);
                false
            }
        }
    }

    /// The body is complete.
    pub fn end(mut self) {
        self.finish(Piece::End);
    }

    /// The body will not be completed.
    pub fn abandon(&mut self, why: &'static str) {
        self.finish(Piece::Abandon(why));
    }

    fn finish(&mut self, piece: Piece) {
        if !std::mem::replace(&mut self.done, true) {
            let _ = self.tx.send(piece);
        }
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        self.finish(Piece::Abandon(reason::INCOMPLETE));
    }
}

impl BodyStream {
    /// The next piece; a sender gone without a word abandons the copy.
    pub async fn next(&mut self) -> Next {
        match self.rx.recv().await {
            Some(Piece::Bytes(bytes, reservation)) => Next::Bytes(bytes, reservation),
            Some(Piece::End) => Next::End,
            Some(Piece::Abandon(why)) => Next::Abandon(why),
            None => Next::Abandon(reason::INCOMPLETE),
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    #[tokio::test]
    async fn pieces_hold_the_budget_until_written_and_a_full_budget_abandons() {
        let budget = Budget::new(10, Gauge::default());
        let (mut tx, mut rx) = channel(budget.clone());
        assert!(tx.push(Bytes::from_static(b"012345")));
        assert_eq!(budget.used(), 6);
        assert!(!tx.push(Bytes::from_static(b"6789a")), "over the budget");
        assert!(!tx.push(Bytes::from_static(b"x")), "done after abandoning");
        let Next::Bytes(bytes, held) = rx.next().await else {
            panic!("bytes first");
        };
        assert_eq!(&bytes[..], b"012345");
        drop(held);
        assert_eq!(budget.used(), 0);
        assert!(matches!(rx.next().await, Next::Abandon(reason::QUEUE_FULL)));
    }

    #[tokio::test]
    async fn a_sender_dropped_before_the_end_abandons_and_one_that_ended_does_not() {
        let budget = Budget::new(100, Gauge::default());
        let (tx, mut rx) = channel(budget.clone());
        drop(tx);
        assert!(matches!(rx.next().await, Next::Abandon(reason::INCOMPLETE)));
        let (mut tx, mut rx) = channel(budget);
        assert!(tx.push(Bytes::from_static(b"ab")));
        tx.end();
        assert!(matches!(rx.next().await, Next::Bytes(..)));
        assert!(matches!(rx.next().await, Next::End));
    }
}
