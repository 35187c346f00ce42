//! Memory: shadowd's resident memory at rest and with 1,000 concurrent idle
//! keep-alive client connections to production — each has sent one request and waits —
//! so the flow table, the HTTP state and the replay workers of 1,000 connections are live.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{
    Bench,
    fidelity::{self, Run},
    load::RateResult,
    netns::Topology,
    nginx::RESPONSE_BYTES,
    scenario::{Placement, Scenario, Stack},
    signals,
};

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub connections: usize,
    pub rss_at_rest_kib: u64,
    /// shadowd's CPU use with no traffic, in % of one core.
    pub idle_cpu_percent: f64,
    pub rss_idle_connections_kib: u64,
    pub hwm_kib: u64,
    /// Flows in shadowd's table while the connections were open.
    pub flows_tracked: u64,
    /// Copies of the connections' requests, against production.
    pub copies: Run,
}

pub fn run(bench: &mut Bench) -> Result<Footprint> {
    let dir = bench.run_dir("idle-connections")?;
    let placement = Placement::Pinned;
    let mut stack = Stack::start(&bench.topology, Scenario::B, placement, &dir)?;
    stack.begin()?;
    let daemon = stack.shadowd.as_ref().context("B runs shadowd")?;
    signals::sleep(Duration::from_millis(500))?;
    let rss_at_rest_kib = daemon.rss_kib()?;
    // What shadowd costs with no traffic at all (its timers and polls).
    let (cpu_before, idle_from) = (daemon.cpu_seconds()?, std::time::Instant::now());
    signals::sleep(bench.plan.idle_hold)?;
    let idle_cpu_percent =
        (daemon.cpu_seconds()? - cpu_before) / idle_from.elapsed().as_secs_f64() * 100.0;
    let count = bench.plan.idle_connections;
    let server: SocketAddr = format!("{}:80", Topology::PRODUCTION_ADDR).parse()?;
    bench.commands.record_text(
        "idle connections",
        &format!(
            "{count} TCP connections from the client namespace to {server}, one `GET /idle/<n>` each, then held open (xtask)"
        ),
    );
    let connections = bench.topology.client.enter(|| open_idle(server, count))?;
    signals::sleep(bench.plan.idle_hold)?;
    let ledger_now = daemon.ledger()?;
    let flows_tracked = daemon.scrape()?.sum("shadowd_reassembly_flows", &[]);
    let rss_idle_connections_kib = daemon.rss_kib()?;
    println!(
        "footprint: shadowd CPU {idle_cpu_percent:.1} % of a core with no traffic; RSS {} KiB at rest, {} KiB with {count} idle connections ({flows_tracked} flows tracked; {})",
        rss_at_rest_kib,
        rss_idle_connections_kib,
        ledger_now.describe()
    );
    drop(connections);
    let background = stack.background;
    let outcome = stack.finish()?;
    let mut copies = fidelity::account(
        "GET, 1,000 idle connections",
        0,
        RateResult::default(),
        &outcome,
        false,
    );
    copies.background = background;
    println!(
        "footprint: shadow {} / production {}: {}",
        copies.shadow_received, copies.production_served, copies.verdict
    );
    Ok(Footprint {
        connections: count,
        rss_at_rest_kib,
        idle_cpu_percent,
        rss_idle_connections_kib,
        hwm_kib: outcome.shadowd_hwm_kib,
        flows_tracked,
        copies,
    })
}

/// Opens `count` connections, sends one request on each and reads its response; the
/// connections stay open.
fn open_idle(server: SocketAddr, count: usize) -> Result<Vec<TcpStream>> {
    let mut open = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
            .with_context(|| format!("connection {i} to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        // One write: a request in pieces would wait on Nagle and delayed ACKs.
        let request = format!(
            "GET /idle/{i} HTTP/1.1\r\nHost: production.bench\r\nUser-Agent: shadowd-bench\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        read_response(&mut stream).with_context(|| format!("response on connection {i}"))?;
        open.push(stream);
    }
    Ok(open)
}

/// Reads one response with a `RESPONSE_BYTES` body.
pub(super) fn read_response(stream: &mut TcpStream) -> Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n")
            && buf.len() >= head + 4 + RESPONSE_BYTES
        {
            if !buf.starts_with(b"HTTP/1.1 200") {
                bail!(
                    "unexpected response {:?}",
                    String::from_utf8_lossy(&buf[..head])
                );
            }
            return Ok(());
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("closed after {} bytes", buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
