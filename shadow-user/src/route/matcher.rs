//! Matching one group's criteria against a request, in place: literal comparisons on the
//! captured bytes and precompiled whole-value regexes.

use regex::bytes::Regex;

use super::{
    criteria::Criteria,
    error::RouteError,
    request::{RequestView, Target},
};
use crate::config::HeaderMatch;

/// The request as matching reads it: its target split once per request.
pub(super) struct Req<'a, R: ?Sized> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// The absolute-form target's authority, else the Host field.
    pub host: Option<&'a [u8]>,
    pub view: &'a R,
}

impl<'a, R: RequestView + ?Sized> Req<'a, R> {
    pub fn new(view: &'a R) -> Self {
        let target = Target::parse(view.target());
        Self {
            method: view.method(),
            path: target.path,
            host: target.authority.or_else(|| view.host()),
            view,
        }
    }
}

/// The compiled regexes of a group's criteria.
#[derive(Debug, Clone)]
pub(super) struct Matcher {
    prefix: Option<Regex>,
    host: Option<Regex>,
    /// One per `criteria.regex_headers`, in the same order.
    regex_headers: Vec<Regex>,
}

impl Matcher {
    /// Compiles the regexes of `criteria`; the error names the field that failed.
    pub fn new(criteria: &Criteria) -> Result<Self, RouteError> {
        let prefix = match criteria.prefix_regex {
            true => Some(whole(&criteria.prefix, "prefix")?),
            false => None,
        };
        let host = match (&criteria.host, criteria.host_regex) {
            (Some(host), true) => Some(whole(host, "host")?),
            _ => None,
        };
        let regex_headers = criteria
            .regex_headers
            .iter()
            .map(|(name, value)| whole(value, &format!("regex_headers.{name}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            prefix,
            host,
            regex_headers,
        })
    }

    /// Whether `req` meets every criterion. Allocates only to join a header that appears
    /// more than once and must match a regex.
    pub fn matches<R: RequestView + ?Sized>(&self, c: &Criteria, req: &Req<'_, R>) -> bool {
        let prefix = match &self.prefix {
            Some(regex) => regex.is_match(req.path),
            None if c.case_sensitive => req.path.starts_with(c.prefix.as_bytes()),
            None => req
                .path
                .get(..c.prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(c.prefix.as_bytes())),
        };
        prefix
            && c.method.as_ref().is_none_or(|m| req.method == m.as_bytes())
            && match (&c.host, &self.host) {
                (None, _) => true,
                (Some(_), Some(regex)) => req.host.is_some_and(|h| regex.is_match(h)),
                (Some(host), None) => req
                    .host
                    .is_some_and(|h| h.eq_ignore_ascii_case(host.as_bytes())),
            }
            && c.headers.iter().all(|(name, value)| match value {
                HeaderMatch::Present => req.view.header_values(name).next().is_some(),
                HeaderMatch::Exact(value) => {
                    joined_eq(req.view.header_values(name), value.as_bytes())
                }
            })
            && c.regex_headers
                .iter()
                .zip(&self.regex_headers)
                .all(|((name, _), regex)| {
                    let mut values = req.view.header_values(name);
                    match (values.next(), values.next()) {
                        (None, _) => false,
                        (Some(one), None) => regex.is_match(one),
                        (Some(first), Some(second)) => {
                            let mut joined = first.to_vec();
                            for value in std::iter::once(second).chain(values) {
                                joined.push(b',');
                                joined.extend_from_slice(value);
                            }
                            regex.is_match(&joined)
                        }
                    }
                })
    }
}

/// A regex that must match the whole value, as Envoy's `safe_regex` (RE2 full match).
/// `pattern` is compiled alone first, so that one that only parses once wrapped (`a)|(b`)
/// is still refused.
fn whole(pattern: &str, field: &str) -> Result<Regex, RouteError> {
    let invalid = |source| RouteError::InvalidRegex {
        field: field.to_owned(),
        source,
    };
    Regex::new(pattern).map_err(invalid)?;
    Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(invalid)
}

/// Whether the values, joined with `,` as Envoy joins repeated fields for matching, equal
/// `expected`; false when there are none. Compares in place.
fn joined_eq<'v>(values: impl Iterator<Item = &'v [u8]>, expected: &[u8]) -> bool {
    let mut rest = expected;
    let mut seen = false;
    for value in values {
        if seen {
            let Some(tail) = rest.strip_prefix(b",") else {
                return false;
            };
            rest = tail;
        }
        let Some(tail) = rest.strip_prefix(value) else {
            return false;
        };
        rest = tail;
        seen = true;
    }
    seen && rest.is_empty()
}
