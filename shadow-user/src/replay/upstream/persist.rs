//! Whether a connection persists after a message (RFC 9112 §9.3): HTTP/1.1 unless
//! `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.

pub(super) use crate::http::persists;

/// Header slots for parsing the copy's head; a head with more fields is still sent, on a
/// connection that is then not reused.
const REQUEST_HEADERS: usize = 128;

/// Whether the copy's head lets the connection persist after its response. A head this
/// client cannot parse counts as `close`: the shadow may not keep the connection either.
pub(super) fn request_persists(head: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {
            persists(request.version.unwrap_or(0), request.headers)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_connection_options() {
        let persists = |head: &str| request_persists(head.as_bytes());
        assert!(persists("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!persists("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!persists(
            "GET / HTTP/1.1\r\nConnection: upgrade\r\nconnection: te, close\r\n\r\n"
        ));
        assert!(!persists("GET / HTTP/1.0\r\n\r\n"));
        assert!(persists("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!persists(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        assert!(!persists("GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!persists("not http\r\n\r\n"));
    }
}
