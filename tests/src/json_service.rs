//! A JSON service as production runs it and as a shadow with two bugs runs it, for the
//! response diffing tests and the demo. Every answer carries noise (the time it was made,
//! ids drawn afresh, a request-id header); `…/users/ID` answers a user, `…/orders/ID` an
//! order (gzip-encoded, chunked), anything else a small HTML page. The shadow gets
//! the name of every third user wrong, and answers orders with `201` where production
//! answers `200`.

use std::{
    io::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// A response with `body`, framed by length, or chunked in pieces of 7 bytes.
fn response(status: &str, headers: &[(&str, String)], body: &[u8], chunked: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    match chunked {
        true => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        false => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The service, as production (`wrong_name` false) or the shadow runs it. Every answer
/// carries noise: the time it was made, and ids drawn afresh.
fn service(target: &str, wrong_name: bool) -> Vec<u8> {
    static DRAWS: AtomicU64 = AtomicU64::new(1);
    let draw = || {
        let n = DRAWS.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        (now ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let noise = format!("\"at\":{at},\"request_id\":\"{:x}\"", draw());
    let request_id = format!("{:016x}", draw());
    let id = target.rsplit('/').next().unwrap_or("0");
    let json = ("Content-Type", "application/json".to_string());
    if target.contains("/users/") {
        let name = match wrong_name {
            true => format!("U{id}"),
            false => format!("u{id}"),
        };
        let body = format!("{{\"id\":{id},\"name\":\"{name}\",{noise}}}");
        return response(
            "200 OK",
            &[json, ("X-Request-Id", request_id)],
            body.as_bytes(),
            false,
        );
    }
    if target.contains("/orders/") {
        let body = format!("{{\"order\":{id},\"items\":[1,2,3],{noise}}}");
        return response(
            "200 OK",
            &[json, ("Content-Encoding", "gzip".to_string())],
            &gzip(body.as_bytes()),
            true,
        );
    }
    let page = format!("<html><body><p>page {id}</p></body></html>\n");
    response(
        "200 OK",
        &[("Content-Type", "text/html".to_string())],
        page.as_bytes(),
        false,
    )
}

/// Production's answer to `target`.
pub fn production(target: &str) -> Vec<u8> {
    service(target, false)
}

/// The shadow: a wrong name for the users whose id leaves 2 divided by 3, and `201` where
/// production answers orders with `200` (the bodies agree).
pub fn shadow(target: &str) -> Vec<u8> {
    let id = target
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok());
    let wrong_name = target.contains("/users/") && id.is_some_and(|id| id % 3 == 2);
    let mut answer = service(target, wrong_name);
    if target.contains("/orders/") {
        answer.splice(..15, b"HTTP/1.1 201 OK".iter().copied());
    }
    answer
}
