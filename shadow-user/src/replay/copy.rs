//! The shadow copy of a captured request: the captured bytes with only the
//! request target (shadow `rewrite`), the Host value (`host_rewrite`, then the `-shadow`
//! suffix) and the shadow's header removals and additions changed. The few changed ranges
//! are spliced into a new head; the body is the captured `Bytes`, not copied.

use std::ops::Range;

use bytes::Bytes;

use crate::{
    http::Request,
    route::{ShadowPlan, Target},
};

/// A copy ready to send: the new head and the untouched body (chunk framing included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub head: Bytes,
    pub body: Bytes,
    /// The request is `HEAD`: its response has no body whatever its headers say.
    pub head_request: bool,
}

impl Copy {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// One change: bytes of the captured head replaced by others.
struct Edit {
    range: Range<usize>,
    replacement: Vec<u8>,
}

/// Builds the copy of `request` for `plan`.
pub fn build(request: &Request, plan: &ShadowPlan) -> Copy {
    let raw = &request.raw;
    let head_len = request.head_len;
    let mut edits: Vec<Edit> = Vec::new();

    let (start, end) = request.target;
    if let Some(target) = copy_target(&raw[start..end], plan) {
        edits.push(Edit {
            range: start..end,
            replacement: target,
        });
    }

    let removed = |i: usize| {
        plan.remove_request_headers
            .iter()
            .any(|name| request.header_name(i).eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut host_removed = false;
    for (i, header) in request.headers.iter().enumerate() {
        if removed(i) {
            host_removed |= Some(header.value) == request.host;
            edits.push(Edit {
                range: header.line.0..header.line.1,
                replacement: Vec::new(),
            });
        }
    }

    if let (Some((start, end)), false) = (request.host, host_removed) {
        let captured = String::from_utf8_lossy(&raw[start..end]);
        if let Some(host) = plan.copy_host(Some(&captured)) {
            edits.push(Edit {
                range: start..end,
                replacement: host.into_bytes(),
            });
        }
    }

    if !plan.add_request_headers.is_empty() {
        // New fields go last, before the blank line. The reader refuses a line ended by a
        // bare LF, so every head ends with CRLF CRLF.
        debug_assert!(raw[..head_len].ends_with(b"\r\n\r\n"));
        let at = head_len - 2;
        let mut lines = Vec::new();
        for (name, value) in &plan.add_request_headers {
            lines.extend_from_slice(name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        edits.push(Edit {
            range: at..at,
            replacement: lines,
        });
    }

    edits.sort_by_key(|edit| (edit.range.start, edit.range.end));
    let extra: usize = edits.iter().map(|e| e.replacement.len()).sum();
    let mut head = Vec::with_capacity(head_len + extra);
    let mut at = 0;
    for edit in &edits {
        head.extend_from_slice(&raw[at..edit.range.start]);
        head.extend_from_slice(&edit.replacement);
        at = edit.range.end;
    }
    head.extend_from_slice(&raw[at..head_len]);

    Copy {
        head: Bytes::from(head),
        body: raw.slice(request.body.0..request.body.1),
        head_request: request.method_bytes() == b"HEAD",
    }
}

/// The copy's request target, when it differs from `target`: the shadow's `rewrite` applied
/// to the path, and the authority of an absolute-form target (which a server reads instead
/// of Host, RFC 9112 §3.2.2) changed as the Host value is, so the shadow is not named
/// production's authority.
fn copy_target(target: &[u8], plan: &ShadowPlan) -> Option<Vec<u8>> {
    let rewritten = plan.rewrite.as_ref().map(|rewrite| rewrite.apply(target));
    let current = rewritten.as_deref().unwrap_or(target);
    let parsed = Target::parse(current);
    // The host is what follows any user information (`user:password@`).
    let authority = parsed.authority.map(|authority| {
        let host = authority
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(authority, |at| &authority[at + 1..]);
        parsed.path_range.start - host.len()..parsed.path_range.start
    });
    let renamed = authority.and_then(|range| {
        let captured = String::from_utf8_lossy(&current[range.clone()]);
        let host = plan.copy_host(Some(&captured))?;
        Some(
            [
                &current[..range.start],
                host.as_bytes(),
                &current[range.end..],
            ]
            .concat(),
        )
    });
    renamed.or(rewritten)
}

#[cfg(test)]
mod tests;
