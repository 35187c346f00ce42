//! Matching: which group a request goes to, table by table.

use super::*;

/// One request and the rkey of the group it must go to (`None`: no group).
struct Case {
    method: &'static str,
    target: &'static str,
    host: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    expect: Option<&'static str>,
}

const fn case(target: &'static str, expect: Option<&'static str>) -> Case {
    Case {
        method: "GET",
        target,
        host: None,
        headers: &[],
        expect,
    }
}

fn check(mappings: &[Mapping], cases: &[Case]) {
    let (table, diagnostics) = build(mappings);
    assert!(diagnostics.errors.is_empty(), "{diagnostics:?}");
    for c in cases {
        let request = RequestParts {
            method: c.method,
            target: c.target,
            host: c.host,
            headers: c.headers,
        };
        let got = routed(&table, &request);
        let want = c.expect.map(|name| format!("{name}.default.1"));
        assert_eq!(got, want.as_deref(), "{request:?} in\n{table}");
    }
}

#[test]
fn longest_prefix_wins_and_prefix_is_a_string_prefix() {
    let mappings = [
        mapping("root", "/", "web"),
        mapping("man", "/man", "man"),
        mapping("api", "/api/", "api"),
        mapping("api-v1", "/api/v1/", "api"),
    ];
    check(
        &mappings,
        &[
            case("/api/v1/users", Some("api-v1")),
            case("/api/v1/", Some("api-v1")),
            case("/api/v1", Some("api")),
            case("/api/v2/x", Some("api")),
            case("/mankind", Some("man")),
            case("/man", Some("man")),
            case("/ma", Some("root")),
            case("/API/v1/", Some("root")),
            // The query string is not part of the path.
            case("/ma?x=/mankind", Some("root")),
            case("/api/v1/?q", Some("api-v1")),
            case("/api/v1#frag", Some("api")),
            // Absolute-form: the path after the authority.
            case("http://example.com/api/v1/x", Some("api-v1")),
            case("HTTPS://example.com?x", Some("root")),
            // Asterisk-form has no path that starts with `/`.
            case("*", None),
        ],
    );
}

#[test]
fn nothing_matches() {
    let mappings = [
        mapping("api", "/api/", "api"),
        shadow("api-shadow", "/api/", "s"),
    ];
    check(
        &mappings,
        &[
            case("/", None),
            case("/ap", None),
            case("/other/api/", None),
            case("", None),
        ],
    );
}

#[test]
fn precedence_beats_length() {
    let mappings = [
        mapping("long", "/api/v1/users/", "users"),
        edited(mapping("short", "/api/", "api"), |c| {
            c.precedence = 10;
        }),
        edited(mapping("negative", "/api/v1/users/admin/", "admin"), |c| {
            c.precedence = -1;
        }),
    ];
    check(
        &mappings,
        &[
            case("/api/v1/users/1", Some("short")),
            case("/api/v1/users/admin/1", Some("short")),
            case("/other", None),
        ],
    );
    let mappings = [
        mapping("long", "/api/v1/users/", "users"),
        edited(mapping("negative", "/api/v1/users/admin/", "admin"), |c| {
            c.precedence = -1;
        }),
    ];
    check(&mappings, &[case("/api/v1/users/admin/1", Some("long"))]);
}

#[test]
fn host_with_and_without_port() {
    let mappings = [
        mapping("any", "/", "web"),
        edited(mapping("bare", "/", "web"), |c| {
            c.host = Some("example.com".to_owned());
        }),
        edited(mapping("port", "/", "web"), |c| {
            c.host = Some("example.com:8080".to_owned());
        }),
        edited(mapping("regex", "/", "web"), |c| {
            c.host = Some(r"[a-z]+\.example\.org(:\d+)?".to_owned());
            c.host_regex = true;
        }),
    ];
    let on = |host| Case {
        host,
        ..case("/x", None)
    };
    check(
        &mappings,
        &[
            Case {
                expect: Some("bare"),
                ..on(Some("example.com"))
            },
            Case {
                expect: Some("bare"),
                ..on(Some("EXAMPLE.com"))
            },
            Case {
                expect: Some("port"),
                ..on(Some("example.com:8080"))
            },
            Case {
                expect: Some("any"),
                ..on(Some("example.com:80"))
            },
            Case {
                expect: Some("any"),
                ..on(Some("example.comm"))
            },
            Case {
                expect: Some("regex"),
                ..on(Some("www.example.org:81"))
            },
            // The regex must match the whole value.
            Case {
                expect: Some("any"),
                ..on(Some("www.example.org.evil"))
            },
            Case {
                expect: Some("any"),
                ..on(None)
            },
            // An absolute-form target's authority stands for the Host.
            Case {
                target: "http://example.com:8080/x",
                expect: Some("port"),
                ..on(Some("example.com"))
            },
        ],
    );
}

