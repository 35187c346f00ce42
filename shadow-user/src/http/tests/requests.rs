//! Request-side fixtures: framing, pipelining, limits, gaps, mid-stream pickup, HTTP/2.

use super::*;
use crate::http::StreamCounters;

const GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
const POST: &[u8] =
    b"POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world";
const CHUNKED: &[u8] = b"POST /upload HTTP/1.1\r\nHost: example.com\r\n\
    Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world\r\n\
    0\r\nChecksum: abc\r\nX-Trailer: 1\r\n\r\n";

/// Bytes of the head of `message`.
fn head_len(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i + 4)
}

/// `parts` back to back, for fixtures that need one `'static` buffer.
fn join(parts: &[&[u8]]) -> &'static [u8] {
    Box::leak(parts.concat().into_boxed_slice())
}

#[test]
fn get_without_body() {
    let events = events(&[Op::Push(REQ, GET)]);
    assert_eq!(summary(&events), ["request 0 GET /index.html?q=1 body 0"]);
    let request = requests(&events)[0];
    assert_eq!(request.raw, GET);
    assert_eq!(request.head_len, GET.len());
    assert_eq!(request.host_str(), Some("example.com"));
    assert_eq!(request.header_name(1), b"Accept");
    assert_eq!(request.header_value(1), b"*/*");
    assert_eq!(request.version, 1);
    assert_eq!((request.first_byte, request.last_byte), (ts(0), ts(0)));
}

#[test]
fn post_with_content_length() {
    let events = events(&[Op::Push(REQ, &POST[..40]), Op::Push(REQ, &POST[40..])]);
    assert_eq!(summary(&events), ["request 0 POST /submit body 11"]);
    let request = requests(&events)[0];
    assert_eq!(request.raw, POST);
    assert_eq!(request.body(), b"hello world");
    assert_eq!((request.first_byte, request.last_byte), (ts(0), ts(1)));
}

#[test]
fn chunked_with_extensions_and_trailers_keeps_its_framing() {
    let events = events(&[Op::Push(REQ, CHUNKED)]);
    let request = requests(&events)[0];
    assert_eq!(request.raw, CHUNKED);
    assert!(request.body().starts_with(b"5;name=value\r\nhello\r\n"));
    assert!(request.body().ends_with(b"X-Trailer: 1\r\n\r\n"));
    assert_eq!(request.head_len + request.body().len(), CHUNKED.len());
}

#[test]
fn pipelined_requests_in_one_push() {
    let wire = join(&[GET, POST, CHUNKED, b"\r\n", GET]);
    let events = events(&[Op::Push(REQ, wire)]);
    assert_eq!(
        summary(&events),
        [
            "request 0 GET /index.html?q=1 body 0",
            "request 1 POST /submit body 11",
            format!(
                "request 2 POST /upload body {}",
                CHUNKED.len() - head_len(CHUNKED)
            )
            .as_str(),
            "request 3 GET /index.html?q=1 body 0",
        ]
    );
    let raws: Vec<_> = requests(&events).iter().map(|r| r.raw.clone()).collect();
    assert_eq!(raws, [GET, POST, CHUNKED, GET]);
}

#[test]
fn requests_come_out_without_waiting_for_responses() {
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    flow.push(REQ, GET, ts(0), &mut out);
    assert_eq!(requests(&out).len(), 1);
    flow.push(REQ, &POST[..POST.len() - 1], ts(1), &mut out);
    assert_eq!(requests(&out).len(), 1);
    flow.push(REQ, &POST[POST.len() - 1..], ts(2), &mut out);
    assert_eq!(requests(&out).len(), 2);
}

#[test]
fn both_lengths_use_chunked_with_a_notice() {
    let wire = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n0\r\n\r\n";
    let events = events(&[Op::Push(REQ, wire)]);
    assert_eq!(
        summary(&events),
        [
            "notice content_length_with_chunked",
            "request 0 POST /x body 13"
        ]
    );
}

