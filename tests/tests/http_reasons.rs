//! Every reason a request is not copied, reached end to end with real sockets and the real
//! program: each HTTP drop reason (`malformed`, `head_too_large`, `too_many_headers`,
//! `body_too_large`, `truncated`, `parse_budget_full`) and each unsupported flow (`upgrade`,
//! `connect`, `http2`) is counted once, none of them reaches the shadow, and a request after
//! them is still copied.

use std::{
    io::{Read, Write},
    net::Shutdown,
    time::Duration,
};

use shadowd_tests::{
    clients::{Piece, connect, exchange},
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    metrics::Scrape,
    shadowd::Shadowd,
    shadowing::expected_copy,
};

const GOOD: &[u8] = b"GET /myservice/good HTTP/1.1\r\nHost: myservice\r\n\r\n";

/// The user's Mappings with a Module setting `limits`.
fn with_limits(limits: &str) -> MappingFile {
    MappingFile::new(&format!(
        "{}---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: shadowd\nspec:\n  config:\n    limits:\n{limits}",
        user_example("")
    ))
}

fn dropped(scrape: &Scrape, reason: &str) -> u64 {
    scrape.sum(
        "shadowd_http_dropped_messages_total",
        &[("direction", "request"), ("reason", reason)],
    )
}

/// Sends `raw` on a connection of its own, then closes its sending side and reads whatever
/// production answers until it closes too.
fn send_and_close(setup: &ShadowSetup, raw: &[u8]) -> Vec<u8> {
    setup.topo.client.enter(|| {
        let mut stream = connect(PRODUCTION);
        stream.write_all(raw).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ok();
        answer
    })
}

/// One good request on a connection of its own, then every copy accounted for: only it
/// reached the shadow.
fn only_the_good_request_is_copied(setup: &ShadowSetup, daemon: &Shadowd<'_>) -> Scrape {
    let statuses = exchange(&setup.topo.client, PRODUCTION, &[Piece::now(GOOD)], 1);
    assert_eq!(statuses, [200]);
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 1, Duration::from_secs(20));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 1);
    assert_eq!(setup.shadow.received(), [expected_copy(GOOD)]);
    scrape
}

