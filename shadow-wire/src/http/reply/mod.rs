//! Reading a shadow's reply from the bytes received: interim (1xx) heads, then the final
//! head, where its body ends (RFC 9112 §6.3) and whether the connection persists after it.
//! Bodies are read past by the capture side's body reader ([`Body`]), and kept only when the
//! reply is diffed ([`ResponseReader::keeping`]).

use super::{
    Body, BodyFields, BodyKeeper, ContentLength, Framing, KeptResponse, SharedBudget, Transfer,
    head_fields, parse_length, persists,
};

/// Largest response head read; a larger one is a `HeadTooLarge` error.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
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
    HeadTooLarge {
        /// The cap.
        max: usize,
    },
    /// The head has more fields than the cap.
    #[error("more than {max} header fields in the response head")]
    TooManyHeaders {
        /// The cap.
        max: usize,
    },
    /// httparse rejected the head.
    #[error("malformed response head")]
    Head {
        /// What httparse said.
        #[source]
        source: httparse::Error,
    },
    /// Not digits, or repeated with different values.
    #[error("invalid Content-Length")]
    ContentLength,
    /// Interim responses kept coming.
    #[error("more than {max} interim (1xx) responses")]
    TooManyInterim {
        /// The cap.
        max: usize,
    },
    /// The chunked body's framing is broken.
    #[error("broken chunked framing: {what}")]
    Chunked {
        /// Where it broke.
        what: &'static str,
    },
}

/// The final response, read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    /// The status code.
    pub status: u16,
    /// The response lets the connection carry another request.
    pub persists: bool,
}

/// What one call to [`ResponseReader::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes read from the front of the input; the rest must be offered again, with more.
    pub consumed: usize,
    /// The final response ended with the last consumed byte.
    pub complete: Option<Complete>,
}

/// Reads one reply (interim responses and the final one) incrementally.
#[derive(Debug)]
pub struct ResponseReader {
    head_request: bool,
    interim: usize,
    state: State,
    /// Keeps the final response, when the reply is diffed: its keeper until its head comes.
    keep: Option<Keep>,
}

#[derive(Debug)]
enum Keep {
    Waiting(BodyKeeper),
    Reading(u16, Vec<(String, String)>, BodyKeeper),
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

impl ResponseReader {
    /// A reader for the reply to a request; `head_request`: the request was `HEAD`, so the
    /// reply has no body whatever its head says.
    pub fn new(head_request: bool) -> Self {
        ResponseReader {
            head_request,
            interim: 0,
            state: State::Head,
            keep: None,
        }
    }

    /// A reader that also keeps the final response: its head's fields, and its body
    /// de-chunked up to `limit` bytes taken from `budget` (past it, its length and digest).
    pub fn keeping(head_request: bool, limit: usize, budget: SharedBudget) -> Self {
        ResponseReader {
            keep: Some(Keep::Waiting(BodyKeeper::new(limit, budget))),
            ..ResponseReader::new(head_request)
        }
    }

    /// The final response as kept, once complete (see [`ResponseReader::keeping`]).
    pub fn kept(&mut self) -> Option<KeptResponse> {
        match self.keep.take()? {
            Keep::Reading(status, headers, keeper) => Some(KeptResponse {
                status,
                headers,
                body: keeper.finish(),
            }),
            Keep::Waiting(_) => None,
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
                    if (100..200).contains(&head.status) && head.status != 101 {
                        at += len;
                        self.interim += 1;
                        if self.interim > MAX_INTERIM {
                            return Err(ResponseError::TooManyInterim { max: MAX_INTERIM });
                        }
                        continue;
                    }
                    if let Some(Keep::Waiting(keeper)) = self.keep.take() {
                        self.keep = head_fields(&input[at..at + len])
                            .map(|(status, fields)| Keep::Reading(status, fields, keeper));
                    }
                    at += len;
                    self.state = head.body_state(self.head_request)?;
                }
                State::Body {
                    status,
                    persists,
                    body,
                } => {
                    let fed = match &mut self.keep {
                        Some(Keep::Reading(_, _, keeper)) => {
                            body.feed_payload(&input[at..], |payload| keeper.push(payload))
                        }
                        _ => body.feed(&input[at..]),
                    }
                    .map_err(|bad| ResponseError::Chunked { what: bad.what })?;
                    at += fed.used;
                    if !fed.done {
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

/// What the reader needs from a head.
struct Head {
    status: u16,
    version: u8,
    persists: bool,
    fields: BodyFields,
}

impl Head {
    /// The state after this final head (RFC 9112 §6.3).
    fn body_state(self, head_request: bool) -> Result<State, ResponseError> {
        let status = self.status;
        // No body after the copy's own HEAD, nor with 101, 204 or 304 (other 1xx are
        // interim and never get here); only then do the framing fields count.
        let framing = if head_request || status == 101 || status == 204 || status == 304 {
            Framing::None
        } else {
            // The one error is an invalid Content-Length that would delimit the body.
            self.fields
                .response_framing(self.version)
                .map_err(|_| ResponseError::ContentLength)?
        };
        // After 101 the connection speaks another protocol: never reuse it.
        let persists = self.persists && status != 101 && framing != Framing::UntilClose;
        Ok(State::Body {
            status,
            persists,
            body: Body::new(framing),
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
    let head = Head {
        status: response.code.unwrap_or(0),
        version,
        persists: persists(version, response.headers),
        fields: body_fields(response.headers),
    };
    Ok(Some((len, head)))
}

/// The framing fields. Not `http::head`'s scan, which differs in two cases the capture
/// side has never treated this way: here members are trimmed of all ASCII whitespace
/// (so the CRLF an obsolete line fold leaves inside a value is ignored, as RFC 9112 §5.2
/// asks), and an empty repeated `Transfer-Encoding` field keeps an earlier `chunked`.
fn body_fields(headers: &[httparse::Header<'_>]) -> BodyFields {
    let mut fields = BodyFields {
        length: ContentLength::Absent,
        transfer: Transfer::Absent,
    };
    let mut chunked_seen = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            // Repeats, as fields or list members, are fine when equal (RFC 9110 §8.6).
            for member in header.value.split(|&b| b == b',') {
                fields.length = match (fields.length, parse_length(member.trim_ascii())) {
                    (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
                    (ContentLength::Valid(m), Some(n)) if m == n => ContentLength::Valid(n),
                    _ => ContentLength::Invalid,
                };
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if fields.transfer == Transfer::Absent {
                fields.transfer = Transfer::Other;
            }
            for member in header.value.split(|&b| b == b',') {
                let coding = member.split(|&b| b == b';').next().unwrap_or_default();
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                // `chunked` counts only as the last coding, and only once.
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                fields.transfer = if chunked && !chunked_seen {
                    Transfer::Chunked
                } else {
                    Transfer::Other
                };
                chunked_seen |= chunked;
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests;
