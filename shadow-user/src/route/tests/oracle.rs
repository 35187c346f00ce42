//! An oracle for routing written from the Mapping rules alone (fields, groups, one shadow
//! per group), over the Mappings as loaded:
//! it shares no code with the table (no `Criteria`, `Matcher`, `Target` or match order), so
//! a mistake in grouping, ordering or matching shows up as a disagreement.

use regex::Regex;

use super::*;

/// One group as the oracle sees it: the criteria of its first Mapping, as written.
struct OracleGroup<'m> {
    rkey: &'m str,
    first: &'m Mapping,
    productions: usize,
    has_shadow: bool,
}

/// Fields with lower-case names, sorted: the same map however it was written.
fn canonical<V: Clone + Ord>(fields: &[(String, V)]) -> Vec<(String, V)> {
    let mut fields: Vec<_> = fields
        .iter()
        .map(|(name, value)| (name.to_lowercase(), value.clone()))
        .collect();
    fields.sort();
    fields
}

/// One group: the same method, prefix, prefix_regex, case_sensitive, host/host_regex,
/// headers, regex_headers and precedence.
fn same_criteria(a: &Mapping, b: &Mapping) -> bool {
    a.criteria.method == b.criteria.method
        && a.criteria.prefix == b.criteria.prefix
        && a.criteria.prefix_regex == b.criteria.prefix_regex
        && a.criteria.case_sensitive == b.criteria.case_sensitive
        && a.criteria.host == b.criteria.host
        && (a.criteria.host.is_none() || a.criteria.host_regex == b.criteria.host_regex)
        && canonical(&a.criteria.headers) == canonical(&b.criteria.headers)
        && canonical(&a.criteria.regex_headers) == canonical(&b.criteria.regex_headers)
        && a.criteria.precedence == b.criteria.precedence
}

/// `pattern` anchored at both ends, compiled once per thread: the generated patterns come
/// from a small set, and compiling them per request made the property test slow.
fn anchored(pattern: &str) -> Option<Regex> {
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Option<Regex>>> =
            Default::default();
    }
    COMPILED.with_borrow_mut(|compiled| {
        compiled
            .entry(pattern.to_owned())
            .or_insert_with(|| {
                Regex::new(pattern)
                    .and_then(|_| Regex::new(&format!("^(?:{pattern})$")))
                    .ok()
            })
            .clone()
    })
}

/// A pattern that must match all of `value`.
fn full_match(pattern: &str, value: &str) -> bool {
    anchored(pattern).is_some_and(|regex| regex.is_match(value))
}

fn compiles(pattern: &str) -> bool {
    anchored(pattern).is_some()
}

/// Whether the table would turn `m` away for a regex that does not compile.
fn bad_regex(m: &Mapping) -> bool {
    (m.criteria.prefix_regex && !compiles(&m.criteria.prefix))
        || (m.criteria.host_regex
            && m.criteria
                .host
                .as_deref()
                .is_some_and(|host| !compiles(host)))
        || m.criteria
            .regex_headers
            .iter()
            .any(|(_, pattern)| !compiles(pattern))
}

/// Ambassador's route weight beyond the sort key of §3: every constraint as a pseudo-header,
/// name and value (`*` for presence), one more for a regex.
fn constraint_weight(m: &Mapping) -> usize {
    let chars = |s: &str| s.chars().count();
    let exact: usize = m
        .criteria
        .headers
        .iter()
        .map(|(name, value)| {
            chars(name)
                + match value {
                    HeaderMatch::Exact(value) => chars(value),
                    HeaderMatch::Present => chars("*"),
                }
        })
        .sum();
    let regex: usize = m
        .criteria
        .regex_headers
        .iter()
        .map(|(name, value)| chars(name) + chars(value) + 1)
        .sum();
    let host = m.criteria.host.as_deref().map_or(0, |host| {
        chars(":authority") + chars(host) + usize::from(m.criteria.host_regex)
    });
    let method = m
        .criteria
        .method
        .as_deref()
        .map_or(0, |method| chars(":method") + chars(method));
    exact + regex + host + method
}

/// The request's path (no query or fragment) and its authority: that of an absolute-form
/// target, else the Host field.
fn path_and_host<'r>(request: &RequestParts<'r>) -> (&'r str, Option<&'r str>) {
    let target = request.target;
    let lower = target.to_ascii_lowercase();
    let after_scheme = ["http://", "https://"]
        .iter()
        .find(|scheme| lower.starts_with(**scheme))
        .map(|scheme| &target[scheme.len()..]);
    let strip_query = |s: &'r str| s.split(['?', '#']).next().unwrap_or("");
    match after_scheme {
        Some(rest) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let path = strip_query(&rest[end..]);
            (if path.is_empty() { "/" } else { path }, Some(&rest[..end]))
        }
        None => (strip_query(target), request.host),
    }
}

