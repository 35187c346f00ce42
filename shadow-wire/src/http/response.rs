//! A captured response: what comparing it with a shadow's answer needs (status and timing),
//! and, while responses are kept for diffing, its head's fields and de-chunked body.

use std::{sync::Arc, time::SystemTime};

use super::kept::KeptResponse;

/// One complete response, interim (1xx) ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `sequence` of the request this answers; `None` when that cannot be known (the
    /// request was lost or dropped, or pairing was lost after a gap).
    pub request_sequence: Option<u64>,
    /// Capture time of the segment holding the first byte.
    pub first_byte: SystemTime,
    /// Capture time of the segment holding the last byte (for a body delimited by close,
    /// the last byte before the close).
    pub last_byte: SystemTime,
    /// Bytes of the status line, header fields and blank line.
    pub head_len: usize,
    /// Bytes of the body as sent, chunk framing included.
    pub body_len: u64,
    /// The response as kept for diffing (see [`Keeping`](super::Keeping)), when it was.
    pub kept: Option<Arc<KeptResponse>>,
}

impl Response {
    /// An interim response (`1xx` but `101`): the final one for the same request follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}
