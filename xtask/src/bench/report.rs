//! The bench's results: the summary rows (scenario, figure, value, ratio to A), the targets
//! and where each stands, what looked wrong, and the machine and commands; rendered by
//! `render.rs`.

use std::{collections::BTreeMap, process::Command, time::Duration};

use anyhow::Result;
use serde::Serialize;

use super::{
    Bench, delay, fidelity::Fidelity, footprint::Footprint, latency::Latency, program_cost,
    shapes::Shapes, throughput::Throughput,
};

/// One line of the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub value: String,
    pub ratio_to_a: Option<f64>,
}

/// A target from the issue and the measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: &'static str,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory: String,
    pub os: String,
    pub load_average_at_start: String,
    pub load_average_at_end: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub plan: String,
    pub duration_s: u64,
    pub machine: Machine,
    pub versions: BTreeMap<&'static str, String>,
    pub nginx_settings: Vec<&'static str>,
    pub commands: Vec<(String, String)>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub findings: Vec<String>,
    pub throughput: Throughput,
    pub latency: Vec<Latency>,
    pub fidelity: Fidelity,
    pub footprint: Footprint,
    pub delay: Vec<delay::Run>,
    pub shapes: Shapes,
    pub program_cost: Vec<program_cost::Run>,
}

/// How nginx is set up, for the report.
pub const NGINX_SETTINGS: &[&str] = &[
    "every nginx: 1 worker (`worker_processes 1`), `worker_connections` 65536 (the open-file limit less 64, at most), `keepalive_requests 100000000`, `keepalive_timeout 300s`, `client_max_body_size 1m`, `client_body_buffer_size 128k`",
    "production and shadow: `location / { return 200 '<1024 bytes>'; }` for every method (POST bodies read and discarded), `access_log … bench buffer=256k flush=1s` with `log_format bench '$msec $request_uri $status $request_length'`",
    "C's proxy on 198.18.0.2:80, production behind it on 127.0.0.1:8080: `location / { mirror /mirror; mirror_request_body on; proxy_pass http://production; proxy_http_version 1.1; proxy_set_header Connection \"\"; }` and `location = /mirror { internal; proxy_pass http://mirror_sink$request_uri; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host-shadow; }`; `mirror_sink` is a server of the same nginx on 127.0.0.1:8081 with `proxy_pass http://shadow; proxy_set_header Host $host;`; upstreams `production` and `shadow` with `keepalive 128; keepalive_requests 100000000; keepalive_timeout 300s`; the proxy does not log",
    "why the loopback hop in C: nginx makes mirror subrequests header-only and ends them when the response header arrives, without reading the body, so their upstream connection is never kept alive. Proxied straight to the shadow, every copy opens a TCP connection from the proxy to the shadow and leaves it in TIME-WAIT; the proxy's ephemeral ports run out within seconds (measured by hand on this machine: 5,100 requests/s for the first 3 s, then 565/s with 20,000 sockets in TIME-WAIT). Through the loopback sink the per-copy connection is on loopback, where TIME-WAIT sockets are reused (`net.ipv4.tcp_tw_reuse = 2`), and the sink reaches the shadow over keep-alive connections",
    "production and shadow origins: `/bench/large` answers 64 KiB from a file (the large-response profile); `/bench/post` is proxied to a sink server in the same nginx (127.0.0.1:8090, keep-alive) so that nginx reads the whole body before answering and `$request_length` shows the body arrived; `PUT /bench/upload/NAME` stores the body (`dav_methods PUT; create_full_put_path on; client_max_body_size 0;`), so every upload is compared byte for byte with what the client sent; every other path is a plain `return 200`",
    "shadowd: `shadowd run --interface srv0 --capture-output ringbuf --config mappings.yaml` (B; `--capture-output mirror` for B mirror; `--capture-port 81` for B idle; `--replay-threads 2` for B, 2 replay threads), Mappings `prefix: /` to `production.bench` (198.18.0.2 through the namespace's hosts file: captured by endpoint) and a shadow Mapping (`shadow: true`, `weight: 100`) to `shadow.bench` (198.18.1.2, the same way); defaults otherwise",
];

fn sh(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text).trim().to_string()
        })
        .unwrap_or_default()
}

fn first_line(text: String) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine(load_at_start: String) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        kernel: sh("uname", &["-r"]),
        memory: meminfo.lines().next().unwrap_or_default().to_string(),
        os: std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        load_average_at_start: load_at_start,
        load_average_at_end: load_average(),
    }
}

impl Report {
    #[expect(clippy::too_many_arguments, reason = "one argument per phase result")]
    pub fn new(
        bench: &Bench,
        load_at_start: String,
        throughput: Throughput,
        latency: Vec<Latency>,
        fidelity: Fidelity,
        footprint: Footprint,
        delay: Vec<delay::Run>,
        shapes: Shapes,
        program_cost: Vec<program_cost::Run>,
        elapsed: Duration,
    ) -> Result<Report> {
        let mut versions = BTreeMap::new();
        versions.insert("nginx", sh("nginx", &["-v"]));
        versions.insert("wrk", first_line(sh("wrk", &["-v"])));
        versions.insert("oha", sh("oha", &["--version"]));
        versions.insert(
            "shadowd (git)",
            format!(
                "{}{}",
                sh("git", &["rev-parse", "--short", "HEAD"]),
                if sh(
                    "git",
                    &[
                        "status",
                        "--porcelain",
                        "--",
                        "shadow-user",
                        "shadow-ebpf",
                        "shadow-common"
                    ]
                )
                .is_empty()
                {
                    ""
                } else {
                    " + uncommitted changes"
                }
            ),
        );
        let mut report = Report {
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            plan: format!("{:?}", bench.plan),
            duration_s: elapsed.as_secs(),
            machine: machine(load_at_start),
            versions,
            nginx_settings: NGINX_SETTINGS.to_vec(),
            commands: bench
                .commands
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rows: Vec::new(),
            targets: Vec::new(),
            findings: Vec::new(),
            throughput,
            latency,
            fidelity,
            footprint,
            delay,
            shapes,
            program_cost,
        };
        report.rows = report.summary_rows();
        report.targets = report.target_rows();
        report.findings = report.findings();
        Ok(report)
    }
}
