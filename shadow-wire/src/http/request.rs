//! A captured request: its bytes exactly as on the wire, and where its parts are in them.
//! Accessors return slices of those bytes; nothing is re-serialised.

use std::time::SystemTime;

use bytes::Bytes;

/// Where one header field line is in a message: byte ranges `(start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPos {
    /// The field name.
    pub name: (usize, usize),
    /// Without surrounding whitespace.
    pub value: (usize, usize),
    /// The whole line, line ending included.
    pub line: (usize, usize),
}

/// One complete request. Byte ranges `(start, end)` index `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The whole message as on the wire: request line, header fields, blank line, and the
    /// body with its chunk framing and trailers.
    pub raw: Bytes,
    /// Bytes of the request line, header fields and blank line.
    pub head_len: usize,
    /// The method.
    pub method: (usize, usize),
    /// The request target.
    pub target: (usize, usize),
    /// Minor version: 0 or 1.
    pub version: u8,
    /// Header field lines, in wire order.
    pub headers: Vec<HeaderPos>,
    /// Value of the first `Host` field.
    pub host: Option<(usize, usize)>,
    /// The body as sent, chunk framing included.
    pub body: (usize, usize),
    /// Capture time of the segment holding the first byte.
    pub first_byte: SystemTime,
    /// Capture time of the segment holding the last byte.
    pub last_byte: SystemTime,
    /// Index of this request's head on the flow (0, 1, 2, …); responses carry it. A request
    /// dropped after its head was read keeps its number, so emitted numbers may skip.
    pub sequence: u64,
}

impl Request {
    /// The bytes of `range`, or nothing if it does not fit (it always does for requests
    /// built by the parser).
    fn slice(&self, (start, end): (usize, usize)) -> &[u8] {
        self.raw.get(start..end).unwrap_or_default()
    }

    fn text(&self, range: (usize, usize)) -> &str {
        std::str::from_utf8(self.slice(range)).unwrap_or_default()
    }

    /// The method's bytes.
    pub fn method_bytes(&self) -> &[u8] {
        self.slice(self.method)
    }

    /// The method; always ASCII.
    pub fn method_str(&self) -> &str {
        self.text(self.method)
    }

    /// The request target's bytes.
    pub fn target_bytes(&self) -> &[u8] {
        self.slice(self.target)
    }

    /// The request target; empty if it is not UTF-8 (use [`Request::target_bytes`]).
    pub fn target_str(&self) -> &str {
        self.text(self.target)
    }

    /// Name of header field `i` (empty if there is no such field).
    pub fn header_name(&self, i: usize) -> &[u8] {
        self.headers.get(i).map_or(&[], |h| self.slice(h.name))
    }

    /// Value of header field `i` (empty if there is no such field).
    pub fn header_value(&self, i: usize) -> &[u8] {
        self.headers.get(i).map_or(&[], |h| self.slice(h.value))
    }

    /// Whole line of header field `i`, line ending included.
    pub fn header_line(&self, i: usize) -> &[u8] {
        self.headers.get(i).map_or(&[], |h| self.slice(h.line))
    }

    /// Value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let i = (0..self.headers.len())
            .find(|&i| self.header_name(i).eq_ignore_ascii_case(name.as_bytes()))?;
        Some(self.header_value(i))
    }

    /// Value of the first `Host` field; `None` if absent or not UTF-8.
    pub fn host_str(&self) -> Option<&str> {
        std::str::from_utf8(self.slice(self.host?)).ok()
    }

    /// The head: request line, header fields and blank line.
    pub fn head(&self) -> &[u8] {
        self.slice((0, self.head_len))
    }

    /// The body as sent, chunk framing included.
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    #[test]
    fn accessors_slice_raw() {
        let wire = b"PUT /x HTTP/1.0\r\nhost: h\r\nX: y\r\n\r\nbody";
        let head = parse_request(&wire[..wire.len() - 4], None).unwrap();
        let request = Request {
            raw: Bytes::from_static(wire),
            head_len: wire.len() - 4,
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers,
            host: head.host,
            body: (wire.len() - 4, wire.len()),
            first_byte: SystemTime::UNIX_EPOCH,
            last_byte: SystemTime::UNIX_EPOCH,
            sequence: 0,
        };
        assert_eq!(request.method_str(), "PUT");
        assert_eq!(request.target_str(), "/x");
        assert_eq!(request.host_str(), Some("h"));
        assert_eq!(request.header_name(1), b"X");
        assert_eq!(request.header_value(1), b"y");
        assert_eq!(request.header_line(1), b"X: y\r\n");
        assert_eq!(request.header("HOST"), Some(&b"h"[..]));
        assert_eq!(request.header_name(2), b"");
        assert_eq!(request.body(), b"body");
        assert_eq!(request.head().len(), request.head_len);
    }
}
