//! A validated Ambassador Mapping: every field typed and defaulted, with where it came from.
//! Field meanings are those of Ambassador's Mapping (see the README's configuration
//! reference); loading and checking them is `parse.rs`'s job.

use std::{fmt, path::PathBuf, time::Duration};

/// Where a resource was read: file, document number (from 1), first line of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The YAML document in the file, from 1.
    pub document: usize,
    /// The document's first line.
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
    /// `http://` or no scheme: the copy goes over plain TCP.
    Http,
    /// `https://` in the service: the copy goes over TLS.
    Https,
}

/// A Mapping's `service`: `[scheme://]name[.namespace][:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// `http://` or `https://`.
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

/// What a request must have to match a group: a Mapping's match fields. Mappings with equal
/// criteria form one group (`route::criteria` orders and prints them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Criteria {
    /// A literal path prefix, or a regex with `prefix_regex`.
    pub prefix: String,
    /// `prefix` is a regex that must match the whole path.
    pub prefix_regex: bool,
    /// Whether a literal `prefix` is compared case-sensitively (ignored for regexes, as
    /// Envoy does).
    pub case_sensitive: bool,
    /// `None` matches any method.
    pub method: Option<String>,
    /// The Host value (port included), compared ASCII case-insensitively, or a regex.
    pub host: Option<String>,
    /// `host` is a regex that must match the whole Host value. Always false without a host.
    pub host_regex: bool,
    /// Header fields that must be present, or have exactly a value (repeated fields joined
    /// with `,`). Sorted by name (lower case).
    pub headers: Vec<(String, HeaderMatch)>,
    /// Header fields whose value must match a regex as a whole. Sorted by name (lower case).
    pub regex_headers: Vec<(String, String)>,
    /// Higher is tried first, before prefix length.
    pub precedence: i64,
}

/// One Mapping, as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// `name` as written.
    pub name: String,
    /// `namespace`, else `default`.
    pub namespace: String,
    /// Named after where it came from, as Emissary names it (`<service>.<namespace>.<n>`
    /// in a Service's annotation, `<name>.<namespace>` for a custom resource, `<file
    /// name>.<n>` in a plain file): Mappings are taken in rkey order.
    pub rkey: String,
    /// Where it was read.
    pub origin: Origin,

    /// What a request must have to match it: the fields that decide its group.
    pub criteria: Criteria,

    /// Where requests go: production's service, or the shadow's for a shadow Mapping.
    pub service: Service,
    /// `shadow: true`: this Mapping receives copies instead of serving requests.
    pub shadow: bool,
    /// Percentage of matching requests copied (shadow Mappings), 0–100.
    pub weight: u8,
    /// `rewrite` on a shadow Mapping: replaces the matched prefix in the copy's target.
    pub rewrite: Option<String>,
    /// `host_rewrite` on a shadow Mapping: the copy's Host value, before the `-shadow` suffix.
    pub host_rewrite: Option<String>,
    /// In the order written.
    pub add_request_headers: Vec<(String, String)>,
    /// Fields removed from every copy (shadow Mappings), before the additions.
    pub remove_request_headers: Vec<String>,
    /// `timeout_ms`: how long the copy waits for the shadow's response.
    pub timeout: Duration,
    /// Keep the copy's Host as it is, without the `-shadow` suffix (Envoy's option).
    pub disable_shadow_host_suffix_append: bool,
    /// `diff` (a shadowd extension) on a shadow Mapping: its copies' responses are compared
    /// with production's field by field.
    pub diff: Option<super::diff::DiffSettings>,
}

/// Errors and notices, each `[rkey, message]` as Ambassador's diagnostics serve them (rkey
/// `""` for global ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// `[rkey, message]` of what makes a Mapping, or the configuration, unusable.
    pub errors: Vec<(String, String)>,
    /// `[rkey, message]` of what is worth knowing but changes nothing.
    pub notices: Vec<(String, String)>,
}

impl Diagnostics {
    /// Records an error about `rkey` (`""` for the configuration as a whole).
    pub fn error(&mut self, rkey: impl Into<String>, message: impl Into<String>) {
        self.errors.push((rkey.into(), message.into()));
    }

    /// Records a notice about `rkey` (`""` for the configuration as a whole).
    pub fn notice(&mut self, rkey: impl Into<String>, message: impl Into<String>) {
        self.notices.push((rkey.into(), message.into()));
    }
}
