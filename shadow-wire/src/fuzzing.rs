//! Fuzzing entry points: decoders that turn any byte string into a script for the packet
//! parser, an [`HttpFlow`] or a [`FlowTable`] of them, and the checks that must hold whatever
//! the script. The cargo-fuzz targets in `fuzz/` are one-line calls to these; the tests below
//! run the seed corpora (`fuzz/corpus/<target>/`) and a fixed-seed mutation sweep, so plain
//! `cargo test` gets fuzz-like coverage without nightly.
//!
//! Every byte string is a valid script; one that runs out mid-operation just stops.
//! - `http_flow`: a settings byte (bit 0: tight limits), then operations. Bit 0 of an
//!   operation byte picks the direction (request, response), bits 1–2 the action: 0 or 1
//!   push (a length byte, then that many bytes), 2 gap (a byte: how many bytes were lost,
//!   its low two bits the kind of gap), 3 end. Bit 3: first, production acknowledges the
//!   request bytes so far, with the segment carrying this operation's response bytes (if
//!   any); bit 4 with it: that many bytes less, a byte giving how many.
//! - `reassembly`: a settings byte (bit 0: tight HTTP limits, bit 1: tight table limits),
//!   then segments: a bits byte (0: direction; 1, 2, 3: FIN, SYN, RST; 4: ACK; 5–6:
//!   connection; 7: an idle pause and `expire` before it), a little-endian `u16` offset from
//!   the direction's initial sequence number, a length byte and the payload. A segment with
//!   ACK acknowledges everything the other direction of its connection sent so far. Then
//!   `flush`.
//! - `packet`: the frame itself, under every link type.
//! - `response_reader`: a settings byte (bit 0: the reply answers a HEAD), then pushes (a
//!   length byte, then that many bytes) into the replay client's reader of a shadow's reply;
//!   fed whole or piece by piece it must reach the same end.
//! - `pcap`: the bytes as a capture file (classic pcap or pcapng).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, SystemTime},
};

use crate::{
    http::{self, HttpEvent, HttpFlow, Request, reply::ResponseReader},
    packet::Direction,
    packet::{self, Segment, linktype},
    pcap::read_segments_from,
    reassembly::{FlowTable, GapKind, Limits, ReassemblyStats},
};

/// Limits small enough that short inputs reach them: the default ones need megabytes.
const TIGHT_HTTP: http::Limits = http::Limits {
    max_head_bytes: 256,
    max_headers: Some(8),
    max_body_bytes: Some(512),
    stream_body_after: Some(64),
    max_held_bytes: 768,
    max_held_total_bytes: 2048,
    max_parse_total_bytes: 1024,
};

/// Table limits small enough that a few segments evict flows or give up holes.
const TIGHT_TABLE: Limits = Limits {
    max_flows: 2,
    max_flow_buffer: 512,
    max_total_buffer: 768,
    idle_timeout: Duration::from_secs(1),
    hole_timeout: Duration::from_millis(500),
};

/// The request side's initial sequence number: its stream wraps past 2^32 after 255 bytes.
const REQUEST_ISN: u32 = 0xFFFF_FF00;
const RESPONSE_ISN: u32 = 1_000_000;

/// Every link type `parse_link` knows, and one it does not.
const LINK_TYPES: [i32; 7] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::LINUX_SLL2,
    0,
];

/// Runs `data` as an `http_flow` script, checking every event.
pub fn http_flow(data: &[u8]) {
    drive_http_flow(data);
}

/// Runs `data` as a `reassembly` script, checking every event.
pub fn reassembly(data: &[u8]) {
    drive_reassembly(data);
}

/// Parses `data` under every link type.
pub fn packet(data: &[u8]) {
    parse_every_link(data);
}

/// Runs `data` as a `response_reader` script.
pub fn response_reader(data: &[u8]) {
    drive_response_reader(data);
}

/// Reads `data` as a capture file.
pub fn pcap(data: &[u8]) {
    read_capture(data);
}

