//! Capture loss under a Mapping: with the reader stopped, keep-alive traffic overflows a small
//! ring buffer. Production serves everything; the program counts each packet it could not
//! hand over, reassembly and HTTP count the holes, no copy is invented, doubled, reordered or
//! cut, and copying resumes.

use std::{io::Write, net::TcpStream, time::Duration};

use shadowd_tests::{
    clients::{connect, read_responses},
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    shadowing::expected_copy,
};

const CONNECTIONS: usize = 8;
const ROUNDS: usize = 40;
const PIPELINED: usize = 100;

fn request(connection: usize, n: usize) -> Vec<u8> {
    format!("GET /myservice/loss/{connection}/{n} HTTP/1.1\r\nHost: myservice\r\n\r\n").into_bytes()
}

/// Sends requests `from..to` of `connection` on `stream`, `PIPELINED` at a time, reading each
/// batch's answers before the next (production answers every one).
fn send(stream: &mut TcpStream, connection: usize, from: usize, to: usize) {
    for start in (from..to).step_by(PIPELINED) {
        let end = (start + PIPELINED).min(to);
        let batch: Vec<u8> = (start..end).flat_map(|n| request(connection, n)).collect();
        stream.write_all(&batch).unwrap();
        assert_eq!(read_responses(stream, end - start), vec![200; end - start]);
    }
}

/// (connection, n) of a copy the shadow received, after checking it is the copy of that
/// request byte for byte.
fn identify(copy: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(copy);
    let path = text
        .strip_prefix("GET /myservice/loss/")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("a copy of no request sent: {text:?}"));
    let (connection, n) = path.split_once('/').expect("connection/n");
    let id = (connection.parse().unwrap(), n.parse().unwrap());
    assert_eq!(
        copy,
        expected_copy(&request(id.0, id.1)),
        "copy of request {id:?} altered"
    );
    id
}

#[test]
fn requests_lost_to_a_full_ring_are_counted_and_no_copy_is_invented_doubled_or_reordered() {
    let setup = ShadowSetup::new(Behaviour::default());
    // A timeout no copy reaches on a loaded machine: the only drops are the loss's.
    let mappings = MappingFile::new(&user_example("timeout_ms: 20000\n"));
    let daemon = setup.start_with_config(mappings.arg(), &["--ringbuf-size", "1048576"]);
    let lost_rounds = ROUNDS * PIPELINED;
    // Two rounds after the loss: the first one's acknowledgements cover answers the capture
    // lost, so reassembly may refuse its segments; the second's cover answers it saw.
    let per_connection = lost_rounds + 2 * PIPELINED;
    let after = 3;
    let mut streams: Vec<TcpStream> = setup
        .topo
        .client
        .enter(|| (0..CONNECTIONS).map(|_| connect(PRODUCTION)).collect());
    setup.topo.client.enter(|| {
        // A first round while the reader runs: every connection's start is captured.
        for (c, stream) in streams.iter_mut().enumerate() {
            send(stream, c, 0, PIPELINED);
        }
        // The reader stops; production serves ROUNDS more rounds, far more than the ring holds.
        daemon.signal(libc::SIGSTOP);
        for (c, stream) in streams.iter_mut().enumerate() {
            send(stream, c, PIPELINED, lost_rounds);
        }
        daemon.signal(libc::SIGCONT);
    });
    // The ring is read again, up to where it overflowed: settled is two scrapes in a row
    // with the same figures, so the reader has caught up with what the ring kept.
    daemon.settled_scrape(Duration::from_secs(30), "the ring to be read", |scrape| {
        scrape.sum("shadowd_ring_frames_total", &[]) > 0
            && scrape.replay("in_flight_requests", SHADOW_MAPPING) == 0
    });
    // Last rounds on each connection: bytes after the hole, which reassembly must give up
    // waiting for and count.
    setup.topo.client.enter(|| {
        for (c, stream) in streams.iter_mut().enumerate() {
            send(stream, c, lost_rounds, per_connection);
        }
    });
    drop(streams);
    // Then a new connection's requests are copied, every one.
    setup.topo.client.enter(|| {
        send(&mut connect(PRODUCTION), CONNECTIONS, 0, after);
    });
    let scrape = daemon.settled_scrape(
        Duration::from_secs(30),
        "the copies after the loss",
        |scrape| {
            scrape.replay("in_flight_requests", SHADOW_MAPPING) == 0
                && scrape.sum("shadowd_reassembly_gaps_total", &[]) > 0
                && setup
                    .shadow
                    .received()
                    .iter()
                    .filter(|copy| identify(copy).0 == CONNECTIONS)
                    .count()
                    == after
        },
    );
    scrape.assert_ledger_balances(SHADOW_MAPPING);

    let sent = CONNECTIONS * per_connection + after;
    assert!(
        scrape.sum("shadowd_tc_packets_total", &[("outcome", "clone_failed")]) > 0,
        "the ring buffer overflowed"
    );
    assert!(
        scrape.sum("shadowd_reassembly_gaps_total", &[]) > 0,
        "reassembly counted the holes"
    );
    let received = setup.shadow.received();
    let copied = scrape.replay("copied_requests_total", SHADOW_MAPPING);
    assert_eq!(copied, received.len() as u64, "each copy counted once");
    assert!(
        received.len() < sent,
        "requests were lost ({} of {sent} copied)",
        received.len()
    );
    // No phantom and no double; each connection's copies in its order.
    let mut last: Vec<Option<usize>> = vec![None; CONNECTIONS + 1];
    for copy in &received {
        let (connection, n) = identify(copy);
        assert!(
            last[connection].is_none_or(|previous| previous < n),
            "request {n} of connection {connection} copied after {:?}",
            last[connection]
        );
        last[connection] = Some(n);
    }
    assert_eq!(
        last[CONNECTIONS],
        Some(after - 1),
        "the new connection was copied"
    );
    // Requests parsed after a hole but never confirmed by production's answers are the only
    // drops: nothing was cut, and the budget was never full.
    let dropped = scrape.by_label("shadowd_replay_dropped_requests_total", "reason");
    assert!(
        dropped.keys().all(|reason| reason == "unconfirmed"),
        "drop reasons {dropped:?}"
    );
}
