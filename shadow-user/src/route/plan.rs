//! A group as built, and the plan for its shadow copy: where it goes, how
//! often, and what changes in it.

use std::{sync::Arc, time::Duration};

use super::{RouteTable, criteria::Criteria, matcher::Matcher, request::Target};
use crate::config::{Mapping, Origin, Service, diff::DiffSettings};

/// Mappings with the same criteria: what production serves them, and where the copy goes.
#[derive(Debug, Clone)]
pub struct Group {
    /// The rkey of the first Mapping added (in rkey order).
    pub rkey: String,
    /// What a request must have to match the group.
    pub criteria: Criteria,
    /// The production (non-shadow) Mappings, in rkey order.
    pub production: Vec<Production>,
    /// `None`: requests that this group wins are not copied.
    pub shadow: Option<ShadowPlan>,
    pub(super) matcher: Matcher,
}

/// A production Mapping of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Production {
    /// The Mapping's name.
    pub name: String,
    /// The Mapping's rkey.
    pub rkey: String,
    /// The Mapping's namespace: that of a `service` named without one.
    pub namespace: String,
    /// Where the Mapping was read (a file's document, or a cluster resource).
    pub origin: Origin,
    /// Where production sends the request: its port is one to capture.
    pub service: Service,
}

impl Production {
    pub(super) fn of(mapping: &Mapping) -> Self {
        Self {
            name: mapping.name.clone(),
            rkey: mapping.rkey.clone(),
            namespace: mapping.namespace.clone(),
            origin: mapping.origin.clone(),
            service: mapping.service.clone(),
        }
    }
}

/// How to make and send the copy of a request that a group wins.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowPlan {
    /// The shadow Mapping's name.
    pub name: String,
    /// The shadow Mapping's rkey.
    pub rkey: String,
    /// Where the shadow Mapping was read.
    pub origin: Origin,
    /// Where the copy goes.
    pub service: Service,
    /// Percentage (0–100) of the group's requests to copy, each decided independently.
    pub weight: u8,
    /// How long to wait for the shadow's response.
    pub timeout: Duration,
    /// The shadow Mapping's `rewrite` (an empty one rewrites nothing, as in Ambassador).
    pub rewrite: Option<PathRewrite>,
    /// Host value for the copy, before the suffix rule.
    pub host_rewrite: Option<String>,
    /// Added to the copy after the removals, in the order written.
    pub add_request_headers: Vec<(String, String)>,
    /// Removed from the copy (names, any case).
    pub remove_request_headers: Vec<String>,
    /// Whether `-shadow` is appended to the copy's Host (false with
    /// `disable_shadow_host_suffix_append`).
    pub append_suffix: bool,
    /// How the copies' responses are diffed with production's, if they are.
    pub diff: Option<Arc<DiffSettings>>,
}

impl RouteTable {
    /// Diffs the copies of every shadow Mapping: those without `diff` settings take the
    /// defaults (`shadowd replay --diff`).
    pub fn diff_every_shadow(&mut self) {
        for plan in self.shadow_plans_mut() {
            plan.diff.get_or_insert_default();
        }
    }

    /// The plan of every shadow Mapping, routed or not, to edit after the build.
    pub(super) fn shadow_plans_mut(&mut self) -> impl Iterator<Item = &mut ShadowPlan> {
        self.groups
            .iter_mut()
            .chain(&mut self.unrouted)
            .filter_map(|group| group.shadow.as_mut())
    }
}

impl ShadowPlan {
    pub(super) fn of(mapping: &Mapping, criteria: &Criteria) -> Self {
        let scope = match criteria.prefix_regex {
            true => RewriteScope::WholePath,
            false => RewriteScope::Prefix {
                len: criteria.prefix.len(),
            },
        };
        Self {
            name: mapping.name.clone(),
            rkey: mapping.rkey.clone(),
            origin: mapping.origin.clone(),
            service: mapping.service.clone(),
            weight: mapping.weight,
            timeout: mapping.timeout,
            rewrite: mapping
                .rewrite
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|replacement| PathRewrite {
                    replacement: replacement.clone(),
                    scope,
                }),
            host_rewrite: mapping.host_rewrite.clone(),
            add_request_headers: mapping.add_request_headers.clone(),
            remove_request_headers: mapping.remove_request_headers.clone(),
            append_suffix: !mapping.disable_shadow_host_suffix_append,
            diff: mapping.diff.clone().map(Arc::new),
        }
    }

    /// The copy's Host value, given the request's: `host_rewrite` if set, then the suffix
    /// rule unless disabled. `None` when the request had no Host: none is added.
    pub fn copy_host(&self, request_host: Option<&str>) -> Option<String> {
        let request_host = request_host?;
        let host = self.host_rewrite.as_deref().unwrap_or(request_host);
        Some(match self.append_suffix {
            true => shadow_host(host),
            false => host.to_owned(),
        })
    }
}

/// The shadow Mapping's `rewrite`, and what of the path it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRewrite {
    /// What replaces the matched part.
    pub replacement: String,
    /// What it replaces.
    pub scope: RewriteScope,
}

/// What part of the path a rewrite replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteScope {
    /// The matched literal prefix.
    Prefix {
        /// Bytes of the path replaced: the prefix's length.
        len: usize,
    },
    /// The whole path (the group's prefix is a regex).
    WholePath,
}

impl PathRewrite {
    /// The request target of the copy: `target` with its path rewritten; the scheme and
    /// authority of an absolute-form target, the query string and the fragment are kept.
    /// `target` must be that of a request the group matched.
    pub fn apply(&self, target: &[u8]) -> Vec<u8> {
        let range = Target::parse(target).path_range;
        let replaced = match self.scope {
            RewriteScope::WholePath => range.clone(),
            RewriteScope::Prefix { len } => range.start..(range.start + len).min(range.end),
        };
        let mut out = Vec::with_capacity(target.len() + self.replacement.len());
        out.extend_from_slice(&target[..replaced.start]);
        out.extend_from_slice(self.replacement.as_bytes());
        out.extend_from_slice(&target[replaced.end..]);
        out
    }
}

/// The Host value of a copy (Envoy's `shadowAppendedHost`): `-shadow` goes before the port
/// (the last `:` with no `]` after it), else at the end.
///
/// `myservice` → `myservice-shadow`; `myservice:8080` → `myservice-shadow:8080`;
/// `[::1]:80` → `[::1]-shadow:80`; `[::1]` → `[::1]-shadow`.
pub fn shadow_host(host: &str) -> String {
    match host.rfind(':') {
        Some(p) if !host[p..].contains(']') => format!("{}-shadow{}", &host[..p], &host[p..]),
        _ => format!("{host}-shadow"),
    }
}
