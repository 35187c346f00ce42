//! Request-side fixtures: framing, pipelining, limits, gaps, mid-stream pickup, HTTP/2, and
//! where production's parser is known to stand.

use super::*;
use crate::{
    http::{DropReason, StreamCounters},
    reassembly::GapKind,
};

const GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
const POST: &[u8] =
    b"POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world";
const CHUNKED: &[u8] = b"POST /upload HTTP/1.1\r\nHost: example.com\r\n\
    Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6;x=\"y\"\r\n world\r\n\
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
fn both_lengths_are_refused_and_nothing_after_is_read() {
    let wire = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
    let events = events(&[Op::Push(REQ, wire)]);
    assert_eq!(summary(&events), ["dropped request malformed"]);
}
#[test]
fn after_a_refused_request_nothing_of_the_connection_is_copied() {
    for bad in [
        &b"POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /a HTTP/1.1\r\nBad Header: 1\r\n\r\n",
    ] {
        let name = String::from_utf8_lossy(bad);
        // Servers answer 400 and close: what follows is no request anyone read.
        let found = events(&[Op::Push(REQ, join(&[bad, GET]))]);
        assert_eq!(summary(&found), ["dropped request malformed"], "{name}");
        // Even a lenient production that answered and read on does not bring the
        // connection back: a client that chooses where shadowd loses its place chooses
        // what a resumed parse finds. What production's answers show is counted.
        let ops = [
            Op::Push(REQ, bad),
            Op::Answer,
            Op::Push(REQ, GET),
            Op::Answer,
        ];
        let found = summary(&events_with(&ops, Limits::default()).0);
        assert_eq!(found[0], "dropped request malformed", "{name}");
        assert!(found[2].starts_with("unconfirmed "), "{name}: {found:?}");
        assert!(
            !found.iter().any(|e| e.starts_with("request")),
            "{name}: {found:?}"
        );
    }
}

#[test]
fn head_too_large_and_too_many_headers_are_refused() {
    let big = b"GET /big HTTP/1.1\r\nX-Big: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let many = b"GET /many HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    let small = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    for (bad, reason) in [
        (&big[..], "head_too_large"),
        (&many[..], "too_many_headers"),
    ] {
        let ops = [Op::Push(REQ, join(&[bad, small]))];
        let (found, counters) = events_with(&ops, small_limits());
        assert_eq!(summary(&found), [format!("dropped request {reason}")]);
        assert_eq!(counters.request.resyncs, 1);
        assert_eq!(
            counters.request.bytes_skipped as usize,
            bad.len() + small.len()
        );
    }
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
fn gap_in_a_body_drops_the_request_and_production_shows_where_the_next_starts() {
    let tail = b"lost tail of the body\r\n";
    let next = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    // Bytes that may have been body are never taken for a request, however request-like…
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Gap(REQ),
        Op::Push(REQ, join(&[tail, next])),
        Op::End(REQ),
        Op::End(RESP),
    ];
    assert_eq!(summary(&events(&ops)), ["dropped request gap"]);
    // …until production's answer acknowledges exactly the bytes so far, and its next one
    // the end of the request after them.
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Gap(REQ),
        Op::Push(REQ, tail),
        Op::Answer,
        Op::Push(REQ, next),
        Op::Answer,
    ];
    let found = events(&ops);
    assert_eq!(
        summary(&found),
        [
            "dropped request gap",
            "response 204 to None body 0",
            "request 1 GET /next body 0",
            "response 204 to Some(1) body 0"
        ]
    );
    assert_eq!(requests(&found)[0].first_byte, ts(4));
    // A bare ACK is no answer: it only says what arrived.
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Gap(REQ),
        Op::Push(REQ, tail),
        Op::Ack,
        Op::Push(REQ, next),
        Op::Ack,
    ];
    assert_eq!(summary(&events(&ops)), ["dropped request gap"]);
}

