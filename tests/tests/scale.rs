//! Replay at the connection counts and churn of busy public services, with the real TC
//! program and real sockets: a connection per request (HTTP/1.0 and `Connection: close`
//! clients), and more client connections open at once than any per-connection limit would
//! hold. Every copy must arrive exactly once, byte-exact, and the ledger balance.

use std::{
    io::Write,
    net::TcpStream,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use shadowd_tests::{
    clients::read_responses,
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    metrics::Scrape,
    shadowing::{expected_copy, multiset},
};

/// Raises this process's open-file limit to its hard limit: these tests hold thousands of
/// sockets on both ends of each connection.
fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on this process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// Connects to production from the client namespace's current thread, retrying briefly
/// when the listener's backlog is momentarily full.
fn connect() -> TcpStream {
    for _ in 0..50 {
        if let Ok(stream) = TcpStream::connect(PRODUCTION) {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            return stream;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cannot connect to production");
}

/// Waits until every request a group with a shadow won is accounted for and nothing is in
/// flight; checks the ledger.
fn settled(daemon: &shadowd_tests::shadowd::Shadowd<'_>, observed: u64) -> Scrape {
    daemon.accounted_for(SHADOW_MAPPING, observed, Duration::from_secs(60))
}

/// The copies `sent` should have produced, against what the shadow received.
fn assert_copied_exactly_once(setup: &ShadowSetup, sent: &[Vec<u8>]) {
    let expected = multiset(sent.iter().map(|raw| expected_copy(raw)));
    let received = multiset(setup.shadow.received());
    assert_eq!(received.len(), expected.len(), "distinct copies");
    assert!(
        received == expected,
        "the shadow's copies differ from production's requests"
    );
}

#[test]
fn a_connection_per_request_every_copy_exactly_once() {
    raise_open_files();
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    // Each request on a connection of its own, closed after its answer: HTTP/1.0, and
    // HTTP/1.1 with `Connection: close`. More connections in a few seconds than a
    // per-connection worker limit held, from 8 clients at once.
    const REQUESTS: usize = 6000;
    const CLIENTS: usize = 8;
    let request = |i: usize| -> Vec<u8> {
        if i.is_multiple_of(2) {
            format!("GET /myservice/churn/{i} HTTP/1.0\r\nHost: myservice\r\n\r\n")
        } else {
            format!(
                "GET /myservice/churn/{i} HTTP/1.1\r\nHost: myservice\r\nConnection: close\r\n\r\n"
            )
        }
        .into_bytes()
    };
    let next = AtomicUsize::new(0);
    setup.topo.client.enter(|| {
        std::thread::scope(|scope| {
            for _ in 0..CLIENTS {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= REQUESTS {
                            return;
                        }
                        let mut stream = connect();
                        stream.write_all(&request(i)).unwrap();
                        assert_eq!(read_responses(&mut stream, 1), [200]);
                    }
                });
            }
        });
    });
    let scrape = settled(&daemon, REQUESTS as u64);
    assert_eq!(
        scrape.replay("copied_requests_total", SHADOW_MAPPING),
        REQUESTS as u64
    );
    assert_eq!(scrape.sum("shadowd_replay_active_connections", &[]), 0);
    let sent: Vec<Vec<u8>> = (0..REQUESTS).map(request).collect();
    assert_copied_exactly_once(&setup, &sent);
}

#[test]
fn more_client_connections_at_once_than_a_connection_limit_held() {
    let limit = raise_open_files();
    // Both ends of every connection are in this process, and the servers add their own.
    const CONNECTIONS: usize = 4500;
    assert!(
        limit as usize > 2 * CONNECTIONS + 1000,
        "open-file limit {limit}"
    );
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    let request = |i: usize| {
        format!("GET /myservice/open/{i} HTTP/1.1\r\nHost: myservice\r\n\r\n").into_bytes()
    };
    setup.topo.client.enter(|| {
        // Every connection is open before the first request is sent, and stays open until
        // the last answer has come.
        let mut streams: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect()).collect();
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.write_all(&request(i)).unwrap();
        }
        for stream in &mut streams {
            assert_eq!(read_responses(stream, 1), [200]);
        }
        let scrape = settled(&daemon, CONNECTIONS as u64);
        assert_eq!(
            scrape.replay("copied_requests_total", SHADOW_MAPPING),
            CONNECTIONS as u64
        );
        // Connections still open, but with nothing to copy, hold nothing in replay.
        assert_eq!(scrape.sum("shadowd_replay_active_connections", &[]), 0);
    });
    let sent: Vec<Vec<u8>> = (0..CONNECTIONS).map(request).collect();
    assert_copied_exactly_once(&setup, &sent);
}
