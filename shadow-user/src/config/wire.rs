//! What a Mapping may write into a copy's head. `add_request_headers`, `host_rewrite` and
//! `rewrite` become bytes on the shadow's wire: a CR or LF in one would end its line and
//! inject header fields (or a whole request) of its own, so each is checked with the `http`
//! crate's parsers, which follow RFC 9110 and RFC 3986, before the Mapping is accepted.

use std::str::FromStr;

use http::{
    HeaderName, HeaderValue,
    uri::{Authority, PathAndQuery},
};

/// A field name must be a token; its value may hold no CR, LF, NUL or other control byte.
pub fn header_field(name: &str, value: &str) -> Result<(), String> {
    header_name(name)?;
    HeaderValue::from_bytes(value.as_bytes())
        .map(drop)
        .map_err(|_| {
            format!(
                "the value of {name} holds a byte no header value may (CR, LF or another control)"
            )
        })
}

/// A token (RFC 9110 §5.1): no separators, spaces or controls.
pub fn header_name(name: &str) -> Result<(), String> {
    HeaderName::from_bytes(name.as_bytes())
        .map(drop)
        .map_err(|_| format!("{name:?} is not a header field name"))
}

/// A Host value: `host[:port]` as an authority (RFC 3986 §3.2) without user information.
pub fn host(value: &str) -> Result<(), String> {
    match Authority::from_str(value) {
        Ok(authority) if !value.contains('@') && !authority.as_str().is_empty() => Ok(()),
        _ => Err(format!("{value:?} is not a host[:port]")),
    }
}

/// What replaces a path prefix: characters of a request target's path and query (an empty
/// rewrite rewrites nothing).
pub fn path(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    match PathAndQuery::from_str(value) {
        Ok(_) if !value.contains('#') => Ok(()),
        _ => Err(format!("{value:?} holds bytes no request target may")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_break_a_head_are_refused() {
        assert!(header_field("X-Shadow", "yes, a value; with=signs").is_ok());
        assert!(header_field("X-Shadow", "").is_ok());
        for (name, value) in [
            ("X-Shadow", "a\r\nInjected: 1"),
            ("X-Shadow", "a\nb"),
            ("X-Shadow", "a\rb"),
            ("X-Shadow", "nul\0"),
            ("X-Shadow\r\nInjected", "1"),
            ("X Shadow", "1"),
            ("X-Shadow:", "1"),
            ("", "1"),
        ] {
            assert!(header_field(name, value).is_err(), "{name:?}: {value:?}");
        }
        assert!(host("myservice-test").is_ok());
        assert!(host("myservice-test:8080").is_ok());
        assert!(host("[fd00::1]:80").is_ok());
        for bad in ["a\r\nX: 1", "a b", "a/b", "user@host", "", "a:b:c"] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
        assert!(path("/v2/").is_ok());
        assert!(path("").is_ok());
        assert!(path("/search?q=1").is_ok());
        for bad in ["/a b", "/a\r\nX: 1", "/a#frag", "/\0"] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }
}
