//! Liveness is real: a capture thread that stops reading turns `/healthz` into 503 within
//! the stall limit, and reading again turns it back; production never notices either.

use std::time::Duration;

use shadowd_tests::{
    eventually,
    fixtures::{MappingFile, SHADOW_MAPPING, ShadowSetup, production_get, user_example},
    http_server::Behaviour,
    ptrace::{StoppedThread, threads_named},
};

#[test]
fn healthz_fails_while_the_capture_thread_is_stuck_and_recovers_when_it_reads_again() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    let readers = threads_named(daemon.pid(), "shadowd-capture");
    assert_eq!(readers.len(), 1, "one capture thread: {readers:?}");

    let stuck = StoppedThread::stop(readers[0]);
    let body = eventually(Duration::from_secs(20), "/healthz to fail", || {
        daemon
            .get("/healthz")
            .filter(|(status, _)| *status == 503)
            .map(|(_, body)| body)
    });
    assert!(body.contains("capture stalled"), "{body}");
    // Production is served while nothing reads the copies.
    assert_eq!(production_get(&setup.topo, "/myservice/while-stuck"), 200);

    drop(stuck);
    eventually(Duration::from_secs(10), "/healthz to pass again", || {
        (daemon.get("/healthz").map(|(status, _)| status) == Some(200)).then_some(())
    });
    assert_eq!(production_get(&setup.topo, "/myservice/after"), 200);
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 2, Duration::from_secs(20));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 2);
}