/// A fuzz input read front to back; reads past the end yield nothing.
struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    /// Up to `len` bytes: fewer if the script ends first.
    fn bytes(&mut self, len: u8) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(usize::from(len).min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }
}

fn http_limits(settings: u8) -> http::Limits {
    let limits = if settings & 1 != 0 {
        TIGHT_HTTP
    } else {
        http::Limits::default()
    };
    // Whole bodies as the offline tools keep them, or streamed as live capture does.
    match settings & 2 != 0 {
        true => http::Limits {
            stream_body_after: None,
            ..limits
        },
        false => limits,
    }
}

fn direction(bit: u8) -> Direction {
    if bit & 1 == 0 {
        Direction::Request
    } else {
        Direction::Response
    }
}

/// Returns how many events the script produced (the tests check that seeds do something).
fn drive_http_flow(data: &[u8]) -> usize {
    let mut script = Script(data);
    let settings = script.byte().unwrap_or(0);
    let limits = http_limits(settings);
    // Responses kept for diffing, as when a shadow Mapping diffs.
    let budgets = http::Budgets::new(&limits);
    if settings & 4 != 0 {
        budgets.keeping.set(FUZZ_KEPT_BODY);
    }
    let keeping = budgets.keeping.clone();
    let mut flow = HttpFlow::with_budgets(limits, budgets);
    let mut order = Order {
        max_body: limits.max_body_bytes,
        ..Order::default()
    };
    let mut out = Vec::new();
    let mut events = 0;
    // Stream offsets, as the reassembler counts them.
    let mut position = [0u64; 2];
    // The clock only moves forward, so every message's first byte is no later than its last.
    let mut ts = SystemTime::UNIX_EPOCH;
    while let Some(op) = script.byte() {
        ts += Duration::from_millis(1);
        let was_finished = flow.is_finished();
        let side = direction(op);
        let action = (op >> 1) & 3;
        let len = if action < 2 {
            script.byte().unwrap_or(0)
        } else {
            0
        };
        if op & 0x08 != 0 {
            let back = if op & 0x10 != 0 {
                u64::from(script.byte().unwrap_or(0))
            } else {
                0
            };
            let carried = if side == Direction::Response {
                u64::from(len)
            } else {
                0
            };
            let from = position[1];
            let acked = position[0].saturating_sub(back);
            flow.acked(Direction::Request, acked, from..from + carried, &mut out);
            order.acked();
        }
        let at = &mut position[usize::from(op & 1)];
        match action {
            0 | 1 => {
                let bytes = script.bytes(len);
                flow.push(side, bytes, ts, &mut out);
                *at += bytes.len() as u64;
            }
            2 => {
                let lost = script.byte().unwrap_or(0);
                let kind = [
                    GapKind::Pickup,
                    GapKind::CaptureLoss,
                    GapKind::Unacknowledged,
                    GapKind::Resumed,
                ][usize::from(lost & 3)];
                *at += u64::from(lost);
                flow.gap(side, *at, kind, &mut out);
                order.gap(side, kind);
            }
            _ => flow.end(side, &mut out),
        }
        assert!(
            !was_finished || out.is_empty(),
            "a finished flow produced {out:?}"
        );
        events += out.len();
        for event in out.drain(..) {
            check_event(&event);
            order.check(&event);
        }
        assert!(
            !flow.is_finished() || order.streaming.is_none(),
            "a finished flow left a request streaming"
        );
    }
    drop(flow);
    assert_eq!(
        keeping.budget.used(),
        0,
        "every kept body gave its budget back"
    );
    events
}

/// What must hold across the events of one flow fed in capture order.
#[derive(Default)]
struct Order {
    last_request: Option<u64>,
    last_paired: Option<u64>,
    /// Request bytes were lost and production has acknowledged nothing since: no request
    /// may be let out, as nothing shows where production's parser stands.
    unconfirmed: bool,
    /// The streaming request, with its bytes joined so far.
    streaming: Option<(Request, Vec<u8>)>,
    /// The policy limit on a request body, streamed ones included.
    max_body: Option<usize>,
}

