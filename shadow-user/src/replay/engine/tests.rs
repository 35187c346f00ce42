//! The engine against a recording server on 127.0.0.1: every copy of any number of client
//! connections is delivered, each connection's copies in their order on one upstream
//! connection while they queue, and nothing stays behind once they are done.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::{
    active::ActiveConfig,
    config::Diagnostics,
    replay::{
        body::{self, BodySender},
        copy::Copy,
        job::{self, Budget},
        stats::Undelivered,
    },
    route::{self, RouteTable},
};

/// What the server read: (its connection number, the request's first line).
type Seen = Arc<Mutex<Vec<(usize, String)>>>;

/// A server that answers every GET with an empty 200 after `delay`, and records it.
async fn server(delay: Duration) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        for number in 0.. {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buffer.drain(..end + 4).collect();
                        let line = String::from_utf8_lossy(&head);
                        let line = line.lines().next().unwrap_or_default().to_string();
                        record.lock().unwrap().push((number, line));
                        tokio::time::sleep(delay).await;
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if tcp.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A configuration whose one group shadows everything to `addr`.
fn config(addr: SocketAddr) -> Arc<ActiveConfig> {
    let production = route::tests::mapping("production", "/", "production");
    let shadow = route::tests::shadow("shadow", "/", &addr.to_string());
    let table = RouteTable::build(&[production, shadow], &mut Diagnostics::default());
    Arc::new(ActiveConfig {
        table,
        ..ActiveConfig::default()
    })
}

fn flow(n: u32) -> FlowKey {
    FlowKey {
        client: SocketAddr::from((
            [198, 18, (n >> 16) as u8, (n >> 8) as u8],
            (n & 0xff) as u16 + 1024,
        )),
        server: "198.19.0.1:80".parse().unwrap(),
    }
}

/// The copy of `GET /<flow>/<n>`.
fn copy(flow: u32, n: usize) -> Copy {
    Copy {
        head: Bytes::from(format!("GET /{flow}/{n} HTTP/1.1\r\nHost: s\r\n\r\n")),
        body: Bytes::new(),
        head_request: false,
    }
}

struct Engine {
    sender: ReplaySender,
    task: tokio::task::JoinHandle<()>,
    stats: ReplayStats,
    budget: Budget,
    config: Arc<ActiveConfig>,
}

impl Engine {
    fn start(addr: SocketAddr, max_connections: usize) -> Engine {
        let mut upstream = UpstreamConfig::new(
            crate::replay::upstream::TlsClient::new(&Default::default()).unwrap(),
        );
        upstream.max_connections_per_service = max_connections;
        let stats = ReplayStats::default();
        let (sender, task) = start(ReplaySettings::new(upstream), stats.clone());
        Engine {
            sender,
            task,
            budget: Budget::new(256 << 20, Gauge::default()),
            stats,
            config: config(addr),
        }
    }

    fn submit(&self, flow_number: u32, n: usize) {
        let id = u64::from(flow_number) << 32 | n as u64;
        let job = job::make(
            flow(flow_number),
            id,
            self.config.clone(),
            0,
            copy(flow_number, n),
            None,
            &self.budget,
        )
        .unwrap_or_else(|_| panic!("room for the copy"));
        self.sender.submit(job);
    }

    /// Waits for every copy handed over to be done.
    async fn finish(self) -> ReplayStats {
        drop(self.sender);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the engine drains")
            .unwrap();
        assert_eq!(self.budget.used(), 0, "every copy gave its bytes back");
        self.stats
    }
}

/// Returns once `condition` holds; fails the test after 10 s. What the tests wait for is an
/// event (a copy counted, a request read), not a stretch of time that usually covers it.
async fn until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited 10 s for {what}"));
}

/// The first lines the server read, in order.
fn lines(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .collect()
}

fn copied(stats: &ReplayStats) -> u64 {
    stats
        .copied
        .get_or_create(&crate::labels::MappingLabel {
            mapping: "shadow".into(),
        })
        .get()
}

