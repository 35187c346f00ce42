//! Heads (start line and header fields), parsed with httparse once per message into byte
//! positions within the message, and what their framing fields say (RFC 9112 §6).

use super::{DropReason, body::Framing, request::HeaderPos};

/// Header slots kept on the stack; a larger `max_headers` limit uses the heap.
const INLINE_HEADERS: usize = 128;

/// What the request method means for framing and for the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    /// `HEAD`: the response has no body whatever its headers say.
    Head,
    /// `CONNECT`: a 2xx response turns the connection into a tunnel.
    Connect,
    Other,
}

/// A `Content-Length` field as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentLength {
    Absent,
    Valid(u64),
    /// Not digits, or repeated with different values.
    Invalid,
}

/// A `Transfer-Encoding` field as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    Absent,
    /// `chunked` is the last coding, and appears only there.
    Chunked,
    /// Anything else: no coding, `chunked` missing, not last, or repeated.
    Other,
}

/// The framing fields of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyFields {
    pub length: ContentLength,
    pub transfer: Transfer,
}

/// A parsed request head; positions are byte ranges of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: (usize, usize),
    pub target: (usize, usize),
    pub version: u8,
    pub headers: Vec<HeaderPos>,
    pub host: Option<(usize, usize)>,
    pub kind: MethodKind,
    pub fields: BodyFields,
    /// An `Upgrade` field asks to switch protocols.
    pub upgrade: bool,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub version: u8,
    pub fields: BodyFields,
}

impl RequestHead {
    /// How the body is delimited (RFC 9112 §6.3); a framing the server must reject as 400
    /// is malformed.
    pub fn framing(&self) -> Result<Framing, DropReason> {
        match (self.fields.transfer, self.fields.length) {
            // A server treats Transfer-Encoding in HTTP/1.0 as faulty framing (§6.1).
            (Transfer::Chunked | Transfer::Other, _) if self.version == 0 => {
                Err(malformed("transfer-encoding in HTTP/1.0"))
            }
            (Transfer::Chunked, _) => Ok(Framing::Chunked),
            (Transfer::Other, _) => Err(malformed("transfer-encoding not ending in chunked")),
            (Transfer::Absent, ContentLength::Valid(0) | ContentLength::Absent) => {
                Ok(Framing::None)
            }
            (Transfer::Absent, ContentLength::Valid(n)) => Ok(Framing::Length(n)),
            (Transfer::Absent, ContentLength::Invalid) => Err(malformed("content-length")),
        }
    }
}

impl ResponseHead {
    /// How the body is delimited (RFC 9112 §6.3), given the method of the request it
    /// answers (`None` when that request is unknown).
    pub fn framing(&self, request: Option<MethodKind>) -> Result<Framing, DropReason> {
        let status = self.status;
        if request == Some(MethodKind::Head) || (100..200).contains(&status) {
            return Ok(Framing::None);
        }
        if status == 204 || status == 304 {
            return Ok(Framing::None);
        }
        if request == Some(MethodKind::Connect) && (200..300).contains(&status) {
            return Ok(Framing::None);
        }
        self.fields.response_framing(self.version)
    }
}

impl BodyFields {
    /// How a response body is delimited by these fields alone, for a response that may
    /// have a body (the status and request rules of [`ResponseHead::framing`] come first).
    /// Shared with the replay client, which applies its own status rules.
    pub fn response_framing(self, version: u8) -> Result<Framing, DropReason> {
        match (self.transfer, self.length) {
            (Transfer::Chunked, _) if version == 1 => Ok(Framing::Chunked),
            // Other codings, or any in HTTP/1.0: the body ends with the connection.
            (Transfer::Chunked | Transfer::Other, _) => Ok(Framing::UntilClose),
            (Transfer::Absent, ContentLength::Valid(0)) => Ok(Framing::None),
            (Transfer::Absent, ContentLength::Valid(n)) => Ok(Framing::Length(n)),
            (Transfer::Absent, ContentLength::Invalid) => Err(malformed("content-length")),
            (Transfer::Absent, ContentLength::Absent) => Ok(Framing::UntilClose),
        }
    }
}

