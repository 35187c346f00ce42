//! Building: groups, one shadow per group, and the diagnostics for what is turned away.

use std::collections::BTreeSet;

use super::*;

/// The ports of the services of the shadowed production Mappings.
fn capture_ports(table: &RouteTable) -> BTreeSet<u16> {
    table
        .shadowed_production()
        .map(|p| p.service.port)
        .collect()
}

#[test]
fn user_example_is_one_group_shadowed_on_port_80() {
    let (table, diagnostics) = build(&user_example());
    assert_eq!(diagnostics, Diagnostics::default());
    let [group] = table.groups() else {
        panic!("one group expected: {table}");
    };
    assert_eq!(group.rkey, "myservice-mapping.default.1");
    assert_eq!(group.criteria.prefix, "/myservice/");
    let [production] = group.production.as_slice() else {
        panic!("one production mapping expected");
    };
    assert_eq!(production.name, "myservice-mapping");
    assert_eq!(production.service.to_string(), "myservice.default:80");
    let plan = group.shadow.as_ref().expect("a shadow");
    assert_eq!(plan.name, "myservice-shadow-mapping");
    assert_eq!(plan.rkey, "myservice-shadow-mapping.default.1");
    assert_eq!(plan.service.to_string(), "myservice-shadow.default:80");
    assert_eq!(plan.weight, 100);
    assert_eq!(plan.timeout, Duration::from_secs(3));
    assert!(plan.append_suffix);
    assert_eq!(plan.rewrite, None);
    assert_eq!(capture_ports(&table), [80].into());
    assert!(table.unrouted().is_empty());
}

#[test]
fn second_shadow_is_an_error_under_the_group_rkey_and_the_first_is_kept() {
    // rkey order decides which shadow is first: `myservice-shadow-2.default.1` sorts before
    // `myservice-shadow-mapping.default.1` ('2' < 'm'), so the user's shadow is the one
    // turned away; `myservice-shadow-next` sorts after it and is the one turned away.
    let cases = [
        (
            "myservice-shadow-2",
            "myservice-shadow-2",
            "myservice-shadow-mapping",
        ),
        (
            "myservice-shadow-next",
            "myservice-shadow-mapping",
            "myservice-shadow-next",
        ),
    ];
    for (third, kept, rejected) in cases {
        let mut mappings = user_example();
        mappings.push(shadow(third, "/myservice/", "other.default"));
        let (table, diagnostics) = build(&mappings);
        assert_eq!(
            diagnostics.errors,
            [(
                "myservice-mapping.default.1".to_owned(),
                format!("cannot accept {rejected} as second shadow after {kept}")
            )]
        );
        assert!(diagnostics.notices.is_empty());
        let [group] = table.groups() else {
            panic!("one group expected: {table}");
        };
        assert_eq!(group.shadow.as_ref().unwrap().name, kept);
        assert_eq!(group.production.len(), 1);
    }
}

#[test]
fn first_shadow_is_first_in_rkey_order_not_input_order() {
    // "a-shadow" sorts before "b-shadow" whatever order the sources gave them in.
    let mappings = [
        shadow("b-shadow", "/x/", "b"),
        mapping("prod", "/x/", "prod"),
        shadow("a-shadow", "/x/", "a"),
    ];
    let (table, diagnostics) = build(&mappings);
    assert_eq!(table.groups()[0].shadow.as_ref().unwrap().name, "a-shadow");
    // The group is a-shadow's: it came first, even though it is a shadow.
    assert_eq!(table.groups()[0].rkey, "a-shadow.default.1");
    assert_eq!(
        diagnostics.errors,
        [(
            "a-shadow.default.1".to_owned(),
            "cannot accept b-shadow as second shadow after a-shadow".to_owned()
        )]
    );
}

#[test]
fn shadow_only_group_is_a_notice_and_copies_nothing() {
    let mappings = [
        mapping("catch-all", "/", "web"),
        shadow("lonely-shadow", "/lonely/", "lonely-shadow"),
    ];
    let (table, diagnostics) = build(&mappings);
    assert!(diagnostics.errors.is_empty());
    assert_eq!(
        diagnostics.notices,
        [(
            "lonely-shadow.default.1".to_owned(),
            "group lonely-shadow.default.1 has a shadow but no production mapping: \
             nothing is shadowed"
                .to_owned()
        )]
    );
    assert_eq!(table.unrouted().len(), 1);
    // It takes no part in matching: the catch-all wins, and has no shadow.
    let group = table.route(&get("/lonely/x", None)).unwrap();
    assert_eq!(group.rkey, "catch-all.default.1");
    assert!(group.shadow.is_none());
    assert!(capture_ports(&table).is_empty());
}