#[tokio::test]
async fn thousands_of_client_connections_each_with_one_copy_are_all_delivered() {
    let (addr, seen) = server(Duration::ZERO).await;
    let engine = Engine::start(addr, 8);
    // More connections than a connection limit would hold, all at once, through 8 upstream
    // connections: each waits its turn instead of being turned away.
    for flow in 0..6000 {
        engine.submit(flow, 0);
    }
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 6000);
    assert_eq!(seen.lock().unwrap().len(), 6000);
    assert_eq!(stats.in_flight_total.get(), 0);
    assert_eq!(stats.active_flows.get(), 0, "no state outlives its copies");
}

#[tokio::test]
async fn each_connections_copies_go_in_order_on_one_upstream_connection() {
    let (addr, seen) = server(Duration::from_millis(1)).await;
    let engine = Engine::start(addr, 64);
    // Interleaved as captured: copy n of every connection, then copy n+1.
    for n in 0..40 {
        for flow in 0..20 {
            engine.submit(flow, n);
        }
    }
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 800);
    let seen = seen.lock().unwrap();
    for flow in 0..20 {
        let prefix = format!("GET /{flow}/");
        let mine: Vec<&(usize, String)> = seen
            .iter()
            .filter(|(_, l)| l.starts_with(&prefix))
            .collect();
        let order: Vec<String> = mine.iter().map(|(_, line)| line.clone()).collect();
        let expected: Vec<String> = (0..40)
            .map(|n| format!("GET /{flow}/{n} HTTP/1.1"))
            .collect();
        assert_eq!(order, expected, "connection {flow}'s copies in order");
        // Its copies queued behind each other, so they shared one upstream connection.
        assert!(
            mine.iter().all(|(c, _)| *c == mine[0].0),
            "connection {flow} on one upstream"
        );
    }
}

#[tokio::test]
async fn a_connection_that_comes_back_later_starts_afresh() {
    let (addr, seen) = server(Duration::ZERO).await;
    let engine = Engine::start(addr, 4);
    engine.submit(1, 0);
    // Done and forgotten before its next copy: nothing of it waits in between.
    until("the first copy", || copied(&engine.stats) == 1).await;
    assert_eq!(engine.stats.active_flows.get(), 0);
    engine.submit(1, 1);
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 2);
    assert_eq!(lines(&seen), ["GET /1/0 HTTP/1.1", "GET /1/1 HTTP/1.1"]);
}

#[tokio::test]
async fn what_replay_keeps_per_copy_fits_its_overhead() {
    let (addr, _) = server(Duration::ZERO).await;
    let engine = Engine::start(addr, 1);
    let job = job::make(
        flow(0),
        1,
        engine.config.clone(),
        0,
        copy(0, 0),
        None,
        &engine.budget,
    )
    .unwrap_or_else(|_| panic!("room for the copy"));
    let upstream = Arc::new(UpstreamConfig::new(
        crate::replay::upstream::TlsClient::new(&Default::default()).unwrap(),
    ));
    // A copy whose turn came is its task (the future holds the job); one waiting behind it
    // is a queue entry; its connection has a map entry either way. The task's own header
    // and the allocator's rounding are the last 512 bytes. (Connecting and sending box
    // their state, which the pool's bound limits.)
    let task = send(job, None, Arc::default(), upstream);
    let task_bytes = std::mem::size_of_val(&task);
    let entries = std::mem::size_of::<(FlowKey, VecDeque<Job>)>()
        + std::mem::size_of::<(task::Id, FlowKey)>();
    assert!(
        task_bytes + entries + 512 <= job::COPY_OVERHEAD,
        "task {task_bytes} B + entries {entries} B"
    );
    drop(task);
}

