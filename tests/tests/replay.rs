//! Replay end to end, with the real TC program: production clients talk to a production
//! server in one namespace; shadowd watches its interface and sends copies to recording
//! shadow servers in another. Every test checks the loss ledger balances.

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    path::PathBuf,
    time::{Duration, Instant},
};

use shadowd_tests::{
    clients::{Piece, connect, curl_ok, exchange, read_responses},
    eventually,
    fixtures::{MappingFile, PRODUCTION, ShadowSetup, production_get, user_example},
    http_server::{Behaviour, HttpServer},
    metrics::Scrape,
    netns::{ShadowHost, Topology},
    run,
    shadowd::Shadowd,
    shadowing::{expected_copy, multiset, target},
};

/// Sums of a replay counter for one mapping.
fn replay(scrape: &Scrape, counter: &str, mapping: &str) -> u64 {
    scrape.replay(counter, mapping)
}

/// The loss ledger of `mapping` balances.
fn assert_ledger_balances(scrape: &Scrape, mapping: &str) {
    scrape.assert_ledger_balances(mapping);
}

/// Request bodies for curl, removed on drop.
struct BodyFiles(Vec<PathBuf>);

impl BodyFiles {
    fn new(prefix: &str, sizes: &[usize]) -> BodyFiles {
        BodyFiles(
            sizes
                .iter()
                .map(|size| {
                    let path = std::env::temp_dir().join(format!("{prefix}-body-{size}"));
                    let bytes: Vec<u8> = (0..*size)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                        .collect();
                    std::fs::write(&path, bytes).unwrap();
                    path
                })
                .collect(),
        )
    }

    fn at(&self, i: usize) -> String {
        format!("@{}", self.0[i].display())
    }
}

impl Drop for BodyFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            std::fs::remove_file(path).ok();
        }
    }
}

/// The mix of the user's-example test. Returns nothing: the production server records what it got.
fn production_mix(topo: &Topology, bodies: &BodyFiles) {
    let url = |path: &str| format!("http://{PRODUCTION}{path}");
    let host = ["-H", "Host: myservice"];
    // GETs with query strings, and paths outside the prefix.
    for path in [
        "/myservice/search?q=a&page=1",
        "/myservice/items/7?x=%20y",
        "/other/x",
        "/myservicex",
    ] {
        curl_ok(&topo.client, &[&host[..], &[&url(path)]].concat());
    }
    // A keep-alive connection with many requests (one curl, 25 URLs).
    let many: Vec<String> = (0..25)
        .map(|i| url(&format!("/myservice/keepalive/{i}")))
        .collect();
    let mut command = topo.client.command("curl");
    command.args([
        "-sS",
        "--max-time",
        "30",
        "-w",
        "%{http_code}",
        "-H",
        "Host: myservice",
    ]);
    for url in &many {
        command.args(["-o", "/dev/null", url]);
    }
    assert_eq!(run(&mut command), "200".repeat(25));
    // Bodies: small, 64 KiB, 2 MiB binary; and Expect: 100-continue with 1 MiB.
    for (i, path) in ["/myservice/small", "/myservice/64k", "/myservice/2m"]
        .iter()
        .enumerate()
    {
        curl_ok(
            &topo.client,
            &[&host[..], &["--data-binary", &bodies.at(i), &url(path)]].concat(),
        );
    }
    curl_ok(
        &topo.client,
        &[
            &host[..],
            &[
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                &bodies.at(3),
                &url("/myservice/expect"),
            ],
        ]
        .concat(),
    );
    // Many concurrent connections.
    std::thread::scope(|scope| {
        for i in 0..16 {
            scope.spawn(move || {
                let request = format!("GET /myservice/concurrent/{i} HTTP/1.1\r\nHost: myservice\r\nUser-Agent: t\r\n\r\n");
                assert_eq!(exchange(&topo.client, PRODUCTION, &[Piece::now(request.as_bytes())], 1), [200]);
            });
        }
    });
    // A chunked upload with odd chunk sizes, written slowly.
    let chunks: [&[u8]; 6] = [
        b"POST /myservice/chunked HTTP/1.1\r\nHost: myservice\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1\r\na\r\n",
        b"11\r\n0123456789abcdefg\r\n",
        b"3;note=odd\r\nxyz\r\n",
        b"7",
        b"\r\n1234567\r\n0\r\nX-Trailer: t\r\n\r\n",
    ];
    let pieces: Vec<Piece<'_>> = chunks
        .iter()
        .map(|bytes| Piece {
            bytes,
            pause: Duration::from_millis(40),
        })
        .collect();
    assert_eq!(exchange(&topo.client, PRODUCTION, &pieces, 1), [200]);
    // Pipelined requests, odd header case and repeated names, a Host with a port, HTTP/1.0
    // without Host.
    let pipelined = b"GET /myservice/pipe/1 HTTP/1.1\r\nHost: myservice:80\r\nX-Rep: 1\r\nx-rep: 2\r\nX-REP: 3\r\n\r\nPOST /myservice/pipe/2 HTTP/1.1\r\nHOST: myservice\r\ncontent-LENGTH: 3\r\n\r\nabcGET /other/pipe/3 HTTP/1.1\r\nHost: myservice\r\n\r\n";
    assert_eq!(
        exchange(&topo.client, PRODUCTION, &[Piece::now(pipelined)], 3),
        [200, 200, 200]
    );
    let old = b"GET /myservice/http10 HTTP/1.0\r\nAccept: */*\r\n\r\n";
    assert_eq!(
        exchange(&topo.client, PRODUCTION, &[Piece::now(old)], 1),
        [200]
    );
}

