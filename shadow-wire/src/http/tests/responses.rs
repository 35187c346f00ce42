//! Response-side fixtures: body rules, interim responses, pairing, protocol switches.

use super::*;

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn expect_100_continue() {
    let ops = [
        Op::Push(
            REQ,
            b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        ),
        Op::Push(RESP, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Op::Push(REQ, b"data"),
        Op::Push(RESP, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ];
    let events = events(&ops);
    assert_eq!(
        summary(&events),
        [
            "response 100 to Some(0) body 0",
            "request 0 PUT /big body 4",
            "response 201 to Some(0) body 0",
        ]
    );
    let request = requests(&events)[0];
    assert_eq!((request.first_byte, request.last_byte), (ts(0), ts(2)));
    assert!(request.raw.ends_with(b"\r\n\r\ndata"));
}

#[test]
fn head_response_has_no_body_despite_its_length() {
    let ops = [
        Op::Push(
            REQ,
            b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /g HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        Op::Push(
            RESP,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 HEAD /h body 0",
            "request 1 GET /g body 0",
            "response 200 to Some(0) body 0",
            "response 200 to Some(1) body 2",
        ]
    );
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(REQ, GET_B),
        Op::Push(REQ, GET_A),
        Op::Push(
            RESP,
            b"HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n\
              HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\n",
        ),
    ];
    assert_eq!(
        summary(&events(&ops))[3..],
        [
            "response 204 to Some(0) body 0",
            "response 304 to Some(1) body 0",
            "response 200 to Some(2) body 19",
        ]
    );
}

#[test]
fn response_delimited_by_close() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(RESP, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello world"),
        Op::Push(RESP, b"!!"),
        Op::End(RESP),
    ];
    let events = events(&ops);
    assert_eq!(summary(&events)[1..], ["response 200 to Some(0) body 13"]);
    let HttpEvent::Response(response) = &events[1] else {
        panic!("not a response: {:?}", events[1]);
    };
    assert_eq!((response.first_byte, response.last_byte), (ts(1), ts(2)));
    assert_eq!(response.head_len, 30);
}

#[test]
fn response_cut_by_the_end_is_truncated() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
        Op::End(RESP),
    ];
    assert_eq!(summary(&events(&ops))[1..], ["dropped response truncated"]);
}

#[test]
fn interim_responses_keep_the_pairing() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(REQ, GET_B),
        Op::Push(
            RESP,
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
              1\r\na\r\n0\r\n\r\n",
        ),
        Op::Push(RESP, OK_EMPTY),
    ];
    assert_eq!(
        summary(&events(&ops))[2..],
        [
            "response 103 to Some(0) body 0",
            "notice content_length_with_chunked",
            "response 200 to Some(0) body 11",
            "response 200 to Some(1) body 0",
        ]
    );
}

