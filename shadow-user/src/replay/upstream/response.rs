//! Reading a shadow's reply from the bytes received: interim (1xx) heads, then the final
//! head, where its body ends (RFC 9112 §6.3) and whether the connection persists after it.
//! Bodies are read past, never kept.

use super::{chunked::Chunked, persist::persists};

/// Largest response head read; a larger one is a `HeadTooLarge` error.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// Most interim responses before the final one: each is small, but a shadow must not keep
/// a copy busy with them until its timeout.
const MAX_INTERIM: usize = 16;

/// Why a shadow's reply is not readable HTTP/1.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The head (status line, fields, blank line) is longer than the cap.
    #[error("response head larger than {max} bytes")]
    HeadTooLarge { max: usize },
    /// The head has more fields than the cap.
    #[error("more than {max} header fields in the response head")]
    TooManyHeaders { max: usize },
    /// httparse rejected the head.
    #[error("malformed response head")]
    Head {
        #[source]
        source: httparse::Error,
    },
    /// Not digits, or repeated with different values.
    #[error("invalid Content-Length")]
    ContentLength,
    /// Interim responses kept coming.
    #[error("more than {max} interim (1xx) responses")]
    TooManyInterim { max: usize },
    /// The chunked body's framing is broken.
    #[error("broken chunked framing: {what}")]
    Chunked { what: &'static str },
}

/// The final response, read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Complete {
    pub status: u16,
    /// The response lets the connection carry another request.
    pub persists: bool,
}

/// What one call to [`ResponseReader::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decoded {
    /// Bytes read from the front of the input; the rest must be offered again, with more.
    pub consumed: usize,
    /// The final response ended with the last consumed byte.
    pub complete: Option<Complete>,
}

/// Reads one reply (interim responses and the final one) incrementally.
#[derive(Debug)]
pub(super) struct ResponseReader {
    head_request: bool,
    interim: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        status: u16,
        persists: bool,
        body: Body,
    },
    Done,
}

/// Progress through the final response's body.
#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl ResponseReader {
    /// A reader for the reply to a request; `head_request`: the request was `HEAD`, so the
    /// reply has no body whatever its head says.
    pub fn new(head_request: bool) -> Self {
        ResponseReader {
            head_request,
            interim: 0,
            state: State::Head,
        }
    }

    /// Reads what it can of `input`, the bytes received and not yet consumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ResponseError> {
        let pending = |consumed| Decoded {
            consumed,
            complete: None,
        };
        let mut at = 0;
        loop {
            match &mut self.state {
                State::Done => return Ok(pending(at)),
                State::Head => {
                    let Some((len, head)) = parse_head(&input[at..])? else {
                        return Ok(pending(at));
                    };
                    at += len;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        self.interim += 1;
                        if self.interim > MAX_INTERIM {
                            return Err(ResponseError::TooManyInterim { max: MAX_INTERIM });
                        }
                        continue;
                    }
                    self.state = head.body_state(self.head_request)?;
                }
                State::Body {
                    status,
                    persists,
                    body,
                } => {
                    let (used, done) = body.feed(&input[at..])?;
                    at += used;
                    if !done {
                        return Ok(pending(at));
                    }
                    let complete = Complete {
                        status: *status,
                        persists: *persists,
                    };
                    self.state = State::Done;
                    return Ok(Decoded {
                        consumed: at,
                        complete: Some(complete),
                    });
                }
            }
        }
    }

    /// The final response, if the stream's end completes it (a body delimited by close).
    pub fn end_of_stream(&self) -> Option<Complete> {
        match self.state {
            State::Body {
                status,
                body: Body::UntilClose,
                ..
            } => Some(Complete {
                status,
                persists: false,
            }),
            _ => None,
        }
    }
}

impl Body {
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), ResponseError> {
        Ok(match self {
            Body::Length(remaining) => {
                let used = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *remaining -= used as u64;
                (used, *remaining == 0)
            }
            Body::Chunked(chunked) => chunked.feed(bytes)?,
            Body::UntilClose => (bytes.len(), false),
        })
    }
}

/// What the reader needs from a head.
struct Head {
    status: u16,
    version: u8,
    persists: bool,
    /// `Content-Length`: `Err` when not digits or repeated with different values, which
    /// only matters when it delimits the body.
    length: Result<Option<u64>, ResponseError>,
    /// A Transfer-Encoding field is present; `chunked`: it ends in `chunked` (once).
    transfer: Option<bool>,
}

impl Head {
    /// The state after this final head (RFC 9112 §6.3).
    fn body_state(self, head_request: bool) -> Result<State, ResponseError> {
        let status = self.status;
        let body = if head_request || status == 101 || status == 204 || status == 304 {
            Body::Length(0)
        } else {
            match (self.transfer, self.length) {
                (Some(true), _) if self.version >= 1 => Body::Chunked(Chunked::new()),
                // Other codings, or any in HTTP/1.0: the body ends with the connection.
                (Some(_), _) => Body::UntilClose,
                (None, Ok(Some(n))) => Body::Length(n),
                (None, Ok(None)) => Body::UntilClose,
                (None, Err(invalid)) => return Err(invalid),
            }
        };
        // After 101 the connection speaks another protocol: never reuse it.
        let persists = self.persists && status != 101 && !matches!(body, Body::UntilClose);
        Ok(State::Body {
            status,
            persists,
            body,
        })
    }
}

/// The head at the front of `input` and its length, or `None` if it is not all there yet.
fn parse_head(input: &[u8]) -> Result<Option<(usize, Head)>, ResponseError> {
    let mut config = httparse::ParserConfig::default();
    // Lenient where framing cannot be affected, as shadows are not ours to fix.
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let too_large = ResponseError::HeadTooLarge {
        max: MAX_HEAD_BYTES,
    };
    let len = match config.parse_response(&mut response, input) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => return Err(too_large),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() >= MAX_HEAD_BYTES => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ResponseError::TooManyHeaders { max: MAX_HEADERS });
        }
        Err(source) => return Err(ResponseError::Head { source }),
    };
    // A complete head always has both; 0 would only make the reply unreusable.
    let version = response.version.unwrap_or(0);
    let mut head = Head {
        status: response.code.unwrap_or(0),
        version,
        persists: persists(version, response.headers),
        length: Ok(None),
        transfer: None,
    };
    let mut chunked_seen = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            // Repeats, as fields or list members, are fine when equal (RFC 9110 §8.6).
            for member in header.value.split(|&b| b == b',') {
                head.length = match (head.length, parse_length(member.trim_ascii())) {
                    (Ok(None), Some(n)) => Ok(Some(n)),
                    (Ok(Some(m)), Some(n)) if m == n => Ok(Some(n)),
                    _ => Err(ResponseError::ContentLength),
                };
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer.get_or_insert(false);
            for member in header.value.split(|&b| b == b',') {
                let coding = member.split(|&b| b == b';').next().unwrap_or_default();
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                // `chunked` counts only as the last coding, and only once.
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                head.transfer = Some(chunked && !chunked_seen);
                chunked_seen |= chunked;
            }
        }
    }
    Ok(Some((len, head)))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}
