//! `shadowd extract`: the requests of a capture file, one JSON object per line in capture
//! order, through the same reassembly and HTTP code as live capture; a summary on stderr.

use std::{
    collections::{BTreeMap, HashSet},
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cli::ExtractArgs;
use super::progress::FileProgress;
use crate::{
    active::ActiveConfig,
    capture::scope::CaptureScope,
    http::{Budgets, HttpEvent, HttpFlow, Limits as HttpLimits, Request},
    packet::Direction,
    packet::{Segment, tcp_flags},
    pcap::{FileCounts, PcapReadError, read_segments_through},
    pipeline::{CountedFlow, FlowTotals},
    reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats},
    route::RouteTable,
};

/// Decides which end of a segment is the server.
pub enum ServerSide {
    /// The capture scope, as live capture uses it.
    Scope(CaptureScope),
    /// Learned from SYNs: the receiver of a SYN without ACK is a server; otherwise the end
    /// with the lower port.
    Inferred(HashSet<SocketAddr>),
}

/// Most server endpoints remembered when inferring.
const MAX_LEARNED_SERVERS: usize = 65_536;

impl ServerSide {
    pub fn direction(&mut self, segment: &Segment<'_>) -> Option<Direction> {
        match self {
            ServerSide::Scope(scope) => {
                if scope.is_server(segment.dst) {
                    Some(Direction::Request)
                } else if scope.is_server(segment.src) {
                    Some(Direction::Response)
                } else {
                    None
                }
            }
            ServerSide::Inferred(servers) => {
                if segment.has(tcp_flags::SYN)
                    && !segment.has(tcp_flags::ACK)
                    && servers.len() < MAX_LEARNED_SERVERS
                {
                    servers.insert(segment.dst);
                }
                Some(if servers.contains(&segment.dst) {
                    Direction::Request
                } else if servers.contains(&segment.src) || segment.src.port() < segment.dst.port()
                {
                    Direction::Response
                } else {
                    Direction::Request
                })
            }
        }
    }
}

/// One extracted request, as printed.
#[derive(Debug, Serialize)]
pub struct RequestRecord {
    pub ts: f64,
    pub client: String,
    pub server: String,
    pub method: String,
    pub target: WireText,
    pub version: String,
    /// Names are tokens, so always text; values are [`WireText`].
    pub headers: Vec<(String, WireText)>,
    pub body_len: usize,
    pub body_sha256: String,
    /// With `--config`: the shadow Mapping that would copy this request (null if none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Option<String>>,
    /// With `--config`: the Host the copy would carry (null if none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_host: Option<Option<String>>,
}

/// Wire bytes in JSON, losslessly: a string when they are UTF-8 (as almost all are), else
/// `{"base64": "…"}` of the exact bytes (a header value may hold any obs-text byte, which
/// a JSON string cannot carry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WireText {
    Text(String),
    Bytes { base64: String },
}

