//! Endpoints: requests grouped by method and a path template, identifiers collapsed
//! (numbers, UUIDs, long hex strings), so that `GET /users/42` and `GET /users/43` are counted
//! together. A Mapping's endpoints are bounded in number; the rest count as `other`.

use std::collections::BTreeSet;

/// The endpoint every request beyond the bound goes to.
pub const OTHER: &str = "other";

/// `METHOD /path/{id}/…` of a request: the target's path (query dropped) with identifier
/// segments collapsed.
pub fn endpoint_of(method: &str, target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let template: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if is_identifier(segment) {
                "{id}"
            } else {
                segment
            }
        })
        .collect();
    format!("{method} {}", template.join("/"))
}

/// Whether a path segment names one thing among many: a number, a UUID, or a hex string of
/// 16 characters or more (a digest, an object id).
fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = segment.len() == 36
        && segment.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && hex(&segment.replace('-', ""));
    uuid || (segment.len() >= 16 && hex(segment))
}

/// A Mapping's endpoints, at most `max` by name.
#[derive(Clone, Debug)]
pub struct Endpoints {
    max: usize,
    known: BTreeSet<String>,
}

impl Endpoints {
    /// Room for `max` endpoints by name.
    pub fn new(max: usize) -> Self {
        Endpoints {
            max,
            known: BTreeSet::new(),
        }
    }

    /// The endpoint a request counts under: its own while there is room, else [`OTHER`].
    pub fn name(&mut self, method: &str, target: &str) -> String {
        let endpoint = endpoint_of(method, target);
        if self.known.contains(&endpoint) {
            return endpoint;
        }
        if self.known.len() < self.max {
            self.known.insert(endpoint.clone());
            return endpoint;
        }
        OTHER.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_collapse_and_names_stay() {
        assert_eq!(
            endpoint_of("GET", "/users/42/orders?page=2"),
            "GET /users/{id}/orders"
        );
        assert_eq!(
            endpoint_of("DELETE", "/items/550e8400-e29b-41d4-a716-446655440000"),
            "DELETE /items/{id}"
        );
        assert_eq!(
            endpoint_of("GET", "/blobs/0123456789abcdef0123"),
            "GET /blobs/{id}"
        );
        // Short hex and words are names: `cafe`, `v2`, `deadbeef`.
        assert_eq!(
            endpoint_of("GET", "/cafe/v2/deadbeef"),
            "GET /cafe/v2/deadbeef"
        );
        assert_eq!(endpoint_of("GET", "/"), "GET /");
    }

    #[test]
    fn beyond_the_bound_requests_count_as_other() {
        let mut endpoints = Endpoints::new(2);
        assert_eq!(endpoints.name("GET", "/a/1"), "GET /a/{id}");
        assert_eq!(endpoints.name("GET", "/b"), "GET /b");
        assert_eq!(endpoints.name("GET", "/c"), OTHER);
        assert_eq!(endpoints.name("GET", "/a/2"), "GET /a/{id}");
    }
}