/// Both framings were given; chunked was used (RFC 9112 §6.3 rule 3).
pub(crate) fn length_with_chunked(fields: BodyFields, framing: Framing) -> bool {
    framing == Framing::Chunked && fields.length != ContentLength::Absent
}

/// Parses a complete request head (`head` ends with its blank line).
pub(crate) fn parse_request(head: &[u8], max_headers: usize) -> Result<RequestHead, DropReason> {
    with_slots(max_headers, |slots| {
        let mut request = httparse::Request::new(slots);
        check(request.parse(head), head.len())?;
        let bad = || malformed("request line");
        let method = span(head, request.method.ok_or_else(bad)?.as_bytes()).ok_or_else(bad)?;
        let target = span(head, request.path.ok_or_else(bad)?.as_bytes()).ok_or_else(bad)?;
        let version = request.version.ok_or_else(bad)?;
        let mut headers = Vec::with_capacity(request.headers.len());
        let mut host = None;
        let mut upgrade = false;
        for header in request.headers.iter() {
            let position = header_position(head, header).ok_or(malformed("header field"))?;
            if host.is_none() && header.name.eq_ignore_ascii_case("host") {
                host = Some(position.value);
            }
            upgrade |= header.name.eq_ignore_ascii_case("upgrade") && !header.value.is_empty();
            headers.push(position);
        }
        let kind = match &head[method.0..method.1] {
            b"HEAD" => MethodKind::Head,
            b"CONNECT" => MethodKind::Connect,
            _ => MethodKind::Other,
        };
        Ok(RequestHead {
            method,
            target,
            version,
            headers,
            host,
            kind,
            fields: body_fields(request.headers),
            upgrade,
        })
    })
}

/// Parses a complete response head, leniently where framing cannot be affected (obsolete
/// line folding, whitespace before a field's colon): only status and framing are used.
pub(crate) fn parse_response(head: &[u8], max_headers: usize) -> Result<ResponseHead, DropReason> {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    with_slots(max_headers, |slots| {
        let mut response = httparse::Response::new(slots);
        check(config.parse_response(&mut response, head), head.len())?;
        let bad = || malformed("status line");
        Ok(ResponseHead {
            status: response.code.ok_or_else(bad)?,
            version: response.version.ok_or_else(bad)?,
            fields: body_fields(response.headers),
        })
    })
}

fn with_slots<'b, R>(max: usize, parse: impl FnOnce(&mut [httparse::Header<'b>]) -> R) -> R {
    if max <= INLINE_HEADERS {
        let mut slots = [httparse::EMPTY_HEADER; INLINE_HEADERS];
        parse(&mut slots[..max])
    } else {
        parse(&mut vec![httparse::EMPTY_HEADER; max])
    }
}

/// httparse must see exactly the head the reader delimited.
fn check(parsed: httparse::Result<usize>, len: usize) -> Result<(), DropReason> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == len => Ok(()),
        Ok(_) => Err(malformed("head")),
        Err(httparse::Error::TooManyHeaders) => Err(DropReason::TooManyHeaders),
        Err(httparse::Error::HeaderName) => Err(malformed("header name")),
        Err(httparse::Error::HeaderValue) => Err(malformed("header value")),
        Err(httparse::Error::NewLine) => Err(malformed("line ending")),
        Err(httparse::Error::Status) => Err(malformed("status")),
        Err(httparse::Error::Token) => Err(malformed("request line")),
        Err(httparse::Error::Version) => Err(malformed("version")),
    }
}

fn malformed(what: &'static str) -> DropReason {
    DropReason::Malformed { what }
}

/// The byte range of `part`, a sub-slice of `base`.
fn span(base: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= base.len()).then_some((start, end))
}

fn header_position(head: &[u8], header: &httparse::Header<'_>) -> Option<HeaderPos> {
    let name = span(head, header.name.as_bytes())?;
    let value = span(head, header.value)?;
    let newline = head.get(value.1..)?.iter().position(|&b| b == b'\n')?;
    Some(HeaderPos {
        name,
        value,
        line: (name.0, value.1 + newline + 1),
    })
}

