//! Where a message can start: strict checks of start lines, used to confirm the first line
//! of a head early and to find the next message after lost or unparseable bytes.
//!
//! A candidate must be a complete line: `token SP target SP HTTP/1.x` for requests,
//! `HTTP/1.x SP 3DIGIT [SP reason]` for responses, as httparse accepts them.

use crate::capture::Direction;

/// First line of the HTTP/2 prior-knowledge preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Methods (RFC 9110 and common extensions) preferred, longest first, when bytes before a
/// request run into its method with no separator (`…xyzGET / HTTP/1.1`): any token is a
/// valid method, but after lost bytes a known one ending the run is far more likely than a
/// token glued to garbage.
const KNOWN_METHODS: [&[u8]; 19] = [
    b"PROPPATCH",
    b"PROPFIND",
    b"OPTIONS",
    b"CONNECT",
    b"DELETE",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"PATCH",
    b"TRACE",
    b"PURGE",
    b"MKCOL",
    b"POST",
    b"HEAD",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"GET",
    b"PUT",
];

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
    match side {
        Direction::Request => request_line(line).is_some_and(|found| found.run == 0),
        Direction::Response => strip_line_end(line).is_some_and(|body| status_at(body, 0)),
    }
}

/// The earliest position in `line` (ending in LF) from which the rest is a start line.
///
/// A `suspect` line may begin anywhere in a message (after lost bytes, or past the first
/// byte of a dropped head): a request line found at its very start must then have a known
/// method, as `ST / HTTP/1.1` is more likely the end of a `POST` than a method of its own.
pub(crate) fn line_start(side: Direction, line: &[u8], suspect: bool) -> Option<usize> {
    match side {
        Direction::Request => request_line(line)
            .filter(|found| !suspect || found.preferred > 0 || found.known)
            .map(|found| found.preferred),
        Direction::Response => {
            let body = strip_line_end(line)?;
            // Every byte from a candidate on must be allowed in a status line, so only 'H's
            // after the last disallowed byte need a look.
            let from = body
                .iter()
                .rposition(|&b| !is_reason_byte(b))
                .map_or(0, |i| i + 1);
            (from..body.len()).find(|&p| status_at(body, p))
        }
    }
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

/// True if `partial` (a line begun at a line start, no LF yet) can still become a start
/// line: a message may be under way.
pub(crate) fn viable_line(side: Direction, partial: &[u8]) -> bool {
    match side {
        Direction::Request => {
            let mut parts = partial.splitn(3, |&b| b == b' ');
            let method = parts.next().unwrap_or_default();
            if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
                return false;
            }
            let Some(target) = parts.next() else {
                return true;
            };
            if !target.iter().all(|&b| is_target_byte(b)) {
                return false;
            }
            parts
                .next()
                .is_none_or(|version| !target.is_empty() && fits(version, b"HTTP/1.x\r"))
        }
        Direction::Response => {
            let (start, rest) = partial.split_at(partial.len().min(12));
            let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
            fits(start, b"HTTP/1.x 000")
                && rest.first().is_none_or(|&b| b == b' ')
                && rest.iter().all(|&b| is_reason_byte(b))
        }
    }
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

/// A request line ending a line.
struct Found {
    /// Where the token run before the target starts.
    run: usize,
    /// Where the method most likely starts: a known method ending the run, else the run.
    preferred: usize,
    /// The method from `preferred` is a known one.
    known: bool,
}

fn request_line(line: &[u8]) -> Option<Found> {
    let body = strip_line_end(line)?;
    let rest_len = body.len().checked_sub(9)?;
    let (rest, version) = body.split_at(rest_len);
    if !version.starts_with(b" HTTP/1.") || !matches!(version.get(8), Some(b'0' | b'1')) {
        return None;
    }
    let target_start = rest
        .iter()
        .rposition(|&b| !is_target_byte(b))
        .map_or(0, |i| i + 1);
    let method_end = target_start.checked_sub(1)?;
    if target_start == rest.len() || rest[method_end] != b' ' {
        return None;
    }
    let run = rest[..method_end]
        .iter()
        .rposition(|&b| !is_tchar(b))
        .map_or(0, |i| i + 1);
    let method = &rest[run..method_end];
    if method.is_empty() {
        return None;
    }
    let known = KNOWN_METHODS.iter().find(|known| method.ends_with(known));
    Some(Found {
        run,
        preferred: known.map_or(run, |known| method_end - known.len()),
        known: known.is_some(),
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
        assert!(!is_start_line(REQ, b"GET / HTTP/1.1"));
        assert!(!is_start_line(REQ, b"GET  / HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, b"GET / HTTP/1.2\r\n"));
        assert!(!is_start_line(REQ, b"GET /a b HTTP/1.1\r\n"));
        assert!(!is_start_line(REQ, H2_PREFACE_LINE));
        assert!(!is_start_line(REQ, b"\x00GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn request_starts_after_garbage() {
        assert_eq!(
            line_start(REQ, b"\x00\x01GET / HTTP/1.1\r\n", false),
            Some(2)
        );
        assert_eq!(
            line_start(REQ, b"body bytes PROPFIND /x HTTP/1.1\r\n", false),
            Some(11)
        );
        assert_eq!(
            line_start(REQ, b"}{\"a\":1}xyzPOST /x HTTP/1.1\r\n", false),
            Some(11)
        );
        assert_eq!(line_start(REQ, b"a b c HTTP/1.1\r\n", false), Some(2));
        assert_eq!(line_start(REQ, b"Host: example.com\r\n", false), None);
        assert_eq!(line_start(REQ, b" / HTTP/1.1\r\n", false), None);
        assert_eq!(line_start(REQ, b"BREW /pot HTTP/1.1\r\n", false), Some(0));
    }

    #[test]
    fn suspect_lines_need_a_known_method_at_their_start() {
        assert_eq!(line_start(REQ, b"ST /x HTTP/1.1\r\n", true), None);
        assert_eq!(line_start(REQ, b"ET /big HTTP/1.1\r\n", true), None);
        assert_eq!(line_start(REQ, b"GET /x HTTP/1.1\r\n", true), Some(0));
        assert_eq!(
            line_start(REQ, b"\x00BREW /pot HTTP/1.1\r\n", true),
            Some(1)
        );
        assert_eq!(line_start(REQ, b"aaaUNLOCK /x HTTP/1.1\r\n", true), Some(3));
    }

    #[test]
    fn status_lines() {
        assert!(is_start_line(RESP, b"HTTP/1.1 200 OK\r\n"));
        assert!(is_start_line(RESP, b"HTTP/1.0 404\n"));
        assert!(!is_start_line(RESP, b"HTTP/1.1 20 OK\r\n"));
        assert!(!is_start_line(RESP, b"HTTP/1.1 2000\r\n"));
        assert_eq!(
            line_start(RESP, b"xxHTTP/1.1 HTTP/1.1 204 No\r\n", false),
            Some(11)
        );
        assert_eq!(line_start(RESP, b"\x00HTTP/1.1 200 OK\r\n", false), Some(1));
        assert_eq!(line_start(RESP, b"HTTP/1.1 200 O\x01K\r\n", false), None);
    }

    #[test]
    fn viable_partial_lines() {
        for partial in [
            &b"G"[..],
            b"GET",
            b"GET /a",
            b"GET /a ",
            b"GET /a HTTP/1.1\r",
        ] {
            assert!(viable_line(REQ, partial), "{partial:?}");
        }
        for partial in [
            &b" GET"[..],
            b"the quick brown",
            b"GET /a HTTP/2",
            b"GET\x00",
        ] {
            assert!(!viable_line(REQ, partial), "{partial:?}");
        }
        assert!(viable_line(RESP, b"HTTP/1.1 20"));
        assert!(viable_line(RESP, b"HTTP/1.1 200 OK\r"));
        assert!(!viable_line(RESP, b"HTTP/1.1 200OK"));
        assert!(!viable_line(RESP, b"xHTTP"));
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
