//! A validated Ambassador Mapping: every field typed and defaulted, with where it came from.
//! Field meanings are those of Ambassador's Mapping (see the README's configuration
//! reference); loading and checking them is `parse.rs`'s job.

use std::{fmt, path::PathBuf, time::Duration};

/// Where a resource was read: file, document number (from 1), first line of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, document {}, line {}",
            self.file.display(),
            self.document,
            self.line
        )
    }
}

/// How a header criterion matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HeaderMatch {
    /// The header is present with exactly this value.
    Exact(String),
    /// The header is present, with any value (`name: true`).
    Present,
}

/// Scheme of a Mapping's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    /// `https://` in the service: the copy goes over TLS.
    Https,
}

/// A Mapping's `service`: `[scheme://]name[.namespace][:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    pub scheme: Scheme,
    /// The host part as written (`myservice.default`).
    pub host: String,
    /// Explicit port, else 80 (443 with `https://`).
    pub port: u16,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == Scheme::Https {
            write!(f, "https://")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One Mapping, as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub name: String,
    pub namespace: String,
    /// `<name>.<namespace>.<n>`, n = the document's index in its source, from 1.
    pub rkey: String,
    pub origin: Origin,

    pub prefix: String,
    pub prefix_regex: bool,
    pub case_sensitive: bool,
    pub method: Option<String>,
    pub host: Option<String>,
    pub host_regex: bool,
    /// Sorted by header name (lower case).
    pub headers: Vec<(String, HeaderMatch)>,
    /// Sorted by header name (lower case).
    pub regex_headers: Vec<(String, String)>,
    pub precedence: i64,

    pub service: Service,
    pub shadow: bool,
    /// Percentage of matching requests copied (shadow Mappings), 0–100.
    pub weight: u8,
    pub rewrite: Option<String>,
    pub host_rewrite: Option<String>,
    /// In the order written.
    pub add_request_headers: Vec<(String, String)>,
    pub remove_request_headers: Vec<String>,
    pub timeout: Duration,
    pub disable_shadow_host_suffix_append: bool,
}

/// Errors and notices, each `[rkey, message]` as Ambassador's diagnostics serve them (rkey
/// `""` for global ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub errors: Vec<(String, String)>,
    pub notices: Vec<(String, String)>,
}

impl Diagnostics {
    pub fn error(&mut self, rkey: impl Into<String>, message: impl Into<String>) {
        self.errors.push((rkey.into(), message.into()));
    }

    pub fn notice(&mut self, rkey: impl Into<String>, message: impl Into<String>) {
        self.notices.push((rkey.into(), message.into()));
    }
}