/// What `one_connection` read: its task's result (the bytes and whether the connection
/// ended in a reset) and, meanwhile, how many bytes came so far.
struct OneConnection {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<(Vec<u8>, bool)>,
    so_far: Arc<std::sync::atomic::AtomicUsize>,
}

/// A server that reads one connection to its end, answering once `expected` bytes came.
async fn one_connection(expected: usize) -> OneConnection {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = so_far.clone();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut read = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) => return (read, false),
                Ok(n) => {
                    read.extend_from_slice(&chunk[..n]);
                    count.store(read.len(), std::sync::atomic::Ordering::SeqCst);
                    if read.len() == expected {
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        tcp.write_all(ok).await.unwrap();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (read, true),
                Err(e) => panic!("{e}"),
            }
        }
    });
    OneConnection { addr, task, so_far }
}

/// Submits a streamed copy of flow `flow_number`: `head` and `first` body bytes now, the
/// rest through the sender returned.
fn submit_streamed(engine: &Engine, flow_number: u32, head: String, first: &[u8]) -> BodySender {
    let (tx, rx) = body::channel(engine.budget.clone());
    let copy = Copy {
        head: Bytes::from(head),
        body: Bytes::copy_from_slice(first),
        head_request: false,
    };
    let id = u64::from(flow_number) << 32;
    let job = job::make(
        flow(flow_number),
        id,
        engine.config.clone(),
        0,
        copy,
        Some(rx),
        &engine.budget,
    )
    .unwrap_or_else(|_| panic!("room for the copy"));
    engine.sender.submit(job);
    tx
}

/// Submits a streamed upload of `body_len` bytes whose first 1,000 body bytes came with its
/// head; returns the sender for the rest and the whole request as it must reach the shadow.
fn upload(engine: &Engine, body_len: usize) -> (BodySender, Vec<u8>) {
    let head = format!("POST /up HTTP/1.1\r\nHost: s\r\nContent-Length: {body_len}\r\n\r\n");
    let body: Vec<u8> = (0..body_len).map(|i| (i * 7 + i / 251) as u8).collect();
    let tx = submit_streamed(engine, 1, head.clone(), &body[..1000]);
    (tx, [head.into_bytes(), body].concat())
}

fn dropped(stats: &ReplayStats, reason: Undelivered) -> u64 {
    stats
        .dropped
        .get_or_create(&crate::replay::stats::DropLabels {
            mapping: "shadow".into(),
            reason,
        })
        .get()
}

#[tokio::test]
async fn a_streamed_body_reaches_the_shadow_whole_as_its_pieces_arrive() {
    let body_len = 300_000;
    let head_len =
        format!("POST /up HTTP/1.1\r\nHost: s\r\nContent-Length: {body_len}\r\n\r\n").len();
    let server = one_connection(head_len + body_len).await;
    let engine = Engine::start(server.addr, 4);
    let (mut tx, whole) = upload(&engine, body_len);
    for piece in whole[head_len + 1000..].chunks(7_000) {
        assert!(tx.push(Bytes::copy_from_slice(piece)));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tx.end();
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 1);
    let (read, reset) = server.task.await.unwrap();
    assert!(!reset, "a complete copy ends in a close, not a reset");
    assert!(read == whole, "the shadow read the request byte-exact");
}

#[tokio::test]
async fn a_streamed_body_that_breaks_off_resets_the_shadow_connection() {
    let body_len = 300_000;
    let server = one_connection(usize::MAX).await;
    let engine = Engine::start(server.addr, 4);
    let (mut tx, whole) = upload(&engine, body_len);
    assert!(tx.push(Bytes::from_static(&[1; 5000])));
    // Broken off once the shadow has read all that was captured: a request half sent.
    let sent = whole.len() - body_len + 1000 + 5000;
    until("the captured part to reach the shadow", || {
        server.so_far.load(std::sync::atomic::Ordering::SeqCst) == sent
    })
    .await;
    drop(tx);
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 0);
    assert_eq!(dropped(&stats, Undelivered::Incomplete), 1);
    let (read, reset) = server.task.await.unwrap();
    assert!(
        reset,
        "the shadow sees a reset, not a request that looks complete"
    );
    assert!(read.len() < whole.len());
}

