//! A small HTTP/1.1 server for tests that counts every byte it reads and writes, so tests can
//! compare what crossed the wire with what shadowd captured.
//!
//! `GET /bytes/N` answers N bytes; any other request answers a short text. Request bodies
//! (Content-Length or chunked) are read, counted and recorded; `Expect: 100-continue` is
//! honoured.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns::Netns;

/// Byte and request counts of a server.
#[derive(Debug, Default)]
pub struct Counts {
    /// Bytes read from clients.
    pub read: AtomicU64,
    /// Bytes written to clients.
    pub written: AtomicU64,
    /// Requests read whole.
    pub requests: AtomicU64,
}

/// A running server; stops accepting on drop.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it read and wrote so far.
    pub counts: Arc<Counts>,
    received: Arc<Recorded>,
    stop: Arc<AtomicBool>,
}

/// Requests received, each with the number of its connection.
type Recorded = Mutex<Vec<(u64, Vec<u8>)>>;

/// How a server behaves besides answering.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Wait this long before each response (a slow service).
    pub delay: Duration,
    /// Accept connections and read requests, but never answer (a hanging service).
    pub never_answer: bool,
    /// Answer 500 to requests whose target starts with this.
    pub fail_prefix: Option<&'static str>,
    /// Switch protocols as asked: `101` to a request with `Upgrade`, `200` to `CONNECT`;
    /// then the connection is a tunnel that echoes what it reads.
    pub tunnels: bool,
    /// Answers each request with what this returns for its target: the whole response,
    /// head and body as they go on the wire.
    pub respond: Option<fn(&str) -> Vec<u8>>,
}

impl HttpServer {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &Netns, addr: &str) -> HttpServer {
        Self::start_with(ns, addr, Behaviour::default())
    }

    /// Listens on `addr` inside `ns`, behaving as `behaviour` says.
    pub fn start_with(ns: &Netns, addr: &str, behaviour: Behaviour) -> HttpServer {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let listener = ns.enter(|| listen(addr));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let counts = Arc::new(Counts::default());
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_counts, thread_stop, thread_received) =
            (counts.clone(), stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut connection = 0u64;
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        connection += 1;
                        let counts = thread_counts.clone();
                        let received = thread_received.clone();
                        let id = connection;
                        std::thread::spawn(move || {
                            serve_connection(stream, &counts, &received, id, behaviour)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer {
            addr,
            counts,
            received,
            stop,
        }
    }

    /// Every request received so far, exactly as read (head and body framing), in the order
    /// they completed.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received_with_connections()
            .into_iter()
            .map(|(_, raw)| raw)
            .collect()
    }

    /// The request targets received so far, sorted.
    pub fn received_targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = self
            .received()
            .iter()
            .map(|request| {
                let text = String::from_utf8_lossy(request);
                text.split(' ').nth(1).unwrap_or_default().to_string()
            })
            .collect();
        targets.sort();
        targets
    }

    /// Every request received so far with the number of the connection it came on (from 1,
    /// in accept order).
    pub fn received_with_connections(&self) -> Vec<(u64, Vec<u8>)> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (bytes read, bytes written) so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.counts.read.load(Ordering::SeqCst),
            self.counts.written.load(Ordering::SeqCst),
        )
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The connection's bytes as read so far, counted.
struct Conn<'a> {
    stream: TcpStream,
    buffer: Vec<u8>,
    counts: &'a Counts,
}