#[test]
fn after_a_hole_production_never_acknowledged_nothing_is_copied() {
    // The client may have left it to choose where shadowd loses its place: production's
    // answers no longer bring the connection back.
    let next = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Unacknowledged(REQ, LOST),
        Op::Push(REQ, b"tail\r\n"),
        Op::Answer,
        Op::Push(REQ, next),
        Op::Answer,
    ];
    let found = summary(&events(&ops));
    assert_eq!(found[0], "dropped request gap");
    assert!(!found.iter().any(|e| e.starts_with("request")), "{found:?}");
    assert!(
        found.contains(&"unconfirmed 1 GET /next body 0".to_string()),
        "{found:?}"
    );
    // Nor does the known end of a Content-Length body.
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Unacknowledged(REQ, 4),
        Op::Push(REQ, join(&[b"ld", GET])),
    ];
    assert_eq!(summary(&events(&ops)), ["dropped request gap"]);
}

#[test]
fn a_loss_that_ends_inside_a_length_body_keeps_the_place() {
    // 4 of the body's 11 bytes lost, and what follows them: the body's end is known, so is
    // where the next request starts.
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Lose(REQ, 4),
        Op::Push(REQ, join(&[b"ld", GET])),
    ];
    let (found, counters) = events_with(&ops, Limits::default());
    assert_eq!(
        summary(&found),
        [
            "dropped request gap",
            "request 1 GET /index.html?q=1 body 0"
        ]
    );
    assert_eq!(counters.request.resyncs, 0);
    // A loss past the body's end: unknown again.
    let ops = [
        Op::Push(REQ, &POST[..POST.len() - 6]),
        Op::Lose(REQ, 7),
        Op::Push(REQ, GET),
    ];
    assert_eq!(summary(&events(&ops)), ["dropped request gap"]);
}
#[test]
fn a_gap_or_end_in_the_first_request_line_drops_it() {
    let ops = [
        Op::Push(REQ, b"GET /a--"),
        Op::Gap(REQ),
        Op::Push(REQ, b"-a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
    ];
    assert_eq!(summary(&events(&ops)), ["dropped request gap"]);
    let ops = [Op::Push(REQ, b"GET /a HTT"), Op::End(REQ)];
    assert_eq!(summary(&events(&ops)), ["dropped request truncated"]);
    // A connection known from its start whose first bytes are no request (TLS, another
    // protocol) is a message production refuses.
    let ops = [Op::Push(REQ, b"\x16\x03\x01 hello"), Op::End(REQ)];
    assert_eq!(summary(&events(&ops)), ["dropped request malformed"]);
}
#[test]
fn what_follows_a_candidate_is_held_until_production_confirms_it() {
    // On a stream picked up mid-way, a request line may be the tail of another one:
    // `ST /broken` ends a `POST` whose start the capture missed, so it is no candidate…
    let tail = b"ST /broken HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    let ops = [Op::Pickup(REQ), Op::Push(REQ, tail), Op::Answer];
    assert_eq!(summary(&events(&ops)), ["response 204 to None body 0"]);
    // …and a registered method begins one, whose requests are held until production's
    // answer acknowledges the last byte of one of them, and given up if none does.
    let after = b"PUT /maybe HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    let ok = b"GET /ok HTTP/1.1\r\n\r\n";
    let unconfirmed = [
        Op::Pickup(REQ),
        Op::Push(REQ, join(&[after, ok])),
        Op::End(REQ),
        Op::End(RESP),
    ];
    assert_eq!(
        summary(&events(&unconfirmed)),
        [
            "unconfirmed 0 PUT /maybe body 0",
            "unconfirmed 1 GET /ok body 0"
        ]
    );
    // An answer acknowledging bytes inside a held request confirms nothing; one that
    // acknowledges a held request's last byte confirms it and what was parsed with it.
    let confirmed = [
        Op::Pickup(REQ),
        Op::Push(REQ, join(&[after, ok])),
        Op::AnswerBefore(3),
        Op::AnswerBefore(ok.len() as u64),
    ];
    assert_eq!(
        summary(&events(&confirmed)),
        [
            "response 204 to Some(0) body 0",
            "request 0 PUT /maybe body 0",
            "request 1 GET /ok body 0",
            "response 204 to Some(1) body 0"
        ]
    );
    // Bytes lost before the confirmation: what was held is given up.
    let lost_again = [
        Op::Pickup(REQ),
        Op::Push(REQ, ok),
        Op::Gap(REQ),
        Op::Push(REQ, ok),
        Op::Answer,
    ];
    assert_eq!(
        summary(&events(&lost_again)),
        [
            "unconfirmed 0 GET /ok body 0",
            "response 204 to Some(0) body 0"
        ]
    );
}
#[test]
fn a_stream_picked_up_mid_way_is_read_only_where_production_shows_a_start() {
    let garbage = b"tail of some body\r\n\x00\x01binary\xff{\"json\": 1}";
    // The first byte is a candidate; bytes that do not begin a request there are passed
    // over whole, never searched for something that looks like one.
    let ops = [Op::Pickup(REQ), Op::Push(REQ, join(&[garbage, GET]))];
    let (found, counters) = events_with(&ops, Limits::default());
    assert_eq!(summary(&found), Vec::<String>::new());
    // Two places lost: at the pickup, and where the candidate began no request.
    assert_eq!(
        counters.request,
        StreamCounters {
            resyncs: 2,
            bytes_skipped: (garbage.len() + GET.len()) as u64,
            body_bytes_skipped: 0
        }
    );
    // Production's answer acknowledging exactly where the reader stands makes the next
    // byte a candidate.
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, garbage),
        Op::Answer,
        Op::Push(REQ, GET),
        Op::Answer,
    ];
    let found = events(&ops);
    assert_eq!(
        summary(&found),
        [
            "response 204 to None body 0",
            "request 0 GET /index.html?q=1 body 0",
            "response 204 to Some(0) body 0"
        ]
    );
    assert_eq!(requests(&found)[0].raw, GET);
    // The common case: an idle keep-alive connection's next request.
    let ops = [Op::Pickup(REQ), Op::Push(REQ, GET), Op::Answer];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /index.html?q=1 body 0",
            "response 204 to Some(0) body 0"
        ]
    );
}
#[test]
fn a_clean_start_is_not_a_resync() {
    let (_, counters) = events_with(&[Op::Push(REQ, GET)], Limits::default());
    assert_eq!(counters.request, StreamCounters::default());
}

