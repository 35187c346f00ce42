//! Request bytes held back after a request that may switch protocols (`CONNECT`, or one with
//! `Upgrade`) until its answer says whether what follows is still HTTP/1: tunnel or
//! WebSocket bytes parsed as requests would be counted as malformed messages.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

/// Most distinct pushes remembered; later ones share the last one's capture time.
const MAX_PUSHES: usize = 64;

#[derive(Debug)]
pub(crate) struct Hold {
    /// The request whose answer decides.
    pub sequence: u64,
    /// What follows a refusal is no known request either (a `CONNECT` with a body, which
    /// servers frame differently).
    pub ambiguous: bool,
    data: BytesMut,
    /// End offset in `data` and capture time of each push.
    pushes: Vec<(usize, SystemTime)>,
}

impl Hold {
    pub fn new(sequence: u64, ambiguous: bool) -> Hold {
        Hold {
            sequence,
            ambiguous,
            data: BytesMut::new(),
            pushes: Vec::new(),
        }
    }

    /// Holds `data`, unless that would hold more than `limit` bytes (then holds nothing
    /// and returns false).
    pub fn push(&mut self, data: &[u8], ts: SystemTime, limit: usize) -> bool {
        if self.data.len() + data.len() > limit {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        self.data.extend_from_slice(data);
        let end = self.data.len();
        let full = self.pushes.len() >= MAX_PUSHES;
        match self.pushes.last_mut() {
            Some((last_end, last_ts)) if *last_ts == ts || full => {
                *last_end = end;
            }
            _ => self.pushes.push((end, ts)),
        }
        true
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The held bytes, push by push, in order.
    pub fn into_pushes(self) -> impl Iterator<Item = (Bytes, SystemTime)> {
        let data = self.data.freeze();
        let mut start = 0;
        self.pushes.into_iter().map(move |(end, ts)| {
            let end = end.clamp(start, data.len());
            let part = data.slice(start..end);
            start = end;
            (part, ts)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pushes_come_back_in_order_within_the_limit() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut hold = Hold::new(3, false);
        assert!(hold.push(b"ab", t(1), 8));
        assert!(hold.push(b"c", t(1), 8));
        assert!(hold.push(b"", t(2), 8));
        assert!(hold.push(b"def", t(2), 8));
        assert!(!hold.push(b"ghi", t(3), 8));
        let pushes: Vec<_> = hold.into_pushes().collect();
        assert_eq!(
            pushes,
            vec![
                (Bytes::from_static(b"abc"), t(1)),
                (Bytes::from_static(b"def"), t(2))
            ]
        );
    }
}
