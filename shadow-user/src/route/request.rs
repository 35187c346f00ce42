//! What routing reads of a request, as slices of the captured bytes: nothing is copied.

use crate::http::Request;

/// A request as the route table sees it. Implemented by the captured [`Request`] and by
/// [`RequestParts`]; every accessor returns a slice, so matching allocates nothing.
pub trait RequestView {
    /// The method token (`GET`).
    fn method(&self) -> &[u8];
    /// The request target as sent: origin-form `/a/b?q=1`, or absolute-form
    /// `http://host/a/b?q=1`.
    fn target(&self) -> &[u8];
    /// The value of the first `Host` field, if there is one.
    fn host(&self) -> Option<&[u8]>;
    /// The values of every field named `name` (compared ASCII case-insensitively), in wire
    /// order.
    fn header_values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]>;
}

impl RequestView for Request {
    fn method(&self) -> &[u8] {
        self.method_bytes()
    }

    fn target(&self) -> &[u8] {
        self.target_bytes()
    }

    fn host(&self) -> Option<&[u8]> {
        self.host
            .map(|(start, end)| self.raw.get(start..end).unwrap_or_default())
    }

    fn header_values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]> {
        (0..self.headers.len())
            .filter(move |&i| self.header_name(i).eq_ignore_ascii_case(name.as_bytes()))
            .map(|i| self.header_value(i))
    }
}

/// A request given by its parts, for tests, benchmarks and callers that hold no
/// [`Request`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestParts<'a> {
    /// See [`RequestView::method`].
    pub method: &'a str,
    /// See [`RequestView::target`].
    pub target: &'a str,
    /// See [`RequestView::host`]; also found by [`RequestView::header_values`].
    pub host: Option<&'a str>,
    /// Header fields other than `Host`, `(name, value)` in wire order.
    pub headers: &'a [(&'a str, &'a str)],
}

impl RequestView for RequestParts<'_> {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }

    fn target(&self) -> &[u8] {
        self.target.as_bytes()
    }

    fn host(&self) -> Option<&[u8]> {
        self.host.map(str::as_bytes)
    }

    fn header_values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s [u8]> {
        let host = self.host.filter(|_| name.eq_ignore_ascii_case("host"));
        host.into_iter()
            .chain(
                self.headers
                    .iter()
                    .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v),
            )
            .map(str::as_bytes)
    }
}

/// The parts of a request target that routing matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path, without query string or fragment, as Envoy matches prefixes.
    pub path: &'a [u8],
    /// Where the path is in the target, `start..end` (empty for `http://host?q`, whose
    /// `path` is `/`).
    pub path_range: std::ops::Range<usize>,
    /// The authority of an absolute-form target, which stands for the Host field
    /// (RFC 9112 §3.2.2).
    pub authority: Option<&'a [u8]>,
}

impl<'a> Target<'a> {
    /// Splits `target`. An absolute-form target with an empty path has the path `/`.
    pub fn parse(target: &'a [u8]) -> Self {
        let scheme_len = [&b"http://"[..], b"https://"]
            .into_iter()
            .find_map(|scheme| {
                let head = target.get(..scheme.len())?;
                head.eq_ignore_ascii_case(scheme).then_some(scheme.len())
            });
        let (authority, path_start) = match scheme_len {
            Some(skip) => {
                let rest = &target[skip..];
                let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#'));
                let end = end.unwrap_or(rest.len());
                (Some(&rest[..end]), skip + end)
            }
            None => (None, 0),
        };
        let rest = &target[path_start..];
        let len = rest.iter().position(|&b| matches!(b, b'?' | b'#'));
        let path_range = path_start..path_start + len.unwrap_or(rest.len());
        let path = match &target[path_range.clone()] {
            b"" if authority.is_some() => b"/",
            path => path,
        };
        Self {
            path,
            path_range,
            authority,
        }
    }
}