#[test]
fn method() {
    let mappings = [
        mapping("any", "/x/", "web"),
        edited(mapping("post", "/x/", "web"), |c| {
            c.method = Some("POST".to_owned());
        }),
        edited(mapping("delete", "/x/", "web"), |c| {
            c.method = Some("DELETE".to_owned());
        }),
    ];
    let with = |method| Case {
        method,
        ..case("/x/1", None)
    };
    check(
        &mappings,
        &[
            Case {
                expect: Some("post"),
                ..with("POST")
            },
            Case {
                expect: Some("delete"),
                ..with("DELETE")
            },
            Case {
                expect: Some("any"),
                ..with("GET")
            },
            // Methods are case-sensitive.
            Case {
                expect: Some("any"),
                ..with("post")
            },
        ],
    );
}

#[test]
fn headers_present_exact_and_regex() {
    let mappings = [
        mapping("plain", "/", "web"),
        edited(mapping("present", "/", "web"), |c| {
            c.headers = vec![("x-canary".to_owned(), HeaderMatch::Present)];
        }),
        edited(mapping("exact", "/", "web"), |c| {
            c.headers = vec![("x-env".to_owned(), HeaderMatch::Exact("staging".to_owned()))];
        }),
        edited(mapping("regex", "/", "web"), |c| {
            c.regex_headers = vec![("x-user".to_owned(), r"\d+".to_owned())];
        }),
    ];
    let with = |headers, expect| Case {
        headers,
        expect: Some(expect),
        ..case("/x", None)
    };
    check(
        &mappings,
        &[
            with(&[], "plain"),
            with(&[("X-Canary", "")], "present"),
            with(&[("x-canary", "1")], "present"),
            with(&[("X-ENV", "staging")], "exact"),
            with(&[("x-env", "Staging")], "plain"),
            with(&[("x-env", "staging2")], "plain"),
            with(&[("X-User", "1234")], "regex"),
            with(&[("x-user", "12a")], "plain"),
            with(&[("x-user", "")], "plain"),
            // Repeated fields are matched joined with `,`, as Envoy does.
            with(&[("x-env", "staging"), ("x-env", "prod")], "plain"),
            with(&[("x-user", "1"), ("x-user", "2")], "plain"),
        ],
    );
    let joined = [
        edited(mapping("exact", "/", "web"), |c| {
            c.headers = vec![("x-env".to_owned(), HeaderMatch::Exact("a,b".to_owned()))];
        }),
        edited(mapping("regex", "/", "web"), |c| {
            c.regex_headers = vec![("x-user".to_owned(), r"\d+,\d+,\d+".to_owned())];
        }),
    ];
    check(
        &joined,
        &[
            with(&[("x-env", "a"), ("x-env", "b")], "exact"),
            with(&[("x-env", "a,b")], "exact"),
            with(
                &[("x-user", "1"), ("x-user", "2"), ("X-User", "3")],
                "regex",
            ),
            Case {
                headers: &[("x-env", "a"), ("x-env", "b"), ("x-env", "")],
                ..case("/x", None)
            },
        ],
    );
}

