//! Exchanges over real sockets: every way a response can end, and what each leaves of the
//! connection.

use std::time::Duration;

use bytes::Bytes;

use super::{GET, PATIENT, Reply, Server, plain, send};
use crate::replay::upstream::{UpstreamError, error::ExchangeStage};

#[tokio::test]
async fn content_length_body() {
    // The empty first piece makes the server pause before the first byte.
    let server = Server::start(vec![Reply::Send(vec![
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"lo",
    ])])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let exchange = send(&mut connection, GET, false).await.unwrap();
    assert_eq!(exchange.status, 200);
    assert!(exchange.reusable);
    assert!(exchange.latency >= Duration::from_millis(5));
}

#[tokio::test]
async fn chunked_body_with_trailers_split_across_writes() {
    let server = Server::start(vec![
        Reply::Send(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=\"1\"\r\nWi",
            b"ki\r\n5\r\npedia\r",
            b"\n0\r\nX-Checksum: ",
            b"abc\r\n\r",
            b"\n",
        ]),
        Reply::Send(vec![b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"]),
    ])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let first = send(&mut connection, GET, false).await.unwrap();
    assert_eq!((first.status, first.reusable), (200, true));
    // The next reply parses from its first byte: the chunked body ended exactly.
    let second = send(&mut connection, GET, false).await.unwrap();
    assert_eq!((second.status, second.reusable), (201, true));
}

#[tokio::test]
async fn continue_then_final_response() {
    let server = Server::start(vec![Reply::Send(vec![
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n",
        b"Content-Length: 2\r\n\r\nok",
    ])])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let head = b"POST /x HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let exchange = connection
        .exchange(
            head,
            &Bytes::from_static(b"data"),
            None,
            false,
            PATIENT,
            None,
        )
        .await
        .unwrap();
    assert_eq!((exchange.status, exchange.reusable), (200, true));
}

#[tokio::test]
async fn head_response_has_no_body() {
    let server = Server::start(vec![
        Reply::Send(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"]),
        Reply::Send(vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]),
    ])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let head = b"HEAD /x HTTP/1.1\r\nHost: s\r\n\r\n";
    let first = send(&mut connection, head, true).await.unwrap();
    assert_eq!((first.status, first.reusable), (200, true));
    let second = send(&mut connection, GET, false).await.unwrap();
    assert_eq!(second.status, 404);
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body() {
    let server = Server::start(vec![
        Reply::Send(vec![b"HTTP/1.1 204 No Content\r\n\r\n"]),
        Reply::Send(vec![
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        ]),
        Reply::Send(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]),
    ])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    for status in [204, 304, 200] {
        let exchange = send(&mut connection, GET, false).await.unwrap();
        assert_eq!((exchange.status, exchange.reusable), (status, true));
    }
}

#[tokio::test]
async fn body_until_close_is_read_and_not_reused() {
    let server = Server::start(vec![Reply::SendAndClose(vec![
        b"HTTP/1.1 200 OK\r\n\r\nbody until",
        b" the connection closes",
    ])])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let exchange = send(&mut connection, GET, false).await.unwrap();
    assert_eq!((exchange.status, exchange.reusable), (200, false));
    assert!(!connection.is_reusable());
}

#[tokio::test]
async fn connection_close_is_not_reused() {
    let server = Server::start(vec![
        Reply::Send(vec![
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        ]),
        Reply::Send(vec![b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
        Reply::Send(vec![
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        ]),
        Reply::Send(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    // Each exchange reads its reply whole, so the next one can still be sent here.
    let close = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    let mut reusable = Vec::new();
    for request in [GET, GET, GET, close] {
        reusable.push(
            send(&mut connection, request, false)
                .await
                .unwrap()
                .reusable,
        );
    }
    assert_eq!(reusable, [false, false, true, false]);
}

#[tokio::test]
async fn the_copy_arrives_byte_exact() {
    let body = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let head = format!(
        "PUT /big HTTP/1.1\r\nhost: Shadow\r\nX-Odd:  spaced \r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let server = Server::start(vec![Reply::Send(vec![
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    ])])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let exchange = connection
        .exchange(head.as_bytes(), &body, None, false, PATIENT, None)
        .await
        .unwrap();
    assert_eq!(exchange.status, 201);
    let mut expected = head.into_bytes();
    expected.extend_from_slice(&body);
    assert!(server.requests.lock().unwrap()[0] == expected);
}

#[tokio::test]
async fn a_reply_cut_short_is_a_reset() {
    let server = Server::start(vec![Reply::SendAndClose(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    ])])
    .await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let err = send(&mut connection, GET, false).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Reset {
                stage: ExchangeStage::Read,
                reused: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "reset");
    assert!(!connection.is_reusable());
}

#[tokio::test]
async fn garbage_is_a_bad_response() {
    let server = Server::start(vec![Reply::Send(vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n"])]).await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    let err = send(&mut connection, GET, false).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "bad_response", "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_shadow_times_out_after_exactly_its_timeout() {
    let server = Server::start(vec![Reply::Silent]).await;
    let upstream = plain(&server);
    let mut connection = upstream.connection().await.unwrap();
    // A Mapping's default timeout_ms; the paused clock moves only to the next timer.
    let timeout = Duration::from_millis(3000);
    let started = tokio::time::Instant::now();
    let err = connection
        .exchange(GET, &Bytes::new(), None, false, timeout, None)
        .await
        .unwrap_err();
    assert_eq!(
        started.elapsed(),
        timeout,
        "given up neither early nor late"
    );
    assert!(matches!(err, UpstreamError::Timeout { after } if after == timeout));
    assert_eq!(err.reason().as_str(), "timeout");
    assert!(!connection.is_reusable());
}
