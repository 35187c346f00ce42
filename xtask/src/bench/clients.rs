//! The many-open-connections shape's clients: more connections than one process may hold
//! files, so they are spread over client processes (this binary, `open-connections`), each
//! opening its share at a fixed rate with a first request on each as it opens, then sending
//! one more request on each of them per round when told: connections that each send a
//! request now and then, not a burst, and none left idle before its first request (a server
//! closes those: nginx after `client_header_timeout`, 60 s).
//!
//! Parent and child speak in lines: the child writes `open` once its connections are up and
//! have had their first request, and `done` after each further round; the parent writes
//! `round` to start one, and closes the child's stdin to end it (the child then closes its
//! connections and exits).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use super::{footprint, netns::Netns, process, shapes::connect};

/// One client process: `count` connections to `server`, numbered from `first`, sending
/// `rate` requests a second in a round.
#[derive(Debug, Args)]
pub struct OpenConnectionsArgs {
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    first: usize,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    rate: f64,
}

/// The child's side: runs until its stdin closes.
pub fn serve(args: &OpenConnectionsArgs) -> Result<()> {
    process::raise_fd_limit()?;
    let mut streams = Vec::with_capacity(args.count);
    let started = Instant::now();
    for i in 0..args.count {
        let n = args.first + i;
        pace(started, i, args.rate);
        let mut stream = connect(args.server).with_context(|| format!("connection {n}"))?;
        request(&mut stream, 0, n)?;
        streams.push(stream);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "open")?;
    out.flush()?;
    for (round, line) in (1..).zip(std::io::stdin().lock().lines()) {
        if line? != "round" {
            bail!("expected `round`");
        }
        let started = Instant::now();
        for (i, stream) in streams.iter_mut().enumerate() {
            pace(started, i, args.rate);
            request(stream, round, args.first + i)?;
        }
        writeln!(out, "done")?;
        out.flush()?;
    }
    Ok(())
}

/// Waits for the `i`th event's time at `rate` a second from `started`, however long the
/// ones before took.
fn pace(started: Instant, i: usize, rate: f64) {
    let due = started + Duration::from_secs_f64(i as f64 / rate);
    std::thread::sleep(due.saturating_duration_since(Instant::now()));
}

/// Round `round`'s request on connection `n`, and its whole response.
fn request(stream: &mut std::net::TcpStream, round: usize, n: usize) -> Result<()> {
    // One write: a request in pieces would wait on Nagle and delayed ACKs.
    let request = format!(
        "GET /bench/open/{round}/{n} HTTP/1.1\r\nHost: production.bench\r\nUser-Agent: shadowd-bench\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    footprint::read_response(stream).with_context(|| format!("round {round}, connection {n}"))
}

/// The parent's side: client processes in `ns` holding `count` connections between them.
pub struct Clients {
    children: Vec<Client>,
}

struct Client {
    process: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Clients {
    /// Starts enough processes of at most `per_process` connections each, opening `rate`
    /// connections and sending `rate` requests a second between them, and returns once every
    /// one of them has its connections open, each with its first request answered.
    pub fn open(
        ns: &Netns,
        server: SocketAddr,
        count: usize,
        per_process: usize,
        rate: u64,
        logs: &Path,
    ) -> Result<Clients> {
        let exe = std::env::current_exe().context("this program's path")?;
        let exe = exe.to_str().context("utf-8 path")?;
        let mut clients = Clients {
            children: Vec::new(),
        };
        let processes = count.div_ceil(per_process).max(1);
        // Never zero: a request's due time is its number over the rate.
        let rate_each = rate.max(1) as f64 / processes as f64;
        let mut first = 0;
        while first < count {
            let share = per_process.min(count - first);
            let log = std::fs::File::create(logs.join(format!("client-{first}.log")))?;
            let mut cmd: Command = ns.command(exe);
            cmd.args(["open-connections", "--server", &server.to_string()])
                .args(["--first", &first.to_string(), "--count", &share.to_string()])
                .args(["--rate", &rate_each.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log);
            let mut process = cmd.spawn().context("starting a client process")?;
            let stdin = process.stdin.take();
            let stdout = BufReader::new(process.stdout.take().context("piped stdout")?);
            clients.children.push(Client {
                process,
                stdin,
                stdout,
            });
            first += share;
        }
        clients.expect_from_all("open")?;
        Ok(clients)
    }

    /// How many processes hold the connections.
    pub fn processes(&self) -> usize {
        self.children.len()
    }

    /// One more request on every connection, all processes at once.
    pub fn round(&mut self) -> Result<()> {
        for child in &mut self.children {
            let stdin = child.stdin.as_mut().context("client still running")?;
            writeln!(stdin, "round")?;
            stdin.flush()?;
        }
        self.expect_from_all("done")
    }

    fn expect_from_all(&mut self, word: &str) -> Result<()> {
        for (k, child) in self.children.iter_mut().enumerate() {
            let mut line = String::new();
            child.stdout.read_line(&mut line)?;
            if line.trim_end() != word {
                bail!("client process {k} did not say `{word}` (its log is in the run directory)");
            }
        }
        Ok(())
    }

    /// Ends every process (each closes its connections) and waits for them.
    pub fn close(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        for child in &mut self.children {
            child.stdin = None;
        }
        let mut failed = 0;
        for child in &mut self.children {
            if !child.process.wait()?.success() {
                failed += 1;
            }
        }
        self.children.clear();
        if failed > 0 {
            bail!("{failed} client processes failed");
        }
        Ok(())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // On an error path: closed stdin ends each child, whatever round it was in.
        for child in &mut self.children {
            child.stdin = None;
            child.process.kill().ok();
        }
        self.end().ok();
    }
}