#[test]
fn upgrade_stops_the_flow_and_holds_what_follows_the_request() {
    let ops = [
        Op::Push(
            REQ,
            b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        Op::Push(REQ, b"\x81\x85abcd\x01\x02\x03\x04\x05"),
        Op::Push(
            RESP,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
        ),
        Op::Push(REQ, GET_A),
    ];
    let (events, counters) = events_with(&ops, Limits::default());
    assert_eq!(
        summary(&events),
        [
            "request 0 GET /chat body 0",
            "response 101 to Some(0) body 0",
            "unsupported upgrade",
        ]
    );
    assert_eq!(counters, Counters::default());
}

#[test]
fn held_bytes_beyond_the_limit_are_given_up() {
    let frames: &[u8] = &[0x82; 120];
    let ops = [
        Op::Push(REQ, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
        Op::Push(REQ, frames),
        Op::Push(RESP, b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    ];
    let (events, counters) = events_with(&ops, small_limits());
    assert_eq!(
        summary(&events),
        [
            "request 0 GET /ws body 0",
            "response 101 to Some(0) body 0",
            "unsupported upgrade",
        ]
    );
    // What follows an upgrade may be the other protocol, whose plaintext must never be
    // copied: held bytes beyond the limit are passed over, never parsed.
    assert_eq!(counters.request.bytes_skipped, 120);
}

#[test]
fn connect_stops_the_flow_on_2xx() {
    let ops = [
        Op::Push(
            REQ,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ),
        Op::Push(REQ, b"\x16\x03\x01\x02\x00client hello"),
        Op::Push(RESP, b"HTTP/1.1 200 Connection Established\r\n\r\n"),
        Op::Push(RESP, b"\x16\x03\x03server hello"),
    ];
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Push(direction, data) = op {
            flow.push(*direction, data, ts(i), &mut out);
        }
    }
    assert!(flow.is_finished());
    assert_eq!(summary(&out), summary(&events(&ops)));
    assert_eq!(
        summary(&out),
        [
            "request 0 CONNECT example.com:443 body 0",
            "response 200 to Some(0) body 0",
            "unsupported connect",
        ]
    );
}

#[test]
fn refused_connect_and_ignored_upgrade_release_what_followed() {
    let ops = [
        Op::Push(
            REQ,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ),
        Op::Push(REQ, GET_A),
        Op::Push(
            RESP,
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        ),
        Op::Push(
            REQ,
            b"GET /up HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        ),
        Op::Push(RESP, OK_EMPTY),
        Op::Push(RESP, OK_EMPTY),
        Op::Push(RESP, OK_EMPTY),
    ];
    let events = events(&ops);
    assert_eq!(
        summary(&events),
        [
            "request 0 CONNECT example.com:443 body 0",
            "request 1 GET /a body 0",
            "response 407 to Some(0) body 0",
            "request 2 GET /up body 0",
            "response 200 to Some(1) body 0",
            "request 3 GET /b body 0",
            "response 200 to Some(2) body 0",
            "response 200 to Some(3) body 0",
        ]
    );
    assert_eq!(requests(&events)[1].first_byte, ts(1));
}

#[test]
fn what_follows_a_refused_connect_with_a_body_is_no_known_request() {
    // Go reads the body by its Content-Length, llhttp ends the request at its head: after a
    // refusal production may have read the next bytes either way.
    let ops = [
        Op::Push(
            REQ,
            b"CONNECT example.com:443 HTTP/1.1\r\nContent-Length: 14\r\n\r\n",
        ),
        Op::Push(REQ, b"GET /b HTTP/1.1\r\n\r\n"),
        Op::Push(RESP, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
        Op::Push(REQ, GET_A),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 CONNECT example.com:443 body 0",
            "response 403 to Some(0) body 0",
        ]
    );
}

#[test]
fn requests_after_one_that_closes_the_connection_are_never_read() {
    let ops = [Op::Push(
        REQ,
        b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\nDELETE /never HTTP/1.1\r\n\r\n",
    )];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /last body 0",
            "unconfirmed 1 DELETE /never body 0"
        ]
    );
    // HTTP/1.0 closes unless it asks to keep the connection alive.
    let ops = [Op::Push(
        REQ,
        b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    )];
    assert_eq!(
        summary(&events(&ops)),
        ["request 0 GET /a body 0", "unconfirmed 1 GET /b body 0"]
    );
    let ops = [Op::Push(
        REQ,
        b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    )];
    assert_eq!(
        summary(&events(&ops)),
        ["request 0 GET /a body 0", "request 1 GET /b body 0"]
    );
    // Production's answer closes it: what the client sends after is never read.
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(
            RESP,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ),
        Op::Push(REQ, GET_B),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /a body 0",
            "response 200 to Some(0) body 0",
            "unconfirmed 1 GET /b body 0"
        ]
    );
}

#[test]
fn requests_production_closes_before_come_out_in_order_with_held_ones() {
    let wire = b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let ops = [Op::Pickup(REQ), Op::Push(REQ, wire), Op::End(RESP)];
    assert_eq!(
        summary(&events(&ops)),
        ["unconfirmed 0 GET /a body 0", "unconfirmed 1 GET /b body 0"]
    );
    // Production answers /a, having received both: /a is confirmed, /b it never reads.
    let ops = [Op::Pickup(REQ), Op::Push(REQ, wire), Op::AnswerBefore(19)];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /a body 0",
            "unconfirmed 1 GET /b body 0",
            "response 204 to Some(0) body 0"
        ]
    );
    // The same when it is the answer that closes.
    let answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let ops = [
        Op::Pickup(REQ),
        Op::Push(REQ, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
        Op::Reply(answer),
    ];
    let found = summary(&events(&ops));
    assert_eq!(
        found[..2],
        ["request 0 GET /a body 0", "unconfirmed 1 GET /b body 0"]
    );
}

#[test]
fn response_gap_withholds_pairing_until_idle() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        Op::Gap(RESP),
        Op::Push(RESP, b"ij"),
        Op::Push(REQ, GET_B),
        Op::Push(RESP, OK_EMPTY),
    ];
    assert_eq!(
        summary(&events(&ops)),
        [
            "request 0 GET /a body 0",
            "dropped response gap",
            "request 1 GET /b body 0",
            "response 200 to Some(1) body 0",
        ]
    );
}

