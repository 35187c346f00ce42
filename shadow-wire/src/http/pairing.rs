//! Pairs responses with the requests they answer. HTTP/1 answers in order, so a queue of
//! requests awaiting an answer suffices while nothing is lost; after a loss the queue may
//! miss requests or answers, so pairing is withheld until the connection is seen idle.

use std::{collections::VecDeque, time::SystemTime};

use super::head::MethodKind;

/// Most requests awaiting an answer on one flow; beyond it the oldest is forgotten
/// (counted) and pairing is withheld, as an answer it never got may still come.
pub(crate) const MAX_PENDING: usize = 1024;

/// A request whose answer has not been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub sequence: u64,
    pub first_byte: SystemTime,
    pub kind: MethodKind,
    /// Its answer may name it: false when the order was uncertain as it arrived, or when
    /// the request itself was dropped.
    pub paired: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Pairing {
    queue: VecDeque<Pending>,
    /// Bytes were lost: the next answers may be for requests never seen.
    lost: bool,
    /// Some answer was paired: from then on the order is trusted.
    started: bool,
    /// Final responses emitted without a request.
    pub unpaired: u64,
    pub evicted: u64,
}

impl Pairing {
    /// Queues a request whose head was read. Pairing resumes after a loss with the first
    /// request sent while nothing was outstanding and no answer was under way: clients
    /// rarely pipeline, so the connection was idle and no lost request awaits an answer.
    pub fn push(&mut self, mut pending: Pending, response_idle: bool) {
        if self.lost && self.queue.is_empty() && response_idle {
            self.lost = false;
        }
        if self.queue.len() >= MAX_PENDING {
            self.queue.pop_front();
            self.evicted += 1;
            self.lost = true;
        }
        pending.paired &= !self.lost;
        self.queue.push_back(pending);
    }

    /// The request `sequence` was dropped after its head: its answer names nothing.
    pub fn forget(&mut self, sequence: u64) {
        if let Some(pending) = self.queue.iter_mut().rev().find(|p| p.sequence == sequence) {
            pending.paired = false;
        }
    }

    /// The request a response starting at `first_byte` answers, if known.
    pub fn front(&self, first_byte: SystemTime) -> Option<Pending> {
        let front = *self.queue.front()?;
        // Until a first pairing, a response that began before the request cannot answer
        // it: the flow was picked up mid-stream and the answer is to a request before.
        if !self.started && first_byte < front.first_byte {
            return None;
        }
        Some(front)
    }

    /// The front request got its final answer.
    pub fn pop(&mut self) {
        if self.queue.pop_front().is_some() {
            self.started = true;
        }
    }

    pub fn contains(&self, sequence: u64) -> bool {
        self.queue.iter().any(|p| p.sequence == sequence)
    }

    /// Request bytes were lost: requests may be missing from the queue.
    pub fn request_lost(&mut self) {
        self.lost = true;
    }

    /// Response bytes were lost: any queued request may have been answered in them.
    pub fn response_lost(&mut self) {
        self.queue.clear();
        self.lost = true;
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pending(sequence: u64, at: u64) -> Pending {
        Pending {
            sequence,
            first_byte: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            kind: MethodKind::Other,
            paired: true,
        }
    }

    #[test]
    fn pairing_resumes_once_idle_after_a_loss() {
        let mut pairing = Pairing::default();
        pairing.push(pending(0, 1), true);
        pairing.request_lost();
        pairing.push(pending(1, 2), true);
        assert!(pairing.front(SystemTime::now()).unwrap().paired);
        pairing.pop();
        assert!(!pairing.front(SystemTime::now()).unwrap().paired);
        pairing.pop();
        pairing.push(pending(2, 3), false);
        assert!(!pairing.front(SystemTime::now()).unwrap().paired);
        pairing.pop();
        pairing.push(pending(3, 4), true);
        assert!(pairing.front(SystemTime::now()).unwrap().paired);
    }

    #[test]
    fn an_answer_older_than_the_first_request_is_not_its_answer() {
        let mut pairing = Pairing::default();
        pairing.push(pending(0, 10), true);
        assert_eq!(pairing.front(SystemTime::UNIX_EPOCH), None);
        assert!(
            pairing
                .front(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
                .is_some()
        );
    }

    #[test]
    fn queue_is_bounded() {
        let mut pairing = Pairing::default();
        for i in 0..MAX_PENDING as u64 + 5 {
            pairing.push(pending(i, 1), true);
        }
        assert_eq!(pairing.queue.len(), MAX_PENDING);
        assert_eq!(pairing.evicted, 5);
        assert!(!pairing.queue.back().unwrap().paired);
    }
}