impl Order {
    /// A gap after which only production can show where requests start (a loss inside a
    /// Content-Length body the capture lost keeps the place).
    fn gap(&mut self, direction: Direction, kind: GapKind) {
        self.unconfirmed |= direction == Direction::Request && kind != GapKind::CaptureLoss;
    }

    fn acked(&mut self) {
        self.unconfirmed = false;
    }

    fn check(&mut self, event: &HttpEvent) {
        match event {
            HttpEvent::Request(request)
            | HttpEvent::Unconfirmed(request)
            | HttpEvent::RequestStreaming(request) => {
                assert!(
                    self.streaming.is_none(),
                    "a request came out while one was streaming: {request:?}"
                );
                assert!(request.first_byte <= request.last_byte, "{request:?}");
                let sequence = Some(request.sequence);
                assert!(self.last_request < sequence, "request numbers went back");
                self.last_request = sequence;
                assert!(
                    !self.unconfirmed || matches!(event, HttpEvent::Unconfirmed(_)),
                    "a request after lost bytes came out unconfirmed: {request:?}"
                );
                if let HttpEvent::RequestStreaming(request) = event {
                    self.streaming = Some((request.clone(), request.raw.to_vec()));
                }
            }
            HttpEvent::RequestBody { sequence, bytes } => {
                let (request, raw) = self.streaming.as_mut().expect("a piece after its start");
                assert_eq!(request.sequence, *sequence);
                assert!(!bytes.is_empty(), "an empty piece");
                raw.extend_from_slice(bytes);
            }
            HttpEvent::RequestEnd {
                sequence,
                last_byte,
            } => {
                let (mut request, raw) = self.streaming.take().expect("an end after its start");
                assert_eq!(request.sequence, *sequence);
                assert!(request.first_byte <= *last_byte, "{request:?}");
                request.raw = raw.into();
                request.body.1 = request.raw.len();
                // The joined request is one the parser could have emitted whole.
                check_request(&request);
                let body = request.body.1 - request.body.0;
                assert!(
                    self.max_body.is_none_or(|max| body <= max),
                    "a {body} B body passed the limit"
                );
            }
            HttpEvent::RequestBroken { sequence, .. } => {
                let (request, _) = self.streaming.take().expect("a break after its start");
                assert_eq!(request.sequence, *sequence);
            }
            HttpEvent::Response(response) => {
                assert!(response.first_byte <= response.last_byte, "{response:?}");
                // A kept response is the one reported, its body within the keeping limit.
                if let Some(kept) = &response.kept {
                    assert_eq!(kept.status, response.status);
                    assert!(!response.is_interim());
                    if let http::KeptBody::Whole(bytes) = &kept.body {
                        assert!(bytes.bytes().len() as u64 <= response.body_len);
                        assert!(bytes.bytes().len() <= FUZZ_KEPT_BODY);
                    }
                }
                // HTTP/1 answers in order: a response never names an earlier request than
                // the one before it did.
                if response.request_sequence.is_some() {
                    assert!(
                        self.last_paired <= response.request_sequence,
                        "{response:?}"
                    );
                    self.last_paired = response.request_sequence;
                }
            }
            _ => {}
        }
    }
}

