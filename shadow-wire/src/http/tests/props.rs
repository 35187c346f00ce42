//! Property tests: random requests serialised back to back and cut anywhere come out byte
//! for byte, numbered and timed; their answers pair in order; arbitrary bytes and calls
//! never panic, never outgrow the limits, and give the same events however pushes are cut.

use proptest::prelude::*;

use super::*;
use crate::reassembly::GapKind;

#[derive(Debug, Clone)]
enum Spec {
    Get {
        target: String,
    },
    Length {
        body: Vec<u8>,
    },
    Chunked {
        chunks: Vec<Vec<u8>>,
        ext: bool,
        trailer: bool,
    },
}

fn spec() -> impl Strategy<Value = Spec> {
    let bytes = |max| prop::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        "/[a-zA-Z0-9/._~%-]{0,24}".prop_map(|target| Spec::Get { target }),
        bytes(300).prop_map(|body| Spec::Length { body }),
        (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 1..80), 0..6),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(chunks, ext, trailer)| Spec::Chunked {
                chunks,
                ext,
                trailer
            }),
    ]
}

/// The wire form of `spec` and the length of its head.
fn serialise(spec: &Spec) -> (Vec<u8>, usize) {
    let mut wire = Vec::new();
    match spec {
        Spec::Get { target } => {
            wire.extend_from_slice(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            let head_len = wire.len();
            (wire, head_len)
        }
        Spec::Length { body } => {
            let head = format!(
                "POST /len HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            wire.extend_from_slice(head.as_bytes());
            wire.extend_from_slice(body);
            (wire, head.len())
        }
        Spec::Chunked {
            chunks,
            ext,
            trailer,
        } => {
            let head = "PUT /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
            wire.extend_from_slice(head.as_bytes());
            for chunk in chunks {
                let ext = if *ext { ";name=\"v\"" } else { "" };
                wire.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(if *trailer {
                b"0\r\nT: v\r\n\r\n"
            } else {
                b"0\r\n\r\n"
            });
            (wire, head.len())
        }
    }
}

/// Sorted, distinct cut points in `0..len`.
fn cuts(points: &[prop::sample::Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(len.max(1))).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    #[test]
    fn random_requests_cut_anywhere_come_out_exactly(
        specs in prop::collection::vec(spec(), 1..8),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        stream_after in prop::option::of(0usize..40),
    ) {
        let messages: Vec<(Vec<u8>, usize)> = specs.iter().map(serialise).collect();
        let stream: Vec<u8> = messages.iter().flat_map(|(wire, _)| wire.clone()).collect();
        let mut bounds = cuts(&points, stream.len());
        bounds.push(stream.len());
        // Bodies kept whole, or streamed past a few bytes: the same requests either way.
        let limits = Limits { stream_body_after: stream_after, ..Limits::default() };
        let mut flow = HttpFlow::new(limits);
        let mut out = Vec::new();
        let mut start = 0;
        // Piece `i` is pushed at ts(i); it ends before bounds[i].
        for (i, &end) in bounds.iter().enumerate() {
            flow.push(REQ, &stream[start..end], ts(i), &mut out);
            start = end;
        }
        let streamed = out.iter().any(|e| matches!(e, HttpEvent::RequestStreaming(_)));
        let long_body = messages.iter().any(|(wire, head_len)| {
            stream_after.is_some_and(|after| wire.len() - head_len > after)
        });
        prop_assert_eq!(streamed, long_body, "bodies longer than the buffered part stream");
        let out = joined(out);
        let piece_of = |offset: usize| bounds.iter().position(|&end| offset < end).unwrap();
        prop_assert_eq!(out.len(), messages.len(), "{:?}", summary(&out));
        let mut offset = 0;
        for (i, (event, (wire, head_len))) in out.iter().zip(&messages).enumerate() {
            let HttpEvent::Request(request) = event else {
                return Err(TestCaseError::fail(format!("not a request: {event:?}")));
            };
            prop_assert_eq!(&request.raw[..], &wire[..]);
            prop_assert_eq!(request.sequence, i as u64);
            prop_assert_eq!(request.head_len, *head_len);
            prop_assert_eq!(request.body(), &wire[*head_len..]);
            prop_assert_eq!(request.first_byte, ts(piece_of(offset)));
            prop_assert_eq!(request.last_byte, ts(piece_of(offset + wire.len() - 1)));
            offset += wire.len();
        }
        prop_assert_eq!(flow.counters(), Counters::default());
    }

    #[test]
    fn arbitrary_input_never_panics_nor_outgrows_the_limits(
        ops in prop::collection::vec((0u8..10, fragments()), 0..40),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let limits = Limits {
            max_head_bytes: 200,
            max_headers: Some(6),
            max_body_bytes: Some(64),
            stream_body_after: Some(16),
            max_held_bytes: 264,
            max_held_total_bytes: 1 << 20,
            max_parse_total_bytes: 1 << 20,
        };
        let whole = replay(&ops, limits, &[]);
        let cut = replay(&ops, limits, &points);
        prop_assert_eq!(whole, cut);
    }
}

/// A response to a request of `spec`: optional interim, status, body framing.
#[derive(Debug, Clone)]
struct Answer {
    interim: bool,
    status: u16,
    chunked: bool,
    body: Vec<u8>,
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        any::<bool>(),
        prop::sample::select(&[200u16, 201, 204, 304, 404, 500][..]),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..100),
    )
        .prop_map(|(interim, status, chunked, body)| Answer {
            interim,
            status,
            chunked,
            body,
        })
}

/// The wire form of `answer` to a request that was `HEAD` or not, and its body length.
fn serialise_answer(answer: &Answer, head: bool) -> (Vec<u8>, u64) {
    let mut wire = Vec::new();
    if answer.interim {
        wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    wire.extend_from_slice(format!("HTTP/1.1 {} X\r\n", answer.status).as_bytes());
    let bodiless = head || matches!(answer.status, 204 | 304);
    let body: &[u8] = if bodiless { b"" } else { &answer.body };
    if answer.chunked && !bodiless {
        wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let start = wire.len();
        if !body.is_empty() {
            wire.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            wire.extend_from_slice(body);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let len = (wire.len() - start) as u64;
        (wire, len)
    } else {
        // A HEAD answer states the length of the body it does not carry.
        let stated = if head { answer.body.len() } else { body.len() };
        wire.extend_from_slice(format!("Content-Length: {stated}\r\n\r\n").as_bytes());
        wire.extend_from_slice(body);
        (wire, body.len() as u64)
    }
}

proptest! {
    #[test]
    fn responses_pair_in_order_whether_pipelined_or_not(
        exchanges in prop::collection::vec((spec(), any::<bool>(), answer()), 1..8),
        pipelined in any::<bool>(),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut flow = HttpFlow::new(Limits::default());
        let mut out = Vec::new();
        let mut expected = Vec::new();
        let mut pushes = Vec::new();
        for (i, (spec, head, answer)) in exchanges.iter().enumerate() {
            let (mut request, _) = serialise(spec);
            if *head {
                request = format!("HEAD /h{i} HTTP/1.1\r\n\r\n").into_bytes();
            }
            let (response, body_len) = serialise_answer(answer, *head);
            if answer.interim {
                expected.push(format!("response 100 to Some({i}) body 0"));
            }
            expected.push(format!("response {} to Some({i}) body {body_len}", answer.status));
            pushes.push((REQ, request));
            pushes.push((RESP, response));
        }
        if pipelined {
            // All requests first, then all answers, in order.
            pushes.sort_by_key(|(direction, _)| *direction == RESP);
        }
        for (i, (direction, data)) in pushes.iter().enumerate() {
            let mut start = 0;
            for end in cuts(&points, data.len()).into_iter().chain([data.len()]) {
                flow.push(*direction, &data[start..end], ts(i), &mut out);
                start = end;
            }
        }
        let responses: Vec<String> = summary(&out)
            .into_iter()
            .filter(|line| line.starts_with("response"))
            .collect();
        prop_assert_eq!(responses, expected);
        prop_assert_eq!(requests(&out).len(), exchanges.len());
        prop_assert_eq!(flow.counters(), Counters::default());
    }
}

/// Byte strings that reach deep states: whole messages, pieces of them, and noise.
fn fragments() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: [&[u8]; 22] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\n\r\n",
        b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\n\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n\r\n",
        b"GET /u HTTP/1.1\r\nUpgrade: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 99\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Expect: 100-continue\r\n",
        b"\r\n",
        b"5;e=1\r\nhello\r\n",
        b"0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    let piece = prop_oneof![
        6 => prop::sample::select(&PIECES[..]).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// Plays `ops` (0–2 push requests, 3–5 push responses, 6 gap, 7 acknowledge, 8 pickup at
/// the start (or end), 9 end; the direction from the fragment length), each push cut at `points`, all at one capture time so that cuts
/// cannot change timestamps; checks the buffer bound throughout.
fn replay(
    ops: &[(u8, Vec<u8>)],
    limits: Limits,
    points: &[prop::sample::Index],
) -> (Vec<HttpEvent>, Counters) {
    let mut flow = HttpFlow::new(limits);
    let mut out = Vec::new();
    let bound = buffer_bound(limits);
    let mut position = [0u64; 2];
    for (kind, data) in ops {
        let direction = if *kind < 3 || (*kind >= 6 && data.len() % 2 == 0) {
            REQ
        } else {
            RESP
        };
        let next_response = position[1];
        let at = &mut position[usize::from(direction == RESP)];
        match kind {
            0..=5 => {
                let mut start = 0;
                for end in cuts(points, data.len()).into_iter().chain([data.len()]) {
                    flow.push(direction, &data[start..end], ts(0), &mut out);
                    start = end;
                }
                *at += data.len() as u64;
            }
            6 => {
                *at += data.len() as u64;
                let kind = [GapKind::CaptureLoss, GapKind::Unacknowledged][data.len() % 2];
                flow.gap(direction, *at, kind, &mut out);
            }
            // The peer acknowledges all but a few of the bytes so far, with a segment
            // carrying the next response bytes.
            7 => {
                let acked = at.saturating_sub(data.len() as u64 % 3);
                flow.acked(
                    direction,
                    acked,
                    next_response..next_response + 64,
                    &mut out,
                )
            }
            // A stream picked up at its start.
            8 if *at == 0 => flow.gap(direction, 0, GapKind::Pickup, &mut out),
            _ => flow.end(direction, &mut out),
        }
        assert!(flow.buffered() <= bound, "buffered {}", flow.buffered());
    }
    let out = joined(out);
    for event in &out {
        if let HttpEvent::Request(request) | HttpEvent::Unconfirmed(request) = event {
            assert!(request.head_len <= request.raw.len());
            assert_eq!(request.body.1, request.raw.len());
            assert!(request.head().ends_with(b"\n"));
        }
    }
    (out, flow.counters())
}
