//! `shadowd status`: fetches `/diag?json=true` from a running daemon and prints the
//! production vs shadow table and the loss ledger, for people on the node; with `--watch`,
//! redraws it until interrupted.

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

/// Prints the response diffs of the daemon at `addr`, as text or JSON; returns the exit code:
/// 0 when nothing is flagged, 1 when unreachable, 2 when a field is flagged.
pub fn diff(addr: SocketAddr, json: bool, out: &mut dyn Write) -> i32 {
    let report = match fetch(addr) {
        Ok(report) => report.diff,
        Err(err) => {
            let _ = writeln!(out, "shadowd diff: {}", crate::error_chain(&err));
            return 1;
        }
    };
    let _ = match json {
        true => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        false => write!(out, "{}", crate::diff::report::text(&report)),
    };
    match crate::diff::report::any_flagged(&report) {
        true => 2,
        false => 0,
    }
}

/// Clears a terminal and puts the cursor at its top left, so each view replaces the last.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Redraws the status of the daemon at `addr` every `every`, `rounds` times or until the
/// process is interrupted; a daemon that does not answer is said so, and asked again.
pub fn watch(addr: SocketAddr, every: Duration, rounds: Option<usize>, out: &mut dyn Write) -> i32 {
    let mut round = 0;
    while rounds.is_none_or(|rounds| round < rounds) {
        let _ = write!(out, "{CLEAR}");
        match fetch(addr) {
            Ok(report) => {
                let _ = write!(out, "{}", text::render(&report));
            }
            Err(err) => {
                let _ = writeln!(out, "shadowd status: {}", crate::error_chain(&err));
            }
        }
        let _ = writeln!(out, "(every {:.1} s; Ctrl-C to stop)", every.as_secs_f64());
        let _ = out.flush();
        round += 1;
        if rounds.is_none_or(|rounds| round < rounds) {
            std::thread::sleep(every);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, net::TcpListener};

    use super::*;

    /// An admin server that answers each request with `report`, `count` times.
    fn serve(report: &Report, count: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let body = serde_json::to_string(report).unwrap();
        std::thread::spawn(move || {
            for _ in 0..count {
                let (mut stream, _) = listener.accept().unwrap();
                // The whole request: closing with bytes unread would reset the connection.
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n{body}");
            }
        });
        addr
    }

    #[test]
    fn watch_redraws_the_view_and_rides_out_a_daemon_that_went_away() {
        let report = Report {
            version: "9.9.9".into(),
            ready: true,
            ..Report::default()
        };
        let addr = serve(&report, 2);
        let mut out = Vec::new();
        assert_eq!(watch(addr, Duration::from_millis(10), Some(3), &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches(CLEAR).count(), 3, "{text}");
        let views: Vec<&str> = text.split(CLEAR).skip(1).collect();
        let once = text::render(&report);
        assert!(
            views[0].starts_with(&once) && views[1].starts_with(&once),
            "{text}"
        );
        // The third ask finds no one: said, not fatal.
        assert!(views[2].starts_with("shadowd status: connecting"), "{text}");
    }

    #[test]
    fn diff_prints_the_report_and_exits_2_when_a_field_is_flagged() {
        let mapping = |flagged| crate::diff::MappingReport {
            mapping: "m".into(),
            compared: 3,
            different: 1,
            flagged,
            ..Default::default()
        };
        for (flagged, code) in [(0, 0), (1, 2)] {
            let report = Report {
                diff: vec![mapping(flagged)],
                ..Report::default()
            };
            let addr = serve(&report, 2);
            let mut out = Vec::new();
            assert_eq!(diff(addr, false, &mut out), code);
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("m: 3 compared, 1 different"), "{text}");
            let mut out = Vec::new();
            assert_eq!(diff(addr, true, &mut out), code);
            let back: Vec<crate::diff::MappingReport> = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, report.diff);
        }
        let gone = serve(&Report::default(), 0);
        std::thread::sleep(Duration::from_millis(50));
        let mut out = Vec::new();
        assert_eq!(diff(gone, false, &mut out), 1);
    }
}
