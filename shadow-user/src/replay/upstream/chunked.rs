//! The end of a chunked response body (RFC 9112 §7.1): chunk sizes, extensions, data and
//! trailer fields are read past, one framing byte at a time and chunk data in bulk, without
//! keeping any of it.

use super::response::ResponseError;

/// Where the reader stands. Lines end in CRLF or, leniently, a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// In the hexadecimal size; `digits` read so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace, then a `;` extension once `ext` is set.
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
    /// At the start of a trailer field line, or of the final blank line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunked {
    pub fn new() -> Self {
        Chunked::Size { size: 0, digits: 0 }
    }

    /// Reads what of `bytes` belongs to the body: returns how many bytes that is, and
    /// whether the body ended with the last of them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), ResponseError> {
        let mut at = 0;
        while at < bytes.len() && *self != Chunked::Done {
            if let Chunked::Data { remaining } = self {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - at);
                at += take;
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = Chunked::DataCr;
                }
                continue;
            }
            *self = self.step(bytes[at])?;
            at += 1;
        }
        Ok((at, *self == Chunked::Done))
    }

    /// The state after framing byte `b`.
    fn step(self, b: u8) -> Result<Chunked, ResponseError> {
        let bad = |what| ResponseError::Chunked { what };
        let line_end = |size: u64| match size {
            0 => Chunked::TrailerStart,
            _ => Chunked::Data { remaining: size },
        };
        Ok(match (self, b) {
            (Chunked::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                // `to_digit(16)` cannot fail on a hex digit; 0 keeps this panic-free.
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(bad("chunk size too large"))?;
                Chunked::Size {
                    size,
                    digits: digits.saturating_add(1),
                }
            }
            (Chunked::Size { digits: 0, .. }, _) => return Err(bad("chunk size missing")),
            (
                Chunked::Size { size, .. } | Chunked::Extension { size, ext: false },
                b' ' | b'\t',
            ) => Chunked::Extension { size, ext: false },
            (Chunked::Size { size, .. } | Chunked::Extension { size, .. }, b';') => {
                Chunked::Extension { size, ext: true }
            }
            (Chunked::Size { size, .. } | Chunked::Extension { size, .. }, b'\r') => {
                Chunked::SizeLf { size }
            }
            (Chunked::Size { size, .. } | Chunked::Extension { size, .. }, b'\n') => line_end(size),
            (Chunked::Extension { size, ext: true }, _) => Chunked::Extension { size, ext: true },
            (Chunked::SizeLf { size }, b'\n') => line_end(size),
            (Chunked::DataCr, b'\r') => Chunked::DataLf,
            (Chunked::DataCr | Chunked::DataLf, b'\n') => Chunked::new(),
            (Chunked::TrailerStart, b'\r') => Chunked::EndLf,
            (Chunked::TrailerStart | Chunked::EndLf, b'\n') => Chunked::Done,
            (Chunked::TrailerLine, b'\r') => Chunked::TrailerLf,
            (Chunked::TrailerLine | Chunked::TrailerLf, b'\n') => Chunked::TrailerStart,
            (Chunked::TrailerStart | Chunked::TrailerLine, _) => Chunked::TrailerLine,
            (Chunked::Size { .. } | Chunked::Extension { .. }, _) => {
                return Err(bad("chunk size line"));
            }
            (Chunked::DataCr | Chunked::DataLf, _) => return Err(bad("no line end after data")),
            _ => return Err(bad("line ending")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `piece` bytes: the bytes used and whether the body ended.
    fn run(wire: &[u8], piece: usize) -> Result<(usize, bool), ResponseError> {
        let mut chunked = Chunked::new();
        let mut used = 0;
        for part in wire.chunks(piece) {
            let (n, done) = chunked.feed(part)?;
            used += n;
            if done {
                return Ok((used, true));
            }
        }
        Ok((used, false))
    }

    #[test]
    fn ends_after_extensions_and_trailers_at_any_split() {
        let body =
            b"4;name=\"v\"\r\nWiki\r\n5 ; x\r\npedia\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
        let mut wire = body.to_vec();
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for piece in 1..=wire.len() {
            assert_eq!(
                run(&wire, piece).ok(),
                Some((body.len(), true)),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn bare_lf_lines_are_accepted() {
        assert_eq!(run(b"3\nabc\n0\n\n", 64).ok(), Some((9, true)));
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        assert_eq!(run(b"5\r\nab", 64).ok(), Some((5, false)));
        assert_eq!(run(b"0\r\nT: 1\r\n", 64).ok(), Some((9, false)));
    }

    #[test]
    fn broken_framing_is_an_error() {
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3x\r\n",
            b"3 4\r\n",
            b"3\rx",
            b"3\r\nabcX",
            b"FFFFFFFFFFFFFFFFF\r\n",
            b"0\r\nT: 1\rx",
        ] {
            assert!(
                matches!(run(wire, 64), Err(ResponseError::Chunked { .. })),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}