/// Returns how many events the script produced.
fn drive_reassembly(data: &[u8]) -> usize {
    let mut script = Script(data);
    let settings = script.byte().unwrap_or(0);
    let http_limits = http_limits(settings);
    let limits = if settings & 2 != 0 {
        TIGHT_TABLE
    } else {
        Limits::default()
    };
    // The flows share their budgets, as live capture's do.
    let budgets = http::Budgets::new(&http_limits);
    let mut table = FlowTable::new(limits, ReassemblyStats::default(), move |_| {
        HttpFlow::with_budgets(http_limits, budgets.clone())
    });
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 80);
    let mut out = Vec::new();
    let mut events = 0;
    let mut ts = SystemTime::UNIX_EPOCH;
    // Per connection and direction: one past the highest sequence number sent, from the ISN.
    let mut sent = [[0u32; 2]; 4];
    while let Some(bits) = script.byte() {
        ts += Duration::from_millis(1);
        if bits & 0x80 != 0 {
            ts += limits.idle_timeout;
            table.expire(ts, &mut out);
        }
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            40_000 + u16::from((bits >> 5) & 3),
        );
        let side = direction(bits);
        let (src, dst, isn) = match side {
            Direction::Request => (client, server, REQUEST_ISN),
            Direction::Response => (server, client, RESPONSE_ISN),
        };
        let offset = u32::from(script.u16());
        let seq = isn.wrapping_add(offset);
        let len = script.byte().unwrap_or(0);
        let payload = script.bytes(len);
        let connection = usize::from((bits >> 5) & 3);
        let own = usize::from(side == Direction::Response);
        let control = u32::from(bits & 0x06 != 0);
        let end = offset + payload.len() as u32 + control;
        sent[connection][own] = sent[connection][own].max(end);
        let (other_isn, other_sent) = match side {
            Direction::Request => (RESPONSE_ISN, sent[connection][1]),
            Direction::Response => (REQUEST_ISN, sent[connection][0]),
        };
        let segment = Segment {
            src,
            dst,
            seq,
            ack: other_isn.wrapping_add(other_sent),
            // Bits 1–3 shifted down are FIN, SYN, RST; bit 4 is already ACK.
            flags: ((bits >> 1) & 0x07) | (bits & packet::tcp_flags::ACK),
            payload,
        };
        table.segment(side, &segment, ts, &mut out);
        events += out.len();
        out.drain(..).for_each(|(_, event)| check_event(&event));
    }
    table.flush(ts + Duration::from_millis(1), &mut out);
    assert!(table.is_empty(), "flush left {} flows", table.len());
    events += out.len();
    out.drain(..).for_each(|(_, event)| check_event(&event));
    events
}

/// Returns under how many link types `data` parsed.
fn parse_every_link(data: &[u8]) -> usize {
    assert_eq!(
        packet::parse_ethernet(data),
        packet::parse_link(linktype::ETHERNET, data)
    );
    let frame = data.as_ptr_range();
    LINK_TYPES
        .iter()
        .filter(|&&link| match packet::parse_link(link, data) {
            Ok(segment) => {
                // The payload borrows the frame, after at least a TCP header.
                let payload = segment.payload.as_ptr_range();
                assert!(frame.start <= payload.start && payload.end <= frame.end);
                assert!(segment.payload.len() + 20 <= data.len(), "{segment:?}");
                true
            }
            Err(_) => false,
        })
        .count()
}

/// How a reply read ended: its status, whether the connection persists and the bytes it
/// took, or the error that stopped it.
/// The final response's status, whether the connection persists, the bytes used, and the
/// response as kept (its head's fields and its body, whole or as length and digest).
type ReplyEnd = Result<Option<(u16, bool, usize, Option<KeptSummary>)>, String>;

type KeptSummary = (u16, Vec<(String, String)>, Result<Vec<u8>, (u64, [u8; 32])>);

/// Bodies kept whole up to this many bytes while fuzzing: small, so that both ways are taken.
const FUZZ_KEPT_BODY: usize = 64;

fn summary(kept: http::KeptResponse) -> KeptSummary {
    let body = match &kept.body {
        http::KeptBody::Whole(bytes) => {
            assert!(bytes.bytes().len() <= FUZZ_KEPT_BODY);
            Ok(bytes.bytes().to_vec())
        }
        http::KeptBody::Digest { length, sha256 } => {
            assert!(*length > FUZZ_KEPT_BODY as u64);
            Err((*length, *sha256))
        }
    };
    (kept.status, kept.headers, body)
}

