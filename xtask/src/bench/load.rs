//! Load generators, run in the client namespace: `wrk` for saturated throughput (closed
//! loop, fixed connections) and `oha` for a fixed request rate (open loop, latency measured
//! from when each request was due — `--latency-correction` — so a stall is not hidden by
//! requests that were never sent).

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{commands::Commands, netns::Netns, process::Proc};

/// The URL every load targets: production (or C's proxy) on the production interface.
pub fn url(path: &str) -> String {
    format!("http://{}{path}", super::netns::Topology::PRODUCTION_ADDR)
}

/// What a wrk run reports.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Saturation {
    pub requests_per_sec: f64,
    pub requests: u64,
    /// Non-2xx responses and socket errors.
    pub errors: u64,
}

/// `wrk -t2 -cCONNECTIONS -dDURATION URL`, on `cpu` if given.
pub fn wrk(
    client: &Netns,
    cpu: Option<usize>,
    connections: usize,
    duration: Duration,
    path: &str,
    log_dir: &Path,
    commands: &mut Commands,
) -> Result<Saturation> {
    let mut cmd = client.command_on(cpu, "wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs()),
        "--timeout",
        "5s",
        &url(path),
    ]);
    let kind = if path == "/warmup" {
        "warm-up (wrk)"
    } else {
        "saturation (wrk)"
    };
    commands.record(kind, &cmd);
    let out = run_to_end("wrk", &mut cmd, duration, &log_dir.join("wrk.out"))?;
    parse_wrk(&out).with_context(|| format!("reading wrk's output:\n{out}"))
}

fn parse_wrk(out: &str) -> Option<Saturation> {
    let mut result = Saturation {
        requests_per_sec: 0.0,
        requests: 0,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            result.requests_per_sec = value.trim().parse().ok()?;
        } else if line.contains(" requests in ") {
            result.requests = line.split_whitespace().next()?.parse().ok()?;
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.errors += value.trim().parse::<u64>().ok()?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            result.errors += value
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (result.requests_per_sec > 0.0).then_some(result)
}

/// A fixed-rate run.
#[derive(Debug, Clone)]
pub struct FixedRate<'a> {
    /// Requests per second; 0 for a closed loop.
    pub rate: u64,
    pub duration: Duration,
    pub connections: usize,
    /// Request path; with `unique`, a regex whose every request gets a fresh random value.
    pub path: &'a str,
    pub unique: bool,
    /// POST this file as the body.
    pub body: Option<&'a Path>,
    /// Keep-alive; without it every request opens a connection of its own.
    pub keep_alive: bool,
}

impl<'a> FixedRate<'a> {
    /// GETs of `path` at `rate` for `duration` on `connections` keep-alive connections.
    pub fn gets(rate: u64, duration: Duration, connections: usize, path: &'a str) -> Self {
        FixedRate {
            rate,
            duration,
            connections,
            path,
            unique: false,
            body: None,
            keep_alive: true,
        }
    }
}

/// What an oha run reports (latencies in milliseconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RateResult {
    pub target_rate: u64,
    pub achieved_rate: f64,
    pub responses: u64,
    pub non_200: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

/// `oha -q RATE -z DURATION -c CONNECTIONS --latency-correction` (without `-q` for rate 0),
/// on `cpu` if given.
pub fn oha(
    client: &Netns,
    cpu: Option<usize>,
    load: &FixedRate<'_>,
    log_dir: &Path,
    commands: &mut Commands,
) -> Result<RateResult> {
    let mut cmd = client.command_on(cpu, "oha");
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--disable-compression",
    ]);
    // Rate 0: closed loop, as fast as the server answers.
    if load.rate > 0 {
        cmd.args(["--latency-correction", "-q", &load.rate.to_string()]);
    }
    cmd.args([
        "-z",
        &format!("{}ms", load.duration.as_millis()),
        "-c",
        &load.connections.to_string(),
        // One runtime thread per core the client may use.
        "--worker-threads",
        if cpu.is_some() { "1" } else { "2" },
    ]);
    if load.unique {
        cmd.arg("--rand-regex-url");
    }
    if !load.keep_alive {
        cmd.arg("--disable-keepalive");
    }
    if let Some(body) = load.body {
        cmd.args(["-m", "POST", "-T", "application/octet-stream", "-D"])
            .arg(body);
    }
    let json = log_dir.join("oha.json");
    cmd.arg("--output").arg(&json).arg(url(load.path));
    commands.record(
        match (load.body.is_some(), load.unique) {
            _ if !load.keep_alive => "fixed rate, a connection per request (oha)",
            (true, _) => "fixed rate, 64 KiB POST (oha)",
            (false, true) => "fixed rate, unique paths (oha)",
            (false, false) if load.rate == 0 => "saturation of the fixed-rate generator (oha)",
            (false, false) => "fixed rate (oha)",
        },
        &cmd,
    );
    run_to_end("oha", &mut cmd, load.duration, &log_dir.join("oha.log"))?;
    let out = std::fs::read_to_string(&json).with_context(|| format!("reading {json:?}"))?;
    parse_oha(&out, load.rate).with_context(|| format!("reading oha's output:\n{out}"))
}

fn parse_oha(out: &str, target_rate: u64) -> Result<RateResult> {
    let json: serde_json::Value = serde_json::from_str(out)?;
    let seconds = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let statuses = json["statusCodeDistribution"]
        .as_object()
        .context("statusCodeDistribution")?;
    let count = |filter: &dyn Fn(&str) -> bool| -> u64 {
        statuses
            .iter()
            .filter(|(code, _)| filter(code))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    };
    let errors = json["errorDistribution"]
        .as_object()
        .context("errorDistribution")?
        .iter()
        // Requests cut off by the end of the run are not failures of the server.
        .filter(|(what, _)| !what.contains("aborted due to deadline"))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    let percentiles = &json["latencyPercentiles"];
    Ok(RateResult {
        target_rate,
        achieved_rate: json["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        responses: count(&|_| true),
        non_200: count(&|code| code != "200"),
        errors,
        p50_ms: seconds(&percentiles["p50"]),
        p99_ms: seconds(&percentiles["p99"]),
        p99_9_ms: seconds(&percentiles["p99.9"]),
        max_ms: seconds(&json["summary"]["slowest"]),
    })
}

/// Runs a load generator that ends by itself after about `duration`; returns its stdout.
fn run_to_end(
    name: &str,
    cmd: &mut std::process::Command,
    duration: Duration,
    out: &Path,
) -> Result<String> {
    let mut proc = Proc::spawn(name, cmd, out, libc::SIGINT)?;
    let status = proc.wait(duration + Duration::from_secs(30))?;
    let text = std::fs::read_to_string(out).unwrap_or_default();
    if !status.success() {
        bail!("{name} failed ({status}):\n{text}");
    }
    Ok(text)
}
