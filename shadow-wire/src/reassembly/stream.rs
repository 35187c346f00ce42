//! One direction of a TCP connection as an in-order byte stream: sequence numbers mapped to
//! 64-bit offsets from the stream's start (correct across 32-bit wraparound), out-of-order
//! segments held until the hole before them fills, retransmissions and overlaps dropped.

use std::{collections::BTreeMap, time::SystemTime};

use bytes::Bytes;

/// A segment more than this far from the expected sequence number is not of this stream.
const MAX_SEQ_DISTANCE: i64 = 1 << 30;

/// What a segment did to the stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Payload bytes that were already delivered or buffered (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Payload bytes newly held out of order.
    pub buffered_bytes: u64,
    /// The segment was too far from the stream's position to belong to it.
    pub out_of_window: bool,
}

/// One direction's reassembly state.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of offset 0 (ISN + 1, or the first byte seen on a mid-stream pickup).
    anchor: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Out-of-order segments by offset, each with its capture time.
    pending: BTreeMap<u64, (Bytes, SystemTime)>,
    pending_bytes: usize,
    /// Capture time since when bytes have been waiting for a hole to fill.
    waiting_since: Option<SystemTime>,
    /// Offset one past the last byte, once a FIN was seen.
    fin_at: Option<u64>,
    /// Offset one past the highest byte seen, delivered or held.
    high: u64,
    /// True once `end` was reported to the consumer.
    pub ended: bool,
    /// True when the stream was picked up without its SYN.
    pub midstream: bool,
}

impl Stream {
    /// Bytes held out of order.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Since when held bytes have waited for the hole before them, if any do.
    pub fn waiting_since(&self) -> Option<SystemTime> {
        self.waiting_since
    }

    pub fn is_anchored(&self) -> bool {
        self.anchor.is_some()
    }

    /// True when offset 0 is the byte after the sender's SYN: the stream is known from its
    /// first byte.
    pub fn is_from_syn(&self) -> bool {
        self.anchor.is_some() && !self.midstream
    }

    /// Offset of the next byte to deliver: where a hole, if any, begins.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Where `seq` lies, as a signed offset from the stream's start (negative: before the
    /// first byte of a stream picked up mid-way), if the stream is anchored.
    pub fn position(&self, seq: u32) -> Option<i64> {
        let anchor = self.anchor?;
        let expected = anchor.wrapping_add(self.next as u32);
        Some(self.next as i64 + i64::from(seq.wrapping_sub(expected) as i32))
    }

    /// The sequence space the sender has used so far, as an offset: one past the highest
    /// byte seen, plus one for a FIN.
    pub fn sent_end(&self) -> u64 {
        match self.fin_at {
            Some(fin) => fin.max(self.high) + 1,
            None => self.high,
        }
    }

    /// The stream offset an acknowledgement number `ack` from the peer stands for: every
    /// byte before it was received. A FIN's own sequence number is not a byte, so an ACK of
    /// it stands for the end of the stream.
    pub fn acked_offset(&self, ack: u32) -> Option<u64> {
        let at = u64::try_from(self.position(ack)?).ok()?;
        Some(self.fin_at.map_or(at, |fin| at.min(fin)))
    }

    /// Where reading resumes when the hole before it is given up: the first held byte, or
    /// the end of the stream when only a FIN is held.
    pub fn resume_offset(&self) -> u64 {
        self.pending
            .first_key_value()
            .map(|(&start, _)| start)
            .or(self.fin_at)
            .unwrap_or(self.next)
            .max(self.next)
    }

    /// Anchors the stream at a SYN's sequence number (data starts one later).
    pub fn syn(&mut self, seq: u32) {
        if self.anchor.is_none() {
            self.anchor = Some(seq.wrapping_add(1));
        }
    }

    /// Offset of sequence number `seq`, or None when it is implausibly far from the stream.
    fn offset(&self, seq: u32) -> Option<u64> {
        let at = self.position(seq)?;
        if (at - self.next as i64).abs() > MAX_SEQ_DISTANCE {
            return None;
        }
        u64::try_from(at).ok()
    }