/// Returns the bytes of a reply read to its end (the tests check that seeds do something).
fn drive_response_reader(data: &[u8]) -> usize {
    let mut script = Script(data);
    let head_request = script.byte().unwrap_or(0) & 1 != 0;
    let mut pushes = Vec::new();
    while let Some(len) = script.byte() {
        pushes.push(script.bytes(len));
    }
    let whole = read_reply(head_request, &[pushes.concat().as_slice()]);
    let pieces = read_reply(head_request, &pushes);
    assert_eq!(whole, pieces, "fed whole and piece by piece");
    whole.ok().flatten().map_or(0, |(_, _, used, _)| used)
}

/// Feeds `pushes` to a reader as a connection's receive buffer would.
fn read_reply(head_request: bool, pushes: &[&[u8]]) -> ReplyEnd {
    let budget = http::SharedBudget::new(1 << 20);
    let mut reader = ResponseReader::keeping(head_request, FUZZ_KEPT_BODY, budget);
    let mut buffered = Vec::new();
    let mut used = 0;
    for push in pushes {
        buffered.extend_from_slice(push);
        let decoded = reader.decode(&buffered).map_err(|e| e.to_string())?;
        assert!(decoded.consumed <= buffered.len());
        buffered.drain(..decoded.consumed);
        used += decoded.consumed;
        if let Some(complete) = decoded.complete {
            let kept = reader.kept().map(summary);
            assert!(kept.as_ref().is_none_or(|k| k.0 == complete.status));
            return Ok(Some((complete.status, complete.persists, used, kept)));
        }
    }
    // A body delimited by close was consumed as it came: the kept body is all of it.
    let end = reader.end_of_stream();
    let kept = end.and_then(|_| reader.kept()).map(summary);
    Ok(end.map(|complete| {
        (
            complete.status,
            complete.persists,
            used + buffered.len(),
            kept,
        )
    }))
}

/// Returns the packets read from a readable capture.
fn read_capture(data: &[u8]) -> usize {
    let mut segments = 0;
    // A block never holds more than the input: a buffer that size reads any of them.
    let buffer = data.len().max(64);
    let counts = read_segments_from(data, std::path::Path::new("input"), buffer, |_, segment| {
        assert!(segment.payload.len() + 20 <= data.len(), "{segment:?}");
        segments += 1;
    });
    let Ok(counts) = counts else {
        return 0;
    };
    assert_eq!(counts.segments, segments);
    assert_eq!(
        counts.packets,
        counts.segments + counts.skipped + counts.truncated
    );
    counts.packets as usize
}

fn check_event(event: &HttpEvent) {
    match event {
        HttpEvent::Request(request)
        | HttpEvent::Unconfirmed(request)
        | HttpEvent::RequestStreaming(request) => check_request(request),
        HttpEvent::Response(response) => assert!(response.head_len > 0, "{response:?}"),
        _ => {}
    }
}

/// What holds for any request the parser emits: `raw` is the message as sent and every
/// range points into it where it says.
fn check_request(request: &Request) {
    let raw = &request.raw[..];
    let head_len = request.head_len;
    let in_head = |(start, end): (usize, usize)| start <= end && end <= head_len;
    assert!(
        0 < head_len && head_len <= raw.len(),
        "head_len {head_len} of {raw:?}"
    );
    let head = &raw[..head_len];
    assert!(
        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
        "head does not end with a blank line: {raw:?}"
    );
    let (start, end) = request.method;
    assert!(
        start == 0 && start < end && in_head(request.method),
        "{request:?}"
    );
    assert!(raw[..end].iter().all(u8::is_ascii_graphic), "{request:?}");
    assert!(in_head(request.target), "{request:?}");
    assert!(request.version <= 1, "{request:?}");
    for header in &request.headers {
        let (name, value, line) = (header.name, header.value, header.line);
        assert!(
            in_head(line)
                && line.0 == name.0
                && name.0 < name.1
                && name.1 <= value.0
                && value.0 <= value.1
                && value.1 < line.1
                && raw[line.1 - 1] == b'\n',
            "{header:?} in {request:?}"
        );
    }
    let first_host = request
        .headers
        .iter()
        .find(|h| raw[h.name.0..h.name.1].eq_ignore_ascii_case(b"host"))
        .map(|h| h.value);
    assert_eq!(request.host, first_host, "{request:?}");
    assert_eq!(request.body, (head_len, raw.len()), "{request:?}");
}