#[test]
fn production_rewrite_is_a_notice_where_there_is_a_copy() {
    let mut mappings = user_example();
    mappings[0].rewrite = Some("/".to_owned());
    mappings.push(Mapping {
        rewrite: Some("/v2/".to_owned()),
        ..mapping("unshadowed", "/other/", "other")
    });
    mappings.push(Mapping {
        rewrite: Some("/v3/".to_owned()),
        ..mapping("both", "/both/", "both")
    });
    mappings.push(Mapping {
        rewrite: Some("/shadow/".to_owned()),
        ..shadow("both-shadow", "/both/", "both-shadow")
    });
    let (table, diagnostics) = build(&mappings);
    assert!(diagnostics.errors.is_empty());
    let notice = |rkey: &str, text: &str| (rkey.to_owned(), text.to_owned());
    assert_eq!(
        diagnostics.notices,
        [
            notice(
                "both.default.1",
                "rewrite /v3/ of production mapping both is not applied: shadowd does not \
                 rewrite production, and the copy gets only the shadow's rewrite /shadow/"
            ),
            notice(
                "myservice-mapping.default.1",
                "rewrite / of production mapping myservice-mapping is not applied: shadowd does \
                 not rewrite production, and the copy keeps the captured target"
            ),
        ]
    );
    // The copy is not rewritten by production's rewrite.
    let group = table.route(&get("/myservice/x", None)).unwrap();
    assert_eq!(group.shadow.as_ref().unwrap().rewrite, None);
}

#[test]
fn invalid_regexes_are_errors_naming_the_field_and_build_nothing() {
    let cases: [(Mapping, &str); 3] = [
        (
            edited(mapping("bad-prefix", "/api/(v1", "api"), |c| {
                c.prefix_regex = true;
            }),
            "invalid regex in prefix: regex parse error:",
        ),
        (
            edited(mapping("bad-host", "/", "web"), |c| {
                c.host = Some("*.example.com".to_owned());
                c.host_regex = true;
            }),
            "invalid regex in host: regex parse error:",
        ),
        (
            edited(mapping("bad-header", "/", "web"), |c| {
                c.regex_headers = vec![("x-user".to_owned(), "[a-".to_owned())];
            }),
            "invalid regex in regex_headers.x-user: regex parse error:",
        ),
    ];
    for (bad, message) in cases {
        let rkey = bad.rkey.clone();
        let (table, diagnostics) = build(&[bad, mapping("good", "/good/", "good")]);
        let [(at, text)] = diagnostics.errors.as_slice() else {
            panic!("one error expected for {rkey}: {diagnostics:?}");
        };
        assert_eq!(at, &rkey);
        assert!(text.starts_with(message), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let rkeys: Vec<_> = table.groups().iter().map(|g| g.rkey.as_str()).collect();
        assert_eq!(rkeys, ["good.default.1"]);
    }
}

#[test]
fn a_regex_that_only_parses_when_wrapped_is_refused() {
    let bad = edited(mapping("sneaky", "a)|(b", "web"), |c| {
        c.prefix_regex = true;
    });
    let (table, diagnostics) = build(&[bad]);
    assert_eq!(diagnostics.errors.len(), 1);
    assert!(table.groups().is_empty());
}

#[test]
fn duplicate_name_in_a_namespace_is_an_error_for_the_later_one() {
    let first = mapping("api", "/api/", "api");
    let again = Mapping {
        rkey: "api.default.2".to_owned(),
        ..mapping("api", "/other/", "other")
    };
    let elsewhere = Mapping {
        namespace: "staging".to_owned(),
        rkey: "api.staging.1".to_owned(),
        ..mapping("api", "/staging/", "api")
    };
    let (table, diagnostics) = build(&[again, elsewhere, first]);
    assert_eq!(
        diagnostics.errors,
        [(
            "api.default.2".to_owned(),
            "duplicate Mapping name api in namespace default: api.default.1 already has it"
                .to_owned()
        )]
    );
    let rkeys: Vec<_> = table.groups().iter().map(|g| g.rkey.as_str()).collect();
    assert_eq!(rkeys, ["api.staging.1", "api.default.1"]);
}

#[test]
fn production_mappings_with_equal_criteria_share_a_group() {
    let mappings = [
        mapping("a", "/x/", "a:8080"),
        mapping("b", "/x/", "b:9090"),
        shadow("c", "/x/", "c"),
        mapping("d", "/x/", "d:8080"),
    ];
    let (table, diagnostics) = build(&mappings);
    assert_eq!(diagnostics, Diagnostics::default());
    let [group] = table.groups() else {
        panic!("one group expected");
    };
    let names: Vec<_> = group.production.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "d"]);
    assert_eq!(capture_ports(&table), [8080, 9090].into());
}

