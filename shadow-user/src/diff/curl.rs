//! A captured request as a `curl` command line, to replay one sample by hand: method,
//! URL from the Host field and target, every header field, and a text body. Credentials
//! (`Authorization`, `Proxy-Authorization`, `Cookie`) are shown only when the operator opts
//! in.

use crate::http::Request;

/// Header fields that carry credentials.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];
/// Fields curl sets from its own arguments (framing), left out.
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "host"];
/// Longest body written into the command.
const MAX_BODY: usize = 4096;

/// `request` as a single-line `curl` command.
pub fn command(request: &Request, show_credentials: bool) -> String {
    let host = request.host_str().unwrap_or("localhost");
    let mut out = format!(
        "curl -X {} {}",
        quote(request.method_str()),
        quote(&format!("http://{host}{}", request.target_str()))
    );
    let mut chunked = false;
    for i in 0..request.headers.len() {
        let name = String::from_utf8_lossy(request.header_name(i));
        let lower = name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(request.header_value(i));
        if lower == "transfer-encoding" {
            chunked |= value.to_ascii_lowercase().contains("chunked");
        }
        if FRAMING.contains(&lower.as_str()) {
            continue;
        }
        let value = match !show_credentials && CREDENTIALS.contains(&lower.as_str()) {
            true => "REDACTED".into(),
            false => value,
        };
        out.push_str(" -H ");
        out.push_str(&quote(&format!("{name}: {value}")));
    }
    let body = request.body();
    if body.is_empty() {
        return out;
    }
    match std::str::from_utf8(body) {
        Ok(text) if !chunked && body.len() <= MAX_BODY => {
            out.push_str(" --data-binary ");
            out.push_str(&quote(text));
        }
        _ => out.push_str(&format!(
            " # body of {} bytes not shown (binary, chunked or longer than {MAX_BODY})",
            body.len()
        )),
    }
    out
}

/// `text` as one shell word: single-quoted, with `'` written as `'\''`, and line breaks
/// kept out of the one line (written as `$'\n'`).
fn quote(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '\n' => out.push_str("'$'\\n''"),
            '\r' => out.push_str("'$'\\r''"),
            c if c.is_control() => out.push_str(&format!("'$'\\x{:02x}''", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::{super::tests::request, *};

    #[test]
    fn a_request_becomes_a_command_with_credentials_redacted_unless_asked() {
        let wire = b"POST /items?x=1 HTTP/1.1\r\nHost: shop.example:8080\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-Quote: it's\r\n\r\n{\"id\":\"a'b\"}";
        let request = request(wire);
        assert_eq!(
            command(&request, false),
            "curl -X 'POST' 'http://shop.example:8080/items?x=1' -H 'Authorization: REDACTED' \
             -H 'Content-Type: application/json' -H 'X-Quote: it'\\''s' \
             --data-binary '{\"id\":\"a'\\''b\"}'"
        );
        assert!(command(&request, true).contains("'Authorization: Bearer s3cret'"));
    }

    #[test]
    fn binary_and_chunked_bodies_are_described_not_written() {
        let chunked = request(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        );
        assert!(
            command(&chunked, false)
                .ends_with("# body of 12 bytes not shown (binary, chunked or longer than 4096)")
        );
        assert_eq!(quote("a\nb"), "'a'$'\\n''b'");
    }
}