#[test]
fn request_gap_withholds_pairing_until_idle() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(RESP, OK_EMPTY),
        Op::Push(
            REQ,
            b"POST /lost HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial",
        ),
        Op::Gap(REQ),
        Op::Push(REQ, b"more\r\nGET /c HTTP/1.1\r\n\r\n"),
        // Production answers both, acknowledging every byte so far.
        Op::Reply(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        Op::Reply(OK_EMPTY),
        Op::Push(REQ, b"GET /d HTTP/1.1\r\n\r\n"),
        Op::Reply(OK_EMPTY),
    ];
    let (events, counters) = events_with(&ops, Limits::default());
    assert_eq!(
        summary(&events),
        [
            "request 0 GET /a body 0",
            "response 200 to Some(0) body 0",
            "dropped request gap",
            "response 400 to None body 0",
            "response 200 to None body 0",
            "request 2 GET /d body 0",
            "response 200 to Some(2) body 0",
        ]
    );
    assert_eq!(counters.unpaired_responses, 2);
}

#[test]
fn malformed_response_resyncs_without_pairing() {
    let ops = [
        Op::Push(REQ, GET_A),
        Op::Push(REQ, GET_B),
        Op::Push(
            RESP,
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nbody\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ),
    ];
    let (events, counters) = events_with(&ops, Limits::default());
    assert_eq!(
        summary(&events)[2..],
        ["dropped response malformed", "response 201 to None body 0"]
    );
    assert_eq!(counters.response.resyncs, 1);
}

#[test]
fn picked_up_response_does_not_answer_a_later_request() {
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    // The reassembler may hand over the client's bytes first though the answer to an
    // earlier, uncaptured request was captured before them.
    flow.push(REQ, GET_A, ts(5), &mut out);
    flow.push(
        RESP,
        b"s of a body\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ts(1),
        &mut out,
    );
    flow.push(RESP, OK_EMPTY, ts(6), &mut out);
    assert_eq!(
        summary(&out),
        [
            "request 0 GET /a body 0",
            "response 200 to None body 0",
            "response 200 to Some(0) body 0",
        ]
    );
    assert_eq!(flow.counters().response.resyncs, 1);
    assert_eq!(flow.counters().unpaired_responses, 1);
}

#[test]
fn a_response_head_too_large_is_passed_over_to_the_same_byte_however_it_is_cut() {
    // Found by the property test: a head crossing the limit in its last push was searched
    // from that push's start (a status line there began a new head) when the push came
    // whole, and from inside it when the push came in pieces.
    let limits = Limits {
        max_head_bytes: 200,
        ..small_limits()
    };
    let ops = [
        Op::Push(RESP, b"HTTP/1.1 200 OK\r\n"),
        Op::Push(
            RESP,
            b"Content-Length: 99\r\nTransfer-Encoding: chunked\r\n\
              Transfer-Encoding: chunked\r\nContent-Length: 99\r\n",
        ),
        Op::Push(
            RESP,
            b"HTTP/1.1 200 OK\r\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\
              Transfer-Encoding: chunked\r\nGET / HTTP/1.1\r\n\r\n",
        ),
    ];
    let (events, counters) = events_with(&ops, limits);
    assert_eq!(summary(&events), ["dropped response head_too_large"]);
    assert_eq!(counters.response.bytes_skipped, 205);
    // A first line longer than the limit, with a status line inside its reason phrase: found
    // the same way however the line is cut.
    let ops = [Op::Push(
        RESP,
        b"HTTP/1.1 200 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxHTTP/1.1 204 No\r\n\r\n",
    )];
    let (events, _) = events_with(&ops, small_limits());
    assert_eq!(summary(&events), ["response 204 to None body 0"]);
}

#[test]
fn a_status_line_found_by_the_search_starts_its_message_where_its_line_starts() {
    // The response that production began sending says which request bytes its stack had
    // received, by the acknowledgement of the segment its first byte came in: the offset
    // must be that of its status line, wherever the search found it and however it came cut.
    let found = |pieces: &[&[u8]]| {
        let mut reader = super::super::reader::Reader::new(
            RESP,
            Limits::default(),
            crate::http::SharedBudget::new(1 << 20),
        );
        for piece in pieces {
            let mut input = *piece;
            while !input.is_empty() {
                if let super::super::reader::Step::Head = reader.next(&mut input, ts(0)) {
                    return reader.message_start();
                }
            }
        }
        panic!("no head found in {pieces:?}");
    };
    let whole: &[u8] = b"rest of a body\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(found(&[whole]), 16);
    assert_eq!(found(&[&whole[..20], &whole[20..]]), 16);
    assert_eq!(found(&[&whole[..10], &whole[10..24], &whole[24..]]), 16);
}

