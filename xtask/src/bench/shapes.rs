//! Traffic shapes beyond keep-alive — a connection per request at fixed
//! rates, tens of thousands of client connections open at once, slow concurrent uploads and
//! one very large upload — each set against production's log and shadowd's ledger, every
//! upload compared byte for byte with what the client sent, with shadowd's memory.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{
    Bench,
    clients::Clients,
    cpustat,
    fidelity::{self, Run},
    load::RateResult,
    netns::Topology,
    nginx, process,
    scenario::{Placement, Scenario, Stack},
};

/// Requests each of the many open connections sends, one round after the other.
pub(super) const ROUNDS: usize = 2;
/// Bytes an upload writes at a time.
const UPLOAD_PIECE: usize = 64 << 10;

#[derive(Debug, Clone, Serialize)]
pub struct Shapes {
    /// Fixed-rate GETs with keep-alive off: one connection per request.
    pub churn: Vec<Run>,
    pub concurrent: Concurrent,
    /// Many slow uploads at once, then one large one.
    pub uploads: Vec<Uploads>,
}

/// Many client connections open at once, each sending a request now and then.
#[derive(Debug, Clone, Serialize)]
pub struct Concurrent {
    pub connections: usize,
    /// Processes the clients ran in, and production's nginx workers: each may hold only as
    /// many connections as the open-file limit.
    pub client_processes: usize,
    pub production_workers: usize,
    pub rounds: usize,
    /// Requests a second, all processes together, in a round.
    pub rate: u64,
    /// How long opening them and the rounds of requests took.
    pub seconds: f64,
    /// shadowd's resident memory with all of them open, and the flows in its table.
    pub rss_kib: u64,
    pub flows_tracked: u64,
    pub copies: Run,
}

/// Uploads sent at once, each paced over `seconds`.
#[derive(Debug, Clone, Serialize)]
pub struct Uploads {
    pub kind: String,
    pub count: usize,
    pub bytes_each: u64,
    pub seconds: f64,
    /// Uploads stored whole and byte-exact by production, and by the shadow.
    pub production_exact: usize,
    pub shadow_exact: usize,
    pub copies: Run,
}

impl Shapes {
    /// Every run's copies, in the order they ran.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.churn
            .iter()
            .chain(std::iter::once(&self.concurrent.copies))
            .chain(self.uploads.iter().map(|u| &u.copies))
    }
}

impl Uploads {
    /// Every upload reached production and the shadow byte-exact, each once.
    pub fn complete(&self) -> bool {
        self.production_exact == self.count
            && self.shadow_exact == self.count
            && self.copies.shortfall == 0
    }
}

pub fn run(bench: &mut Bench) -> Result<Shapes> {
    // Tens of thousands of connections from one client address to one server port, and a
    // connection per request at 20k/s: the whole port range.
    bench
        .topology
        .client
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535");
    let plan = bench.plan.clone();
    let mut churn = Vec::new();
    for rate in &plan.churn_rates {
        churn.push(churn_run(bench, *rate)?);
    }
    let concurrent = concurrent(bench, plan.concurrent_connections, plan.concurrent_rate)?;
    let uploads = vec![
        uploads(
            bench,
            "concurrent uploads",
            plan.uploads,
            plan.upload_bytes,
            plan.upload_time,
        )?,
        uploads(
            bench,
            "one large upload",
            1,
            plan.large_upload_bytes,
            plan.large_upload_time,
        )?,
    ];
    Ok(Shapes {
        churn,
        concurrent,
        uploads,
    })
}

/// GETs at `rate`, each on a new connection, unpinned: pinned to one CPU with production,
/// the load generator cannot open 20,000 connections a second.
fn churn_run(bench: &mut Bench, rate: u64) -> Result<Run> {
    let run = fidelity::fixed_rate(
        bench,
        (Scenario::B, "GET, a connection per request, unpinned"),
        None,
        Placement::Unpinned,
        false,
        rate,
    )?;
    println!(
        "shapes: connection per request at {rate}/s: achieved {:.0}, shadow {} / production {}: {}; {}; VmHWM {:.1} MiB; {}",
        run.load.achieved_rate,
        run.shadow_received,
        run.production_served,
        run.verdict,
        run.ledger.describe(),
        run.shadowd_hwm_kib as f64 / 1024.0,
        cpustat::describe(&run.cpus),
    );
    Ok(run)
}

