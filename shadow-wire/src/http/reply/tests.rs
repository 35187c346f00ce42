//! The reply reader on byte fixtures, each fed in pieces of every size: where each reply
//! ends, its status, and whether the connection persists.

use super::{Complete, ResponseError, ResponseReader};

/// The reply that follows each fixture on the wire: it must not be read.
const NEXT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// Feeds `wire` in pieces of `piece` bytes as a connection would (unconsumed bytes are
/// offered again with the next piece); then the end of the stream. Returns the bytes
/// consumed and the reply, if complete.
fn read(
    wire: &[u8],
    head_request: bool,
    piece: usize,
) -> Result<(usize, Option<Complete>), ResponseError> {
    let mut reader = ResponseReader::new(head_request);
    let mut buf = Vec::new();
    let mut consumed = 0;
    for part in wire.chunks(piece) {
        buf.extend_from_slice(part);
        let decoded = reader.decode(&buf)?;
        consumed += decoded.consumed;
        buf.drain(..decoded.consumed);
        if decoded.complete.is_some() {
            return Ok((consumed, decoded.complete));
        }
    }
    Ok((consumed, reader.end_of_stream()))
}

/// Checks that `reply` ends exactly where it should, at every split, with `status` and
/// `persists`.
fn ends(reply: &[u8], head_request: bool, status: u16, persists: bool) {
    let mut wire = reply.to_vec();
    wire.extend_from_slice(NEXT);
    for piece in 1..=wire.len() {
        let read = read(&wire, head_request, piece);
        assert_eq!(
            read.ok(),
            Some((reply.len(), Some(Complete { status, persists }))),
            "{:?} in pieces of {piece}",
            String::from_utf8_lossy(reply)
        );
    }
}

#[test]
fn framed_replies_end_exactly() {
    ends(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        false,
        200,
        true,
    );
    ends(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
        false,
        200,
        true,
    );
    ends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n\
          3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n",
        false,
        200,
        true,
    );
    ends(
        b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
        false,
        500,
        true,
    );
}

#[test]
fn interim_responses_come_before_the_final_one() {
    ends(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        false,
        201,
        true,
    );
    let many = "HTTP/1.1 100 Continue\r\n\r\n".repeat(17);
    assert!(matches!(
        read(many.as_bytes(), false, 4096),
        Err(ResponseError::TooManyInterim { .. })
    ));
}

#[test]
fn replies_without_a_body() {
    ends(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        true,
        200,
        true,
    );
    ends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
        200,
        true,
    );
    ends(b"HTTP/1.1 204 No Content\r\n\r\n", false, 204, true);
    ends(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        false,
        304,
        true,
    );
    // After 101 the connection is another protocol's.
    ends(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        false,
        101,
        false,
    );
}

#[test]
fn persistence_follows_version_and_connection() {
    ends(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        false,
        200,
        false,
    );
    ends(
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        false,
        200,
        false,
    );
    ends(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        false,
        200,
        true,
    );
}

#[test]
fn bodies_delimited_by_close_end_with_the_stream() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\n\r\nuntil close"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil close",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nuntil close",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nuntil close",
    ] {
        for piece in [1, 7, reply.len()] {
            assert_eq!(
                read(reply, false, piece).ok(),
                Some((
                    reply.len(),
                    Some(Complete {
                        status: 200,
                        persists: false
                    })
                ))
            );
        }
    }
}

#[test]
fn a_reply_cut_short_is_incomplete() {
    for cut in [
        &b"HTTP/1.1 200 OK\r\nContent-Len"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ] {
        assert!(matches!(read(cut, false, 64), Ok((_, None))));
    }
}

#[test]
fn malformed_replies_are_errors() {
    let error = |wire: &[u8]| read(wire, false, wire.len().max(1)).err();
    assert!(matches!(
        error(b"SSH-2.0-OpenSSH\r\n\r\n"),
        Some(ResponseError::Head { .. })
    ));
    for length in ["abc", "5, 6", "-1", "99999999999999999999999"] {
        let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
        assert!(matches!(
            error(wire.as_bytes()),
            Some(ResponseError::ContentLength)
        ));
    }
    // Where it does not delimit the body, an invalid length does no harm.
    ends(
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        true,
        200,
        true,
    );
    ends(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
        false,
        304,
        true,
    );
    ends(
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        false,
        200,
        true,
    );
    assert!(matches!(
        error(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Some(ResponseError::Chunked { .. })
    ));
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let wire = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert!(matches!(
        error(wire.as_bytes()),
        Some(ResponseError::TooManyHeaders { .. })
    ));
}

#[test]
fn heads_are_capped_at_64_kib() {
    let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
    for piece in [1000, 16 * 1024, big.len()] {
        assert!(matches!(
            read(big.as_bytes(), false, piece),
            Err(ResponseError::HeadTooLarge { .. })
        ));
    }
    // A head just under the cap is fine.
    let fits = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(60_000));
    for piece in [1000, 16 * 1024, fits.len()] {
        let (consumed, complete) = read(fits.as_bytes(), false, piece).unwrap();
        assert_eq!(consumed, fits.len());
        assert_eq!(complete.map(|c| c.status), Some(200));
    }
}
