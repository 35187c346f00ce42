//! Property tests on random tables and requests drawn from small alphabets, so that
//! prefixes, cases and constraints collide: the prefix index gives the plain scan's answer,
//! and both give the answer of an oracle written from the semantics over the Mappings as
//! loaded.

use proptest::prelude::*;

use super::{oracle::oracle_route, *};

fn arb_mapping() -> impl Strategy<Value = Mapping> {
    let literal = "/[abAB]{0,3}/?";
    let regex = prop::sample::select(vec![
        "/a.*", "/[ab]+", "/A/?", ".*", "/b/a", "/a|/B", "/ab*", "(?i)/a/", "/b/[a/]*",
        // Parses only once wrapped in a group: refused, with the Mapping.
        "a)|(b",
    ]);
    let prefix = prop_oneof![
        4 => literal.prop_map(|p| (p, false)),
        1 => regex.prop_map(|p| (p.to_owned(), true)),
    ];
    let host = prop::sample::select(vec![None, Some("h"), Some("H:1"), Some("h:1")]);
    let method = prop::sample::select(vec![None, Some("GET"), Some("POST")]);
    let header = prop::sample::select(vec![
        vec![],
        vec![("x-a".to_owned(), HeaderMatch::Present)],
        vec![("x-a".to_owned(), HeaderMatch::Exact("1".to_owned()))],
    ]);
    let regex_header =
        prop::sample::select(vec![vec![], vec![("x-b".to_owned(), "[0-9]".to_owned())]]);
    (
        prefix,
        any::<bool>(),
        host,
        method,
        header,
        regex_header,
        -1i64..=1,
        any::<bool>(),
    )
        .prop_map(
            |(
                (prefix, prefix_regex),
                case_sensitive,
                host,
                method,
                headers,
                regex_headers,
                precedence,
                shadow,
            )| {
                let base = mapping("m", &prefix, "svc");
                Mapping {
                    criteria: Criteria {
                        prefix_regex,
                        case_sensitive,
                        host: host.map(str::to_owned),
                        method: method.map(str::to_owned),
                        headers,
                        regex_headers,
                        precedence,
                        ..base.criteria.clone()
                    },
                    shadow,
                    ..base
                }
            },
        )
}

fn arb_request() -> impl Strategy<
    Value = (
        String,
        String,
        Option<&'static str>,
        Vec<(&'static str, &'static str)>,
    ),
> {
    let method = prop::sample::select(vec!["GET".to_owned(), "POST".to_owned()]);
    let target = "(http://h)?/[abAB/]{0,5}(\\?[ab/])?";
    let host = prop::sample::select(vec![None, Some("h"), Some("H:1"), Some("x")]);
    let headers = prop::sample::subsequence(
        vec![("X-A", "1"), ("x-a", "2"), ("x-b", "7"), ("X-B", "q")],
        0..=4,
    );
    (method, target, host, headers)
}

/// Names the generated Mappings: rkeys in generation order, and now and then a name that an
/// earlier Mapping already has (refused unless it comes first in rkey order).
fn named(mappings: Vec<Mapping>, duplicate_every: usize) -> Vec<Mapping> {
    mappings
        .into_iter()
        .enumerate()
        .map(|(i, m)| Mapping {
            name: match i % duplicate_every {
                0 if i > 0 => "m00".to_owned(),
                _ => format!("m{i:02}"),
            },
            rkey: format!("m{i:02}.default.1"),
            ..m
        })
        .collect()
}

fn parts<'a>(
    (method, target, host, headers): &'a (
        String,
        String,
        Option<&'static str>,
        Vec<(&'static str, &'static str)>,
    ),
) -> RequestParts<'a> {
    RequestParts {
        method,
        target,
        host: *host,
        headers,
    }
}

proptest! {
    #[test]
    fn index_agrees_with_linear_scan(
        mappings in prop::collection::vec(arb_mapping(), 0..40),
        requests in prop::collection::vec(arb_request(), 1..40),
    ) {
        let mappings = named(mappings, usize::MAX);
        let (table, _) = build(&mappings);
        for request in &requests {
            let request = parts(request);
            let indexed = table.route(&request).map(|g| &g.rkey);
            let linear = table.route_linear(&request).map(|g| &g.rkey);
            prop_assert_eq!(indexed, linear, "{:?}\n{}", request, table);
        }
    }

    #[test]
    fn index_agrees_with_an_oracle_over_the_mappings_as_loaded(
        mappings in prop::collection::vec(arb_mapping(), 0..40),
        requests in prop::collection::vec(arb_request(), 1..40),
        duplicate_every in 3usize..12,
    ) {
        let mappings = named(mappings, duplicate_every);
        let (table, _) = build(&mappings);
        for request in &requests {
            let request = parts(request);
            let indexed = table.route(&request).map(|g| g.rkey.as_str());
            let oracle = oracle_route(&mappings, &request);
            prop_assert_eq!(indexed, oracle, "{:?}\n{}", request, table);
        }
    }
}