    /// Takes in one segment's payload (and FIN). In-order bytes go to `deliver` right away,
    /// borrowed from `payload`; bytes beyond a hole are copied and held.
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        fin: bool,
        ts: SystemTime,
        deliver: &mut dyn FnMut(&[u8], SystemTime),
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if self.anchor.is_none() {
            if payload.is_empty() && !fin {
                return outcome;
            }
            // Picked up mid-stream: the first bytes seen are offset 0.
            self.anchor = Some(seq);
            self.midstream = true;
        }
        let Some(start) = self.offset(seq) else {
            outcome.out_of_window = true;
            return outcome;
        };
        let end = start + payload.len() as u64;
        if fin && self.fin_at.is_none() {
            self.fin_at = Some(end);
        }
        self.high = self.high.max(end);
        if end <= self.next {
            outcome.duplicate_bytes = payload.len() as u64;
            return outcome;
        }
        if start <= self.next {
            let skip = (self.next - start) as usize;
            outcome.duplicate_bytes = skip as u64;
            deliver(&payload[skip..], ts);
            self.next = end;
            self.drain(deliver, &mut outcome);
        } else {
            outcome = self.hold(start, payload, ts, outcome);
        }
        outcome
    }

    fn hold(
        &mut self,
        start: u64,
        payload: &[u8],
        ts: SystemTime,
        mut outcome: Outcome,
    ) -> Outcome {
        let end = start + payload.len() as u64;
        // Already fully held by one segment starting at or before it: a retransmission.
        if let Some((held_start, (held, _))) = self.pending.range(..=start).next_back()
            && held_start + held.len() as u64 >= end
        {
            outcome.duplicate_bytes = payload.len() as u64;
            return outcome;
        }
        if let Some((old, _)) = self.pending.get(&start) {
            // Same start, longer now: keep the longer one (the first copy's bytes are the
            // prefix either way on a sane sender).
            self.pending_bytes -= old.len();
            outcome.duplicate_bytes += old.len() as u64;
        }
        if self.pending.is_empty() {
            self.waiting_since = Some(ts);
        }
        self.pending_bytes += payload.len();
        outcome.buffered_bytes = payload.len() as u64;
        self.pending
            .insert(start, (Bytes::copy_from_slice(payload), ts));
        outcome
    }

    /// Delivers held segments that now continue the stream.
    fn drain(&mut self, deliver: &mut dyn FnMut(&[u8], SystemTime), outcome: &mut Outcome) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let (bytes, ts) = entry.remove();
            self.pending_bytes -= bytes.len();
            let end = start + bytes.len() as u64;
            if end <= self.next {
                outcome.duplicate_bytes += bytes.len() as u64;
                continue;
            }
            let skip = (self.next - start) as usize;
            outcome.duplicate_bytes += skip as u64;
            deliver(&bytes[skip..], ts);
            self.next = end;
        }
        if self.pending.is_empty() {
            self.waiting_since = None;
        }
    }

    /// Gives up on the hole before the first held segment: jumps to it and delivers what
    /// follows. Returns false when nothing is held (no hole to skip).
    pub fn skip_hole(&mut self, deliver: &mut dyn FnMut(&[u8], SystemTime)) -> bool {
        let Some((&start, _)) = self.pending.first_key_value() else {
            return false;
        };
        self.next = self.next.max(start);
        let mut outcome = Outcome::default();
        self.drain(deliver, &mut outcome);
        true
    }

    /// True when a FIN was seen and every byte before it was delivered.
    pub fn complete(&self) -> bool {
        self.fin_at.is_some_and(|fin| self.next >= fin)
    }

    /// True when bytes are missing before held ones, or before the FIN.
    pub fn has_hole(&self) -> bool {
        !self.pending.is_empty() || self.fin_at.is_some_and(|fin| self.next < fin)
    }
}
