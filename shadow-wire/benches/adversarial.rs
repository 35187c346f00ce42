//! Parsing cost of hostile input, next to the normal case: bytes anybody can make shadowd
//! read (a forged or malformed stream) must cost about what traffic does, never more per
//! byte as the input grows. Every case runs through the flow table and the HTTP parser, as
//! live capture does. Hostile byte streams in full-sized segments are measured in bytes per
//! second (target: at least 100 MB/s on one core); tiny segments cost per segment, so they
//! are measured in segments per second next to normal traffic's one request per segment.
//!
//! Run with `cargo bench -p shadow-user --bench adversarial` (or `cargo xtask bench --micro`).

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadow_wire::{
    http::{HttpFlow, Limits as HttpLimits},
    packet::Direction,
    packet::{Segment, tcp_flags},
    reassembly::{FlowTable, Limits, ReassemblyStats},
};

const MSS: usize = 1448;
/// Bytes of hostile input per case.
const INPUT: usize = 4 << 20;

/// One captured segment, owned.
struct Captured {
    direction: Direction,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

/// How the bytes of a case reach shadowd.
#[derive(Clone, Copy)]
struct Shape {
    /// Payload bytes per client segment.
    segment: usize,
    /// A handshake the capture sees complete (else the connection is picked up mid-way).
    handshake: bool,
    /// Production acknowledges every client segment with a small answer: each one is a
    /// candidate start for a reader that lost its place.
    answers: bool,
}

const CLIENT_ISN: u32 = u32::MAX - 1000;
const SERVER_ISN: u32 = 7_000_000;

/// `stream` as the client's segments of one connection, shaped by `shape`.
fn capture(stream: &[u8], shape: Shape) -> Vec<Captured> {
    let mut segments = Vec::new();
    if shape.handshake {
        segments.push(Captured {
            direction: Direction::Request,
            seq: CLIENT_ISN,
            ack: 0,
            flags: tcp_flags::SYN,
            payload: Vec::new(),
        });
        segments.push(Captured {
            direction: Direction::Response,
            seq: SERVER_ISN,
            ack: CLIENT_ISN.wrapping_add(1),
            flags: tcp_flags::SYN | tcp_flags::ACK,
            payload: Vec::new(),
        });
    }
    let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    let mut sent = 0u32;
    let mut server = SERVER_ISN.wrapping_add(1);
    for piece in stream.chunks(shape.segment) {
        segments.push(Captured {
            direction: Direction::Request,
            seq: CLIENT_ISN.wrapping_add(1).wrapping_add(sent),
            ack: server,
            flags: tcp_flags::ACK,
            payload: piece.to_vec(),
        });
        sent = sent.wrapping_add(piece.len() as u32);
        if shape.answers {
            segments.push(Captured {
                direction: Direction::Response,
                seq: server,
                ack: CLIENT_ISN.wrapping_add(1).wrapping_add(sent),
                flags: tcp_flags::ACK,
                payload: answer.to_vec(),
            });
            server = server.wrapping_add(answer.len() as u32);
        }
    }
    segments
}

/// Feeds `segments` through a fresh table; returns the events (so none is optimised out).
fn run(segments: &[Captured]) -> usize {
    let client: SocketAddr = "198.18.0.1:40000".parse().unwrap();
    let server: SocketAddr = "198.18.0.2:80".parse().unwrap();
    let mut table = FlowTable::new(Limits::default(), ReassemblyStats::default(), |_| {
        HttpFlow::new(HttpLimits::default())
    });
    let mut events = Vec::new();
    let mut seen = 0;
    let ts = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    for c in segments {
        let (src, dst) = match c.direction {
            Direction::Request => (client, server),
            Direction::Response => (server, client),
        };
        let segment = Segment {
            src,
            dst,
            seq: c.seq,
            ack: c.ack,
            flags: c.flags,
            payload: &c.payload,
        };
        table.segment(c.direction, &segment, ts, &mut events);
        seen += events.len();
        events.clear();
    }
    seen
}

/// `unit` repeated to `INPUT` bytes.
fn repeated(unit: &[u8]) -> Vec<u8> {
    unit.iter().copied().cycle().take(INPUT).collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adversarial");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    let mss = Shape {
        segment: MSS,
        handshake: true,
        answers: false,
    };
    let request = b"GET /myservice/x HTTP/1.1\r\nHost: myservice\r\nAccept: */*\r\n\r\n";
    let cases: Vec<(&str, Vec<u8>, Shape)> = vec![
        // The normal case, for comparison: small keep-alive GETs.
        ("normal_gets", repeated(request), mss),
        // One head of repeated request lines, far past the head limit.
        (
            "repeated_request_lines",
            repeated(b"GET /myservice/x HTTP/1.1\r\n"),
            mss,
        ),
        // A head that never ends.
        (
            "endless_header_lines",
            [
                &b"GET / HTTP/1.1\r\n"[..],
                &repeated(b"X-Header: value\r\n"),
            ]
            .concat(),
            mss,
        ),
        // Lines that look like request lines, on a connection picked up mid-way, with an
        // answer acknowledging every segment: a candidate start at each, and none confirmed.
        (
            "resync_storm",
            repeated(b"T /x HTTP/1.1\r\n\r\nxPOST /y HTTP/1.1\r\nContent-Length: 99999\r\n"),
            Shape {
                segment: MSS,
                handshake: false,
                answers: true,
            },
        ),
        // Requests that parse at every candidate, on a connection picked up mid-way, with no
        // answer confirming them: held up to the bound, then given up, over and over.
        (
            "unconfirmed_requests",
            repeated(request),
            Shape {
                segment: MSS,
                handshake: false,
                answers: false,
            },
        ),
        // Binary noise (another protocol on the port).
        (
            "binary_noise",
            (0..INPUT)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            mss,
        ),
        // A chunked body of one-byte chunks.
        (
            "one_byte_chunks",
            [
                &b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                &repeated(b"1\r\nx\r\n"),
            ]
            .concat(),
            mss,
        ),
    ];
    for (name, stream, shape) in &cases {
        let segments = capture(stream, *shape);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(*name, |b| b.iter(|| run(&segments)));
    }
    // Tiny segments cost per segment, not per byte: compared with normal keep-alive traffic,
    // one request per segment, in segments per second.
    let one_per_segment = Shape {
        segment: request.len(),
        ..mss
    };
    for (name, shape) in [
        ("normal_one_request_per_segment", one_per_segment),
        ("tiny_segments", Shape { segment: 4, ..mss }),
    ] {
        let segments = capture(&request.repeat(20_000), shape);
        group.throughput(Throughput::Elements(segments.len() as u64));
        group.bench_function(name, |b| b.iter(|| run(&segments)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