#[test]
fn invalid_framing_is_malformed_and_the_next_request_parsed() {
    for bad in [
        &b"POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /a HTTP/1.1\r\nBad Header: 1\r\n\r\n",
    ] {
        let events = events(&[Op::Push(REQ, join(&[bad, GET]))]);
        assert_eq!(
            summary(&events),
            [
                "dropped request malformed",
                "request 0 GET /index.html?q=1 body 0"
            ],
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Broken chunk framing is found after the head was numbered.
    let bad = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let events = events(&[Op::Push(REQ, join(&[bad, GET]))]);
    assert_eq!(
        summary(&events),
        [
            "dropped request malformed",
            "request 1 GET /index.html?q=1 body 0"
        ]
    );
}

#[test]
fn head_too_large_and_too_many_headers_resync() {
    let big = b"GET /big HTTP/1.1\r\nX-Big: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let many = b"GET /many HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    let small = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let ops = [Op::Push(REQ, join(&[big, small, many, small]))];
    let (events, counters) = events_with(&ops, small_limits());
    assert_eq!(
        summary(&events),
        [
            "dropped request head_too_large",
            "request 0 GET /a body 0",
            "dropped request too_many_headers",
            "request 1 GET /a body 0",
        ]
    );
    assert_eq!(counters.request.resyncs, 2);
    assert_eq!(
        counters.request.bytes_skipped as usize,
        big.len() + many.len()
    );
}

#[test]
fn body_too_large_is_skipped_and_the_next_request_parsed() {
    let long = b"POST /long HTTP/1.1\r\nContent-Length: 40\r\n\r\n\
        0123456789012345678901234567890123456789";
    let chunked = b"POST /chunks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
        10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
    let small = b"GET /a HTTP/1.1\r\n\r\n";
    let ops = [Op::Push(REQ, join(&[long, small, chunked, small]))];
    let (events, counters) = events_with(&ops, small_limits());
    assert_eq!(
        summary(&events),
        [
            "dropped request body_too_large",
            "request 1 GET /a body 0",
            "dropped request body_too_large",
            "request 3 GET /a body 0",
        ]
    );
    assert_eq!(counters.request.resyncs, 0);
    let chunked_body = chunked.len() - head_len(chunked);
    assert_eq!(
        counters.request.body_bytes_skipped as usize,
        40 + chunked_body
    );
}

#[test]
fn gap_in_a_body_drops_the_request_and_the_next_one_is_parsed() {
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Gap(REQ),
        Op::Push(
            REQ,
            b"lost tail of the body\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
    ];
    let events = events(&ops);
    assert_eq!(
        summary(&events),
        ["dropped request gap", "request 1 GET /next body 0"]
    );
    assert_eq!(requests(&events)[0].first_byte, ts(2));
}

#[test]
fn a_gap_or_end_in_the_first_request_line_drops_it() {
    let ops = [
        Op::Push(REQ, b"GET /a--"),
        Op::Gap(REQ),
        Op::Push(REQ, b"-a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
    ];
    assert_eq!(
        summary(&events(&ops)),
        ["dropped request gap", "request 0 GET /b body 0"]
    );
    let ops = [Op::Push(REQ, b"GET /a HTT"), Op::End(REQ)];
    assert_eq!(summary(&events(&ops)), ["dropped request truncated"]);
    let ops = [Op::Push(REQ, b"\x16\x03\x01 hello"), Op::End(REQ)];
    assert_eq!(summary(&events(&ops)), Vec::<String>::new());
}

#[test]
fn a_request_cut_by_a_gap_at_its_method_is_not_emitted() {
    let ops = [
        Op::Push(REQ, GET),
        Op::Gap(REQ),
        Op::Push(
            REQ,
            b"ST /broken HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /ok HTTP/1.1\r\n\r\n",
        ),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /index.html?q=1 body 0",
            "request 1 GET /ok body 0"
        ]
    );
}

#[test]
fn mid_stream_start_skips_to_the_first_request_line() {
    let garbage = b"tail of some body\r\n\x00\x01binary\xff{\"json\": 1}";
    let ops = [Op::Push(REQ, join(&[garbage, GET]))];
    let (events, counters) = events_with(&ops, Limits::default());
    assert_eq!(summary(&events), ["request 0 GET /index.html?q=1 body 0"]);
    assert_eq!(requests(&events)[0].raw, GET);
    let skipped = garbage.len() as u64;
    assert_eq!(
        counters.request,
        StreamCounters {
            resyncs: 1,
            bytes_skipped: skipped,
            body_bytes_skipped: 0
        }
    );
}

#[test]
fn a_clean_start_is_not_a_resync() {
    let (_, counters) = events_with(&[Op::Push(REQ, join(&[b"\r\n", GET]))], Limits::default());
    assert_eq!(counters.request, StreamCounters::default());
}

#[test]
fn http2_preface_stops_the_flow() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";
    let events = events(&[Op::Push(REQ, preface), Op::Push(RESP, b"\x00\x00\x00\x04")]);
    assert_eq!(summary(&events), ["unsupported http2"]);
}

#[test]
fn truncated_and_garbage_heads() {
    let ops = [Op::Push(REQ, join(&[GET, &POST[..50]])), Op::End(REQ)];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /index.html?q=1 body 0",
            "dropped request truncated"
        ]
    );
    let ops = [Op::Push(REQ, join(&[GET, b"\x16\x03\x01junk\r\n", GET]))];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /index.html?q=1 body 0",
            "dropped request malformed",
            "request 1 GET /index.html?q=1 body 0"
        ]
    );
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let wire = b"POST /lf HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n";
    let events = events(&[Op::Push(REQ, wire)]);
    assert_eq!(summary(&events), ["request 0 POST /lf body 8"]);
    assert_eq!(requests(&events)[0].raw, &wire[..]);
}

#[test]
fn gap_and_end_with_nothing_in_progress_drop_nothing() {
    let ops = [
        Op::Gap(REQ),
        Op::Push(REQ, GET),
        Op::Gap(REQ),
        Op::End(REQ),
        Op::End(RESP),
    ];
    let events = events(&ops);
    assert_eq!(summary(&events), ["request 0 GET /index.html?q=1 body 0"]);
}