impl WireText {
    pub fn of(bytes: &[u8]) -> WireText {
        match std::str::from_utf8(bytes) {
            Ok(text) => WireText::Text(text.to_string()),
            Err(_) => WireText::Bytes {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }
}

impl RequestRecord {
    pub fn new(flow: &FlowKey, request: &Request, routes: Option<&RouteTable>) -> RequestRecord {
        // Methods and field names are tokens: ASCII by the parser's checks.
        let token = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let body = request.body();
        let mut record = RequestRecord {
            ts: seconds(request.first_byte),
            client: flow.client.to_string(),
            server: flow.server.to_string(),
            method: token(request.method_bytes()),
            target: WireText::of(request.target_bytes()),
            version: format!("HTTP/1.{}", request.version),
            headers: (0..request.headers.len())
                .map(|i| {
                    (
                        token(request.header_name(i)),
                        WireText::of(request.header_value(i)),
                    )
                })
                .collect(),
            body_len: body.len(),
            body_sha256: hex(&Sha256::digest(body)),
            mapping: None,
            shadow_host: None,
        };
        if let Some(routes) = routes {
            let plan = routes
                .route(request)
                .and_then(|group| group.shadow.as_ref());
            record.mapping = Some(plan.map(|plan| plan.name.clone()));
            record.shadow_host = Some(plan.and_then(|plan| plan.copy_host(request.host_str())));
        }
        record
    }
}

fn seconds(ts: SystemTime) -> f64 {
    ts.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What extraction saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub file: FileCounts,
    pub requests: u64,
    pub flows: u64,
    pub responses: u64,
    /// Drops, unsupported flows and notices, by a readable name.
    pub events: BTreeMap<String, u64>,
    pub reassembly: ReassemblyStats,
    pub totals: Arc<FlowTotals>,
}

/// Segments between two updates of the progress message.
const PROGRESS_EVERY: u64 = 4096;

/// Extracts the requests of `path`, writing one JSON line each to `out`, and saying how far it
/// got on `progress`.
pub fn extract(
    path: &Path,
    mut server_side: ServerSide,
    routes: Option<&RouteTable>,
    out: &mut dyn Write,
    progress: &FileProgress,
) -> Result<Summary, PcapReadError> {
    let reassembly = ReassemblyStats::default();
    let totals = Arc::new(FlowTotals::default());
    let flow_totals = totals.clone();
    let http_limits = HttpLimits::whole_bodies();
    let budgets = Budgets::new(&http_limits);
    let mut table = FlowTable::new(Limits::default(), reassembly.clone(), move |_| {
        let flow = HttpFlow::with_budgets(http_limits, budgets.clone());
        CountedFlow::new(flow, flow_totals.clone())
    });
    let mut summary = Summary {
        totals,
        ..Summary::default()
    };
    let mut events = Vec::new();
    let mut last_ts = UNIX_EPOCH;
    let mut emit = |events: &mut Vec<(FlowKey, HttpEvent)>, summary: &mut Summary| {
        for (flow, event) in events.drain(..) {
            if let HttpEvent::Response(_) = &event {
                summary.responses += 1;
            }
            if let HttpEvent::Request(request) = &event {
                summary.requests += 1;
                let record = RequestRecord::new(&flow, request, routes);
                if let Ok(line) = serde_json::to_string(&record) {
                    // A closed stdout (`| head`) ends the output, not the program.
                    let _ = writeln!(out, "{line}");
                }
            }
            if let Some(name) = event_name(&event) {
                *summary.events.entry(name).or_default() += 1;
            }
        }
    };
    let mut segments = 0u64;
    let file = read_segments_through(
        path,
        |file| progress.reader(file),
        |ts, segment| {
            last_ts = ts;
            if let Some(direction) = server_side.direction(segment) {
                table.segment(direction, segment, ts, &mut events);
                emit(&mut events, &mut summary);
            }
            segments += 1;
            if segments.is_multiple_of(PROGRESS_EVERY) {
                progress.say(format!(
                    "{} requests, {} responses",
                    summary.requests, summary.responses
                ));
            }
        },
    )?;
    progress.finish();
    summary.file = file;
    table.flush(last_ts, &mut events);
    emit(&mut events, &mut summary);
    summary.flows = reassembly.flows_created.get();
    summary.reassembly = reassembly;
    Ok(summary)
}

impl Summary {
    /// The summary printed on stderr: totals, then every non-zero drop counter.
    pub fn render(&self) -> String {
        let mut text = format!(
            "packets {} (tcp segments {}, other {}, snapped {}), flows {}, requests {}, responses {}\n",
            self.file.packets,
            self.file.segments,
            self.file.skipped,
            self.file.truncated,
            self.flows,
            self.requests,
            self.responses,
        );
        let mut line = |name: String, value: u64| {
            if value > 0 {
                text.push_str(&format!("  {name}: {value}\n"));
            }
        };
        for (name, count) in &self.events {
            line(name.clone(), *count);
        }
        for reason in [
            crate::reassembly::GapReason::FlowBufferFull,
            crate::reassembly::GapReason::GlobalBufferFull,
            crate::reassembly::GapReason::Closed,
            crate::reassembly::GapReason::Expired,
            crate::reassembly::GapReason::Midstream,
            crate::reassembly::GapReason::HoleTimeout,
        ] {
            line(
                format!("stream gaps ({})", reason.as_str()),
                self.reassembly.gaps_of(reason),
            );
        }
        line("flows evicted".into(), self.reassembly.flows_evicted.get());
        for reason in [
            crate::reassembly::RejectReason::NoAck,
            crate::reassembly::RejectReason::UnacceptableAck,
        ] {
            line(
                format!("client segments production drops ({})", reason.as_str()),
                self.reassembly.rejected_of(reason),
            );
        }
        line(
            "flows begun without a handshake seen complete".into(),
            self.reassembly.unverified_flows.get(),
        );
        for direction in [Direction::Request, Direction::Response] {
            let dir = direction.as_str();
            let totals = &self.totals;
            line(
                format!("resyncs ({dir})"),
                FlowTotals::of(&totals.resyncs, direction),
            );
            line(
                format!("bytes skipped while resyncing ({dir})"),
                FlowTotals::of(&totals.resync_skipped_bytes, direction),
            );
            line(
                format!("body bytes skipped over the size limit ({dir})"),
                FlowTotals::of(&totals.body_skipped_bytes, direction),
            );
        }
        line(
            "unpaired responses".into(),
            self.totals.unpaired_responses.get(),
        );
        text
    }
}

/// Summary name of an event that is not a complete message.
fn event_name(event: &HttpEvent) -> Option<String> {
    match event {
        HttpEvent::Request(_) | HttpEvent::Response(_) => None,
        // The offline tools keep bodies whole: nothing streams here.
        HttpEvent::RequestStreaming(_)
        | HttpEvent::RequestBody { .. }
        | HttpEvent::RequestEnd { .. }
        | HttpEvent::RequestBroken { .. } => None,
        HttpEvent::Unconfirmed(_) => {
            Some("requests never confirmed by production (not extracted)".into())
        }
        HttpEvent::Dropped { direction, reason } => Some(format!(
            "dropped {} ({})",
            direction.as_str(),
            reason.as_str()
        )),
        HttpEvent::Unsupported { reason } => {
            Some(format!("unsupported flows ({})", reason.as_str()))
        }
        HttpEvent::Notice { what } => Some(format!("notice ({})", what.as_str())),
    }
}

/// `shadowd extract`: the exit code.
pub fn command(args: &ExtractArgs) -> i32 {
    let config = match ActiveConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %crate::error_chain(&err), "shadowd extract: unusable configuration");
            return 64;
        }
    };
    config.log();
    let server_side = if !args.capture_ports.is_empty() {
        ServerSide::Scope(CaptureScope::ports(args.capture_ports.iter().copied()))
    } else if !args.config.is_empty() {
        ServerSide::Scope(config.capture_scope(None))
    } else {
        ServerSide::Inferred(Default::default())
    };
    let routes = (!args.config.is_empty()).then_some(&config.table);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let progress = FileProgress::start(&args.pcap);
    match extract(&args.pcap, server_side, routes, &mut out, &progress) {
        Ok(summary) => {
            drop(out);
            eprint!("{}", summary.render());
            0
        }
        Err(err) => {
            tracing::error!(error = %crate::error_chain(&err), "shadowd extract failed");
            1
        }
    }
}