#[test]
fn empty_lines_before_a_request_only_after_a_post() {
    // Go answers 400 to an empty line before a request, but skips up to four CR or LF
    // bytes after a POST, as nginx, Envoy and llhttp do.
    let found = events(&[Op::Push(REQ, join(&[b"\r\n", GET]))]);
    assert_eq!(summary(&found), ["dropped request malformed"]);
    let found = events(&[Op::Push(REQ, join(&[POST, b"\r\n\r\n", GET]))]);
    assert_eq!(
        summary(&found),
        [
            "request 0 POST /submit body 11",
            "request 1 GET /index.html?q=1 body 0"
        ]
    );
    let found = events(&[Op::Push(REQ, join(&[POST, b"\r\n\r\n\r\n", GET]))]);
    assert_eq!(
        summary(&found),
        [
            "request 0 POST /submit body 11",
            "dropped request malformed"
        ]
    );
    let found = events(&[Op::Push(REQ, join(&[GET, b"\r\n", GET]))]);
    assert_eq!(
        summary(&found),
        [
            "request 0 GET /index.html?q=1 body 0",
            "dropped request malformed"
        ]
    );
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
        ]
    );
}
#[test]
fn framings_servers_disagree_on_are_refused() {
    for bad in [
        // Bare LF ends the lines: nginx, Envoy and Go take it, llhttp refuses it.
        &b"POST /lf HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n"[..],
        // A bare LF inside the head: the smuggling classic.
        b"GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
        // obs-fold: Envoy and Go join the line, nginx and llhttp refuse it.
        b"POST /f HTTP/1.1\r\nHost: h\r\n Content-Length: 38\r\n\r\nGET /bye HTTP/1.1\r\n\r\n",
        // Whitespace in a chunk size line; a bare LF after chunk data.
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n",
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
        // A space inside the target.
        b"GET /foo bar/ HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(
            summary(&events(&[Op::Push(REQ, bad)])),
            ["dropped request malformed"],
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn any_method_token_and_connect_ending_at_its_head() {
    let ops = [Op::Push(
        REQ,
        b"M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\nMKCOL /d HTTP/1.1\r\n\r\n",
    )];
    assert_eq!(
        summary(&events(&ops)),
        ["request 0 M-SEARCH * body 0", "request 1 MKCOL /d body 0"]
    );
    // As llhttp reads it, a CONNECT ends at its head whatever it says of a body.
    let ops = [Op::Push(
        REQ,
        b"CONNECT h:443 HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    )];
    assert_eq!(summary(&events(&ops)), ["request 0 CONNECT h:443 body 0"]);
}

#[test]
fn a_hundred_and_five_headers_are_one_request() {
    let mut head = b"GET /many HTTP/1.1\r\n".to_vec();
    for i in 0..105 {
        head.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    flow.push(REQ, &head, ts(0), &mut out);
    assert_eq!(summary(&out), ["request 0 GET /many body 0"]);
    assert_eq!(requests(&out)[0].headers.len(), 105);
}
#[test]
fn gap_and_end_with_nothing_in_progress_drop_nothing() {
    let ops = [
        Op::Push(REQ, GET),
        Op::Gap(REQ),
        Op::End(REQ),
        Op::End(RESP),
    ];
    let events = events(&ops);
    assert_eq!(summary(&events), ["request 0 GET /index.html?q=1 body 0"]);
}

#[test]
fn held_requests_wait_for_the_answer_to_a_fin_and_not_past_the_server_side() {
    // The client sends its request and closes; production answers after the FIN.
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, GET),
        Op::End(REQ),
        Op::Answer,
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /index.html?q=1 body 0",
            "response 204 to Some(0) body 0"
        ]
    );
    // The server side ended without acknowledging it: it never will.
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, GET),
        Op::End(RESP),
        Op::Push(REQ, GET),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "unconfirmed 0 GET /index.html?q=1 body 0",
            "unconfirmed 1 GET /index.html?q=1 body 0"
        ]
    );
}
#[test]
fn held_requests_are_bounded() {
    // Small limits hold 96 + 32 bytes of requests awaiting confirmation.
    let small = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, join(&[small, small, small, small, small])),
        Op::Push(REQ, small),
    ];
    let (events, _) = events_with(&ops, small_limits());
    let summary = summary(&events);
    assert_eq!(summary.len(), 5, "{summary:?}");
    assert!(
        summary.iter().all(|e| e.starts_with("unconfirmed")),
        "{summary:?}"
    );
}

