//! Message bodies (RFC 9112 §6–7): how a body is delimited, and a streaming reader of each
//! delimitation that only finds where the body ends. Bytes are never copied or decoded
//! here, so the same reader serves bodies that are kept and bodies that are passed over,
//! on the capture side and in the replay client reading a shadow's reply.

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// Progress through one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    Length {
        remaining: u64,
    },
    /// `strict`: chunk lines as the strictest mainstream server reads them (requests).
    Chunked {
        chunk: Chunk,
        strict: bool,
    },
    UntilClose,
}

/// What one call to [`Body::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Bytes of the slice that belong to the body.
    pub used: usize,
    /// The body ended with the last used byte.
    pub done: bool,
}

/// The chunked framing is broken at byte `at` of the slice fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadChunk {
    pub at: usize,
    /// What is broken, for error messages (the replay client reports it).
    pub what: &'static str,
}

/// Where a chunked body reader stands. Leniently (responses) lines end in CRLF or a bare
/// LF, as the heads do, and whitespace may follow the size. Strictly (requests) lines end in
/// CRLF, and a size line holds no whitespace nor control byte: nginx, Go and llhttp refuse a
/// bare LF there, Go and llhttp whitespace around `;`, llhttp whitespace after the size, and
/// where they disagree production may have framed the body otherwise. A size of more than
/// 16 digits (leading zeros counted, as Go counts them) is refused either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// In the hexadecimal size (`digits` read so far).
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: optional whitespace, then `;` extensions once `ext` is set.
    Extension {
        size: u64,
        ext: bool,
    },
    /// Read the CR ending the size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer field line or of the final blank line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Most hexadecimal digits in a chunk size.
const MAX_SIZE_DIGITS: u8 = 16;

impl Body {
    /// A body read leniently (responses).
    pub fn new(framing: Framing) -> Body {
        Body::framed(framing, false)
    }

    /// A body read strictly (requests).
    pub fn strict(framing: Framing) -> Body {
        Body::framed(framing, true)
    }

    fn framed(framing: Framing, strict: bool) -> Body {
        match framing {
            Framing::None => Body::Length { remaining: 0 },
            Framing::Length(n) => Body::Length { remaining: n },
            Framing::Chunked => Body::Chunked {
                chunk: Chunk::Size { size: 0, digits: 0 },
                strict,
            },
            Framing::UntilClose => Body::UntilClose,
        }
    }

    /// Reads as much of `bytes` as belongs to the body. An empty slice completes an empty
    /// `Length` body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Fed, BadChunk> {
        self.feed_payload(bytes, |_| {})
    }

    /// As [`Body::feed`], handing each run of payload bytes (chunk data, without framing)
    /// to `payload` as it goes.
    pub fn feed_payload(
        &mut self,
        bytes: &[u8],
        mut payload: impl FnMut(&[u8]),
    ) -> Result<Fed, BadChunk> {
        match self {
            Body::Length { remaining } => {
                let used = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *remaining -= used as u64;
                payload(&bytes[..used]);
                Ok(Fed {
                    used,
                    done: *remaining == 0,
                })
            }
            Body::Chunked { chunk, strict } => chunk.feed(bytes, *strict, payload),
            Body::UntilClose => {
                payload(bytes);
                Ok(Fed {
                    used: bytes.len(),
                    done: false,
                })
            }
        }
    }
}

