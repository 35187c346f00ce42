//! The copy changes exactly what the shadow Mapping asks for and nothing else.

use super::*;
use crate::{
    config::{Diagnostics, Mapping},
    route::{self, RouteTable, tests::parsed as request},
};

/// The plan of a shadow Mapping changed by `edit`.
fn plan(edit: impl FnOnce(&mut Mapping)) -> ShadowPlan {
    let mut shadow = route::tests::shadow("myservice-shadow", "/myservice/", "myservice-shadow");
    edit(&mut shadow);
    let table = RouteTable::build(
        &[
            route::tests::mapping("myservice", "/myservice/", "myservice"),
            shadow,
        ],
        &mut Diagnostics::default(),
    );
    table.groups()[0].shadow.clone().expect("a shadow")
}

fn copy_of(wire: &[u8], plan: &ShadowPlan) -> Vec<u8> {
    let copy = build(&request(wire), plan);
    [copy.head.as_ref(), copy.body.as_ref()].concat()
}

#[test]
fn only_the_host_changes_by_default() {
    let wire = b"POST /myservice/x?a=1 HTTP/1.1\r\nhOsT: myservice:8080\r\nX-A: 1\r\nx-a: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let copy = copy_of(wire, &plan(|_| {}));
    assert_eq!(
        copy,
        b"POST /myservice/x?a=1 HTTP/1.1\r\nhOsT: myservice-shadow:8080\r\nX-A: 1\r\nx-a: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec()
    );
}

#[test]
fn the_body_is_the_captured_bytes_not_a_copy() {
    let wire = b"POST /myservice/ HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5\r\n\r\nhello";
    let request = request(wire);
    let copy = build(&request, &plan(|_| {}));
    assert_eq!(copy.body.as_ref(), b"hello");
    assert_eq!(copy.body.as_ptr(), request.raw[request.body.0..].as_ptr());
}

#[test]
fn no_host_gets_none_and_the_suffix_can_be_disabled() {
    let wire = b"GET /myservice/ HTTP/1.0\r\nAccept: */*\r\n\r\n";
    assert_eq!(copy_of(wire, &plan(|_| {})), wire.to_vec());
    let wire = b"GET /myservice/ HTTP/1.1\r\nHost: myservice\r\n\r\n";
    assert_eq!(
        copy_of(wire, &plan(|m| m.disable_shadow_host_suffix_append = true)),
        wire.to_vec()
    );
}

#[test]
fn rewrite_host_rewrite_removals_and_additions() {
    let wire = b"GET /myservice/items/7?q=1 HTTP/1.1\r\nHost: myservice\r\nAuthorization: secret\r\nCookie: a=b\r\nAccept: */*\r\n\r\n";
    let plan = plan(|m| {
        m.rewrite = Some("/v2/".into());
        m.host_rewrite = Some("test.internal".into());
        m.remove_request_headers = vec!["authorization".into(), "COOKIE".into()];
        m.add_request_headers = vec![
            ("X-Shadow".into(), "1".into()),
            ("X-Env".into(), "test".into()),
        ];
    });
    assert_eq!(
        copy_of(wire, &plan),
        b"GET /v2/items/7?q=1 HTTP/1.1\r\nHost: test.internal-shadow\r\nAccept: */*\r\nX-Shadow: 1\r\nX-Env: test\r\n\r\n".to_vec()
    );
}

#[test]
fn removing_host_leaves_no_host() {
    let wire = b"GET /myservice/ HTTP/1.1\r\nHost: myservice\r\nA: b\r\n\r\n";
    assert_eq!(
        copy_of(
            wire,
            &plan(|m| m.remove_request_headers = vec!["host".into()])
        ),
        b"GET /myservice/ HTTP/1.1\r\nA: b\r\n\r\n".to_vec()
    );
}

#[test]
fn head_requests_are_flagged() {
    let copy = build(
        &request(b"HEAD /myservice/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        &plan(|_| {}),
    );
    assert!(copy.head_request);
}

#[test]
fn an_absolute_form_target_names_the_shadow_as_the_host_does() {
    let wire =
        b"GET http://myservice:8080/myservice/items?q=1 HTTP/1.1\r\nHost: myservice:8080\r\n\r\n";
    assert_eq!(
        copy_of(wire, &plan(|_| {})),
        b"GET http://myservice-shadow:8080/myservice/items?q=1 HTTP/1.1\r\nHost: myservice-shadow:8080\r\n\r\n".to_vec()
    );
    let plan = plan(|m| {
        m.rewrite = Some("/v2/".into());
        m.host_rewrite = Some("test.internal".into());
    });
    assert_eq!(
        copy_of(
            b"GET HTTP://myservice/myservice/items HTTP/1.1\r\nHost: myservice\r\n\r\n",
            &plan
        ),
        b"GET HTTP://test.internal-shadow/v2/items HTTP/1.1\r\nHost: test.internal-shadow\r\n\r\n"
            .to_vec()
    );
    // User information stays as it was; only the host after it is renamed.
    assert_eq!(
        copy_of(
            b"GET http://u:p@myservice:8080/myservice/x HTTP/1.1\r\nHost: myservice:8080\r\n\r\n",
            &self::plan(|_| {})
        ),
        b"GET http://u:p@myservice-shadow:8080/myservice/x HTTP/1.1\r\nHost: myservice-shadow:8080\r\n\r\n"
            .to_vec()
    );
    // Also when the host is rewritten: the `@` ends the user information, it is no part of
    // the host replaced.
    assert_eq!(
        copy_of(
            b"GET http://u:p@myservice/myservice/x HTTP/1.1\r\nHost: myservice\r\n\r\n",
            &plan
        ),
        b"GET http://u:p@test.internal-shadow/v2/x HTTP/1.1\r\nHost: test.internal-shadow\r\n\r\n"
            .to_vec()
    );
}

#[test]
fn added_fields_go_before_the_blank_line_whatever_came_before_them() {
    let add = |m: &mut Mapping| m.add_request_headers = vec![("X-Shadow".into(), "1".into())];
    // No field at all (HTTP/1.0 without Host).
    assert_eq!(
        copy_of(b"GET /myservice/ HTTP/1.0\r\n\r\n", &plan(add)),
        b"GET /myservice/ HTTP/1.0\r\nX-Shadow: 1\r\n\r\n".to_vec()
    );
    // The last field removed: the addition takes its place, byte for byte.
    let plan = plan(|m| {
        add(m);
        m.remove_request_headers = vec!["cookie".into()];
    });
    assert_eq!(
        copy_of(
            b"POST /myservice/ HTTP/1.1\r\nHost: myservice\r\nContent-Length: 2\r\nCookie: a=b\r\n\r\nhi",
            &plan
        ),
        b"POST /myservice/ HTTP/1.1\r\nHost: myservice-shadow\r\nContent-Length: 2\r\nX-Shadow: 1\r\n\r\nhi".to_vec()
    );
}
