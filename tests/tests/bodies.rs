//! Request bodies streamed to the shadow as they are captured, with the real TC program and
//! real sockets: a large upload and a chunked one reach the shadow byte-exact, in order on
//! their connection, while shadowd holds far less than the body; a body whose middle the
//! capture loses never reaches the shadow as a complete request.

use std::{io::Write, net::TcpStream, time::Duration};

use shadowd_tests::{
    clients::read_responses,
    eventually,
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    shadowing::expected_copy,
};

/// A body of `len` bytes that no shifted copy of itself matches.
fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn connect() -> TcpStream {
    let stream = TcpStream::connect(PRODUCTION).expect("connect to production");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

/// Writes `bytes` in 256 KiB pieces at about `mib_per_s`: a client uploading over a
/// network, not at memory speed.
fn write_paced(stream: &mut TcpStream, bytes: &[u8], mib_per_s: u64) {
    const PIECE: usize = 256 << 10;
    let pause = Duration::from_micros(PIECE as u64 * 1_000_000 / (mib_per_s << 20));
    for piece in bytes.chunks(PIECE) {
        stream.write_all(piece).unwrap();
        std::thread::sleep(pause);
    }
}

/// `bytes` as a chunked body, in chunks of odd, changing sizes with an extension now and
/// then, and a trailer.
fn chunked(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 1000);
    let mut at = 0;
    let mut n = 0usize;
    while at < bytes.len() {
        let size = (1 + n * 7_919 % 40_000).min(bytes.len() - at);
        let extension = if n.is_multiple_of(5) { ";n=odd" } else { "" };
        write!(out, "{size:x}{extension}\r\n").unwrap();
        out.extend_from_slice(&bytes[at..at + size]);
        out.extend_from_slice(b"\r\n");
        at += size;
        n += 1;
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    out
}

#[test]
fn large_uploads_reach_the_shadow_byte_exact_in_order_while_shadowd_holds_little() {
    const LARGE: usize = 192 << 20;
    let setup = ShadowSetup::new(Behaviour::default());
    // The timeout runs from the copy's last byte written into the socket, which the test's
    // shadow server, on a loaded machine, may still take seconds to read before it answers:
    // this test is about bytes and memory, not the shadow's speed.
    let mappings = MappingFile::new(&user_example("timeout_ms: 30000\n"));
    let daemon = setup.start(&mappings);
    let large = body(LARGE);
    let head = format!(
        "POST /myservice/upload HTTP/1.1\r\nHost: myservice\r\nContent-Length: {LARGE}\r\n\r\n"
    );
    let chunked_head =
        "POST /myservice/chunked HTTP/1.1\r\nHost: myservice\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunked_body = chunked(&body(8 << 20));
    let last = "GET /myservice/after HTTP/1.1\r\nHost: myservice\r\n\r\n";
    let baseline = daemon.peak_rss_kib();
    // One keep-alive connection: the large upload, a chunked one, then a GET.
    setup.topo.client.enter(|| {
        let mut stream = connect();
        stream.write_all(head.as_bytes()).unwrap();
        write_paced(&mut stream, &large, 64);
        assert_eq!(read_responses(&mut stream, 1), [200]);
        stream.write_all(chunked_head.as_bytes()).unwrap();
        write_paced(&mut stream, &chunked_body, 64);
        stream.write_all(last.as_bytes()).unwrap();
        assert_eq!(read_responses(&mut stream, 2), [200, 200]);
    });
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 3, Duration::from_secs(120));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 3);
    let peak = daemon.peak_rss_kib();
    let expected = [
        expected_copy(&[head.as_bytes(), &large].concat()),
        expected_copy(&[chunked_head.as_bytes(), &chunked_body].concat()),
        expected_copy(last.as_bytes()),
    ];
    let received = setup.shadow.received_with_connections();
    assert_eq!(received.len(), 3, "three copies");
    assert!(
        received
            .iter()
            .all(|(connection, _)| *connection == received[0].0),
        "one upstream connection, as the client's was one"
    );
    for (i, ((_, got), want)) in received.iter().zip(&expected).enumerate() {
        assert!(
            got == want,
            "copy {i}: {} B received, {} B expected, first difference at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(want).position(|(a, b)| a != b)
        );
    }
    // The upload never sat whole in shadowd: its peak memory grew by far less than the body.
    let grown = peak.saturating_sub(baseline) << 10;
    assert!(
        grown < LARGE as u64 / 4,
        "peak RSS grew by {grown} B (baseline {baseline} KiB, peak {peak} KiB) for a {LARGE} B body"
    );
}

#[test]
fn a_body_whose_middle_the_capture_lost_never_reaches_the_shadow_complete() {
    const LEN: usize = 16 << 20;
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    // A small ring buffer, so that a stopped reader makes the program drop clones.
    let daemon = shadowd_tests::shadowd::Shadowd::start(
        &setup.topo.server,
        &[
            "--interface",
            shadowd_tests::netns::Topology::SERVER_IF,
            "--config",
            mappings.arg(),
            "--ringbuf-size",
            "1048576",
        ],
    );
    let upload = body(LEN);
    let head = format!(
        "POST /myservice/lost HTTP/1.1\r\nHost: myservice\r\nContent-Length: {LEN}\r\n\r\n"
    );
    let after = "GET /myservice/after-loss HTTP/1.1\r\nHost: myservice\r\n\r\n";
    setup.topo.client.enter(|| {
        let mut stream = connect();
        stream.write_all(head.as_bytes()).unwrap();
        // More than shadowd keeps before it starts streaming a body.
        stream.write_all(&upload[..256 << 10]).unwrap();
        // The copy is on its way: the shadow has read its head and first bytes.
        eventually(Duration::from_secs(30), "the copy to start", || {
            (setup.shadow.totals().0 > head.len() as u64).then_some(())
        });
        // The reader stops: the middle of the body overflows the ring buffer. Production
        // receives it all, as always.
        daemon.signal(libc::SIGSTOP);
        write_paced(&mut stream, &upload[256 << 10..LEN - (64 << 10)], 256);
        std::thread::sleep(Duration::from_millis(200));
        daemon.signal(libc::SIGCONT);
        stream.write_all(&upload[LEN - (64 << 10)..]).unwrap();
        assert_eq!(read_responses(&mut stream, 1), [200]);
        // The place in the stream is kept (the body's length is known): the next request
        // on the connection is copied.
        stream.write_all(after.as_bytes()).unwrap();
        assert_eq!(read_responses(&mut stream, 1), [200]);
    });
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 2, Duration::from_secs(60));
    assert!(
        scrape.sum("shadowd_tc_packets_total", &[("outcome", "clone_failed")]) > 0,
        "the ring buffer overflowed"
    );
    assert_eq!(
        scrape.by_label("shadowd_replay_dropped_requests_total", "reason"),
        [("incomplete".to_string(), 1)].into(),
    );
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 1);
    // The shadow read part of the upload, then a reset: never a complete request.
    assert_eq!(setup.shadow.received(), [expected_copy(after.as_bytes())]);
}
