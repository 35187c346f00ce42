//! Reassembly + HTTP parsing throughput on a synthetic capture: many keep-alive connections
//! carrying small GETs and 64 KiB POSTs, cut into MSS-sized segments as a NIC would deliver
//! them, with the server's small responses interleaved.
//!
//! Run with `cargo bench -p shadow-user --bench pipeline` (or `cargo xtask bench`).

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadow_wire::{
    http::{HttpEvent, HttpFlow, Limits as HttpLimits},
    packet::Direction,
    packet::{Segment, tcp_flags},
    reassembly::{FlowTable, Limits, ReassemblyStats},
};

const MSS: usize = 1448;

/// One captured segment, owned.
struct Captured {
    direction: Direction,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

/// A synthetic capture: `flows` connections, each sending `per_flow` requests, every
/// `post_every`-th a 64 KiB POST (0 = GETs only). Returns the segments in an interleaved
/// order, the request-direction payload bytes, and the number of requests.
fn capture(flows: u16, per_flow: usize, post_every: usize) -> (Vec<Captured>, u64, u64) {
    let mut per_flow_segments: Vec<Vec<Captured>> = Vec::new();
    let mut request_bytes = 0u64;
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
    let body = vec![b'x'; 64 << 10];
    for flow in 0..flows {
        let client: SocketAddr = format!("198.18.0.1:{}", 10_000 + flow).parse().unwrap();
        let server: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let (mut cseq, mut sseq) = (u32::MAX - 5000 + u32::from(flow), 1_000_000u32);
        let mut segments = vec![
            Captured {
                direction: Direction::Request,
                src: client,
                dst: server,
                seq: cseq,
                ack: 0,
                flags: tcp_flags::SYN,
                payload: vec![],
            },
            Captured {
                direction: Direction::Response,
                src: server,
                dst: client,
                seq: sseq,
                ack: cseq.wrapping_add(1),
                flags: tcp_flags::SYN | tcp_flags::ACK,
                payload: vec![],
            },
        ];
        cseq = cseq.wrapping_add(1);
        sseq = sseq.wrapping_add(1);
        for i in 0..per_flow {
            let mut request = format!(
                "{} /api/v1/items/{i}?page=2&sort=desc HTTP/1.1\r\nHost: myservice\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nX-Request-Id: {flow}-{i}\r\n",
                if post_every > 0 && i % post_every == post_every - 1 { "POST" } else { "GET" }
            )
            .into_bytes();
            if post_every > 0 && i % post_every == post_every - 1 {
                request.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                request.extend_from_slice(&body);
            } else {
                request.extend_from_slice(b"\r\n");
            }
            request_bytes += request.len() as u64;
            for piece in request.chunks(MSS) {
                segments.push(Captured {
                    direction: Direction::Request,
                    src: client,
                    dst: server,
                    seq: cseq,
                    ack: sseq,
                    flags: tcp_flags::ACK,
                    payload: piece.to_vec(),
                });
                cseq = cseq.wrapping_add(piece.len() as u32);
            }
            segments.push(Captured {
                direction: Direction::Response,
                src: server,
                dst: client,
                seq: sseq,
                ack: cseq,
                flags: tcp_flags::ACK,
                payload: response.to_vec(),
            });
            sseq = sseq.wrapping_add(response.len() as u32);
        }
        segments.push(Captured {
            direction: Direction::Request,
            src: client,
            dst: server,
            seq: cseq,
            ack: sseq,
            flags: tcp_flags::FIN | tcp_flags::ACK,
            payload: vec![],
        });
        segments.push(Captured {
            direction: Direction::Response,
            src: server,
            dst: client,
            seq: sseq,
            ack: cseq.wrapping_add(1),
            flags: tcp_flags::FIN | tcp_flags::ACK,
            payload: vec![],
        });
        per_flow_segments.push(segments);
    }
    // Interleave the connections round-robin, as a busy interface would.
    let mut interleaved = Vec::new();
    let mut iters: Vec<_> = per_flow_segments.into_iter().map(Vec::into_iter).collect();
    loop {
        let mut any = false;
        for it in &mut iters {
            if let Some(segment) = it.next() {
                interleaved.push(segment);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    (
        interleaved,
        request_bytes,
        u64::from(flows) * per_flow as u64,
    )
}

/// Feeds the whole capture through a fresh table; returns the number of requests.
fn run(segments: &[Captured]) -> u64 {
    let mut table = FlowTable::new(Limits::default(), ReassemblyStats::default(), |_| {
        HttpFlow::new(HttpLimits::default())
    });
    let mut events = Vec::new();
    let mut requests = 0;
    let ts = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    for c in segments {
        let segment = Segment {
            src: c.src,
            dst: c.dst,
            seq: c.seq,
            ack: c.ack,
            flags: c.flags,
            payload: &c.payload,
        };
        table.segment(c.direction, &segment, ts, &mut events);
        requests += events
            .drain(..)
            .filter(|(_, e)| matches!(e, HttpEvent::Request(_)))
            .count() as u64;
    }
    requests
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("reassembly_and_parsing");
    group.measurement_time(Duration::from_secs(5));

    let (small, _, small_requests) = capture(64, 500, 0);
    assert_eq!(run(&small), small_requests);
    group.throughput(Throughput::Elements(small_requests));
    group.bench_function("small_gets_requests", |b| b.iter(|| run(&small)));

    let (mixed, mixed_bytes, mixed_requests) = capture(64, 40, 4);
    assert_eq!(run(&mixed), mixed_requests);
    group.throughput(Throughput::Bytes(mixed_bytes));
    group.bench_function("mixed_gets_and_64k_posts_bytes", |b| b.iter(|| run(&mixed)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