#[test]
fn each_http_drop_reason_is_counted_once_and_never_copied() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = with_limits(
        "      max_head_bytes: 8192\n      max_headers: 10\n      max_body_bytes: 1000\n",
    );
    let daemon = setup.start(&mappings);

    // Two Content-Length values that disagree: production may read either body.
    send_and_close(
        &setup,
        b"POST /myservice/malformed HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    // A head past max_head_bytes.
    let big = format!(
        "GET /myservice/big-head HTTP/1.1\r\nHost: myservice\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    send_and_close(&setup, big.as_bytes());
    // More fields than max_headers.
    let many: String = (0..12).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let many = format!("GET /myservice/many HTTP/1.1\r\nHost: myservice\r\n{many}\r\n");
    send_and_close(&setup, many.as_bytes());
    // A body past max_body_bytes, a policy.
    let body = format!(
        "POST /myservice/big-body HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    );
    send_and_close(&setup, body.as_bytes());
    // The client's stream ends in the middle of a body.
    send_and_close(
        &setup,
        b"POST /myservice/truncated HTTP/1.1\r\nHost: myservice\r\nContent-Length: 100\r\n\r\nonly ten b",
    );

    only_the_good_request_is_copied(&setup, &daemon);
    let scrape = daemon.settled_scrape(Duration::from_secs(20), "every drop counted", |s| {
        dropped(s, "truncated") == 1
    });
    for reason in [
        "malformed",
        "head_too_large",
        "too_many_headers",
        "body_too_large",
        "truncated",
    ] {
        assert_eq!(dropped(&scrape, reason), 1, "{reason}");
    }
    assert_eq!(
        scrape.sum(
            "shadowd_http_dropped_messages_total",
            &[("direction", "request")]
        ),
        5,
        "no other request drop"
    );
}

#[test]
fn a_head_that_finds_the_parse_budget_full_is_dropped_and_the_budget_comes_back() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = with_limits("      max_parse_total_bytes: 1024\n");
    let daemon = setup.start(&mappings);
    // A head of 3 KiB in two segments: the parser must keep its first part, which does not
    // fit in 1 KiB.
    let head = format!(
        "GET /myservice/budget HTTP/1.1\r\nHost: myservice\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(3000)
    );
    let (first, rest) = head.as_bytes().split_at(2000);
    let statuses = exchange(
        &setup.topo.client,
        PRODUCTION,
        &[
            Piece {
                bytes: first,
                pause: Duration::from_millis(100),
            },
            Piece::now(rest),
        ],
        1,
    );
    assert_eq!(statuses, [200]);
    let scrape = only_the_good_request_is_copied(&setup, &daemon);
    assert_eq!(dropped(&scrape, "parse_budget_full"), 1);
}

#[test]
fn upgraded_tunnelled_and_http2_connections_are_counted_and_never_copied() {
    let setup = ShadowSetup::new(Behaviour {
        tunnels: true,
        ..Behaviour::default()
    });
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    let after_switch = b"GET /myservice/inside-the-tunnel HTTP/1.1\r\nHost: myservice\r\n\r\n";

    // A WebSocket-style upgrade production accepts (101), then bytes that look like a
    // request: they belong to the new protocol.
    let upgrade = b"GET /myservice/ws HTTP/1.1\r\nHost: myservice\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let answer = tunnel(&setup, upgrade, after_switch);
    assert!(answer.starts_with(b"HTTP/1.1 101"));
    // A CONNECT production accepts (200): a tunnel.
    let connect = b"CONNECT myservice:443 HTTP/1.1\r\nHost: myservice:443\r\n\r\n";
    let answer = tunnel(&setup, connect, after_switch);
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // HTTP/2 with prior knowledge: the preface, then a SETTINGS frame.
    send_and_close(
        &setup,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    );

    let statuses = exchange(&setup.topo.client, PRODUCTION, &[Piece::now(GOOD)], 1);
    assert_eq!(statuses, [200]);
    let scrape = daemon.settled_scrape(Duration::from_secs(20), "the flows counted", |s| {
        s.sum("shadowd_http_unsupported_flows_total", &[]) == 3
            && s.replay("in_flight_requests", SHADOW_MAPPING) == 0
            && setup.shadow.received().contains(&expected_copy(GOOD))
    });
    scrape.assert_ledger_balances(SHADOW_MAPPING);
    for reason in ["upgrade", "connect", "http2"] {
        assert_eq!(
            scrape.sum(
                "shadowd_http_unsupported_flows_total",
                &[("reason", reason)]
            ),
            1,
            "{reason}"
        );
    }
    // The upgrade request itself is copied only as what it was, an HTTP/1 request that
    // production answered; nothing after the switch is. CONNECT never goes to a Mapping.
    let received = setup.shadow.received();
    assert!(
        !received
            .iter()
            .any(|copy| copy.windows(16).any(|w| w == b"inside-the-tunne")),
        "bytes inside a tunnel were copied as a request"
    );
}

/// Sends `switch`, waits for production's answer, then sends `inside` through the tunnel
/// and reads its echo; returns production's answer to `switch`.
fn tunnel(setup: &ShadowSetup, switch: &[u8], inside: &[u8]) -> Vec<u8> {
    setup.topo.client.enter(|| {
        let mut stream = connect(PRODUCTION);
        stream.write_all(switch).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).expect("production answers");
            assert!(n > 0, "production closed before answering");
            answer.extend_from_slice(&chunk[..n]);
        }
        stream.write_all(inside).unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < inside.len() {
            let n = stream.read(&mut chunk).expect("the tunnel echoes");
            assert!(n > 0, "the tunnel closed");
            echoed.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(echoed, inside);
        answer
    })
}
