//! An [`HttpFlow`] is what the reassembler hands each connection's streams to.

use std::{ops::Range, time::SystemTime};

use super::{HttpEvent, HttpFlow};
use crate::{
    packet::Direction,
    reassembly::{GapKind, StreamHandler},
};

impl StreamHandler for HttpFlow {
    type Event = HttpEvent;

    fn data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: SystemTime,
        out: &mut Vec<HttpEvent>,
    ) {
        self.push(direction, data, ts, out);
    }

    fn gap(
        &mut self,
        direction: Direction,
        resume_at: u64,
        kind: GapKind,
        out: &mut Vec<HttpEvent>,
    ) {
        HttpFlow::gap(self, direction, resume_at, kind, out);
    }

    fn acked(
        &mut self,
        direction: Direction,
        offset: u64,
        carrier: Range<u64>,
        out: &mut Vec<HttpEvent>,
    ) {
        HttpFlow::acked(self, direction, offset, carrier, out);
    }

    fn mid_message(&self) -> bool {
        self.mid_request()
    }

    fn end(&mut self, direction: Direction, out: &mut Vec<HttpEvent>) {
        HttpFlow::end(self, direction, out);
    }

    fn is_finished(&self) -> bool {
        HttpFlow::is_finished(self)
    }
}