impl Chunk {
    fn feed(
        &mut self,
        bytes: &[u8],
        strict: bool,
        mut payload: impl FnMut(&[u8]),
    ) -> Result<Fed, BadChunk> {
        let mut at = 0;
        while at < bytes.len() {
            if let Chunk::Data { remaining } = self {
                // Chunk data is skipped in bulk: only framing bytes are looked at one by one.
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - at);
                payload(&bytes[at..at + take]);
                at += take;
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = Chunk::DataCr;
                }
                continue;
            }
            *self = self
                .step(bytes[at], strict)
                .map_err(|what| BadChunk { at, what })?;
            at += 1;
            if *self == Chunk::Done {
                break;
            }
        }
        Ok(Fed {
            used: at,
            done: *self == Chunk::Done,
        })
    }

    /// The state after framing byte `b`, or what `b` breaks.
    fn step(self, b: u8, strict: bool) -> Result<Chunk, &'static str> {
        let line_end = |size: u64| {
            if size == 0 {
                Chunk::TrailerStart
            } else {
                Chunk::Data { remaining: size }
            }
        };
        if strict {
            self.strict_check(b)?;
        }
        Ok(match (self, b) {
            (Chunk::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                if digits >= MAX_SIZE_DIGITS {
                    return Err("chunk size too large");
                }
                // `to_digit(16)` cannot fail on a hex digit; the error keeps this panic-free.
                let digit = (b as char).to_digit(16).ok_or("chunk size line")?;
                Chunk::Size {
                    size: (size << 4) | u64::from(digit),
                    digits: digits + 1,
                }
            }
            (Chunk::Size { digits: 0, .. }, _) => return Err("chunk size missing"),
            (Chunk::Size { size, .. }, b' ' | b'\t') => Chunk::Extension { size, ext: false },
            (Chunk::Size { size, .. } | Chunk::Extension { size, .. }, b';') => {
                Chunk::Extension { size, ext: true }
            }
            (Chunk::Size { size, .. } | Chunk::Extension { size, .. }, b'\r') => {
                Chunk::SizeLf { size }
            }
            (Chunk::Size { size, .. } | Chunk::Extension { size, .. }, b'\n') => line_end(size),
            (Chunk::Extension { size, ext: false }, b' ' | b'\t') => {
                Chunk::Extension { size, ext: false }
            }
            (Chunk::Extension { size, ext: true }, _) => Chunk::Extension { size, ext: true },
            (Chunk::SizeLf { size }, b'\n') => line_end(size),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataCr | Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart | Chunk::EndLf, b'\n') => Chunk::Done,
            (Chunk::TrailerLine, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerLine | Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
            (Chunk::Size { .. } | Chunk::Extension { .. }, _) => return Err("chunk size line"),
            (Chunk::DataCr | Chunk::DataLf, _) => return Err("no line end after data"),
            _ => return Err("line ending"),
        })
    }

    /// What the strict reading refuses that the lenient one takes.
    fn strict_check(self, b: u8) -> Result<(), &'static str> {
        let in_size_line = matches!(self, Chunk::Size { .. } | Chunk::Extension { .. });
        let bare_lf_allowed = matches!(
            self,
            Chunk::SizeLf { .. } | Chunk::DataLf | Chunk::TrailerLf | Chunk::EndLf
        );
        match b {
            b'\n' if !bare_lf_allowed => Err("line ending without CR"),
            b' ' | b'\t' if in_size_line => Err("whitespace in chunk size line"),
            _ if in_size_line && b != b'\r' && (b < 0x20 || b == 0x7F) => {
                Err("control byte in chunk size line")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `piece` bytes; returns the bytes used and whether done.
    fn run(wire: &[u8], piece: usize) -> Result<(usize, bool), usize> {
        let mut body = Body::new(Framing::Chunked);
        let mut used = 0;
        for part in wire.chunks(piece) {
            let fed = body.feed(part).map_err(|bad| used + bad.at)?;
            used += fed.used;
            if fed.done {
                return Ok((used, true));
            }
        }
        Ok((used, false))
    }

    #[test]
    fn chunked_ends_after_trailers_at_any_split() {
        let body =
            b"4;name=\"v\"\r\nWiki\r\n5 ; x\r\npedia\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
        let mut wire = body.to_vec();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        for piece in 1..=wire.len() {
            assert_eq!(run(&wire, piece), Ok((body.len(), true)), "piece {piece}");
        }
    }

    #[test]
    fn bare_lf_lines_are_accepted_leniently() {
        assert_eq!(run(b"3\nabc\n0\n\n", 64), Ok((9, true)));
    }

    #[test]
    fn whitespace_after_a_chunk_size_is_accepted_leniently_however_long() {
        // Servers answer with BWS after the size (RFC 9112 §7.1.1 lets a recipient accept
        // it); responses are read leniently.
        assert_eq!(run(b"3 \t \r\nabc\r\n0\t\r\n\r\n", 64), Ok((17, true)));
    }

    #[test]
    fn strict_chunk_lines_refuse_what_servers_disagree_on() {
        let strict = |wire: &[u8]| Body::strict(Framing::Chunked).feed(wire).map(|f| f.done);
        assert_eq!(
            strict(b"4;name=\"v\"\r\nWiki\r\n0\r\nT: 1\r\n\r\n"),
            Ok(true)
        );
        assert_eq!(strict(b"00000A\r\n0123456789\r\n0\r\n\r\n"), Ok(true));
        for (bad, at) in [
            (&b"3\nabc\r\n"[..], 1),
            (b"3\r\nabc\n", 6),
            (b"3 \r\nabc\r\n", 1),
            (b"3 ; x\r\n", 1),
            (b"3; x\r\n", 2),
            (b"3;x\x01\r\n", 3),
            (b"0\r\nT: 1\n", 7),
            (b"0\r\n\n", 3),
        ] {
            assert_eq!(
                Body::strict(Framing::Chunked).feed(bad).map_err(|b| b.at),
                Err(at),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn broken_framing_is_located() {
        assert_eq!(run(b"x\r\n", 64), Err(0));
        assert_eq!(run(b"3\r\nabcX", 64), Err(6));
        assert_eq!(run(b"3x\r\n", 64), Err(1));
        assert_eq!(run(b"3\rx", 64), Err(2));
        assert_eq!(run(b"FFFFFFFFFFFFFFFFF\r\n", 64), Err(16));
        assert_eq!(run(b"00000000000000001\r\n", 64), Err(16));
        assert_eq!(run(b"0\r\nT: 1\rx", 64), Err(8));
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        assert_eq!(run(b"5\r\nab", 64), Ok((5, false)));
        assert_eq!(run(b"0\r\nT: 1\r\n", 64), Ok((9, false)));
    }

    /// The replay client reports `what`; each kind of break has its own.
    #[test]
    fn broken_framing_says_what_broke() {
        let what = |wire: &[u8]| Body::new(Framing::Chunked).feed(wire).err().map(|b| b.what);
        assert_eq!(what(b"x\r\n"), Some("chunk size missing"));
        assert_eq!(what(b"\r\n"), Some("chunk size missing"));
        assert_eq!(what(b"3x\r\n"), Some("chunk size line"));
        assert_eq!(what(b"3 4\r\n"), Some("chunk size line"));
        assert_eq!(what(b"FFFFFFFFFFFFFFFFF\r\n"), Some("chunk size too large"));
        assert_eq!(what(b"3\r\nabcX"), Some("no line end after data"));
        assert_eq!(what(b"3\rx"), Some("line ending"));
        assert_eq!(what(b"0\r\nT: 1\rx"), Some("line ending"));
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let mut body = Body::new(Framing::Length(3));
        assert_eq!(
            body.feed(b"ab"),
            Ok(Fed {
                used: 2,
                done: false
            })
        );
        assert_eq!(
            body.feed(b"cdef"),
            Ok(Fed {
                used: 1,
                done: true
            })
        );
        let mut none = Body::new(Framing::None);
        assert_eq!(
            none.feed(b""),
            Ok(Fed {
                used: 0,
                done: true
            })
        );
        let mut close = Body::new(Framing::UntilClose);
        assert_eq!(
            close.feed(b"xyz"),
            Ok(Fed {
                used: 3,
                done: false
            })
        );
    }

    #[test]
    fn payload_is_the_body_without_its_chunk_framing_in_any_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\nNEXT";
        for piece in 1..wire.len() {
            let mut body = Body::new(Framing::Chunked);
            let mut payload = Vec::new();
            let mut used = 0;
            for part in wire.chunks(piece) {
                let fed = body
                    .feed_payload(part, |bytes| payload.extend_from_slice(bytes))
                    .unwrap();
                used += fed.used;
                if fed.done {
                    break;
                }
            }
            assert_eq!(payload, b"hello world", "pieces of {piece}");
            assert_eq!(used, wire.len() - 4);
        }
        let mut length = Body::new(Framing::Length(3));
        let mut payload = Vec::new();
        length
            .feed_payload(b"abcdef", |bytes| payload.extend_from_slice(bytes))
            .unwrap();
        assert_eq!(payload, b"abc");
    }
}