/// Submits a streamed upload on `flow_number` whose body never comes unless pushed.
fn streamed(engine: &Engine, flow_number: u32) -> BodySender {
    let head =
        format!("POST /{flow_number}/up HTTP/1.1\r\nHost: s\r\nContent-Length: 100000\r\n\r\n");
    submit_streamed(engine, flow_number, head, &[7; 1000])
}

#[tokio::test]
async fn a_streamed_copy_abandoned_while_it_waits_never_reaches_the_shadow() {
    // One connection, busy with a slow GET, while the upload's body is abandoned.
    let (addr, seen) = server(Duration::from_millis(300)).await;
    let engine = Engine::start(addr, 1);
    engine.submit(1, 0);
    until("the GET to hold the connection", || lines(&seen).len() == 1).await;
    let upload = streamed(&engine, 2);
    // Waiting for the connection or not yet, the abandoned upload must send nothing.
    tokio::task::yield_now().await;
    drop(upload);
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 1);
    assert_eq!(dropped(&stats, Undelivered::Incomplete), 1);
    assert_eq!(
        lines(&seen),
        ["GET /1/0 HTTP/1.1"],
        "nothing of the upload was sent"
    );
}

#[tokio::test]
async fn streamed_copies_leave_connections_to_the_others() {
    // Two connections: one (all but an eighth, at least one kept free) may carry a body
    // still being captured; the second upload waits while a GET goes through.
    let (addr, seen) = server(Duration::ZERO).await;
    let engine = Engine::start(addr, 2);
    let first = streamed(&engine, 1);
    let second = streamed(&engine, 2);
    until("the first upload to stream", || lines(&seen).len() == 1).await;
    engine.submit(3, 0);
    until("the GET to be copied while an upload streams", || {
        copied(&engine.stats) == 1
    })
    .await;
    let mut lines = lines(&seen);
    lines.sort();
    assert_eq!(
        lines,
        ["GET /3/0 HTTP/1.1", "POST /1/up HTTP/1.1"],
        "the second upload waits for the first"
    );
    for mut upload in [first, second] {
        assert!(upload.push(Bytes::from(vec![7; 99_000])));
        upload.end();
    }
    let stats = engine.finish().await;
    assert_eq!(copied(&stats), 3);
}

#[test]
fn copies_the_runtime_drops_mid_flight_are_each_counted_once_as_shutdown() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A shadow that reads and never answers: copies are being sent, waiting for a pooled
    // connection, queued behind their connection's, and still in the channel when the
    // runtime goes away.
    let (engine, stats) = runtime.block_on(async {
        let (addr, _seen) = server(Duration::from_secs(3600)).await;
        let engine = Engine::start(addr, 2);
        for flow in 0..10 {
            for n in 0..5 {
                engine.submit(flow, n);
            }
        }
        // Some are sent before the end.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = engine.stats.clone();
        (engine, stats)
    });
    for flow in 10..15 {
        engine.submit(flow, 0);
    }
    drop(runtime);
    let Engine { sender, budget, .. } = engine;
    // A copy handed to an engine that is gone is counted too.
    let config = config("127.0.0.1:9".parse().unwrap());
    let late = job::make(flow(99), 1, config, 0, copy(99, 0), None, &budget)
        .unwrap_or_else(|_| panic!("room for the copy"));
    sender.submit(late);
    assert_eq!(copied(&stats), 0);
    assert_eq!(
        dropped(&stats, Undelivered::Shutdown),
        50 + 5 + 1,
        "every copy, once"
    );
    assert_eq!(stats.in_flight_total.get(), 0);
    assert_eq!(budget.used(), 0, "and its bytes came back");
}
