//! Tests of the route table: building (groups, shadows, diagnostics), matching, the copy
//! plan, and the index against a plain scan and an independent oracle.

mod build;
mod matching;
mod oracle;
mod plan;
mod props;

use std::{path::PathBuf, time::Duration};

use super::*;
use crate::config::{Diagnostics, HeaderMatch, Mapping, Origin, Scheme, Service};

/// A production Mapping with every optional field at its default; rkey
/// `<name>.default.1`. `service` is `host[:port]`.
pub(crate) fn mapping(name: &str, prefix: &str, service: &str) -> Mapping {
    let (host, port) = match service.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap()),
        None => (service, 80),
    };
    Mapping {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        rkey: format!("{name}.default.1"),
        origin: Origin {
            file: PathBuf::from("test.yaml"),
            document: 1,
            line: 1,
        },
        criteria: Criteria {
            prefix: prefix.to_owned(),
            prefix_regex: false,
            case_sensitive: true,
            method: None,
            host: None,
            host_regex: false,
            headers: Vec::new(),
            regex_headers: Vec::new(),
            precedence: 0,
        },
        service: Service {
            scheme: Scheme::Http,
            host: host.to_owned(),
            port,
        },
        shadow: false,
        weight: 100,
        rewrite: None,
        host_rewrite: None,
        add_request_headers: Vec::new(),
        remove_request_headers: Vec::new(),
        timeout: Duration::from_millis(3000),
        disable_shadow_host_suffix_append: false,
        diff: None,
    }
}

/// `mapping` with its criteria changed by `edit`.
pub(crate) fn edited(mut mapping: Mapping, edit: impl FnOnce(&mut Criteria)) -> Mapping {
    edit(&mut mapping.criteria);
    mapping
}

/// A shadow Mapping, as `mapping` makes it.
pub(crate) fn shadow(name: &str, prefix: &str, service: &str) -> Mapping {
    Mapping {
        shadow: true,
        ..mapping(name, prefix, service)
    }
}

/// Builds a table; returns it with its diagnostics.
pub(super) fn build(mappings: &[Mapping]) -> (RouteTable, Diagnostics) {
    let mut diagnostics = Diagnostics::default();
    let table = RouteTable::build(mappings, &mut diagnostics);
    (table, diagnostics)
}

/// A GET for `target` with Host `host`.
pub(super) fn get<'a>(target: &'a str, host: Option<&'a str>) -> RequestParts<'a> {
    RequestParts {
        method: "GET",
        target,
        host,
        headers: &[],
    }
}

/// The rkey of the group `request` is routed to, checking that the index and the plain
/// scan agree.
pub(super) fn routed<'t>(table: &'t RouteTable, request: &RequestParts<'_>) -> Option<&'t str> {
    let indexed = table.route(request).map(|g| g.rkey.as_str());
    let linear = table.route_linear(request).map(|g| g.rkey.as_str());
    assert_eq!(indexed, linear, "index and scan disagree on {request:?}");
    indexed
}

/// Parses `wire` as one request, as the capture side does.
pub(crate) fn parsed(wire: &[u8]) -> crate::http::Request {
    let mut flow = crate::http::HttpFlow::new(crate::http::Limits::default());
    let mut out = Vec::new();
    flow.push(
        crate::packet::Direction::Request,
        wire,
        std::time::SystemTime::UNIX_EPOCH,
        &mut out,
    );
    match out.into_iter().next() {
        Some(crate::http::HttpEvent::Request(request)) => request,
        other => panic!("not one request: {other:?}"),
    }
}

/// The user's example (`examples/myservice-services.yaml`): production and shadow on
/// `/myservice/`.
pub(super) fn user_example() -> Vec<Mapping> {
    vec![
        mapping("myservice-mapping", "/myservice/", "myservice.default"),
        shadow(
            "myservice-shadow-mapping",
            "/myservice/",
            "myservice-shadow.default",
        ),
    ]
}