impl Conn<'_> {
    /// Reads more bytes; false when the peer closed or the read failed.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.counts.read.fetch_add(n as u64, Ordering::SeqCst);
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Position just past the first CRLF at or after `from`, reading as needed.
    fn line_end(&mut self, from: usize) -> Option<usize> {
        loop {
            if let Some(pos) = self.buffer[from.min(self.buffer.len())..]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                return Some(from + pos + 2);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Makes sure the buffer holds at least `len` bytes.
    fn need(&mut self, len: usize) -> bool {
        while self.buffer.len() < len {
            if !self.fill() {
                return false;
            }
        }
        true
    }

    /// Length of the request head (through the blank line).
    fn head_len(&mut self) -> Option<usize> {
        let mut at = 0;
        loop {
            let end = self.line_end(at)?;
            if end - at == 2 {
                return Some(end);
            }
            at = end;
        }
    }

    /// Length of a chunked body starting at `start`, trailers and final CRLF included.
    fn chunked_len(&mut self, start: usize) -> Option<usize> {
        let mut at = start;
        loop {
            let line_end = self.line_end(at)?;
            let line = String::from_utf8_lossy(&self.buffer[at..line_end - 2]).into_owned();
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            at = line_end;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let end = self.line_end(at)?;
                    let blank = end - at == 2;
                    at = end;
                    if blank {
                        return Some(at - start);
                    }
                }
            }
            if !self.need(at + size + 2) {
                return None;
            }
            at += size + 2;
        }
    }
}

/// A listener with a deep accept queue: clients open thousands of connections faster than
/// the accept loop starts a thread for each, and with std's 128 a dropped SYN waits out
/// retransmissions (1, 2, 4, 8, 16 s) longer than a server thread waits for its request.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("test server socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).expect("bind test server");
    socket.listen(8192).expect("listen");
    socket.into()
}

fn serve_connection(
    stream: TcpStream,
    counts: &Counts,
    received: &Recorded,
    connection: u64,
    behaviour: Behaviour,
) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut conn = Conn {
        stream,
        buffer: Vec::new(),
        counts,
    };
    loop {
        let Some(head_end) = conn.head_len() else {
            return;
        };
        let head = String::from_utf8_lossy(&conn.buffer[..head_end]).into_owned();
        let target = head
            .lines()
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or("/")
            .to_string();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
        };
        if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            write_counted(&mut conn.stream, b"HTTP/1.1 100 Continue\r\n\r\n", counts);
        }
        let chunked = header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"));
        let body_len = if chunked {
            match conn.chunked_len(head_end) {
                Some(len) => len,
                None => return,
            }
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if !conn.need(head_end + len) {
                return;
            }
            len
        };
        let message: Vec<u8> = conn.buffer.drain(..head_end + body_len).collect();
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((connection, message));
        counts.requests.fetch_add(1, Ordering::SeqCst);
        if behaviour.never_answer {
            continue;
        }
        if behaviour.tunnels {
            let switch = if head.starts_with("CONNECT ") {
                Some("HTTP/1.1 200 Connection Established\r\n\r\n".to_string())
            } else {
                header("upgrade").map(|protocol| {
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
                    )
                })
            };
            if let Some(switch) = switch {
                write_counted(&mut conn.stream, switch.as_bytes(), counts);
                return echo(conn);
            }
        }
        std::thread::sleep(behaviour.delay);
        if let Some(respond) = behaviour.respond {
            if !write_counted(&mut conn.stream, &respond(&target), counts) {
                return;
            }
            continue;
        }

        let body = match target
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => (0..n).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>(),
            None => format!("ok {target} {body_len}\n").into_bytes(),
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = match behaviour.fail_prefix {
            Some(prefix) if target.starts_with(prefix) => "500 Internal Server Error",
            _ => "200 OK",
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        response.extend_from_slice(&body);
        if !write_counted(&mut conn.stream, &response, counts) || close {
            return;
        }
    }
}

/// The tunnel after a protocol switch: every byte read is written back, until the peer closes.
fn echo(mut conn: Conn<'_>) {
    loop {
        let pending = std::mem::take(&mut conn.buffer);
        if !pending.is_empty() && !write_counted(&mut conn.stream, &pending, conn.counts) {
            return;
        }
        if !conn.fill() {
            return;
        }
    }
}

fn write_counted(stream: &mut TcpStream, bytes: &[u8], counts: &Counts) -> bool {
    match stream.write_all(bytes) {
        Ok(()) => {
            counts
                .written
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            true
        }
        Err(_) => false,
    }
}