/// A POST whose 200-byte body streams after 64 bytes.
fn upload() -> &'static [u8] {
    let body: Vec<u8> = (0..200u8).collect();
    join(&[
        b"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 200\r\n\r\n",
        &body,
    ])
}

fn streaming_limits() -> Limits {
    Limits {
        stream_body_after: Some(64),
        ..Limits::default()
    }
}

/// The events of `ops` as they come, pieces and all (not joined).
fn raw_events(ops: &[Op], limits: Limits) -> Vec<String> {
    let mut flow = HttpFlow::new(limits);
    let mut out = Vec::new();
    let mut position = 0u64;
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Push(direction, data) => {
                flow.push(direction, data, ts(i), &mut out);
                if direction == REQ {
                    position += data.len() as u64;
                }
            }
            Op::Lose(direction, n) => {
                position += n;
                flow.gap(direction, position, GapKind::CaptureLoss, &mut out);
            }
            Op::End(direction) => flow.end(direction, &mut out),
            other => panic!("not used here: {other:?}"),
        }
    }
    summary(&out)
}

#[test]
fn a_long_body_comes_out_in_pieces_as_it_arrives_and_joins_back_exactly() {
    let wire = upload();
    let head = head_len(wire);
    let ops = [
        Op::Push(REQ, &wire[..head + 100]),
        Op::Push(REQ, &wire[head + 100..head + 150]),
        Op::Push(REQ, &wire[head + 150..]),
    ];
    assert_eq!(
        raw_events(&ops, streaming_limits()),
        [
            "streaming 0 POST /up body 64",
            "piece 0 36",
            "piece 0 50",
            "piece 0 50",
            "end 0",
        ]
    );
    // Joined, it is the request as sent, whatever the cuts.
    let events = events_with(&ops, streaming_limits()).0;
    assert_eq!(requests(&events)[0].raw, wire);
    assert_eq!(requests(&events)[0].last_byte, ts(2));
}