/// `count` connections opened at `rate` a second and all kept open, spread over client
/// processes and production's nginx workers (each may hold as many files as the open-file
/// limit, which this machine's container does not let root raise); `ROUNDS` rounds of one
/// request on each, the first as each connection opens, `rate` requests a second in all.
fn concurrent(bench: &mut Bench, count: usize, rate: u64) -> Result<Concurrent> {
    // Three quarters of the limit a process: past about 19,000 of 20,000 an nginx worker
    // starts closing connections it counts as idle ("worker_connections are not enough"),
    // and reuseport spreads connections over workers only about evenly.
    let per_process = (process::fd_limit() as usize * 3 / 4).max(1);
    let workers = count.div_ceil(per_process / 2).max(1);
    let dir = bench.run_dir("concurrent-connections")?;
    let mut stack = Stack::start_with_workers(
        &bench.topology,
        Scenario::B,
        Placement::Pinned,
        &dir,
        workers,
    )?;
    stack.begin()?;
    let server = production()?;
    let started = Instant::now();
    let mut clients = Clients::open(
        &bench.topology.client,
        server,
        count,
        per_process,
        rate,
        &dir,
    )?;
    bench.commands.record_text(
        "many open connections",
        &format!(
            "{count} TCP connections from the client namespace to {server} (production's nginx with {workers} workers, `reuseport`), opened at {rate}/s by {} client processes (`xtask open-connections`, at most {per_process} each: the open-file limit) and held open; {ROUNDS} rounds of one `GET /bench/open/<round>/<n>` on each, the first as it opens, {rate} requests/s in all",
            clients.processes()
        ),
    );
    // Opening sent the first round.
    for _ in 1..ROUNDS {
        clients.round()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let daemon = stack.shadowd.as_ref().context("B runs shadowd")?;
    let rss_kib = daemon.rss_kib()?;
    let flows_tracked = daemon.scrape()?.sum("shadowd_reassembly_flows", &[]);
    let client_processes = clients.processes();
    clients.close()?;
    let background = stack.background;
    let outcome = stack.finish()?;
    let mut copies = fidelity::account(
        "GET, many connections open at once",
        0,
        RateResult::default(),
        &outcome,
        false,
    );
    copies.background = background;
    println!(
        "shapes: {count} connections open, {ROUNDS} requests each in {seconds:.1} s: shadowd RSS {:.1} MiB ({flows_tracked} flows); shadow {} / production {}: {}; {}",
        rss_kib as f64 / 1024.0,
        copies.shadow_received,
        copies.production_served,
        copies.verdict,
        copies.ledger.describe()
    );
    Ok(Concurrent {
        connections: count,
        client_processes,
        production_workers: workers,
        rounds: ROUNDS,
        rate,
        seconds,
        rss_kib,
        flows_tracked,
        copies,
    })
}

/// `count` uploads of `bytes` each at once, from a thread each, every one paced evenly over
/// `time`, PUT to production's DAV location (which stores them, as the shadow stores their
/// copies); then both stores are compared with what was sent.
fn uploads(
    bench: &mut Bench,
    kind: &'static str,
    count: usize,
    bytes: u64,
    time: Duration,
) -> Result<Uploads> {
    let slug = kind.replace(' ', "-");
    let dir = bench.run_dir(&slug)?;
    let mut stack = Stack::start(&bench.topology, Scenario::B, Placement::Pinned, &dir)?;
    stack.begin()?;
    let server = production()?;
    bench.commands.record_text(
        &format!("uploads ({kind})"),
        &format!(
            "{count} × `PUT /bench/upload/<name>` with Content-Length {bytes} at once from the client namespace, each written in {UPLOAD_PIECE} B pieces paced evenly over {} s (xtask)",
            time.as_secs()
        ),
    );
    let started = Instant::now();
    bench.topology.client.enter(|| {
        std::thread::scope(|scope| {
            let uploads: Vec<_> = (0..count)
                .map(|i| {
                    let name = name(&slug, i);
                    scope.spawn(move || upload(server, &name, i, bytes, time))
                })
                .collect();
            uploads.into_iter().enumerate().try_for_each(|(i, upload)| {
                upload
                    .join()
                    .map_err(|_| anyhow::anyhow!("upload {i} panicked"))?
                    .with_context(|| format!("upload {i}"))
            })
        })
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let background = stack.background;
    let outcome = stack.finish()?;
    let exact = |side: &str| -> Result<usize> {
        let files = dir
            .join(side)
            .join(nginx::UPLOAD_FILES)
            .join("bench/upload");
        let mut exact = 0;
        for i in 0..count {
            exact += usize::from(stored_exactly(&files.join(name(&slug, i)), i, bytes)?);
        }
        // Gigabytes the next runs do not need.
        std::fs::remove_dir_all(dir.join(side).join(nginx::UPLOAD_FILES)).ok();
        Ok(exact)
    };
    let (production_exact, shadow_exact) = (exact("production")?, exact("shadow")?);
    let mut copies = fidelity::account(kind, 0, RateResult::default(), &outcome, false);
    copies.background = background;
    let result = Uploads {
        kind: kind.to_string(),
        count,
        bytes_each: bytes,
        seconds,
        production_exact,
        shadow_exact,
        copies,
    };
    println!(
        "shapes: {kind}: {count} × {:.0} MiB in {seconds:.1} s; byte-exact at production {production_exact}, at the shadow {shadow_exact}; shadowd VmHWM {:.1} MiB; {}; {}",
        bytes as f64 / (1 << 20) as f64,
        result.copies.shadowd_hwm_kib as f64 / 1024.0,
        result.copies.verdict,
        result.copies.ledger.describe()
    );
    Ok(result)
}

fn name(slug: &str, i: usize) -> String {
    format!("{slug}-{i}")
}

fn production() -> Result<SocketAddr> {
    Ok(format!("{}:80", Topology::PRODUCTION_ADDR).parse()?)
}

pub(super) fn connect(server: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

/// Byte `at` of upload `seed`: the bytes of one upload repeat only every
/// `PATTERN_PERIOD`, and other uploads' are the same sequence shifted by their seed.
fn upload_byte(seed: usize, at: u64) -> u8 {
    (at.wrapping_add(seed as u64 * 7_919)
        .wrapping_mul(2_654_435_761)
        >> 13) as u8
}

/// `upload_byte` keeps bits 13 to 20 of a product, which depend only on the factors
/// modulo 2^21: the sequence repeats after 2 MiB.
const PATTERN_PERIOD: usize = 1 << 21;

/// One period of upload 0's bytes, computed once: filling by copying from it keeps the
/// 200 uploads' 80 MiB/s (and the checks afterwards) from costing the client a CPU that
/// production, the capture and shadowd need.
fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..PATTERN_PERIOD as u64)
            .map(|at| upload_byte(0, at))
            .collect()
    })
}