#[cfg(test)]
mod tests {
    use std::{
        fmt::Display,
        path::{Path, PathBuf},
    };

    use super::*;

    /// A target as the tests drive it: the count it returns shows a seed does something.
    type Driver = fn(&[u8]) -> usize;

    /// Inputs the sweep tries per target: a few seconds in all, in a debug build.
    const SWEEP_INPUTS: usize = 20_000;

    /// Pieces of HTTP a mutation may insert, as a libFuzzer dictionary would.
    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\r\n\r\n",
        b" HTTP/1.1\r\n",
        b"HTTP/1.0 200 OK\r\n",
        b"Content-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"0\r\n\r\n",
        b"Upgrade: x\r\n",
        b"Host: h\r\n",
    ];

    fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut seeds: Vec<_> = entries
            .map(|entry| {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        seeds
    }

    /// Runs one input; a failure names the input so that it can become a seed.
    fn run(target: &str, drive: Driver, input: &[u8], what: impl Display) -> usize {
        std::panic::catch_unwind(|| drive(input)).unwrap_or_else(|_| {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{target}: {what} failed; `xxd -r -p` of this is the input: {hex}")
        })
    }

    fn corpus(target: &str, drive: Driver) {
        for (path, bytes) in seeds(target) {
            let done = run(target, drive, &bytes, path.display());
            // A seed that does nothing no longer matches the script format.
            assert!(done > 0, "{} does nothing", path.display());
        }
    }

    /// xorshift64 with a fixed seed: every run tries the same inputs.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// A seed with one to four random edits, as libFuzzer's mutators make them.
    fn mutate(rng: &mut Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(6) {
                0 => input
                    .get_mut(at)
                    .into_iter()
                    .for_each(|b| *b ^= 1 << rng.below(8)),
                1 => input
                    .get_mut(at)
                    .into_iter()
                    .for_each(|b| *b = rng.below(256) as u8),
                2 => {
                    let end = (at + 1 + rng.below(16)).min(input.len());
                    input.drain(at..end);
                }
                3 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    input.splice(at..at, token.iter().copied());
                }
                4 => {
                    let run = input[at..(at + rng.below(32)).min(input.len())].to_vec();
                    let to = rng.below(input.len() + 1);
                    input.splice(to..to, run);
                }
                _ => {
                    let other = &seeds[rng.below(seeds.len())].1;
                    input.truncate(at);
                    input.extend_from_slice(&other[rng.below(other.len() + 1)..]);
                }
            }
        }
        input
    }

    fn sweep(target: &str, drive: Driver) {
        let seeds = seeds(target);
        let mut rng = Rng(0x5EED_F022_D00D_CAFE);
        for i in 0..SWEEP_INPUTS {
            let input = mutate(&mut rng, &seeds);
            run(target, drive, &input, format_args!("sweep input {i}"));
        }
    }

    #[test]
    fn http_flow_corpus() {
        corpus("http_flow", drive_http_flow);
    }

    #[test]
    fn reassembly_corpus() {
        corpus("reassembly", drive_reassembly);
    }

    #[test]
    fn packet_corpus() {
        corpus("packet", parse_every_link);
    }

    #[test]
    fn http_flow_sweep() {
        sweep("http_flow", drive_http_flow);
    }

    #[test]
    fn reassembly_sweep() {
        sweep("reassembly", drive_reassembly);
    }

    #[test]
    fn packet_sweep() {
        sweep("packet", parse_every_link);
    }

    #[test]
    fn response_reader_corpus() {
        corpus("response_reader", drive_response_reader);
    }

    #[test]
    fn response_reader_sweep() {
        sweep("response_reader", drive_response_reader);
    }

    #[test]
    fn pcap_corpus() {
        corpus("pcap", read_capture);
    }

    #[test]
    fn pcap_sweep() {
        sweep("pcap", read_capture);
    }
}
