//! Heads (start line and header fields), parsed with httparse once per message into byte
//! positions within the message, and what their framing fields say (RFC 9112 §6).

use super::{DropReason, body::Framing, request::HeaderPos};

/// Header slots kept on the stack; a head with more lines uses the heap.
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
    /// The connection persists after this request (RFC 9112 §9.3).
    pub persists: bool,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub version: u8,
    pub fields: BodyFields,
    /// The connection persists after this response (RFC 9112 §9.3).
    pub persists: bool,
}

impl RequestHead {
    /// How the body is delimited (RFC 9112 §6.3). Where servers would answer 400 or 501,
    /// or where the mainstream ones disagree (so production may have read something else),
    /// the request is malformed: see [`request_fields`] for the field rules.
    pub fn framing(&self) -> Result<Framing, DropReason> {
        // The request ends at its head, whatever it says of a body: what follows is the
        // tunnel if the answer is 2xx (as llhttp reads it).
        if self.kind == MethodKind::Connect {
            return Ok(Framing::None);
        }
        match (self.fields.transfer, self.fields.length) {
            // A server treats Transfer-Encoding in HTTP/1.0 as faulty framing (§6.1).
            (Transfer::Chunked | Transfer::Other, _) if self.version == 0 => {
                Err(malformed("transfer-encoding in HTTP/1.0"))
            }
            (Transfer::Chunked, ContentLength::Absent) => Ok(Framing::Chunked),
            (Transfer::Chunked, _) => Err(malformed("content-length with transfer-encoding")),
            (Transfer::Other, _) => Err(malformed("transfer-encoding other than chunked")),
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

impl BodyFields {
    /// A `Content-Length` or `Transfer-Encoding` field is present.
    pub fn has_body_fields(self) -> bool {
        self.length != ContentLength::Absent || self.transfer != Transfer::Absent
    }
}

/// What a message's version and `Connection` fields say about the connection after it
/// (RFC 9112 §9.3): HTTP/1.1 persists unless `close`, HTTP/1.0 only with `keep-alive`.
pub fn persists(version: u8, headers: &[httparse::Header<'_>]) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    let fields = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"));
    for option in fields.flat_map(|h| h.value.split(|&b| b == b',')) {
        let option = option.trim_ascii();
        close |= option.eq_ignore_ascii_case(b"close");
        keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
    }
    !close && (version >= 1 || keep_alive)
}

/// Both framings were given; chunked was used (RFC 9112 §6.3 rule 3).
pub(crate) fn length_with_chunked(fields: BodyFields, framing: Framing) -> bool {
    framing == Framing::Chunked && fields.length != ContentLength::Absent
}

/// Parses a complete request head (`head` ends with its blank line), as strictly as the
/// strictest mainstream server where they disagree: line endings must be CRLF (nginx, Envoy
/// and Go take a bare LF, llhttp refuses it), the target must be ASCII (nginx takes
/// bytes above 0x7F, Envoy and llhttp refuse them); httparse itself refuses obs-fold, a
/// bare CR, whitespace before a colon and more than one space between the parts of the
/// request line. `max_headers`, if set, is a policy limit on the number of fields.
pub(crate) fn parse_request(
    head: &[u8],
    max_headers: Option<usize>,
) -> Result<RequestHead, DropReason> {
    if has_bare_lf(head) {
        return Err(malformed("line ending without CR"));
    }
    with_slots(head, |slots| {
        let mut request = httparse::Request::new(slots);
        check(request.parse(head), head.len())?;
        let bad = || malformed("request line");
        let method = span(head, request.method.ok_or_else(bad)?.as_bytes()).ok_or_else(bad)?;
        let target = span(head, request.path.ok_or_else(bad)?.as_bytes()).ok_or_else(bad)?;
        if !head[target.0..target.1].is_ascii() {
            return Err(malformed("request target not ASCII"));
        }
        let version = request.version.ok_or_else(bad)?;
        if max_headers.is_some_and(|max| request.headers.len() > max) {
            return Err(DropReason::TooManyHeaders);
        }
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
            fields: request_fields(request.headers),
            upgrade,
            persists: persists(version, request.headers),
        })
    })
}

/// True if a line of `head` ends in LF without CR before it.
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// Parses a complete response head, leniently where framing cannot be affected (obsolete
/// line folding, whitespace before a field's colon): only status and framing are used.
pub(crate) fn parse_response(
    head: &[u8],
    max_headers: Option<usize>,
) -> Result<ResponseHead, DropReason> {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    with_slots(head, |slots| {
        let mut response = httparse::Response::new(slots);
        check(config.parse_response(&mut response, head), head.len())?;
        if max_headers.is_some_and(|max| response.headers.len() > max) {
            return Err(DropReason::TooManyHeaders);
        }
        let bad = || malformed("status line");
        let version = response.version.ok_or_else(bad)?;
        Ok(ResponseHead {
            status: response.code.ok_or_else(bad)?,
            version,
            fields: body_fields(response.headers),
            persists: persists(version, response.headers),
        })
    })
}

/// Runs `parse` with a header slot for every line of `head`: the head byte limit is then the
/// only bound on how many fields a head may have, as for the servers production runs
/// (nginx and Go limit bytes; Node and Envoy counts go to thousands when configured).
fn with_slots<'b, R>(head: &[u8], parse: impl FnOnce(&mut [httparse::Header<'b>]) -> R) -> R {
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    if lines <= INLINE_HEADERS {
        let mut slots = [httparse::EMPTY_HEADER; INLINE_HEADERS];
        parse(&mut slots[..lines])
    } else {
        parse(&mut vec![httparse::EMPTY_HEADER; lines])
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

/// The framing fields of a request, read as strictly as the strictest mainstream server
/// reads them, since a request framed differently by production would be copied wrong:
/// `Content-Length` once, digits only (a repeat, even an equal one or a list, is refused by
/// nginx, Envoy and llhttp); `Transfer-Encoding` once and exactly `chunked` (nginx and Go
/// answer 501 to anything else, nginx 400 to a repeat).
fn request_fields(headers: &[httparse::Header<'_>]) -> BodyFields {
    let mut length = ContentLength::Absent;
    let mut transfer = Transfer::Absent;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            length = match (length, parse_length(trim(header.value))) {
                (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
                _ => ContentLength::Invalid,
            };
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked = trim(header.value).eq_ignore_ascii_case(b"chunked");
            transfer = match transfer {
                Transfer::Absent if chunked => Transfer::Chunked,
                _ => Transfer::Other,
            };
        }
    }
    BodyFields { length, transfer }
}

/// The framing fields of a response, read leniently (RFC 9110 §8.6 list repeats, codings
/// before `chunked`): responses are measured, never copied, and production's clients read
/// them as they are.
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

    /// Framing fields of a response with `head`'s fields.
    fn fields(head: &str) -> BodyFields {
        let wire = format!("HTTP/1.1 200 OK\r\n{head}\r\n");
        parse_response(wire.as_bytes(), None)
            .map(|h| h.fields)
            .unwrap()
    }

    /// Framing of a request with `head`'s fields.
    fn request_framing(head: &str) -> Result<Framing, DropReason> {
        let wire = format!("POST / HTTP/1.1\r\n{head}\r\n");
        parse_request(wire.as_bytes(), None)?.framing()
    }

    #[test]
    fn positions_point_into_the_head() {
        let wire = b"GET /a?b HTTP/1.1\r\nHost: example.com \r\nX-Empty:\r\nhost: second\r\n\r\n";
        let head = parse_request(wire, None).unwrap();
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
    fn response_content_length_repeats_must_agree() {
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
    fn response_chunked_must_be_last_and_once() {
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
        assert_eq!(
            parse_request(wire, Some(1)),
            Err(DropReason::TooManyHeaders)
        );
        assert!(parse_request(wire, Some(2)).is_ok());
        assert!(parse_request(&wire[..wire.len() - 2], None).is_err());
        let folded = b"HTTP/1.1 200 OK\r\nA : 1\r\nB: x\r\n y\r\n\r\n";
        assert_eq!(parse_response(folded, None).map(|h| h.status), Ok(200));
        assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n", None).is_err());
    }

    #[test]
    fn any_number_of_fields_fits_without_a_count_limit() {
        let mut wire = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5000 {
            wire.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&wire, None).unwrap().headers.len(), 5000);
    }

    /// Where servers disagree, the request is refused: production may have read it
    /// differently, or not at all.
    #[test]
    fn request_heads_servers_disagree_on_are_malformed() {
        for bad in [
            &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\n",
            b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",
            b"POST / HTTP/1.1\r\nA: 1\r\n Content-Length: 38\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET /foo bar/ HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(bad, None), Err(DropReason::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let method = |wire: &[u8]| {
            let head = parse_request(wire, None).unwrap();
            wire[head.method.0..head.method.1].to_vec()
        };
        assert_eq!(method(b"M-SEARCH * HTTP/1.1\r\n\r\n"), b"M-SEARCH");
        assert_eq!(method(b"MKCOL /d HTTP/1.1\r\n\r\n"), b"MKCOL");
    }

    #[test]
    fn request_framing_is_read_as_the_strictest_server_reads_it() {
        assert_eq!(
            request_framing("Content-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing("Content-Length: 007\r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            request_framing("Transfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        for bad in [
            "Content-Length: 5, 5\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked;x=1\r\n",
        ] {
            assert!(
                matches!(request_framing(bad), Err(DropReason::Malformed { .. })),
                "{bad}"
            );
        }
        let connect = b"CONNECT h:443 HTTP/1.0\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            parse_request(connect, None).unwrap().framing(),
            Ok(Framing::None)
        );
    }
}