fn fill(buffer: &mut [u8], seed: usize, from: u64) {
    let pattern = pattern();
    let mut at = (from as usize).wrapping_add(seed * 7_919) % PATTERN_PERIOD;
    let mut rest = buffer;
    while !rest.is_empty() {
        let len = rest.len().min(PATTERN_PERIOD - at);
        rest[..len].copy_from_slice(&pattern[at..at + len]);
        rest = &mut rest[len..];
        at = (at + len) % PATTERN_PERIOD;
    }
}

/// One paced upload; fails unless production stored it (201 or 204).
fn upload(server: SocketAddr, name: &str, seed: usize, bytes: u64, time: Duration) -> Result<()> {
    let mut stream = connect(server)?;
    let head = format!(
        "PUT /bench/upload/{name} HTTP/1.1\r\nHost: production.bench\r\nContent-Length: {bytes}\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    let pieces = bytes.div_ceil(UPLOAD_PIECE as u64).max(1);
    let started = Instant::now();
    let mut piece = vec![0u8; UPLOAD_PIECE];
    let mut sent = 0u64;
    for k in 0..pieces {
        // Each piece leaves at its share of the time, however long the writes took.
        let due = started + time.mul_f64(k as f64 / pieces as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let len = (bytes - sent).min(UPLOAD_PIECE as u64) as usize;
        fill(&mut piece[..len], seed, sent);
        stream.write_all(&piece[..len])?;
        sent += len as u64;
    }
    let status = read_status(&mut stream)?;
    if status != 201 && status != 204 {
        bail!("production answered {status}");
    }
    Ok(())
}

/// Reads one response (Content-Length framed) and returns its status.
fn read_status(stream: &mut TcpStream) -> Result<u16> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("status line of {head:?}"))?;
            let length: usize = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    bail!("closed inside the response body");
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("closed before a response");
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Whether `path` holds exactly upload `seed` of `bytes` bytes.
fn stored_exactly(path: &Path, seed: usize, bytes: u64) -> Result<bool> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(false);
    };
    if file.metadata()?.len() != bytes {
        return Ok(false);
    }
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut at = 0u64;
    while at < bytes {
        let len = (bytes - at).min(got.len() as u64) as usize;
        file.read_exact(&mut got[..len])?;
        fill(&mut want[..len], seed, at);
        if got[..len] != want[..len] {
            return Ok(false);
        }
        at += len as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_copies_the_bytes_each_upload_has() {
        // Across the period's end, at several seeds and lengths beyond one period.
        for (seed, from, len) in [
            (0, 0, 100),
            (7, PATTERN_PERIOD as u64 - 50, 200),
            (199, 3 * PATTERN_PERIOD as u64 + 11, 2 * PATTERN_PERIOD + 3),
        ] {
            let mut buffer = vec![0u8; len];
            fill(&mut buffer, seed, from);
            for (offset, byte) in buffer.iter().enumerate() {
                assert_eq!(
                    *byte,
                    upload_byte(seed, from + offset as u64),
                    "{seed} {from} {offset}"
                );
            }
        }
    }

    #[test]
    fn uploads_differ_from_each_other() {
        let (mut first, mut second) = (vec![0u8; 4096], vec![0u8; 4096]);
        fill(&mut first, 1, 0);
        fill(&mut second, 2, 0);
        assert_ne!(first, second);
    }
}
