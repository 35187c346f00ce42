//! Bounds on what one direction of a flow may buffer: a message beyond them is dropped
//! (counted) instead of held.

/// Per-direction limits. A request direction buffers at most `max_head_bytes` and one
/// body's buffered part: `stream_body_after` bytes of a streamed body, or up to the body
/// limit of one kept whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line, header fields and the blank line) kept; larger ones are
    /// dropped as `HeadTooLarge`.
    pub max_head_bytes: usize,
    /// Most header fields in one head, as a policy; more are dropped as `TooManyHeaders`.
    /// None (the default): as many as fit in `max_head_bytes`, as nginx and Go allow.
    pub max_headers: Option<usize>,
    /// Largest request body, chunk framing and trailers included, as a policy: a larger
    /// one is dropped as `BodyTooLarge` and passed over. None (the default): no limit.
    /// A body kept whole by live capture (held for confirmation, or not streamed) is also
    /// limited to `max_held_bytes`; offline, one is limited to `max_held_bytes` when this
    /// is None.
    /// Response bodies are never buffered, so they are not limited.
    pub max_body_bytes: Option<usize>,
    /// A request body longer than this, on a stream whose place production's parser is
    /// known to share, comes out in pieces as it arrives (its copy is sent meanwhile)
    /// instead of whole. None: every body is kept whole (offline tools, which want whole
    /// requests).
    pub stream_body_after: Option<usize>,
    /// Bytes of requests one flow may hold while they wait for production to confirm them
    /// (see `sync`); more are given up as unconfirmed. Flows of a table also share a
    /// budget of these ([`Budgets`](super::Budgets)).
    pub max_held_bytes: usize,
    /// Bytes of requests awaiting confirmation all flows of a table may hold together.
    pub max_held_total_bytes: usize,
    /// Bytes of messages in progress the parsers of all flows of a table may buffer
    /// together (heads, and bodies before they stream or while held); a message that finds
    /// no room is dropped as `ParseBudgetFull`.
    pub max_parse_total_bytes: usize,
}

impl Limits {
    /// Default of `stream_body_after` for live capture.
    pub const DEFAULT_STREAM_BODY_AFTER: usize = 64 * 1024;
    /// Default of `max_held_total_bytes`.
    pub const DEFAULT_HELD_TOTAL_BYTES: usize = 64 << 20;
    /// Default of `max_parse_total_bytes`: a thousand connections each in the middle of a
    /// message as large as a head and a body's buffered part may be, and far more of
    /// ordinary ones.
    pub const DEFAULT_PARSE_TOTAL_BYTES: usize = 128 << 20;
    /// Body limit of the offline tools, which keep bodies whole.
    pub const OFFLINE_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

    /// The limits of the offline tools (`extract`, `replay --pcap`): whole requests, bodies
    /// up to 16 MiB, and room to parse 64 of those at once.
    pub fn whole_bodies() -> Limits {
        Limits {
            max_body_bytes: Some(Self::OFFLINE_MAX_BODY_BYTES),
            stream_body_after: None,
            max_parse_total_bytes: 64 * Self::OFFLINE_MAX_BODY_BYTES,
            ..Limits::default()
        }
    }

    /// The most body bytes kept in the buffer for a request that is not streamed.
    pub(crate) fn kept_body_limit(&self) -> u64 {
        let held = self.max_held_bytes;
        let limit = match (self.stream_body_after, self.max_body_bytes) {
            // Live capture keeps a body whole only while it must hold the request, which
            // `max_held_bytes` bounds whatever the policy allows.
            (Some(_), policy) => policy.map_or(held, |policy| policy.min(held)),
            (None, policy) => policy.unwrap_or(held),
        };
        limit as u64
    }
}

impl Default for Limits {
    /// Live capture's limits.
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: None,
            max_body_bytes: None,
            stream_body_after: Some(Self::DEFAULT_STREAM_BODY_AFTER),
            max_held_bytes: 1024 * 1024,
            max_held_total_bytes: Self::DEFAULT_HELD_TOTAL_BYTES,
            max_parse_total_bytes: Self::DEFAULT_PARSE_TOTAL_BYTES,
        }
    }
}
