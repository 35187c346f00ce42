//! Bounds on what one direction of a flow may buffer: a message beyond them is dropped
//! (counted) instead of held.

/// Per-direction limits. A direction never buffers more than
/// `max_head_bytes + max_body_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line, header fields and the blank line) kept; larger ones are
    /// dropped as `HeadTooLarge`.
    pub max_head_bytes: usize,
    /// Most header fields in one head, as a policy; more are dropped as `TooManyHeaders`.
    /// None (the default): as many as fit in `max_head_bytes`, as nginx and Go allow.
    pub max_headers: Option<usize>,
    /// Largest request body kept, chunk framing and trailers included. A larger body is
    /// dropped as `BodyTooLarge` and passed over without being buffered. Response bodies
    /// are never buffered, so they are not limited.
    pub max_body_bytes: usize,
    /// Bytes of requests one flow may hold while they wait for production to confirm them
    /// (see `sync`); more are given up as unconfirmed. Flows of a table also share a
    /// budget of these ([`HoldBudget`](super::HoldBudget)).
    pub max_held_bytes: usize,
    /// Bytes of requests awaiting confirmation all flows of a table may hold together.
    pub max_held_total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_held_bytes: 1024 * 1024,
            max_held_total_bytes: super::HoldBudget::DEFAULT_LIMIT,
        }
    }
}