fn body_fields(headers: &[httparse::Header<'_>]) -> BodyFields {
    let mut length = ContentLength::Absent;
    let mut transfer = Transfer::Absent;
    let mut chunked_seen = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            // Repeats (as fields or list members) are fine when equal (RFC 9110 §8.6).
            for member in header.value.split(|&b| b == b',') {
                length = match (length, parse_length(trim(member))) {
                    (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
                    (ContentLength::Valid(a), Some(b)) if a == b => ContentLength::Valid(a),
                    _ => ContentLength::Invalid,
                };
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer = Transfer::Other;
            for member in header.value.split(|&b| b == b',') {
                let coding = trim(member.split(|&b| b == b';').next().unwrap_or_default());
                if coding.is_empty() {
                    continue;
                }
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                transfer = if chunked && !chunked_seen {
                    Transfer::Chunked
                } else {
                    Transfer::Other
                };
                chunked_seen |= chunked;
            }
        }
    }
    BodyFields { length, transfer }
}

/// A `Content-Length` value (one list member, trimmed): ASCII digits only, no sign.
pub(crate) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(head: &str) -> BodyFields {
        let wire = format!("POST / HTTP/1.1\r\n{head}\r\n");
        parse_request(wire.as_bytes(), 100)
            .map(|h| h.fields)
            .unwrap()
    }

    #[test]
    fn positions_point_into_the_head() {
        let wire = b"GET /a?b HTTP/1.1\r\nHost: example.com \r\nX-Empty:\r\nhost: second\r\n\r\n";
        let head = parse_request(wire, 100).unwrap();
        let text = |(a, b): (usize, usize)| &wire[a..b];
        assert_eq!(text(head.method), b"GET");
        assert_eq!(text(head.target), b"/a?b");
        assert_eq!(head.version, 1);
        assert_eq!(text(head.host.unwrap()), b"example.com");
        assert_eq!(head.headers.len(), 3);
        assert_eq!(text(head.headers[0].line), b"Host: example.com \r\n");
        assert_eq!(text(head.headers[1].name), b"X-Empty");
        assert_eq!(text(head.headers[1].value), b"");
        assert_eq!(text(head.headers[1].line), b"X-Empty:\r\n");
        assert_eq!(head.kind, MethodKind::Other);
    }

    #[test]
    fn content_length_repeats_must_agree() {
        let length = |head: &str| fields(head).length;
        assert_eq!(
            length("Content-Length: 5, 5\r\nContent-Length: 5\r\n"),
            ContentLength::Valid(5)
        );
        assert_eq!(
            length("Content-Length: 5\r\nContent-Length: 6\r\n"),
            ContentLength::Invalid
        );
        assert_eq!(
            fields("Content-Length: +5\r\n").length,
            ContentLength::Invalid
        );
        assert_eq!(fields("Content-Length:\r\n").length, ContentLength::Invalid);
        assert_eq!(
            fields("Content-Length: 99999999999999999999\r\n").length,
            ContentLength::Invalid
        );
    }

    #[test]
    fn chunked_must_be_last_and_once() {
        let te = |v: &str| fields(&format!("Transfer-Encoding: {v}\r\n")).transfer;
        assert_eq!(te("gzip, Chunked"), Transfer::Chunked);
        assert_eq!(te("chunked;x=1"), Transfer::Chunked);
        assert_eq!(te("chunked, gzip"), Transfer::Other);
        assert_eq!(te("chunked, chunked"), Transfer::Other);
        assert_eq!(te(""), Transfer::Other);
        assert_eq!(fields("").transfer, Transfer::Absent);
    }

    #[test]
    fn limits_and_errors_map_to_reasons() {
        let wire = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse_request(wire, 1), Err(DropReason::TooManyHeaders));
        assert!(parse_request(&wire[..wire.len() - 2], 100).is_err());
        let folded = b"HTTP/1.1 200 OK\r\nA : 1\r\nB: x\r\n y\r\n\r\n";
        assert_eq!(parse_response(folded, 100).map(|h| h.status), Ok(200));
        assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n", 100).is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\n\r\n", 1000).is_ok());
    }
}
