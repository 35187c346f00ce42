//! What a start line looks like: strict checks that confirm the first line of a head early
//! (so that bytes which are no HTTP/1 message are passed over before a whole head is
//! buffered), and the search for the next status line after lost response bytes.
//!
//! A request line is `token SP target SP HTTP/1.x` from its first byte, with any method
//! token RFC 9110 §9.1 allows; a status line is `HTTP/1.x SP 3DIGIT [SP reason]`, as
//! httparse accepts them.

use crate::packet::Direction;

/// First line of the HTTP/2 prior-knowledge preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The methods of the IANA HTTP Method Registry (RFC 9110 §16.1).
const REGISTERED_METHODS: [&[u8]; 40] = [
    b"ACL",
    b"BASELINE-CONTROL",
    b"BIND",
    b"CHECKIN",
    b"CHECKOUT",
    b"CONNECT",
    b"COPY",
    b"DELETE",
    b"GET",
    b"HEAD",
    b"LABEL",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MKREDIRECTREF",
    b"MKWORKSPACE",
    b"MOVE",
    b"OPTIONS",
    b"ORDERPATCH",
    b"PATCH",
    b"POST",
    b"PRI",
    b"PROPFIND",
    b"PROPPATCH",
    b"PUT",
    b"QUERY",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"TRACE",
    b"UNBIND",
    b"UNCHECKOUT",
    b"UNLINK",
    b"UNLOCK",
    b"UPDATE",
    b"UPDATEREDIRECTREF",
    b"VERSION-CONTROL",
];

/// Whether a request line whose method is `method` may begin at a candidate start (where
/// the reader resumed after losing its place), given the byte before it, if known.
///
/// In sync any token is a method. At a candidate the start may instead fall inside a
/// request line: the tail of a method (`T /x HTTP/1.1` of `PUT /x HTTP/1.1`) frames like
/// the real request, so production's acknowledgement of its end would confirm it. Where the
/// byte before is known and cannot be part of a token, the candidate cannot be such a tail;
/// elsewhere only a registered method that is no other registered method's tail can begin
/// one (`PATCH` is the tail of `PROPPATCH`, so it must wait for a better candidate).
pub(crate) fn may_start_at_candidate(method: &[u8], before: Option<u8>) -> bool {
    if before.is_some_and(|b| !is_tchar(b)) {
        return true;
    }
    REGISTERED_METHODS.contains(&method)
        && !REGISTERED_METHODS
            .iter()
            .any(|other| other.len() > method.len() && other.ends_with(method))
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes httparse accepts in a request target.
fn is_target_byte(b: u8) -> bool {
    b >= 0x21 && b != 0x7F
}

/// Bytes allowed in a reason phrase (HTAB, SP, VCHAR, obs-text).
fn is_reason_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || is_target_byte(b)
}

/// `line` without its LF and an optional CR before it; `None` if it does not end in LF.
fn strip_line_end(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\n")?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// True if `line` (ending in LF) is a start line from its first byte.
pub(crate) fn is_start_line(side: Direction, line: &[u8]) -> bool {
    let Some(body) = strip_line_end(line) else {
        return false;
    };
    match side {
        Direction::Request => is_request_line(body),
        Direction::Response => status_at(body, 0),
    }
}

/// `method SP target SP HTTP/1.x`, exactly (one space each, no line ending).
fn is_request_line(body: &[u8]) -> bool {
    let mut parts = body.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|&b| is_tchar(b))
        && !target.is_empty()
        && target.iter().all(|&b| is_target_byte(b))
        && version.len() == 8
        && fits(version, b"HTTP/1.x")
}

/// Responses: the earliest position in `line` (ending in LF) from which the rest is a
/// status line.
pub(crate) fn status_line_start(line: &[u8]) -> Option<usize> {
    let body = strip_line_end(line)?;
    // Every byte from a candidate on must be allowed in a status line, so only 'H's after
    // the last disallowed byte need a look.
    let from = body
        .iter()
        .rposition(|&b| !is_reason_byte(b))
        .map_or(0, |i| i + 1);
    (from..body.len()).find(|&p| status_at(body, p))
}

/// True if `start` (the first bytes of a message, no LF yet) can begin a start line.
pub(crate) fn plausible_start(side: Direction, start: &[u8]) -> bool {
    match side {
        Direction::Request => {
            let method = start.split(|&b| b == b' ').next().unwrap_or_default();
            method.iter().all(|&b| is_tchar(b))
        }
        Direction::Response => fits(&start[..start.len().min(12)], b"HTTP/1.x 000"),
    }
}

