//! HTTP/1.x from reassembled TCP streams: byte-exact requests, responses paired with them,
//! and a reason for every message that could not be produced.
//!
//! [`HttpFlow`] takes both in-order directions of one connection. Each direction runs a
//! `reader` that buffers only the message in progress (bounded by [`Limits`]), finds heads
//! incrementally and frames bodies per RFC 9112 §6; the flow interprets heads, pairs
//! responses with requests and notices when the connection stops being HTTP/1.

mod body;
mod budget;
mod flow;
mod handler;
mod head;
mod hold;
mod kept;
mod limits;
mod pairing;
mod reader;
pub mod reply;
mod request;
mod response;
mod resync;
mod sync;

#[cfg(test)]
mod tests;

pub use budget::{Budgets, SharedBudget};
pub use flow::HttpFlow;
pub use kept::{
    BodyKeeper, DEFAULT_KEPT_BODY_BYTES, DEFAULT_KEPT_TOTAL_BYTES, Keeping, KeptBody, KeptBytes,
    KeptResponse, head_fields,
};
pub use limits::Limits;
pub use request::{HeaderPos, Request};
pub use response::Response;

// The replay client reads shadows' replies with the same body framing and length rules.
pub(crate) use body::{Body, Framing};
pub use head::persists;
pub(crate) use head::{BodyFields, ContentLength, Transfer, parse_length};

use crate::packet::Direction;

/// What a flow produced from the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpEvent {
    /// A complete request, as on the wire, that production is known to have read as one.
    Request(Request),
    /// A complete request that production was never shown to have read as one: its
    /// connection was not seen established and no answer of production's acknowledged its
    /// last byte (see `flow`'s "Where production's parser stands"). Never copied.
    Unconfirmed(Request),
    /// The head and first body bytes of a request production is known to be reading, whose
    /// body is too long to wait for (`Limits::stream_body_after`): `raw` and `body` hold
    /// what arrived so far. The rest follows as [`HttpEvent::RequestBody`] pieces, then
    /// [`HttpEvent::RequestEnd`], or [`HttpEvent::RequestBroken`] if it does not complete.
    RequestStreaming(Request),
    /// The next bytes of a streaming request's body, exactly as on the wire.
    RequestBody {
        /// The request's number on its connection, from 0.
        sequence: u64,
        /// The bytes.
        bytes: bytes::Bytes,
    },
    /// A streaming request is complete; `last_byte` is the capture time of its last byte.
    RequestEnd {
        /// The request's number on its connection, from 0.
        sequence: u64,
        /// The capture time of the request's last byte.
        last_byte: std::time::SystemTime,
    },
    /// A streaming request will not complete (its loss is also reported as `Dropped`), or
    /// production will not read it (`unread`: an earlier answer closes the connection).
    RequestBroken {
        /// The request's number on its connection, from 0.
        sequence: u64,
        /// Production will not read it: an earlier answer closes the connection.
        unread: bool,
    },
    /// A complete response (interim 1xx ones included).
    Response(Response),
    /// A message that will never be produced.
    Dropped {
        /// The request side or the response side.
        direction: Direction,
        /// Why.
        reason: DropReason,
    },
    /// The connection stopped being HTTP/1; nothing more comes from this flow.
    Unsupported {
        /// Why the flow is no longer HTTP/1.
        reason: UnsupportedReason,
    },
    /// Something worth counting about a message that was still produced.
    Notice {
        /// What was noticed.
        what: Notice,
    },
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Bytes of the message were lost in capture.
    #[error("bytes of the message were lost in capture")]
    Gap,
    /// The stream ended before the message did.
    #[error("the stream ended before the message did")]
    Truncated,
    /// The message breaks HTTP/1.1's grammar.
    #[error("malformed message: {what}")]
    Malformed {
        /// Where the grammar broke.
        what: &'static str,
    },
    /// The head is larger than `max_head_bytes`.
    #[error("message head larger than the limit")]
    HeadTooLarge,
    /// More header fields than `max_headers`.
    #[error("more header fields than the limit")]
    TooManyHeaders,
    /// The body is larger than the limit for kept bodies.
    #[error("message body larger than the limit")]
    BodyTooLarge,
    /// The parsers of all connections buffer as much as their budget allows.
    #[error("the parsers of all connections buffer as much as their budget allows")]
    ParseBudgetFull,
}

impl DropReason {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Gap => "gap",
            DropReason::Truncated => "truncated",
            DropReason::Malformed { .. } => "malformed",
            DropReason::HeadTooLarge => "head_too_large",
            DropReason::TooManyHeaders => "too_many_headers",
            DropReason::BodyTooLarge => "body_too_large",
            DropReason::ParseBudgetFull => "parse_budget_full",
        }
    }
}

/// Why a flow stopped being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsupportedReason {
    /// `101 Switching Protocols` answered a request with `Upgrade`.
    Upgrade,
    /// A 2xx answered `CONNECT`: the connection is now a tunnel.
    Connect,
    /// The client opened with the HTTP/2 prior-knowledge preface.
    Http2,
}

impl UnsupportedReason {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            UnsupportedReason::Upgrade => "upgrade",
            UnsupportedReason::Connect => "connect",
            UnsupportedReason::Http2 => "http2",
        }
    }
}

/// Oddities that do not stop a message from being produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// Both `Content-Length` and `Transfer-Encoding: chunked`: chunked framing was used
    /// (RFC 9112 §6.3), as the server must have done.
    ContentLengthWithChunked,
}

impl Notice {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::ContentLengthWithChunked => "content_length_with_chunked",
        }
    }
}

// Metric label values, as the daemon counts them.
crate::label_value!(UnsupportedReason, Notice);

/// What one direction of a flow passed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Times the direction lost its place (after a gap, a dropped message, or a stream
    /// picked up mid-message): a response stream then searches for the next status line,
    /// a request stream waits for production to show where a request starts.
    pub resyncs: u64,
    /// Bytes passed over meanwhile.
    pub bytes_skipped: u64,
    /// Body bytes passed over without buffering after `BodyTooLarge`.
    pub body_bytes_skipped: u64,
}

/// Counters of one flow (`pipeline::totals` adds them to the process-wide metrics when the
/// flow ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The request side's counters.
    pub request: StreamCounters,
    /// The response side's counters.
    pub response: StreamCounters,
    /// Final responses emitted with `request_sequence: None`.
    pub unpaired_responses: u64,
    /// Requests awaiting a response that were forgotten because the queue was full.
    pub pending_evicted: u64,
}