#[test]
fn a_streamed_body_broken_by_loss_truncation_or_the_policy_limit_is_abandoned() {
    let wire = upload();
    let head = head_len(wire);
    let lost = [Op::Push(REQ, &wire[..head + 100]), Op::Lose(REQ, 10)];
    assert_eq!(
        raw_events(&lost, streaming_limits())[2..],
        ["dropped request gap", "broken 0 unread false"]
    );
    let ended = [Op::Push(REQ, &wire[..head + 100]), Op::End(REQ)];
    assert_eq!(
        raw_events(&ended, streaming_limits())[2..],
        ["dropped request truncated", "broken 0 unread false"]
    );
    // Chunked, so its size is only known as it comes: over the policy, it is cut off.
    let chunked = join(&[
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n",
        &[b'x'; 80],
        b"\r\n50\r\n",
        &[b'y'; 80],
        b"\r\n0\r\n\r\n",
    ]);
    let limits = Limits {
        max_body_bytes: Some(120),
        ..streaming_limits()
    };
    let found = raw_events(&[Op::Push(REQ, chunked)], limits);
    assert_eq!(found[0], "streaming 0 PUT /c body 64");
    assert_eq!(
        found[found.len() - 2..],
        ["dropped request body_too_large", "broken 0 unread false"],
        "{found:?}"
    );
}

#[test]
fn a_chunked_body_over_a_policy_below_the_streaming_point_is_never_offered() {
    let chunked = join(&[
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n",
        &[b'x'; 80],
        b"\r\n0\r\n\r\n",
    ]);
    let limits = Limits {
        max_body_bytes: Some(40),
        ..streaming_limits()
    };
    assert_eq!(
        raw_events(&[Op::Push(REQ, chunked)], limits),
        ["dropped request body_too_large"]
    );
}

#[test]
fn a_held_body_is_bounded_by_max_held_bytes_whatever_the_policy_allows() {
    let limits = Limits {
        max_body_bytes: Some(1 << 30),
        ..streaming_limits()
    };
    assert_eq!(limits.kept_body_limit(), limits.max_held_bytes as u64);
    let offline = Limits {
        stream_body_after: None,
        ..limits
    };
    assert_eq!(offline.kept_body_limit(), 1 << 30);
}

#[test]
fn a_closing_answer_to_an_earlier_request_abandons_the_one_streaming_as_unread() {
    let wire = upload();
    let head = head_len(wire);
    let closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let found = raw_events(
        &[
            Op::Push(REQ, GET),
            Op::Push(REQ, &wire[..head + 100]),
            Op::Push(RESP, closing),
        ],
        streaming_limits(),
    );
    assert_eq!(
        found,
        [
            "request 0 GET /index.html?q=1 body 0",
            "streaming 1 POST /up body 64",
            "piece 1 36",
            "broken 1 unread true",
            "response 200 to Some(0) body 0",
        ]
    );
}

#[test]
fn a_held_request_is_kept_whole_never_streamed() {
    // Picked up mid-way, the stream's place is not confirmed: the upload is held whole
    // until production's answer confirms it.
    let wire = upload();
    let found = summary(
        &events_with(
            &[Op::Pickup(REQ), Op::Push(REQ, wire), Op::Answer],
            streaming_limits(),
        )
        .0,
    );
    assert_eq!(found[0], "request 0 POST /up body 200");
}