#[test]
fn the_users_example_every_request_copied_exactly_once_byte_exact() {
    let setup = ShadowSetup::new(Behaviour::default());
    let (topo, production, shadow) = (&setup.topo, &setup.production, &setup.shadow);
    let mappings = MappingFile::new(&user_example(""));
    let bodies = BodyFiles::new(&topo.client.name, &[100, 64 << 10, 2 << 20, 1 << 20]);
    let daemon = setup.start(&mappings);

    production_mix(topo, &bodies);

    let received = production.received_with_connections();
    let expected: Vec<(u64, Vec<u8>)> = received
        .iter()
        .filter(|(_, raw)| target(raw).starts_with("/myservice/"))
        .map(|(conn, raw)| (*conn, expected_copy(raw)))
        .collect();
    assert!(
        expected.len() >= 50,
        "{} requests under the prefix",
        expected.len()
    );
    eventually(
        Duration::from_secs(30),
        "the shadow to receive every copy",
        || (shadow.received().len() >= expected.len()).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let copies = shadow.received();
    let exact = multiset(copies.iter().cloned());
    let wanted = multiset(expected.iter().map(|(_, raw)| raw.clone()));
    let matching: usize = wanted
        .iter()
        .map(|(raw, n)| (*n).min(exact.get(raw).copied().unwrap_or(0)))
        .sum();
    println!(
        "fidelity: {matching} exact copies of {} expected, {} received",
        expected.len(),
        copies.len()
    );
    assert_eq!(
        exact, wanted,
        "the shadow got exactly the copies, once each"
    );
    assert!(
        copies
            .iter()
            .all(|raw| target(raw).starts_with("/myservice/"))
    );

    // Per client connection, copies arrived in the original order.
    for conn in received
        .iter()
        .map(|(c, _)| *c)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let order: Vec<&Vec<u8>> = expected
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, raw)| raw)
            .collect();
        let seen: Vec<&Vec<u8>> = copies.iter().filter(|raw| order.contains(raw)).collect();
        assert_eq!(seen, order, "order of connection {conn}");
    }

    let scrape = daemon.scrape();
    let mapping = "myservice-shadow-mapping";
    assert_eq!(
        replay(&scrape, "observed_requests_total", mapping),
        expected.len() as u64
    );
    assert_eq!(
        replay(&scrape, "copied_requests_total", mapping),
        expected.len() as u64
    );
    assert_eq!(replay(&scrape, "dropped_requests_total", mapping), 0);
    assert_ledger_balances(&scrape, mapping);
}

