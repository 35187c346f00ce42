//! `shadowd status`: fetches `/diag?json=true` from a running daemon and prints the
//! production vs shadow table and the loss ledger, for people on the node.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::diag::{Report, text};

/// Why the daemon's report could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("connecting to the admin server at {addr} (is shadowd running?)")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the admin server at {addr}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the admin server at {addr} answered {status}")]
    Status { addr: SocketAddr, status: String },
    #[error("the admin server at {addr} sent a report this shadowd cannot read")]
    Report {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
}

/// Fetches the report of the daemon at `addr`.
pub fn fetch(addr: SocketAddr) -> Result<Report, StatusError> {
    let io = |source| StatusError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|source| StatusError::Connect { addr, source })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    // HTTP/1.0: the answer ends at close, with no chunked framing to undo.
    write!(
        stream,
        "GET /diag?json=true HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let status_line = String::from_utf8_lossy(&response[..head_end])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    if !status_line.contains(" 200") {
        return Err(StatusError::Status {
            addr,
            status: status_line,
        });
    }
    serde_json::from_slice(&response[head_end..])
        .map_err(|source| StatusError::Report { addr, source })
}

/// Prints the status of the daemon at `addr`; returns the exit code (1 when unreachable).
pub fn status(addr: SocketAddr, out: &mut dyn Write) -> i32 {
    match fetch(addr) {
        Ok(report) => {
            let _ = write!(out, "{}", text::render(&report));
            0
        }
        Err(err) => {
            let _ = writeln!(out, "shadowd status: {}", crate::error_chain(&err));
            1
        }
    }
}
