//! Route matching throughput: requests matched per second against tables of 10, 100 and
//! 1000 Mappings, by the prefix index (`route`) and by a plain scan (`route_linear`), so
//! that one run prints their ratio.
//!
//! Tables are realistic: mostly distinct prefixes `/svc-N/`, a quarter of the groups
//! shadowed, some with a host, some with headers, a few regex prefixes and regex headers.
//! Requests spread over the groups, with a tenth matching nothing.
//!
//! Run with `cargo bench -p shadow-user --bench route`.

use std::{hint::black_box, path::PathBuf, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shadowd::{
    config::{Criteria, Diagnostics, HeaderMatch, Mapping, Origin, Scheme, Service},
    route::{RequestParts, RouteTable},
};

/// Mapping `i` of a table: production `/svc-i/`, or the shadow of Mapping `i - 1`.
fn mapping(i: usize) -> Mapping {
    let group = if i % 4 == 1 { i - 1 } else { i };
    let shadow = group != i;
    let name = if shadow {
        format!("svc-{group}-shadow")
    } else {
        format!("svc-{i}")
    };
    let (prefix, prefix_regex) = match group % 50 {
        7 => (format!(r"/svc-{group}/items/\d+"), true),
        _ => (format!("/svc-{group}/"), false),
    };
    let host = (group % 10 == 2).then(|| format!("svc-{group}.example.com"));
    let headers = match group % 15 {
        3 => vec![("x-canary".to_owned(), HeaderMatch::Present)],
        8 => vec![("x-env".to_owned(), HeaderMatch::Exact("staging".to_owned()))],
        _ => Vec::new(),
    };
    let regex_headers = match group % 25 {
        5 => vec![("x-user".to_owned(), r"[0-9]+".to_owned())],
        _ => Vec::new(),
    };
    Mapping {
        rkey: format!("{name}.default.1"),
        name,
        namespace: "default".to_owned(),
        origin: Origin {
            file: PathBuf::from("bench.yaml"),
            document: 1,
            line: 1,
        },
        criteria: Criteria {
            prefix,
            prefix_regex,
            case_sensitive: group % 20 != 11,
            method: (group % 12 == 6).then(|| "POST".to_owned()),
            host,
            host_regex: false,
            headers,
            regex_headers,
            precedence: 0,
        },
        service: Service {
            scheme: Scheme::Http,
            host: format!("svc-{group}{}.default", if shadow { "-shadow" } else { "" }),
            port: 8080,
        },
        shadow,
        weight: 100,
        rewrite: None,
        host_rewrite: None,
        add_request_headers: Vec::new(),
        remove_request_headers: Vec::new(),
        timeout: Duration::from_secs(3),
        disable_shadow_host_suffix_append: false,
        diff: None,
    }
}

/// An owned request, viewed as [`RequestParts`] in the measured loop.
struct Owned {
    method: &'static str,
    target: String,
    host: String,
    headers: Vec<(&'static str, String)>,
}

/// `count` requests spread over the production Mappings of a table of `mappings`; every
/// tenth matches no group.
fn requests(mappings: usize, count: usize) -> Vec<Owned> {
    (0..count)
        .map(|j| {
            let mut group = (j * 7919) % mappings;
            if group % 4 == 1 {
                group -= 1;
            }
            let target = match (j % 10, group % 50) {
                (9, _) => format!("/nothing/{j}?page=2"),
                (_, 7) => format!("/svc-{group}/items/{j}?page=2"),
                _ => format!("/svc-{group}/api/v1/items/{j}?page=2&sort=desc"),
            };
            let host = match group % 10 {
                2 => format!("svc-{group}.example.com"),
                _ => "shop.example.com".to_owned(),
            };
            let mut headers = vec![
                ("User-Agent", "bench/1.0".to_owned()),
                ("Accept", "*/*".to_owned()),
                ("X-Request-Id", format!("req-{j}")),
            ];
            match group % 15 {
                3 => headers.push(("X-Canary", "1".to_owned())),
                8 => headers.push(("X-Env", "staging".to_owned())),
                _ => {}
            }
            if group % 25 == 5 {
                headers.push(("X-User", j.to_string()));
            }
            Owned {
                method: if group % 12 == 6 { "POST" } else { "GET" },
                target,
                host,
                headers,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.measurement_time(Duration::from_secs(3));
    for size in [10, 100, 1000] {
        let mappings: Vec<Mapping> = (0..size).map(mapping).collect();
        let mut diagnostics = Diagnostics::default();
        let table = RouteTable::build(&mappings, &mut diagnostics);
        assert!(diagnostics.errors.is_empty(), "{diagnostics:?}");

        let owned = requests(size, 1000);
        let headers: Vec<Vec<(&str, &str)>> = owned
            .iter()
            .map(|r| r.headers.iter().map(|(n, v)| (*n, v.as_str())).collect())
            .collect();
        let views: Vec<RequestParts<'_>> = owned
            .iter()
            .zip(&headers)
            .map(|(r, headers)| RequestParts {
                method: r.method,
                target: &r.target,
                host: Some(&r.host),
                headers,
            })
            .collect();
        let matched = views.iter().filter(|v| table.route(*v).is_some()).count();
        let shadowed = views
            .iter()
            .filter(|v| table.route(*v).is_some_and(|g| g.shadow.is_some()))
            .count();
        assert!(
            matched >= views.len() * 8 / 10,
            "{matched} of {} matched",
            views.len()
        );
        assert!(shadowed > 0);
        for v in &views {
            let indexed = table.route(v).map(|g| &g.rkey);
            assert_eq!(indexed, table.route_linear(v).map(|g| &g.rkey), "{v:?}");
        }

        group.throughput(Throughput::Elements(views.len() as u64));
        group.bench_function(BenchmarkId::new("indexed", size), |b| {
            b.iter(|| {
                views
                    .iter()
                    .filter(|v| table.route(black_box(*v)).is_some())
                    .count()
            })
        });
        group.bench_function(BenchmarkId::new("linear", size), |b| {
            b.iter(|| {
                views
                    .iter()
                    .filter(|v| table.route_linear(black_box(*v)).is_some())
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