#[test]
fn weight_30_copies_each_request_independently_with_probability_30_percent() {
    let setup = ShadowSetup::new(Behaviour::default());
    let (topo, shadow) = (&setup.topo, &setup.shadow);
    let mappings = MappingFile::new(&user_example("weight: 30\n"));
    let daemon = setup.start(&mappings);

    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 500;
    let total = CONNECTIONS * PER_CONNECTION;
    std::thread::scope(|scope| {
        for c in 0..CONNECTIONS {
            scope.spawn(move || {
                let requests: Vec<String> = (0..PER_CONNECTION)
                    .map(|i| {
                        format!("GET /myservice/w/{c}/{i} HTTP/1.1\r\nHost: myservice\r\n\r\n")
                    })
                    .collect();
                let joined = requests.concat();
                let statuses = exchange(
                    &topo.client,
                    PRODUCTION,
                    &[Piece::now(joined.as_bytes())],
                    PER_CONNECTION,
                );
                assert!(statuses.iter().all(|s| *s == 200));
            });
        }
    });
    let mapping = "myservice-shadow-mapping";
    let scrape = daemon.accounted_for(mapping, total as u64, Duration::from_secs(30));
    assert_eq!(replay(&scrape, "dropped_requests_total", mapping), 0);
    let copied = replay(&scrape, "copied_requests_total", mapping);
    let copies = shadow.received();
    assert_eq!(copies.len() as u64, copied);

    // Which requests of each connection were copied, in the connection's order.
    let mut sampled = vec![vec![false; PER_CONNECTION]; CONNECTIONS];
    for raw in &copies {
        let path = target(raw);
        let expected = format!("GET {path} HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n");
        assert_eq!(raw, expected.as_bytes());
        let mut ids = path["/myservice/w/".len()..].split('/');
        let mut next = || {
            ids.next()
                .and_then(|n| n.parse::<usize>().ok())
                .expect("id")
        };
        let (c, i) = (next(), next());
        assert!(!sampled[c][i], "{path} copied twice");
        sampled[c][i] = true;
    }

    // Every bound is the expectation ± 6 standard deviations: an honest sampler fails one
    // of them about once in 10^8 runs.
    // Binomial(2000, 0.3): mean 600, sd 20.5.
    assert!((477..=723).contains(&copied), "{copied} of {total} copied");
    // Each connection on its own, Binomial(500, 0.3): mean 150, sd 10.2. A sampler that
    // decides once per connection copies 0 or 500 of it.
    for (c, requests) in sampled.iter().enumerate() {
        let n = requests.iter().filter(|s| **s).count();
        assert!(
            (89..=211).contains(&n),
            "connection {c}: {n} of {PER_CONNECTION} copied"
        );
    }
    // Independence: whether a request is copied does not depend on whether the one before
    // it was. The share copied after a copied request and after a skipped one are both
    // 0.3; sd about 0.019 (~600 requests after a copy) and 0.012 (~1400 after a skip). A
    // counter ("3 of every 10") gives 2/3 after a copy; one that spreads its copies gives 0.
    let (mut after_copy, mut after_skip) = ((0u32, 0u32), (0u32, 0u32));
    for requests in &sampled {
        for pair in requests.windows(2) {
            let counts = if pair[0] {
                &mut after_copy
            } else {
                &mut after_skip
            };
            counts.0 += u32::from(pair[1]);
            counts.1 += 1;
        }
    }
    for (after, (hits, of)) in [("a copied", after_copy), ("a skipped", after_skip)] {
        let share = f64::from(hits) / f64::from(of);
        let sd = (0.3 * 0.7 / f64::from(of)).sqrt();
        assert!(
            (share - 0.3).abs() <= 6.0 * sd,
            "after {after} request {hits} of {of} copied ({share:.3}, sd {sd:.3})"
        );
    }
}

/// `count` GETs to production, each on its own connection; each must answer 200. Returns
/// the median time a request took, from connect to the last byte of its response.
fn production_gets(topo: &Topology, tag: &str, count: usize) -> Duration {
    let mut took: Vec<Duration> = (0..count)
        .map(|i| {
            let started = Instant::now();
            assert_eq!(production_get(topo, &format!("/myservice/{tag}/{i}")), 200);
            started.elapsed()
        })
        .collect();
    took.sort();
    took[count / 2]
}