#[test]
fn connections_share_the_parse_budget_and_one_that_finds_it_full_drops_only_its_message() {
    let limits = Limits {
        max_parse_total_bytes: 200,
        ..Limits::default()
    };
    let budgets = crate::http::Budgets::new(&limits);
    let (mut a, mut b) = (
        HttpFlow::with_budgets(limits, budgets.clone()),
        HttpFlow::with_budgets(limits, budgets.clone()),
    );
    let mut out = Vec::new();
    // One connection is in the middle of a long head.
    let partial = format!(
        "GET /{} HTTP/1.1\r\nX-Long: {}\r\n",
        "a".repeat(60),
        "b".repeat(60)
    );
    a.push(REQ, partial.as_bytes(), ts(0), &mut out);
    assert_eq!(budgets.parse.used(), partial.len());
    // The other's head fits, its body does not: the body is passed over by its framing,
    // so the next request is read where it starts.
    let post = b"POST /p HTTP/1.1\r\nContent-Length: 30\r\n\r\n";
    b.push(REQ, post, ts(1), &mut out);
    b.push(REQ, &[b'x'; 30], ts(2), &mut out);
    b.push(REQ, b"GET /g HTTP/1.1\r\n\r\n", ts(3), &mut out);
    assert_eq!(
        summary(&out),
        [
            "dropped request parse_budget_full",
            "request 1 GET /g body 0"
        ]
    );
    // A head that outgrows what is left is dropped too; the connection is not given up:
    // production's answer confirms where its requests start again.
    out.clear();
    b.push(REQ, GET, ts(4), &mut out);
    assert_eq!(summary(&out), ["dropped request parse_budget_full"]);
    assert_eq!(budgets.parse.used(), partial.len(), "b holds nothing of it");
    // What a message leaves the buffer with goes back to the budget.
    out.clear();
    a.push(REQ, b"\r\n", ts(5), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(budgets.parse.used(), 0);
    a.push(REQ, b"GET /half", ts(6), &mut out);
    drop(a);
    assert_eq!(
        budgets.parse.used(),
        0,
        "a flow dropped gives its share back"
    );
}

#[test]
fn a_head_dropped_for_the_parse_budget_does_not_give_up_the_connection() {
    // Unlike a request production refuses, this one production read: once its answer
    // shows where requests start, the next ones are copied again.
    let limits = Limits {
        max_parse_total_bytes: 100,
        ..Limits::default()
    };
    let long = join(&[b"GET /", &[b'a'; 120], b" HTTP/1.1\r\n\r\n"]);
    let ops = [
        Op::Push(REQ, long),
        Op::Answer,
        Op::Push(REQ, GET),
        Op::Answer,
    ];
    let found = summary(&events_with(&ops, limits).0);
    assert_eq!(found[0], "dropped request parse_budget_full", "{found:?}");
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("request 0 GET /index.html")),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|e| e.starts_with("unconfirmed")),
        "{found:?}"
    );
}

#[test]
fn a_head_of_exactly_the_limit_is_read_and_one_byte_more_is_not() {
    let limits = small_limits();
    let head = |len: usize| {
        let start = b"GET /a HTTP/1.1\r\nX: ";
        let mut head = start.to_vec();
        head.resize(len - 4, b'v');
        head.extend_from_slice(b"\r\n\r\n");
        &*Box::leak(head.into_boxed_slice())
    };
    let fits = head(limits.max_head_bytes);
    let found = events_with(&[Op::Push(REQ, fits)], limits).0;
    assert_eq!(summary(&found), ["request 0 GET /a body 0"]);
    let over = head(limits.max_head_bytes + 1);
    let found = events_with(&[Op::Push(REQ, over)], limits).0;
    assert_eq!(summary(&found), ["dropped request head_too_large"]);
}

#[test]
fn a_start_line_longer_than_the_head_limit_is_never_held_whole() {
    // `run` checks after every push that the flow holds no more than its bound (about four
    // heads here): a start line must be refused once it passes the head limit, however it
    // was cut, not buffered until its line ends.
    let limits = small_limits();
    let line = format!("GET /{} HTTP/1.1", "a".repeat(4096));
    let line: &'static [u8] = Box::leak(line.into_bytes().into_boxed_slice());
    assert!(line.len() > buffer_bound(limits));
    let ops = [Op::Push(REQ, line), Op::Push(REQ, b"\r\n\r\n")];
    let found = run(&ops, limits, |_, data| vec![data]).0;
    assert_eq!(summary(&found), ["dropped request head_too_large"]);
}

#[test]
fn an_empty_line_before_a_request_is_the_reason_it_is_refused() {
    let found = events(&[Op::Push(REQ, join(&[b"\r\n", GET]))]);
    assert!(
        matches!(
            found[..],
            [HttpEvent::Dropped {
                reason: DropReason::Malformed {
                    what: "empty line before request"
                },
                ..
            }]
        ),
        "{found:?}"
    );
}

#[test]
fn a_stray_line_end_after_a_post_that_production_acknowledged_confirms_the_post() {
    // On a connection picked up mid-way only production's acknowledgements confirm
    // requests; its stack read the CRLF after the POST too, and acknowledged it with it.
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, POST),
        Op::Push(REQ, b"\r\n"),
        Op::Answer,
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 POST /submit body 11",
            "response 204 to Some(0) body 0"
        ]
    );
}

#[test]
fn a_requests_method_and_target_are_its_own_bytes() {
    let found = events(&[Op::Push(REQ, b"PATCH /a/b?q=1 HTTP/1.1\r\nHost: h\r\n\r\n")]);
    let request = requests(&found)[0];
    assert_eq!(request.method_bytes(), b"PATCH");
    assert_eq!(request.target_bytes(), b"/a/b?q=1");
}
