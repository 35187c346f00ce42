//! The copy plan: the Host suffix rule, the copy's Host, and the shadow's rewrite.

use super::*;

#[test]
fn suffix_rule() {
    let cases = [
        ("myservice", "myservice-shadow"),
        ("myservice:8080", "myservice-shadow:8080"),
        ("[::1]:80", "[::1]-shadow:80"),
        ("[::1]", "[::1]-shadow"),
        (
            "myservice.default.svc:80",
            "myservice.default.svc-shadow:80",
        ),
        ("", "-shadow"),
        ("a:b:c", "a:b-shadow:c"),
    ];
    for (host, expected) in cases {
        assert_eq!(shadow_host(host), expected, "{host}");
    }
}

/// The plan of a group built from the user's example with `change` made to the shadow.
fn plan_with(change: impl FnOnce(&mut Mapping)) -> ShadowPlan {
    let mut mappings = user_example();
    change(&mut mappings[1]);
    let (table, diagnostics) = build(&mappings);
    assert!(diagnostics.errors.is_empty(), "{diagnostics:?}");
    table.groups()[0].shadow.clone().unwrap()
}

#[test]
fn copy_host_rewrites_then_appends_unless_disabled() {
    let plain = plan_with(|_| {});
    assert_eq!(
        plain.copy_host(Some("myservice:8080")).as_deref(),
        Some("myservice-shadow:8080")
    );
    assert_eq!(plain.copy_host(None), None);

    let rewritten = plan_with(|m| m.host_rewrite = Some("canary.internal".to_owned()));
    assert_eq!(
        rewritten.copy_host(Some("myservice")).as_deref(),
        Some("canary.internal-shadow")
    );
    // No Host on the request (HTTP/1.0): none is added, even with host_rewrite.
    assert_eq!(rewritten.copy_host(None), None);

    let kept = plan_with(|m| m.disable_shadow_host_suffix_append = true);
    assert!(!kept.append_suffix);
    assert_eq!(
        kept.copy_host(Some("myservice:8080")).as_deref(),
        Some("myservice:8080")
    );

    let both = plan_with(|m| {
        m.host_rewrite = Some("[::1]".to_owned());
        m.disable_shadow_host_suffix_append = true;
    });
    assert_eq!(both.copy_host(Some("myservice")).as_deref(), Some("[::1]"));
}

#[test]
fn plan_carries_the_shadow_fields() {
    let plan = plan_with(|m| {
        m.weight = 25;
        m.timeout = Duration::from_millis(150);
        m.service.scheme = Scheme::Https;
        m.service.port = 8443;
        m.add_request_headers = vec![("x-shadow".to_owned(), "1".to_owned())];
        m.remove_request_headers = vec!["authorization".to_owned()];
    });
    assert_eq!(plan.weight, 25);
    assert_eq!(plan.timeout, Duration::from_millis(150));
    assert_eq!(
        plan.service.to_string(),
        "https://myservice-shadow.default:8443"
    );
    assert_eq!(
        plan.add_request_headers,
        [("x-shadow".to_owned(), "1".to_owned())]
    );
    assert_eq!(plan.remove_request_headers, ["authorization"]);
}

#[test]
fn shadow_rewrite_replaces_the_matched_prefix() {
    let plan = plan_with(|m| m.rewrite = Some("/".to_owned()));
    let rewrite = plan.rewrite.unwrap();
    assert_eq!(
        rewrite.scope,
        RewriteScope::Prefix {
            len: "/myservice/".len()
        }
    );
    let cases: [(&str, &str); 4] = [
        ("/myservice/a/b", "/a/b"),
        ("/myservice/", "/"),
        ("/myservice/a?x=/myservice/", "/a?x=/myservice/"),
        ("http://h:8080/myservice/a?q", "http://h:8080/a?q"),
    ];
    for (target, expected) in cases {
        let out = rewrite.apply(target.as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{target}");
    }
}

#[test]
fn shadow_rewrite_of_a_case_insensitive_prefix_replaces_what_matched() {
    let mappings = [
        edited(mapping("p", "/Api/", "api"), |c| {
            c.case_sensitive = false;
        }),
        Mapping {
            rewrite: Some("/v2/".to_owned()),
            ..edited(shadow("s", "/Api/", "api-shadow"), |c| {
                c.case_sensitive = false;
            })
        },
    ];
    let (table, _) = build(&mappings);
    let rewrite = table.groups()[0]
        .shadow
        .as_ref()
        .unwrap()
        .rewrite
        .clone()
        .unwrap();
    assert_eq!(rewrite.apply(b"/API/users?x"), b"/v2/users?x");
}

#[test]
fn shadow_rewrite_with_a_regex_prefix_replaces_the_whole_path() {
    let mappings = [
        edited(mapping("p", r"/users/\d+", "users"), |c| {
            c.prefix_regex = true;
        }),
        Mapping {
            rewrite: Some("/user".to_owned()),
            ..edited(shadow("s", r"/users/\d+", "users-shadow"), |c| {
                c.prefix_regex = true;
            })
        },
    ];
    let (table, _) = build(&mappings);
    let rewrite = table.groups()[0]
        .shadow
        .as_ref()
        .unwrap()
        .rewrite
        .clone()
        .unwrap();
    assert_eq!(rewrite.scope, RewriteScope::WholePath);
    assert_eq!(rewrite.apply(b"/users/42?full=1"), b"/user?full=1");
    assert_eq!(rewrite.apply(b"http://h/users/42"), b"http://h/user");
}

#[test]
fn empty_rewrite_rewrites_nothing() {
    // Ambassador treats `rewrite: ""` as no rewrite.
    assert_eq!(plan_with(|m| m.rewrite = Some(String::new())).rewrite, None);
}

#[test]
fn target_split() {
    let cases: [(&str, &str, Option<&str>); 7] = [
        ("/a/b?c#d", "/a/b", None),
        ("/a#b?c", "/a", None),
        ("http://h:1/a?b", "/a", Some("h:1")),
        ("http://h?b", "/", Some("h")),
        ("https://h", "/", Some("h")),
        ("*", "*", None),
        ("", "", None),
    ];
    for (target, path, authority) in cases {
        let split = Target::parse(target.as_bytes());
        assert_eq!(split.path, path.as_bytes(), "{target}");
        assert_eq!(split.authority, authority.map(str::as_bytes), "{target}");
    }
}
