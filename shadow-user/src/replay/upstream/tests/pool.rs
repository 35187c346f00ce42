//! Connections: reuse, the pool bound, connect failures and re-resolving, the circuit
//! breaker, the loop-guard mark.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, time::Instant};

use super::{GET, Reply, Server, config, plain, send, service};
use crate::{
    config::Scheme,
    replay::upstream::{
        Upstream, UpstreamConfig, UpstreamError, breaker::BreakerConfig, connect,
        error::ConnectStage, resolve::AddressCache,
    },
};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// An address where nothing listens (a port just freed).
async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let server = Server::start(vec![Reply::Send(vec![OK]), Reply::Send(vec![OK])]).await;
    let upstream = plain(&server);
    for _ in 0..2 {
        let mut connection = upstream.connection().await.unwrap();
        assert!(send(&mut connection, GET, false).await.unwrap().reusable);
        upstream.put_back(connection);
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(upstream.open_connections(), 1);
}

#[tokio::test]
async fn connections_that_cannot_be_reused_are_closed() {
    let server = Server::start(vec![Reply::SendAndClose(vec![b"HTTP/1.1 200 OK\r\n\r\nx"])]).await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    assert!(!send(&mut connection, GET, false).await.unwrap().reusable);
    upstream.put_back(connection);
    assert_eq!(upstream.open_connections(), 0);
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_shadow_is_replaced() {
    // The shadow closes after a reply that did not say so.
    let server = Server::start(vec![Reply::SendAndClose(vec![OK]), Reply::Send(vec![OK])]).await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    assert!(send(&mut connection, GET, false).await.unwrap().reusable);
    upstream.put_back(connection);
    server.closed(1).await;
    let mut connection = upstream.connection().await.unwrap();
    assert_eq!(send(&mut connection, GET, false).await.unwrap().status, 200);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_held_connection_closed_by_the_shadow_is_a_reset() {
    let server = Server::start(vec![Reply::SendAndClose(vec![OK])]).await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    assert!(send(&mut connection, GET, false).await.unwrap().reusable);
    server.closed(1).await;
    let err = send(&mut connection, GET, false).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Reset { reused: true, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_pool_bound_holds_callers_past_the_connect_timeout_until_a_slot_frees() {
    let server = Server::start(vec![Reply::Send(vec![OK])]).await;
    let upstream = Upstream::new(
        service(Scheme::Http, "127.0.0.1", server.addr),
        config(1, Duration::from_millis(50)),
    );
    let held = upstream.connection().await.unwrap();
    let waiter = tokio::spawn({
        let upstream = upstream.clone();
        async move { upstream.connection().await.map(|_| ()) }
    });
    // Four connect timeouts later (on the runtime's paused clock) it still waits for the one
    // slot, and gets no error.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    assert_eq!(upstream.open_connections(), 1);
    // Dropping a connection closes it and frees its slot: the waiter connects anew.
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_waiting_caller_gets_a_connection_given_back() {
    let server = Server::start(vec![Reply::Send(vec![OK])]).await;
    let upstream = Upstream::new(
        service(Scheme::Http, "127.0.0.1", server.addr),
        config(1, Duration::from_secs(5)),
    );
    let held = upstream.connection().await.unwrap();
    let waiter = tokio::spawn({
        let upstream = upstream.clone();
        async move {
            let mut connection = upstream.connection().await.unwrap();
            send(&mut connection, GET, false).await.unwrap().status
        }
    });
    // Give the waiter time to start waiting; it gets the connection either way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    upstream.put_back(held);
    assert_eq!(waiter.await.unwrap(), 200);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_failure() {
    let upstream = Upstream::new(
        service(Scheme::Http, "127.0.0.1", dead_address().await),
        config(1, Duration::from_secs(2)),
    );
    let err = upstream.connection().await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::ConnectFailed {
                stage: ConnectStage::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "connect_failed");
    // The failed connect gave its slot back.
    assert_eq!(upstream.open_connections(), 0);
}

#[tokio::test]
async fn an_unknown_name_is_a_connect_failure() {
    let mut service = service(Scheme::Http, "shadow.invalid", dead_address().await);
    service.port = 80;
    let upstream = Upstream::new(service, config(1, Duration::from_secs(2)));
    let err = upstream.connection().await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::ConnectFailed {
                stage: ConnectStage::Resolve,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_connect_resolves_again() {
    let server = Server::start(vec![]).await;
    // "localhost" resolves (through /etc/hosts) to the live server; the cache says otherwise.
    let service = service(Scheme::Http, "localhost", server.addr);
    let config: Arc<UpstreamConfig> = config(1, Duration::from_secs(2));
    let cache = AddressCache::new(Duration::from_secs(30));
    let stale: Arc<[SocketAddr]> = Arc::from([dead_address().await]);
    cache.store(stale, std::time::Instant::now());
    let deadline = Instant::now() + Duration::from_secs(2);
    let failed = connect::open(&service, &config, &cache, deadline).await;
    assert!(matches!(failed, Err((ConnectStage::Connect, _))));
    assert!(cache.fresh(std::time::Instant::now()).is_none());
    connect::open(&service, &config, &cache, deadline)
        .await
        .unwrap();
    let fresh = cache.fresh(std::time::Instant::now()).unwrap();
    assert!(fresh.iter().all(|a| a.ip().is_loopback()));
}

#[tokio::test]
async fn sockets_carry_the_loop_guard_mark() {
    let server = Server::start(vec![Reply::Send(vec![OK])]).await;
    let config = Arc::new(UpstreamConfig {
        loop_guard_mark: 0x5348_4457,
        ..(*config(1, Duration::from_secs(2))).clone()
    });
    let upstream = Upstream::new(service(Scheme::Http, "127.0.0.1", server.addr), config);
    let mut connection = upstream.connection().await.unwrap();
    let mark = socket2::SockRef::from(connection.stream().tcp())
        .mark()
        .unwrap();
    assert_eq!(mark, 0x5348_4457);
    assert_eq!(send(&mut connection, GET, false).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_keeps_refusing_fails_at_once_until_a_probe_connects() {
    let address = dead_address().await;
    let config = Arc::new(UpstreamConfig {
        breaker: BreakerConfig {
            failures: 2,
            first_pause: Duration::from_millis(300),
            longest_pause: Duration::from_secs(1),
        },
        ..(*config(4, Duration::from_secs(2))).clone()
    });
    let upstream = Upstream::new(service(Scheme::Http, "127.0.0.1", address), config);
    for _ in 0..2 {
        let err = upstream.connection().await.unwrap_err();
        assert_eq!(err.reason().as_str(), "connect_failed", "{err:?}");
    }
    // Open: copies fail without a connect, even once something listens.
    let listener = TcpListener::bind(address).await.unwrap();
    let err = upstream.connection().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::CircuitOpen { for_, .. } if for_ == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "circuit_open");
    assert_eq!(
        upstream.open_connections(),
        0,
        "the refusal gave its slot back"
    );
    // Still open a moment before the pause ends (the clock is paused: no time passes
    // but what the test lets pass); after it, one probe connects, and the breaker closes.
    tokio::time::sleep(Duration::from_millis(299)).await;
    let err = upstream.connection().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::CircuitOpen { for_, .. } if for_ == Duration::from_millis(1)),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    let probe = upstream.connection().await.expect("the probe connects");
    let (_accepted, _) = listener.accept().await.unwrap();
    let next = upstream.connection().await.expect("closed again");
    drop((probe, next));
}

#[tokio::test]
async fn a_name_that_stops_resolving_still_reaches_its_last_good_addresses() {
    let server = Server::start(vec![]).await;
    // `.invalid` never resolves (RFC 6761): a DNS outage, as far as the client can tell.
    let service = service(Scheme::Http, "shadow.invalid", server.addr);
    let config: Arc<UpstreamConfig> = config(1, Duration::from_secs(2));
    let cache = AddressCache::new(Duration::from_secs(30));
    cache.store(Arc::from([server.addr]), std::time::Instant::now());
    // A failed connect expired them: the next one resolves again, fails, and uses them.
    cache.expire();
    assert!(cache.fresh(std::time::Instant::now()).is_none());
    let deadline = Instant::now() + Duration::from_secs(2);
    connect::open(&service, &config, &cache, deadline)
        .await
        .expect("connected to the last good address");
    // And they are fresh again: the next connect does not wait on the resolver.
    assert_eq!(
        cache.fresh(std::time::Instant::now()).as_deref(),
        Some(&[server.addr][..])
    );
}