/// How many requests under `/myservice/{tag}/` a shadow server received.
fn received_under(server: &HttpServer, tag: &str) -> usize {
    let prefix = format!("/myservice/{tag}/");
    server
        .received()
        .iter()
        .filter(|raw| target(raw).starts_with(&prefix))
        .count()
}

#[test]
fn copies_beyond_the_replay_budget_are_dropped_as_queue_full_and_the_budget_comes_back() {
    // The shadow takes 1 s per answer and the budget holds one copy (3 KiB of overhead and
    // its bytes): copies that arrive while one is out find no room.
    let setup = ShadowSetup::with_shadow(
        Behaviour::default(),
        Behaviour {
            delay: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let module = "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: shadowd\nspec:\n  config:\n    limits:\n      max_replay_bytes: 4096\n";
    let mappings = MappingFile::new(&(user_example("timeout_ms: 5000\n") + module));
    let daemon = setup.start(&mappings);
    let mapping = "myservice-shadow-mapping";
    let started = Instant::now();
    std::thread::scope(|scope| {
        for i in 0..10 {
            let topo = &setup.topo;
            scope.spawn(move || {
                assert_eq!(production_get(topo, &format!("/myservice/full/{i}")), 200);
            });
        }
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "production took {took:?}: it waited on the copies"
    );
    let scrape = daemon.accounted_for(mapping, 10, Duration::from_secs(20));
    let copied = replay(&scrape, "copied_requests_total", mapping);
    let full = scrape.sum(
        "shadowd_replay_dropped_requests_total",
        &[("mapping", mapping), ("reason", "queue_full")],
    );
    assert!(
        copied >= 1 && full >= 1,
        "{copied} copied, {full} queue_full"
    );
    assert_eq!(
        copied + full,
        10,
        "every request copied or counted queue_full"
    );
    assert_eq!(received_under(&setup.shadow, "full"), copied as usize);
    assert_eq!(
        scrape.sum("shadowd_replay_queued_bytes", &[]),
        0,
        "the budget is whole again"
    );

    // With the budget returned, the next copy goes out.
    assert_eq!(production_get(&setup.topo, "/myservice/after/0"), 200);
    let scrape = daemon.accounted_for(mapping, 11, Duration::from_secs(20));
    assert_eq!(
        replay(&scrape, "copied_requests_total", mapping),
        copied + 1
    );
    assert_eq!(received_under(&setup.shadow, "after"), 1);
}

#[test]
fn a_down_hanging_or_slow_shadow_never_touches_production_and_recovers() {
    let topo = Topology::new();
    let shadow_host = ShadowHost::new(&topo);
    topo.server
        .set_hosts(&[(ShadowHost::ADDRESS, "myservice-shadow.default")]);
    let _production = HttpServer::start(&topo.server, PRODUCTION);
    let mappings = MappingFile::new(&user_example("timeout_ms: 300\n"));
    let daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            Topology::SERVER_IF,
            "--config",
            mappings.arg(),
        ],
    );
    let mapping = "myservice-shadow-mapping";
    // Each phase is settled before the next: every request observed so far is accounted
    // for, so the counts below are exact. One more than the requests sent is a retry (which
    // the README rules out), one fewer a copy lost without a reason.
    type Ledger = (BTreeMap<String, u64>, u64);
    let settle = |observed: u64| -> Ledger {
        let ledger = daemon
            .accounted_for(mapping, observed, Duration::from_secs(20))
            .ledger(mapping);
        (ledger.dropped, ledger.copied)
    };
    let plus = |ledger: &Ledger, reason: &str, n: u64, copied: u64| -> Ledger {
        let mut drops = ledger.0.clone();
        *drops.entry(reason.to_string()).or_default() += n;
        (drops, ledger.1 + copied)
    };
    // The production server answers at once; a production request that waited for the shadow
    // would take at least the copy's 300 ms timeout (forever, for the hanging shadow).
    let unaffected = Duration::from_millis(300);
    let mut observed = 0;
    // One phase: `count` production requests; then the settled ledger, after checking that
    // production was not slowed and that the shadow server, if any, got each copy once.
    let mut phase = |tag: &str, count: usize, shadow: Option<&HttpServer>| -> Ledger {
        let took = production_gets(&topo, tag, count);
        assert!(
            took < unaffected,
            "production median {took:?} in phase {tag}"
        );
        observed += count as u64;
        let ledger = settle(observed);
        if let Some(server) = shadow {
            assert_eq!(
                received_under(server, tag),
                count,
                "copies received in phase {tag}"
            );
        }
        ledger
    };

    // Down: nothing listens. The first connects fail; after five in a row the service's
    // breaker opens and the rest fail at once, without a connect.
    let down = phase("down", 20, None);
    let failed = down.0.get("connect_failed").copied().unwrap_or(0);
    let refused = down.0.get("circuit_open").copied().unwrap_or(0);
    assert_eq!(
        (failed + refused, down.1),
        (20, 0),
        "ledger after phase down: {down:?}"
    );
    assert!(failed >= 5 && refused > 0, "the breaker opened: {down:?}");

    // Hanging: accepts, reads, never answers. Requests go on until the breaker's pause ends
    // and a probe connects (each failing at once before that); then each copy is sent once
    // and times out.
    let hanging = HttpServer::start_with(
        &shadow_host.ns,
        &format!("{}:80", ShadowHost::ADDRESS),
        Behaviour {
            never_answer: true,
            ..Default::default()
        },
    );
    let mut woken = down;
    for wake in 0.. {
        assert!(
            wake < 200,
            "the breaker never let a probe through: {woken:?}"
        );
        woken = phase(&format!("wake{wake}"), 1, None);
        if received_under(&hanging, &format!("wake{wake}")) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let hang = phase("hang", 20, Some(&hanging));
    assert_eq!(
        hang,
        plus(&woken, "timeout", 20, 0),
        "ledger after phase hang"
    );
    drop(hanging);
    std::thread::sleep(Duration::from_millis(200));

    // Slow: 1 s per response, beyond the 300 ms timeout. The connection succeeds, so the
    // breaker stays closed.
    let slow = HttpServer::start_with(
        &shadow_host.ns,
        &format!("{}:80", ShadowHost::ADDRESS),
        Behaviour {
            delay: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let slowed = phase("slow", 10, Some(&slow));
    assert_eq!(
        slowed,
        plus(&hang, "timeout", 10, 0),
        "ledger after phase slow"
    );
    drop(slow);
    std::thread::sleep(Duration::from_millis(200));

    let rss = daemon.rss_kib();
    assert!(rss < 256 * 1024, "shadowd RSS {rss} KiB");

    // Recovered: every copy flows again, once.
    let healthy = HttpServer::start(&shadow_host.ns, &format!("{}:80", ShadowHost::ADDRESS));
    let recovered = phase("ok", 10, Some(&healthy));
    assert_eq!(
        recovered,
        plus(&slowed, "timeout", 0, 10),
        "ledger after phase ok"
    );
}

#[test]
fn two_groups_to_two_shadows_and_a_shadow_only_group_copies_nothing() {
    let topo = Topology::new();
    let shadow_host = ShadowHost::new(&topo);
    topo.server
        .set_hosts(&[(ShadowHost::ADDRESS, "shadow-a.default shadow-b.default")]);
    let _production = HttpServer::start(&topo.server, PRODUCTION);
    let shadow_a = HttpServer::start(&shadow_host.ns, &format!("{}:80", ShadowHost::ADDRESS));
    let shadow_b = HttpServer::start(&shadow_host.ns, &format!("{}:8081", ShadowHost::ADDRESS));
    let mapping = |name: &str, prefix: &str, service: &str, shadow: bool| {
        format!(
            "---\napiVersion: ambassador/v0\nkind: Mapping\nname: {name}\nprefix: {prefix}\nservice: {service}\nshadow: {shadow}\n"
        )
    };
    let text = [
        mapping("a-prod", "/a/", "myservice.default", false),
        mapping("a-shadow", "/a/", "shadow-a.default", true),
        mapping("b-prod", "/b/", "myservice.default", false),
        mapping("b-shadow", "/b/", "shadow-b.default:8081", true),
        mapping("c-shadow-only", "/c/", "shadow-a.default", true),
    ]
    .concat();
    let mappings = MappingFile::new(&text);
    let daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            Topology::SERVER_IF,
            "--config",
            mappings.arg(),
        ],
    );

    for path in ["/a/1", "/a/2", "/b/1", "/c/1", "/d/1"] {
        assert_eq!(production_get(&topo, path), 200);
    }
    eventually(
        Duration::from_secs(15),
        "both shadows to get their copies",
        || (shadow_a.received().len() >= 2 && !shadow_b.received().is_empty()).then_some(()),
    );
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "nothing left in flight",
        |scrape| {
            ["a-shadow", "b-shadow"]
                .iter()
                .all(|name| replay(scrape, "in_flight_requests", name) == 0)
        },
    );
    // Each request came on its own connection, and copies of different connections are
    // replayed independently: their order at the shadow is not production's.
    let targets = |server: &HttpServer| {
        let mut targets = server
            .received()
            .iter()
            .map(|raw| target(raw))
            .collect::<Vec<_>>();
        targets.sort();
        targets
    };
    assert_eq!(targets(&shadow_a), ["/a/1", "/a/2"]);
    assert_eq!(targets(&shadow_b), ["/b/1"]);
    assert_eq!(
        replay(&scrape, "observed_requests_total", "c-shadow-only"),
        0
    );
    for name in ["a-shadow", "b-shadow"] {
        assert_ledger_balances(&scrape, name);
    }
}

#[test]
fn copies_to_a_shadow_on_a_captured_port_are_not_captured_again() {
    let topo = Topology::new();
    let _production = HttpServer::start(&topo.server, PRODUCTION);
    // The shadow sits behind the watched interface, on the capture port.
    let shadow = HttpServer::start(&topo.client, &format!("{}:80", Topology::CLIENT_V4));
    let text = format!(
        "apiVersion: ambassador/v0\nkind: Mapping\nname: prod\nprefix: /myservice/\nservice: myservice.default\n---\napiVersion: ambassador/v0\nkind: Mapping\nname: shadow\nprefix: /myservice/\nservice: {}\nshadow: true\n",
        Topology::CLIENT_V4
    );
    let mappings = MappingFile::new(&text);
    let daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            Topology::SERVER_IF,
            "--config",
            mappings.arg(),
        ],
    );
    production_gets(&topo, "loop", 5);
    eventually(Duration::from_secs(15), "the copies to arrive", || {
        (shadow.received().len() >= 5).then_some(())
    });
    // A copy captured again would be observed as a sixth request a moment later.
    std::thread::sleep(Duration::from_millis(500));
    let scrape = daemon.accounted_for("shadow", 5, Duration::from_secs(10));
    assert_eq!(
        shadow.received().len(),
        5,
        "each request copied once, copies not copied again"
    );
    assert_eq!(replay(&scrape, "copied_requests_total", "shadow"), 5);
    assert_eq!(scrape.sum("shadowd_http_requests_total", &[]), 5);
    assert!(scrape.sum("shadowd_tc_packets_total", &[("outcome", "loop_guarded")]) > 0);
    // The shadow's replies come back unmarked, into the interface, from a capture port:
    // the program turns them away, so only production's five answers are parsed and each
    // pairs with its request.
    assert!(
        scrape.sum(
            "shadowd_tc_packets_total",
            &[("outcome", "wrong_direction")]
        ) > 0,
        "the shadow's replies reached the program"
    );
    assert_eq!(scrape.sum("shadowd_http_responses_total", &[]), 5);
    assert_eq!(scrape.sum("shadowd_http_unpaired_responses_total", &[]), 0);
}

