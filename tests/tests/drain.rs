//! SIGTERM with copies still queued or in flight: capture stops at once, the copies already
//! made go out for up to the drain (3 s), and what cannot finish by then is abandoned and
//! said so, without holding the exit longer.

use std::time::{Duration, Instant};

use shadowd_tests::{
    clients::{Piece, exchange},
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    shadowd::Shadowd,
    shadowing::expected_copy,
};

/// How long shadowd lets copies go out after SIGTERM (`cmd/run.rs`).
const DRAIN: Duration = Duration::from_secs(3);
const COPIES: usize = 4;

fn request(n: usize) -> Vec<u8> {
    format!("GET /myservice/drain/{n} HTTP/1.1\r\nHost: myservice\r\n\r\n").into_bytes()
}

/// Production, a shadow behaving as `shadow`, and the user's Mappings with a timeout no copy
/// reaches during the drain.
fn queued_copies(shadow: Behaviour) -> (ShadowSetup, MappingFile) {
    let setup = ShadowSetup::with_shadow(Behaviour::default(), shadow);
    let mappings = MappingFile::new(&user_example("timeout_ms: 20000\n"));
    (setup, mappings)
}

/// Sends `COPIES` requests, each on a connection of its own, and waits until all their copies
/// are handed to replay. With one upstream connection (`--shadow-max-connections 1`), one
/// copy is being sent and the others wait for it.
fn send_and_wait_until_handed_over(setup: &ShadowSetup, daemon: &Shadowd<'_>) {
    for n in 0..COPIES {
        let statuses = exchange(
            &setup.topo.client,
            PRODUCTION,
            &[Piece::now(&request(n))],
            1,
        );
        assert_eq!(statuses, [200]);
    }
    // Every copy handed to replay (the first may already be done with a slow shadow, so
    // what is in flight is not what to wait for).
    daemon.settled_scrape(
        Duration::from_secs(10),
        "every copy handed over",
        |scrape| scrape.replay("observed_requests_total", SHADOW_MAPPING) == COPIES as u64,
    );
}

#[test]
fn copies_queued_at_sigterm_still_reach_the_shadow_within_the_drain() {
    // 4 × 400 ms of answers, one at a time: about 1.2 s of them still to come at SIGTERM.
    let (setup, mappings) = queued_copies(Behaviour {
        delay: Duration::from_millis(400),
        ..Behaviour::default()
    });
    let daemon = setup.start_with_config(mappings.arg(), &["--shadow-max-connections", "1"]);
    send_and_wait_until_handed_over(&setup, &daemon);
    assert!(
        setup.shadow.received().len() < COPIES,
        "some copies are still waiting for the upstream connection at SIGTERM"
    );

    let stopping = Instant::now();
    let (status, log) = daemon.stop_with_log(libc::SIGTERM);
    let took = stopping.elapsed();
    assert!(status.success(), "exit {status}");
    let mut received = setup.shadow.received();
    received.sort();
    let mut expected: Vec<Vec<u8>> = (0..COPIES).map(|n| expected_copy(&request(n))).collect();
    expected.sort();
    assert_eq!(received, expected, "every copy, once, after SIGTERM");
    assert!(
        !log.contains("abandoned"),
        "nothing was abandoned, in {took:?}:\n{log}"
    );
    assert!(
        took < DRAIN,
        "the exit waited for the copies and no longer ({took:?})"
    );
}

#[test]
fn copies_a_hanging_shadow_never_answers_are_abandoned_after_the_drain_and_said_so() {
    let (setup, mappings) = queued_copies(Behaviour {
        never_answer: true,
        ..Behaviour::default()
    });
    let daemon = setup.start_with_config(mappings.arg(), &["--shadow-max-connections", "1"]);
    send_and_wait_until_handed_over(&setup, &daemon);

    let stopping = Instant::now();
    let (status, log) = daemon.stop_with_log(libc::SIGTERM);
    let took = stopping.elapsed();
    assert!(status.success(), "exit {status}");
    assert!(
        took >= DRAIN && took < DRAIN + Duration::from_secs(3),
        "the drain was waited out, then the exit came ({took:?})"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("abandoned") && line.contains(&format!("copies={COPIES}"))),
        "the abandoned copies are counted in the log:\n{log}"
    );
    // Copies of different client connections go out independently: whichever took the
    // connection first was sent, and only it.
    let received = setup.shadow.received();
    let copies: Vec<Vec<u8>> = (0..COPIES).map(|n| expected_copy(&request(n))).collect();
    assert!(
        received.len() == 1 && copies.contains(&received[0]),
        "only the copy holding the one connection was sent; the waiting ones never were: {:?}",
        received
            .iter()
            .map(|raw| String::from_utf8_lossy(raw))
            .collect::<Vec<_>>()
    );
}