#[test]
fn criteria_that_differ_make_different_groups() {
    let base = || mapping("base", "/x/", "web");
    let variants = [
        edited(base(), |c| {
            c.method = Some("GET".to_owned());
        }),
        edited(base(), |c| {
            c.case_sensitive = false;
        }),
        edited(base(), |c| {
            c.prefix_regex = true;
        }),
        edited(base(), |c| {
            c.host = Some("a.example".to_owned());
        }),
        edited(base(), |c| {
            c.headers = vec![("x-a".to_owned(), HeaderMatch::Present)];
        }),
        edited(base(), |c| {
            c.regex_headers = vec![("x-a".to_owned(), ".*".to_owned())];
        }),
        edited(base(), |c| {
            c.precedence = 1;
        }),
    ];
    for (i, variant) in variants.into_iter().enumerate() {
        let variant = Mapping {
            name: format!("variant-{i}"),
            rkey: format!("variant-{i}.default.1"),
            shadow: true,
            ..variant
        };
        let (table, _) = build(&[base(), variant.clone()]);
        assert_eq!(table.groups().len(), 1, "{variant:?}");
        assert_eq!(table.unrouted().len(), 1, "{variant:?}");
    }
}

#[test]
fn two_groups_shadow_to_two_services_and_one_service_shadows_several_groups() {
    let mappings = [
        mapping("a", "/a/", "a:8001"),
        shadow("a-shadow", "/a/", "a-shadow"),
        mapping("b", "/b/", "b:8002"),
        shadow("b-shadow", "/b/", "b-shadow"),
        mapping("c", "/c/", "c:8003"),
        shadow("c-shadow", "/c/", "b-shadow"),
        mapping("d", "/d/", "d:8004"),
    ];
    let (table, diagnostics) = build(&mappings);
    assert_eq!(diagnostics, Diagnostics::default());
    let target = |path| {
        let plan = table.route(&get(path, None)).unwrap().shadow.as_ref();
        plan.map(|p| p.service.to_string())
    };
    assert_eq!(target("/a/1").as_deref(), Some("a-shadow:80"));
    assert_eq!(target("/b/1").as_deref(), Some("b-shadow:80"));
    assert_eq!(target("/c/1").as_deref(), Some("b-shadow:80"));
    assert_eq!(target("/d/1"), None);
    assert_eq!(capture_ports(&table), [8001, 8002, 8003].into());
}

#[test]
fn check_output_lists_groups_in_match_order() {
    let mut mappings = user_example();
    mappings.push(mapping("root", "/", "web"));
    mappings.push(shadow("lonely", "/lonely/", "lonely"));
    let (table, _) = build(&mappings);
    let text = table.to_string();
    let expected = "\
1. group myservice-mapping.default.1
   match:      prefix /myservice/
   production: myservice-mapping -> myservice.default:80
   shadow:     myservice-shadow-mapping -> myservice-shadow.default:80, weight 100%
2. group root.default.1
   match:      prefix /
   production: root -> web:80
   shadow:     none (not copied)
-. group lonely.default.1 (no production mapping: matches nothing)
   match:      prefix /lonely/
   shadow:     lonely -> lonely:80, weight 100%
";
    assert_eq!(text, expected);
    assert_eq!(RouteTable::default().to_string(), "no mappings\n");
}
