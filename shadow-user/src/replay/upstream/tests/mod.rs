//! Tests of the shadow-service client against scripted servers on 127.0.0.1.

mod exchange;
mod pool;
mod tls;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tokio_rustls::TlsAcceptor;

use super::{
    Connection, TlsClient, TlsOptions, Upstream, UpstreamConfig, UpstreamError,
    connection::Exchange,
};
use crate::config::{Scheme, Service};

/// A plain GET copy.
const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: shadow\r\n\r\n";
/// Exchange timeout in tests that expect an answer: long enough never to be hit.
const PATIENT: Duration = Duration::from_secs(10);

/// What the scripted server does after reading a request.
pub(super) enum Reply {
    /// Writes these pieces, flushing and pausing between them, then reads the next request.
    Send(Vec<&'static [u8]>),
    /// Writes these pieces, then closes the connection.
    SendAndClose(Vec<&'static [u8]>),
    /// Never answers, and keeps the connection open.
    Silent,
}

/// A server on 127.0.0.1 that answers requests with the scripted replies, in order, across
/// all its connections; it closes a connection when the script runs out. Stops when dropped.
pub(super) struct Server {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Every request read, as received.
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Connections closed so far, counted once each is shut down and dropped.
    closed: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(replies: Vec<Reply>) -> Server {
        Server::start_with(replies, None).await
    }

    pub async fn start_with(replies: Vec<Reply>, tls: Option<TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(replies)));
        let (count, seen) = (accepted.clone(), requests.clone());
        let (closes, closed) = watch::channel(0);
        let closes = Arc::new(closes);
        let task = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection's task.
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (script, seen, tls) = (script.clone(), seen.clone(), tls.clone());
                let closes = closes.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve(tcp, script, seen).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, script, seen).await;
                            }
                        }
                    }
                    closes.send_modify(|closed| *closed += 1);
                });
            }
        });
        Server {
            addr,
            accepted,
            requests,
            closed,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Returns once the server has closed `count` connections. On loopback the close's FIN
    /// has then reached the client's socket: it went out with the close.
    pub async fn closed(&self, count: usize) {
        self.closed
            .clone()
            .wait_for(|closed| *closed >= count)
            .await
            .expect("the server's task holds the sender");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut pending = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut pending).await {
        seen.lock().unwrap().push(request);
        let reply = script.lock().unwrap().pop_front();
        let (pieces, close) = match reply {
            Some(Reply::Send(pieces)) => (pieces, false),
            Some(Reply::SendAndClose(pieces)) => (pieces, true),
            Some(Reply::Silent) => std::future::pending().await,
            None => return,
        };
        for piece in pieces {
            stream.write_all(piece).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads one request (head, and a body of its `Content-Length`); `None` at the end.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    pending: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let total = end + 4 + length;
            if pending.len() >= total {
                return Some(pending.drain(..total).collect());
            }
        }
        let mut buf = [0u8; 64 * 1024];
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// The system's CA certificates, loaded once per test run.
fn system_tls() -> TlsClient {
    static TLS: OnceLock<TlsClient> = OnceLock::new();
    TLS.get_or_init(|| TlsClient::new(&TlsOptions::default()).unwrap())
        .clone()
}

pub(super) fn config(max_connections: usize, connect_timeout: Duration) -> Arc<UpstreamConfig> {
    Arc::new(UpstreamConfig {
        max_connections_per_service: max_connections,
        connect_timeout,
        ..UpstreamConfig::new(system_tls())
    })
}

pub(super) fn service(scheme: Scheme, host: &str, addr: SocketAddr) -> Service {
    Service {
        scheme,
        host: host.to_owned(),
        port: addr.port(),
    }
}

/// An upstream for a plain server, with a generous pool.
pub(super) fn plain(server: &Server) -> Arc<Upstream> {
    Upstream::new(
        service(Scheme::Http, "127.0.0.1", server.addr),
        config(8, Duration::from_secs(2)),
    )
}

/// Sends `request` (no body) on `connection`.
pub(super) async fn send(
    connection: &mut Connection,
    request: &[u8],
    head_request: bool,
) -> Result<Exchange, UpstreamError> {
    connection
        .exchange(request, &Bytes::new(), None, head_request, PATIENT, None)
        .await
}