#[test]
fn replay_from_a_capture_file_sends_its_requests() {
    let topo = Topology::new();
    let shadow_host = ShadowHost::new(&topo);
    topo.server
        .set_hosts(&[(ShadowHost::ADDRESS, "myservice-shadow.default")]);
    let _production = HttpServer::start(&topo.server, PRODUCTION);
    let pcap = std::env::temp_dir().join(format!("{}-replay.pcap", topo.server.name));
    let log = std::env::temp_dir().join(format!("{}-tcpdump.log", topo.server.name));
    let mut tcpdump = topo
        .server
        .command("tcpdump")
        .args([
            "-i",
            Topology::SERVER_IF,
            "-s",
            "0",
            "-B",
            "65536",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&pcap)
        .args(["tcp", "port", "80"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("tcpdump");
    eventually(Duration::from_secs(10), "tcpdump to listen", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("listening on"))
            .then_some(())
    });
    let pipelined = b"GET /myservice/f/1 HTTP/1.1\r\nHost: myservice\r\n\r\nPOST /myservice/f/2 HTTP/1.1\r\nHost: myservice:80\r\nContent-Length: 4\r\n\r\nbodyGET /other HTTP/1.1\r\nHost: myservice\r\n\r\n";
    assert_eq!(
        exchange(&topo.client, PRODUCTION, &[Piece::now(pipelined)], 3),
        [200, 200, 200]
    );
    production_gets(&topo, "file", 3);
    eventually(
        Duration::from_secs(10),
        "the capture to hold the last request",
        || {
            let bytes = std::fs::read(&pcap).unwrap_or_default();
            bytes
                .windows(15)
                .any(|w| w == b"/myservice/file")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child; SIGINT makes tcpdump flush and exit.
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    tcpdump.wait().unwrap();
    std::fs::remove_file(&log).ok();

    let shadow = HttpServer::start(&shadow_host.ns, &format!("{}:80", ShadowHost::ADDRESS));
    let mappings = MappingFile::new(&user_example(""));
    let output = topo
        .server
        .command(shadowd_tests::shadowd::binary().to_str().unwrap())
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .args(["--config", mappings.arg()])
        .output()
        .expect("shadowd replay");
    std::fs::remove_file(&pcap).ok();
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{summary}");
    println!("{summary}");
    assert!(
        summary.contains("myservice-shadow-mapping: observed 5, copied 5"),
        "{summary}"
    );
    let copies: Vec<String> = shadow
        .received()
        .iter()
        .map(|raw| String::from_utf8_lossy(raw).into_owned())
        .collect();
    // Copies of one connection keep their order; different connections go in parallel.
    let position = |prefix: &str| copies.iter().position(|c| c.starts_with(prefix));
    assert!(position("GET /myservice/f/1") < position("POST /myservice/f/2"));
    let mut sorted = copies.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "GET /myservice/f/1 HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n",
            "GET /myservice/file/0 HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n",
            "GET /myservice/file/1 HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n",
            "GET /myservice/file/2 HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n",
            "POST /myservice/f/2 HTTP/1.1\r\nHost: myservice-shadow:80\r\nContent-Length: 4\r\n\r\nbody",
        ]
    );
}

#[test]
fn idle_keep_alive_clients_beyond_the_upstream_pool_lose_nothing() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start_with_config(mappings.arg(), &["--shadow-max-connections", "4"]);
    let mapping = "myservice-shadow-mapping";
    let request = |round: usize, i: usize| {
        format!("GET /myservice/idle/{round}/{i} HTTP/1.1\r\nHost: myservice\r\n\r\n")
    };
    // 40 keep-alive clients, each with one request answered, then idle with its connection
    // open: a replay that tied an upstream connection to an idle client connection would let
    // 4 of them starve the other 36.
    let mut streams: Vec<TcpStream> = setup
        .topo
        .client
        .enter(|| (0..40).map(|_| connect(PRODUCTION)).collect());
    for round in 0..2 {
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.write_all(request(round, i).as_bytes()).unwrap();
        }
        for stream in &mut streams {
            assert_eq!(read_responses(stream, 1), [200]);
        }
        let copies = 40 * (round as u64 + 1);
        let scrape = daemon.accounted_for(mapping, copies, Duration::from_secs(20));
        assert_eq!(replay(&scrape, "copied_requests_total", mapping), copies);
        // The 40 client connections, open and idle, hold no replay state.
        assert_eq!(scrape.sum("shadowd_replay_active_connections", &[]), 0);
    }
    let mut expected: Vec<String> = (0..2)
        .flat_map(|round| (0..40).map(move |i| format!("/myservice/idle/{round}/{i}")))
        .collect();
    let mut received: Vec<String> = setup.shadow.received().iter().map(|r| target(r)).collect();
    expected.sort();
    received.sort();
    assert_eq!(received, expected, "every request copied once");
}
