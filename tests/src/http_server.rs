//! A small HTTP/1.1 server for tests that counts every byte it reads and writes, so tests can
//! compare what crossed the wire with what shadowd captured.
//!
//! `GET /bytes/N` answers N bytes; any other request answers a short text. Request bodies
//! (Content-Length) are read and counted; `Expect: 100-continue` is honoured.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::netns::Netns;

/// Byte and request counts of a server.
#[derive(Debug, Default)]
pub struct Counts {
    pub read: AtomicU64,
    pub written: AtomicU64,
    pub requests: AtomicU64,
}

/// A running server; stops accepting on drop.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &Netns, addr: &str) -> HttpServer {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let listener = ns.enter(|| TcpListener::bind(addr).expect("bind test server"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_counts, thread_stop) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let counts = thread_counts.clone();
                        std::thread::spawn(move || serve_connection(stream, &counts));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer { addr, counts, stop }
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

fn serve_connection(mut stream: TcpStream, counts: &Counts) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_until_head_end(&mut stream, &mut buffer, counts) else {
            return;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end);
        let mut lines = head.lines();
        let target = lines
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
        let body_len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            write_counted(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n", counts);
        }
        while buffer.len() < body_len {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    counts.read.fetch_add(n as u64, Ordering::SeqCst);
                    buffer.extend_from_slice(&chunk[..n]);
                }
            }
        }
        buffer.drain(..body_len);
        counts.requests.fetch_add(1, Ordering::SeqCst);

        let body = match target
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => (0..n).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>(),
            None => format!("ok {target} {body_len}\n").into_bytes(),
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        response.extend_from_slice(&body);
        if !write_counted(&mut stream, &response, counts) || close {
            return;
        }
    }
}

/// Reads until the buffer holds a full request head; returns its length (with the blank line).
fn read_until_head_end(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    counts: &Counts,
) -> Option<usize> {
    loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(pos + 4);
        }
        let mut chunk = [0u8; 16384];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                counts.read.fetch_add(n as u64, Ordering::SeqCst);
                buffer.extend_from_slice(&chunk[..n]);
            }
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
