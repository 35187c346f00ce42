//! Raw HTTP clients for tests: byte-exact requests written in chosen pieces, with pauses,
//! pipelined or not, and a reader that counts the responses that came back.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use crate::netns::Netns;

/// One write of a raw client, then a pause.
pub struct Piece<'a> {
    /// What to write.
    pub bytes: &'a [u8],
    /// How long to wait after writing it.
    pub pause: Duration,
}

impl<'a> Piece<'a> {
    /// A write with no pause after it.
    pub fn now(bytes: &'a [u8]) -> Self {
        Piece {
            bytes,
            pause: Duration::ZERO,
        }
    }
}

/// Connects from `ns` to `addr`, writes `pieces` in order, and reads until `responses` final
/// responses (Content-Length framed, as the test server sends) have arrived. Returns their
/// status codes.
pub fn exchange(ns: &Netns, addr: &str, pieces: &[Piece<'_>], responses: usize) -> Vec<u16> {
    ns.enter(|| {
        let mut stream = connect(addr);
        stream.set_nodelay(true).unwrap();
        for piece in pieces {
            stream.write_all(piece.bytes).expect("write");
            std::thread::sleep(piece.pause);
        }
        read_responses(&mut stream, responses)
    })
}

/// A connection to `addr` from the calling thread's namespace whose reads give up after
/// 20 s, so that a server that never answers fails the test instead of hanging it.
pub fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads `count` final responses, skipping interim (1xx) ones.
pub fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<u16> {
    let mut buffer = Vec::new();
    let mut statuses = Vec::new();
    while statuses.len() < count {
        let Some(head_end) = buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
        else {
            let mut chunk = [0u8; 65536];
            let n = stream.read(&mut chunk).expect("read response");
            assert!(
                n > 0,
                "connection closed after {} responses",
                statuses.len()
            );
            buffer.extend_from_slice(&chunk[..n]);
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 65536];
            let n = stream.read(&mut chunk).expect("read body");
            assert!(n > 0, "connection closed inside a body");
            buffer.extend_from_slice(&chunk[..n]);
        }
        buffer.drain(..head_end + length);
        if !(100..200).contains(&status) {
            statuses.push(status);
        }
    }
    statuses
}

/// Runs curl in `ns` with `args`, discarding the body; panics unless the answer is 200.
pub fn curl_ok(ns: &Netns, args: &[&str]) {
    let code = crate::run(
        ns.command("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(args),
    );
    assert_eq!(code, "200", "curl {args:?}");
}