/// Every value of the fields named `name`, joined with `,` as Envoy matches them; `None`
/// without one.
fn joined(request: &RequestParts<'_>, name: &str) -> Option<String> {
    let mut values: Vec<&str> = Vec::new();
    if name.eq_ignore_ascii_case("host") {
        values.extend(request.host);
    }
    values.extend(
        request
            .headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value),
    );
    (!values.is_empty()).then(|| values.join(","))
}

/// Whether `request` meets every criterion of `m`.
fn meets(m: &Mapping, request: &RequestParts<'_>) -> bool {
    let (path, host) = path_and_host(request);
    let prefix = if m.criteria.prefix_regex {
        full_match(&m.criteria.prefix, path)
    } else if m.criteria.case_sensitive {
        path.starts_with(&m.criteria.prefix)
    } else {
        path.to_ascii_lowercase()
            .starts_with(&m.criteria.prefix.to_ascii_lowercase())
    };
    let method = m
        .criteria
        .method
        .as_deref()
        .is_none_or(|method| method == request.method);
    let host = match (&m.criteria.host, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(wanted), Some(host)) if m.criteria.host_regex => full_match(wanted, host),
        (Some(wanted), Some(host)) => wanted.eq_ignore_ascii_case(host),
    };
    let headers =
        m.criteria
            .headers
            .iter()
            .all(|(name, wanted)| match (wanted, joined(request, name)) {
                (_, None) => false,
                (HeaderMatch::Present, Some(_)) => true,
                (HeaderMatch::Exact(wanted), Some(value)) => *wanted == value,
            });
    let regex_headers = m
        .criteria
        .regex_headers
        .iter()
        .all(|(name, pattern)| joined(request, name).is_some_and(|v| full_match(pattern, &v)));
    prefix && method && host && headers && regex_headers
}

/// The rkey of the group `request` is routed to, from `mappings` as loaded.
pub(super) fn oracle_route<'m>(
    mappings: &'m [Mapping],
    request: &RequestParts<'_>,
) -> Option<&'m str> {
    let mut in_rkey_order: Vec<&Mapping> = mappings.iter().collect();
    in_rkey_order.sort_by(|a, b| a.rkey.cmp(&b.rkey));
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut groups: Vec<OracleGroup<'_>> = Vec::new();
    for m in in_rkey_order {
        // §2: a name is unique per namespace; a duplicate builds nothing.
        let name = (m.namespace.as_str(), m.name.as_str());
        if names.contains(&name) {
            continue;
        }
        names.push(name);
        let group = match groups.iter().position(|g| same_criteria(g.first, m)) {
            Some(at) => at,
            None if bad_regex(m) => continue,
            None => {
                groups.push(OracleGroup {
                    rkey: &m.rkey,
                    first: m,
                    productions: 0,
                    has_shadow: false,
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[group];
        if !m.shadow {
            group.productions += 1;
        } else if !group.has_shadow {
            // §4: the first shadow in rkey order wins; later ones build nothing.
            group.has_shadow = true;
        }
    }
    // §4: a group with no production Mapping gets no route.
    groups.retain(|g| g.productions > 0);
    // §3: descending by [precedence, len(prefix), regex header length, prefix, method],
    // then by constraint weight; stable, so ties keep rkey order.
    let regex_len = |m: &Mapping| -> usize {
        m.criteria
            .regex_headers
            .iter()
            .map(|(name, value)| name.chars().count() + value.chars().count())
            .sum()
    };
    groups.sort_by(|a, b| {
        let (a, b) = (a.first, b.first);
        b.criteria
            .precedence
            .cmp(&a.criteria.precedence)
            .then(
                b.criteria
                    .prefix
                    .chars()
                    .count()
                    .cmp(&a.criteria.prefix.chars().count()),
            )
            .then(regex_len(b).cmp(&regex_len(a)))
            .then(b.criteria.prefix.cmp(&a.criteria.prefix))
            .then(b.criteria.method.cmp(&a.criteria.method))
            .then(constraint_weight(b).cmp(&constraint_weight(a)))
    });
    groups
        .iter()
        .find(|g| meets(g.first, request))
        .map(|g| g.rkey)
}