#[test]
fn a_response_after_empty_lines_starts_at_its_status_line() {
    let mut reader = super::super::reader::Reader::new(
        RESP,
        Limits::default(),
        crate::http::SharedBudget::new(1 << 20),
    );
    let mut input: &[u8] = OK_EMPTY;
    assert!(matches!(
        reader.next(&mut input, ts(0)),
        super::super::reader::Step::Head
    ));
    reader.start_body(
        crate::http::body::Framing::None,
        super::super::reader::BodyMode::Pass,
    );
    let mut input: &[u8] = b"\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    while !matches!(
        reader.next(&mut input, ts(1)),
        super::super::reader::Step::Head
    ) {
        assert!(!input.is_empty(), "no second head");
    }
    assert_eq!(reader.message_start(), OK_EMPTY.len() as u64 + 4);
}

#[test]
fn interim_responses_are_the_1xx_but_101() {
    let response = |status| crate::http::Response {
        status,
        request_sequence: None,
        first_byte: ts(0),
        last_byte: ts(0),
        head_len: 1,
        body_len: 0,
        kept: None,
    };
    for (status, interim) in [
        (99, false),
        (100, true),
        (101, false),
        (103, true),
        (199, true),
        (200, false),
    ] {
        assert_eq!(response(status).is_interim(), interim, "{status}");
    }
}

/// The responses `flow` produced from `wire` pushed in pieces of `piece` bytes, after `GET_A`
/// and `GET_B`.
fn kept_responses(
    keeping: &crate::http::Keeping,
    wire: &[u8],
    piece: usize,
) -> Vec<crate::http::Response> {
    let limits = Limits::default();
    let budgets = crate::http::Budgets {
        keeping: keeping.clone(),
        ..crate::http::Budgets::new(&limits)
    };
    let mut flow = HttpFlow::with_budgets(limits, budgets);
    let mut out = Vec::new();
    let requests = [GET_A, GET_B].concat();
    flow.push(REQ, &requests, ts(0), &mut out);
    flow.acked(REQ, requests.len() as u64, 0..wire.len() as u64, &mut out);
    for part in wire.chunks(piece) {
        flow.push(RESP, part, ts(1), &mut out);
    }
    out.into_iter()
        .filter_map(|event| match event {
            HttpEvent::Response(response) => Some(response),
            _ => None,
        })
        .collect()
}

#[test]
fn kept_responses_have_their_fields_and_body_without_chunk_framing() {
    let wire: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n\
        3\r\n{\"a\r\n5\r\n\":1}\n\r\n0\r\n\r\n\
        HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
    let keeping = crate::http::Keeping::default();
    for piece in 1..=wire.len() {
        let off = kept_responses(&keeping, wire, piece);
        assert!(off.iter().all(|r| r.kept.is_none()), "not kept while off");
    }
    keeping.set(1024);
    for piece in 1..=wire.len() {
        let responses = kept_responses(&keeping, wire, piece);
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [100, 200, 404]);
        assert!(
            responses[0].kept.is_none(),
            "interim responses are not kept"
        );
        let kept = responses[1].kept.as_deref().expect("kept");
        assert_eq!(kept.status, 200);
        assert_eq!(kept.headers[1], ("X-Id".to_string(), "7".to_string()));
        let body = |kept: &crate::http::KeptResponse| match &kept.body {
            crate::http::KeptBody::Whole(bytes) => bytes.bytes().to_vec(),
            other => panic!("{other:?}"),
        };
        assert_eq!(body(kept), b"{\"a\":1}\n", "pieces of {piece}");
        assert_eq!(body(responses[2].kept.as_deref().unwrap()), b"nope");
    }
    assert_eq!(
        keeping.budget.used(),
        0,
        "every kept body gave its budget back"
    );
    keeping.set(3);
    let responses = kept_responses(&keeping, wire, 7);
    assert!(matches!(
        responses[1].kept.as_deref().unwrap().body,
        crate::http::KeptBody::Digest { length: 8, .. }
    ));
}