#[test]
fn a_constraint_beats_no_constraint_when_the_key_ties() {
    // Same precedence, prefix and method: the host or header group must still be tried
    // before the unconstrained one, whichever came first.
    let mappings = [
        mapping("a-plain", "/x/", "web"),
        edited(mapping("b-host", "/x/", "web"), |c| {
            c.host = Some("h".to_owned());
        }),
        edited(mapping("c-header", "/x/", "web"), |c| {
            c.headers = vec![("x-a".to_owned(), HeaderMatch::Present)];
        }),
    ];
    check(
        &mappings,
        &[
            Case {
                host: Some("h"),
                expect: Some("b-host"),
                ..case("/x/", None)
            },
            Case {
                headers: &[("x-a", "1")],
                expect: Some("c-header"),
                ..case("/x/", None)
            },
            case("/x/", Some("a-plain")),
        ],
    );
}

#[test]
fn regex_prefix_must_match_the_whole_path() {
    let mappings = [
        mapping("root", "/", "web"),
        edited(mapping("users", r"/users/\d+", "users"), |c| {
            c.prefix_regex = true;
        }),
        edited(mapping("alt", "/a|/ab", "alt"), |c| {
            c.prefix_regex = true;
        }),
    ];
    check(
        &mappings,
        &[
            case("/users/42", Some("users")),
            case("/users/42?x=1", Some("users")),
            case("/users/42/", Some("root")),
            case("/users/x", Some("root")),
            case("/x/users/42", Some("root")),
            case("/ab", Some("alt")),
            case("/abc", Some("root")),
        ],
    );
}

#[test]
fn case_insensitive_prefix() {
    let mappings = [
        mapping("root", "/", "web"),
        edited(mapping("api", "/Api/", "api"), |c| {
            c.case_sensitive = false;
        }),
        mapping("api-exact", "/api/exact/", "api"),
    ];
    check(
        &mappings,
        &[
            case("/api/x", Some("api")),
            case("/API/x", Some("api")),
            case("/aPi/exact/", Some("api")),
            case("/api/exact/", Some("api-exact")),
            case("/ap", Some("root")),
        ],
    );
}

#[test]
fn captured_requests_are_routed_from_their_bytes() {
    use bytes::Bytes;
    use std::time::SystemTime;

    use crate::http::{HeaderPos, Request};

    let wire = b"POST http://ignored/api/v1/x?y HTTP/1.1\r\nX-Env: staging\r\nHost: shop\r\n\r\n";
    let text = std::str::from_utf8(wire).unwrap();
    let at = |needle: &str| {
        let start = text.find(needle).unwrap();
        (start, start + needle.len())
    };
    let header = |name: &str, value: &str| HeaderPos {
        name: at(name),
        value: at(value),
        line: (at(name).0, at(value).1 + 2),
    };
    let request = Request {
        raw: Bytes::from_static(wire),
        head_len: wire.len(),
        method: at("POST"),
        target: at("http://ignored/api/v1/x?y"),
        version: 1,
        headers: vec![header("X-Env", "staging"), header("Host", "shop")],
        host: Some(at("shop")),
        body: (wire.len(), wire.len()),
        first_byte: SystemTime::UNIX_EPOCH,
        last_byte: SystemTime::UNIX_EPOCH,
        sequence: 0,
    };
    let mappings = [
        mapping("api", "/api/", "api"),
        edited(mapping("staging", "/api/v1/", "api"), |c| {
            c.headers = vec![("x-env".to_owned(), HeaderMatch::Exact("staging".to_owned()))];
            c.method = Some("POST".to_owned());
        }),
        edited(mapping("shop", "/api/v1/", "api"), |c| {
            c.host = Some("shop".to_owned());
        }),
    ];
    let (table, _) = build(&mappings);
    assert_eq!(table.route(&request).unwrap().rkey, "staging.default.1");
    // The absolute-form authority, not the Host field, is the host (RFC 9112 §3.2.2).
    let shop = table
        .groups()
        .iter()
        .find(|g| g.rkey == "shop.default.1")
        .unwrap();
    assert!(!shop.matches(&request), "{table}");
    assert_eq!(
        request.header_values("x-env").collect::<Vec<_>>(),
        [b"staging"]
    );
}

