//! A group's match criteria (README, "Groups"): the grouping key, the match-order key, and how
//! `shadowd check` prints them.

use std::{cmp::Ordering, fmt};

pub use crate::config::Criteria;
use crate::config::{HeaderMatch, Mapping};

impl Criteria {
    /// The criteria of `mapping`. Its header names come lower-cased and sorted from the
    /// configuration, so equal meanings compare equal.
    pub fn of(mapping: &Mapping) -> Self {
        let mut criteria = mapping.criteria.clone();
        criteria.host_regex &= criteria.host.is_some();
        criteria
    }

    /// Orders groups for matching: the group that must be tried first is `Less`.
    ///
    /// Ambassador's group order, `[precedence, len(prefix), total length of regex header
    /// names and values, prefix, method]`, descending; an absent method counts below any
    /// method. Ties are then broken as Ambassador's route weight does, by the length of
    /// every constraint (headers, host, method, regex or not), so that of two groups that
    /// differ only in a host or a header the constrained one is tried first. Remaining ties
    /// keep creation order (the caller's sort is stable).
    pub(super) fn match_order(&self, other: &Self) -> Ordering {
        fn key(c: &Criteria) -> (i64, usize, usize, &str, Option<&str>, usize) {
            (
                c.precedence,
                c.prefix.chars().count(),
                c.regex_headers_len(),
                &c.prefix,
                c.method.as_deref(),
                c.constraints_len(),
            )
        }
        key(other).cmp(&key(self))
    }

    /// Total length of regex header names and values.
    fn regex_headers_len(&self) -> usize {
        let len = |(name, value): &(String, String)| name.chars().count() + value.chars().count();
        self.regex_headers.iter().map(len).sum()
    }

    /// Ambassador's `len_headers`: every constraint as a pseudo-header, name plus value
    /// (`*` for a presence test), plus one for a regex.
    fn constraints_len(&self) -> usize {
        let len = |s: &str| s.chars().count();
        let headers = self.headers.iter().map(|(name, value)| {
            len(name)
                + match value {
                    HeaderMatch::Exact(value) => len(value),
                    HeaderMatch::Present => 1,
                }
        });
        let regex_headers = self.regex_headers.iter().map(|(n, v)| len(n) + len(v) + 1);
        let host = self
            .host
            .iter()
            .map(|h| len(":authority") + len(h) + usize::from(self.host_regex));
        let method = self.method.iter().map(|m| len(":method") + len(m));
        headers.chain(regex_headers).chain(host).chain(method).sum()
    }
}

impl fmt::Display for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.prefix_regex {
            "prefix regex"
        } else {
            "prefix"
        };
        write!(f, "{kind} {}", self.prefix)?;
        if !self.case_sensitive && !self.prefix_regex {
            write!(f, " (case-insensitive)")?;
        }
        if let Some(method) = &self.method {
            write!(f, ", method {method}")?;
        }
        if let Some(host) = &self.host {
            let kind = if self.host_regex {
                "host regex"
            } else {
                "host"
            };
            write!(f, ", {kind} {host}")?;
        }
        for (name, value) in &self.headers {
            match value {
                HeaderMatch::Exact(value) => write!(f, ", header {name}: {value}")?,
                HeaderMatch::Present => write!(f, ", header {name} present")?,
            }
        }
        for (name, value) in &self.regex_headers {
            write!(f, ", header {name} regex {value}")?;
        }
        if self.precedence != 0 {
            write!(f, ", precedence {}", self.precedence)?;
        }
        Ok(())
    }
}
