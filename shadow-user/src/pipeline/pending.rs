//! Requests of shadowed groups waiting for their production response on the wire, so the
//! response can be credited to the right Mapping with its latency (last request byte → first
//! response byte). Bounded: the oldest waiting request is forgotten first, and counted.

use std::{
    collections::{HashMap, VecDeque},
    time::SystemTime,
};

use prometheus_client::metrics::counter::Counter;

use crate::{diff::DiffRequest, reassembly::FlowKey};

/// Requests waiting at once, at most.
pub const MAX_PENDING: usize = 65_536;

/// One request waiting for its production response.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub mapping: String,
    pub last_byte: SystemTime,
    /// Joins with the copy's answer (0: no copy).
    pub id: u64,
    /// The copy's responses are diffed: how, and the request (for samples and noise).
    pub diff: Option<Box<DiffRequest>>,
}

/// The waiting requests, keyed by connection and request number on it.
#[derive(Debug, Default)]
pub struct PendingResponses {
    waiting: HashMap<(FlowKey, u64), Pending>,
    order: VecDeque<(FlowKey, u64)>,
    /// Requests forgotten before their response came (limit reached).
    pub evicted: Counter,
}

impl PendingResponses {
    pub fn insert(&mut self, flow: FlowKey, sequence: u64, pending: Pending) {
        while self.waiting.len() >= MAX_PENDING {
            match self.order.pop_front() {
                Some(old) => {
                    if self.waiting.remove(&old).is_some() {
                        self.evicted.inc();
                    }
                }
                None => break,
            }
        }
        self.waiting.insert((flow, sequence), pending);
        self.order.push_back((flow, sequence));
        // Answered requests leave stale keys behind; sweep them once they dominate.
        if self.order.len() > 2 * MAX_PENDING.max(self.waiting.len()) {
            let waiting = &self.waiting;
            self.order.retain(|key| waiting.contains_key(key));
        }
    }

    /// A streamed request's last byte came at `at`.
    pub fn ended(&mut self, flow: FlowKey, sequence: u64, at: SystemTime) {
        if let Some(pending) = self.waiting.get_mut(&(flow, sequence)) {
            pending.last_byte = at;
        }
    }

    pub fn take(&mut self, flow: FlowKey, sequence: u64) -> Option<Pending> {
        self.waiting.remove(&(flow, sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keyed_by_connection_and_sequence() {
        let flow = FlowKey {
            client: "198.18.0.1:1".parse().unwrap(),
            server: "198.18.0.2:80".parse().unwrap(),
        };
        let mut pending = PendingResponses::default();
        let entry = |id| Pending {
            mapping: "m".into(),
            last_byte: SystemTime::UNIX_EPOCH,
            id,
            diff: None,
        };
        for seq in 0..(MAX_PENDING as u64 + 3) {
            pending.insert(flow, seq, entry(seq));
        }
        assert_eq!(pending.waiting.len(), MAX_PENDING);
        assert_eq!(pending.evicted.get(), 3);
        assert!(pending.take(flow, 0).is_none());
        assert_eq!(pending.take(flow, 5).map(|p| p.id), Some(5));
    }
}