#[test]
fn ties_are_broken_by_the_total_length_of_constraints_not_another_measure() {
    // Each pair: the same precedence and prefix; the first built would win a tie, so the
    // other must win by being longer as Ambassador measures it (name plus value, summed).
    let regex_header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let headers: &[(&str, &str)] = &[
        ("ab", "cdefgh"),
        ("abcd", "efg"),
        ("abcdef", "v"),
        ("abc", "vvv"),
        ("a", "xy"),
        ("b", "zw"),
        ("host-ish", "v"),
    ];
    // Regex header lengths: 2 + 6 = 8 beats 4 + 3 = 7 (as products, 12 each: a tie).
    let regex = [
        edited(mapping("seven", "/", "web"), |c| {
            c.regex_headers = vec![regex_header("abcd", "efg")];
        }),
        edited(mapping("eight", "/", "web"), |c| {
            c.regex_headers = vec![regex_header("ab", "cdefgh")];
        }),
    ];
    check(
        &regex,
        &[Case {
            headers,
            ..case("/x", Some("eight"))
        }],
    );
    // Exact headers: 6 + 1 = 7 beats 3 + 3 = 6 (as products, 6 against 9).
    let exact = [
        edited(mapping("six", "/", "web"), |c| {
            c.headers = vec![("abc".to_owned(), HeaderMatch::Exact("vvv".to_owned()))];
        }),
        edited(mapping("seven", "/", "web"), |c| {
            c.headers = vec![("abcdef".to_owned(), HeaderMatch::Exact("v".to_owned()))];
        }),
    ];
    check(
        &exact,
        &[Case {
            headers,
            ..case("/x", Some("seven"))
        }],
    );
    // A host counts as `:authority` plus its value: 10 + 2 = 12 loses to a header of 15.
    let host = [
        edited(mapping("host", "/", "web"), |c| {
            c.host = Some("ab".to_owned())
        }),
        edited(mapping("header", "/", "web"), |c| {
            c.headers = vec![(
                "abcdefghijklmn".to_owned(),
                HeaderMatch::Exact("x".to_owned()),
            )];
        }),
    ];
    check(
        &host,
        &[Case {
            host: Some("ab"),
            headers: &[("abcdefghijklmn", "x")],
            ..case("/x", Some("header"))
        }],
    );
    // Regex headers count one more each: two of 3 (+1 each, 8) beat one of 6 (+1, 7), though
    // their names and values are as long (6 each).
    let count = [
        edited(mapping("one", "/", "web"), |c| {
            c.regex_headers = vec![regex_header("abcd", "..")];
        }),
        edited(mapping("two", "/", "web"), |c| {
            c.regex_headers = vec![regex_header("a", ".*"), regex_header("b", ".*")];
        }),
    ];
    check(
        &count,
        &[Case {
            headers: &[("a", "1"), ("b", "2"), ("abcd", "xy")],
            ..case("/x", Some("two"))
        }],
    );
}

#[test]
fn a_captured_request_is_routed_by_its_own_bytes() {
    let mappings = [
        mapping("any", "/", "web"),
        edited(mapping("api", "/", "web"), |c| {
            c.host = Some("api.example".to_owned());
        }),
        edited(mapping("canary", "/", "web"), |c| {
            c.headers = vec![("x-canary".to_owned(), HeaderMatch::Present)];
            c.method = Some("POST".to_owned());
        }),
    ];
    let (table, _) = build(&mappings);
    let rkey = |wire: &[u8]| {
        let request = parsed(wire);
        table.route(&request).map(|group| group.rkey.clone())
    };
    assert_eq!(
        rkey(b"GET /x HTTP/1.1\r\nHost: api.example\r\n\r\n").as_deref(),
        Some("api.default.1")
    );
    assert_eq!(
        rkey(b"POST /x HTTP/1.1\r\nHost: other\r\nX-Canary: 1\r\nContent-Length: 0\r\n\r\n")
            .as_deref(),
        Some("canary.default.1")
    );
    assert_eq!(
        rkey(b"GET /x HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
        Some("any.default.1")
    );
}