/// Responses: true if `partial` (a line begun at a line start, no LF yet) can still become
/// a status line, so a message may be under way.
pub(crate) fn viable_status_line(partial: &[u8]) -> bool {
    let (start, rest) = partial.split_at(partial.len().min(12));
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    fits(start, b"HTTP/1.x 000")
        && rest.first().is_none_or(|&b| b == b' ')
        && rest.iter().all(|&b| is_reason_byte(b))
}

/// True if `bytes` is a prefix of `pattern`, where `x` stands for a minor version and `0`
/// for any digit.
fn fits(bytes: &[u8], pattern: &[u8]) -> bool {
    bytes.len() <= pattern.len()
        && bytes.iter().zip(pattern).all(|(&b, &p)| match p {
            b'x' => b == b'0' || b == b'1',
            b'0' => b.is_ascii_digit(),
            _ => b == p,
        })
}

/// True if `body` (a line without its ending) is a status line from `p`.
fn status_at(body: &[u8], p: usize) -> bool {
    let Some(line) = body.get(p..) else {
        return false;
    };
    line.len() >= 12
        && line.starts_with(b"HTTP/1.")
        && matches!(line[7], b'0' | b'1')
        && line[8] == b' '
        && line[9..12].iter().all(u8::is_ascii_digit)
        && (line.len() == 12 || line[12] == b' ')
        && line[12..].iter().all(|&b| is_reason_byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: Direction = Direction::Request;
    const RESP: Direction = Direction::Response;

    #[test]
    fn request_lines() {
        assert!(is_start_line(REQ, b"GET / HTTP/1.1\r\n"));
        assert!(is_start_line(REQ, b"M-SEARCH * HTTP/1.0\n"));
        assert!(is_start_line(
            REQ,
            b"get /lower-case-is-a-token HTTP/1.1\r\n"
        ));
        assert!(is_start_line(REQ, b"BREW /pot HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b"GET / HTTP/1.1"));
        assert!(!is_start_line(REQ, b"GET  / HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b"GET / HTTP/1.2\r\n"));
        assert!(!is_start_line(REQ, b"GET / HTTP/1.1 \r\n"));
        assert!(!is_start_line(REQ, b"GET /a b HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b"GET /foo bar/ HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, H2_PREFACE_LINE));
        assert!(!is_start_line(REQ, b"\x00GET / HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b" GET / HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b"G\x7fT / HTTP/1.1\r\n"));
    }

    #[test]
    fn candidates_never_begin_inside_a_method() {
        // After a line end any token will do.
        assert!(may_start_at_candidate(b"BREW", Some(b'\n')));
        assert!(may_start_at_candidate(b"T", Some(b'}')));
        // After a token byte, or where the byte before is unknown: registered methods that
        // are no other's tail.
        for method in [
            &b"GET"[..],
            b"POST",
            b"PUT",
            b"DELETE",
            b"OPTIONS",
            b"SEARCH",
        ] {
            assert!(may_start_at_candidate(method, None), "{method:?}");
            assert!(may_start_at_candidate(method, Some(b'2')), "{method:?}");
        }
        for tail in [
            &b"T"[..],
            b"ST",
            b"UT",
            b"ET",
            b"LOCK",
            b"PATCH",
            b"BIND",
            b"BREW",
        ] {
            assert!(!may_start_at_candidate(tail, None), "{tail:?}");
            assert!(!may_start_at_candidate(tail, Some(b'U')), "{tail:?}");
        }
    }

    #[test]
    fn status_lines() {
        assert!(is_start_line(RESP, b"HTTP/1.1 200 OK\r\n"));
        assert!(is_start_line(RESP, b"HTTP/1.0 404\n"));
        assert!(!is_start_line(RESP, b"HTTP/1.1 20 OK\r\n"));
        assert!(!is_start_line(RESP, b"HTTP/1.1 2000\r\n"));
        assert_eq!(
            status_line_start(b"xxHTTP/1.1 HTTP/1.1 204 No\r\n"),
            Some(11)
        );
        assert_eq!(status_line_start(b"\x00HTTP/1.1 200 OK\r\n"), Some(1));
        assert_eq!(status_line_start(b"HTTP/1.1 200 O\x01K\r\n"), None);
    }

    #[test]
    fn viable_partial_status_lines() {
        assert!(viable_status_line(b"HTTP/1.1 20"));
        assert!(viable_status_line(b"HTTP/1.1 200 OK\r"));
        assert!(!viable_status_line(b"HTTP/1.1 200OK"));
        assert!(!viable_status_line(b"xHTTP"));
    }

    #[test]
    fn plausible_beginnings() {
        assert!(plausible_start(REQ, b"GE"));
        assert!(plausible_start(REQ, b"GET /\x00"));
        assert!(!plausible_start(REQ, b"\x16\x03\x01"));
        assert!(plausible_start(RESP, b"HTTP/1.1 2"));
        assert!(!plausible_start(RESP, b"HTTP/2 200"));
    }
}
