//! The capture path with the real TC program, in namespaces: every payload byte of both
//! directions reaches userspace through either output (ring buffer or mirror veth), only
//! capture ports are copied, marked packets are skipped, a broken mirror or a full ring buffer
//! never touches production, and nothing is left behind.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    time::Duration,
};

use aya::programs::loaded_programs;
use shadowd_tests::{
    eventually,
    http_server::HttpServer,
    metrics::Scrape,
    netns::{Netns, Topology},
    run,
    shadowd::{Shadowd, binary},
    tcx,
};

const CAPTURE_PORT: &str = "8080";
const OTHER_PORT: &str = "9090";
const LOOP_MARK: u32 = 0x5AD0;

fn shadowd_args() -> Vec<&'static str> {
    vec![
        "--interface",
        Topology::SERVER_IF,
        "--capture-port",
        CAPTURE_PORT,
        "--loop-guard-mark",
        "0x5AD0",
        "--loop-guard-mask",
        "0xFFFF",
    ]
}

/// The same with the clones sent to a mirror veth instead of the (default) ring buffer.
fn mirror_args() -> Vec<&'static str> {
    let mut args = shadowd_args();
    args.extend(["--capture-output", "mirror"]);
    args
}

/// Runs curl in `ns`; returns (status code, body).
fn curl(ns: &Netns, args: &[&str]) -> (String, Vec<u8>) {
    let body_file = std::env::temp_dir().join(format!("{}-curl-body", ns.name));
    let code = run(ns
        .command("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body_file)
        .args(["-w", "%{http_code}"])
        .args(args));
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    (code, body)
}

/// The requests of the byte-count test: small and larger GETs over IPv4, a 2 MiB POST, a
/// GET over IPv6.
fn client_mix(ns: &Netns, post_file: &str) -> Vec<(String, Vec<u8>)> {
    let v4 = format!("http://{}:{CAPTURE_PORT}", Topology::SERVER_V4);
    let v6 = format!("http://[{}]:{CAPTURE_PORT}", Topology::SERVER_V6);
    vec![
        curl(ns, &[&format!("{v4}/bytes/1000")]),
        curl(
            ns,
            &[&format!("{v4}/bytes/300000"), &format!("{v4}/hello?x=1")],
        ),
        curl(
            ns,
            &[
                "--data-binary",
                &format!("@{post_file}"),
                &format!("{v4}/upload"),
            ],
        ),
        curl(ns, &["-g", &format!("{v6}/bytes/5000")]),
    ]
}

fn tc(scrape: &Scrape, outcome: &str) -> u64 {
    scrape.sum("shadowd_tc_packets_total", &[("outcome", outcome)])
}

/// In-order stream bytes the reassembler handed on: each sequence number counted once.
fn stream_bytes(scrape: &Scrape, direction: &str) -> u64 {
    scrape.sum(
        "shadowd_reassembly_delivered_bytes_total",
        &[("direction", direction)],
    )
}

/// Waits until the reader has delivered as many bytes of each direction as the clients and
/// servers sent, then checks it delivered exactly those; returns the settled scrape.
fn assert_every_byte_delivered(daemon: &Shadowd<'_>, by_clients: u64, by_servers: u64) -> Scrape {
    let scrape = daemon.settled_scrape(
        Duration::from_secs(15),
        "captured byte counts to catch up",
        |scrape| {
            stream_bytes(scrape, "request") >= by_clients
                && stream_bytes(scrape, "response") >= by_servers
        },
    );
    assert_eq!(stream_bytes(&scrape, "request"), by_clients);
    assert_eq!(stream_bytes(&scrape, "response"), by_servers);
    scrape
}

#[test]
fn every_payload_byte_of_both_directions_reaches_the_reader() {
    every_payload_byte_reaches_the_reader("mirror");
}

#[test]
fn every_payload_byte_of_both_directions_reaches_the_ring_buffer_reader() {
    every_payload_byte_reaches_the_reader("ringbuf");
}

fn every_payload_byte_reaches_the_reader(output: &str) {
    let topo = Topology::new();
    let server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    let server6 = HttpServer::start(
        &topo.server,
        &format!("[{}]:{CAPTURE_PORT}", Topology::SERVER_V6),
    );
    let post_file = std::env::temp_dir().join(format!("{}-post", topo.client.name));
    let post: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&post_file, &post).expect("write POST body");
    let post_file = post_file.to_str().expect("utf-8").to_string();

    let baseline = client_mix(&topo.client, &post_file);
    assert_eq!(baseline[0].0, "200");
    assert_eq!(
        baseline[2].1,
        format!("ok /upload {}\n", post.len()).into_bytes()
    );
    let before = (server.totals(), server6.totals());

    let mut args = shadowd_args();
    args.extend(["--capture-output", output]);
    let daemon = Shadowd::start(&topo.server, &args);
    let shadowed = client_mix(&topo.client, &post_file);
    std::fs::remove_file(&post_file).ok();
    assert_eq!(
        shadowed, baseline,
        "clients see exactly the responses they get without shadowd"
    );

    let after = (server.totals(), server6.totals());
    let sent_by_clients = (after.0.0 - before.0.0) + (after.1.0 - before.1.0);
    let sent_by_servers = (after.0.1 - before.0.1) + (after.1.1 - before.1.1);
    assert!(sent_by_clients > 2 << 20 && sent_by_servers > 300_000);

    let scrape = assert_every_byte_delivered(&daemon, sent_by_clients, sent_by_servers);
    println!(
        "clients sent {sent_by_clients} B, servers sent {sent_by_servers} B; counters:\n{}",
        scrape
            .samples
            .iter()
            .filter(|s| s.value != 0.0 && s.name.starts_with("shadowd_"))
            .map(|s| format!("  {} {:?} {}", s.name, s.labels, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(tc(&scrape, "cloned_request") > 0 && tc(&scrape, "cloned_response") > 0);
    assert_eq!(tc(&scrape, "clone_failed"), 0);
    // Bare ACKs are counted, not cloned: every payload byte still arrived above.
    assert!(tc(&scrape, "bare_ack") > 0);
    for lost in [
        "shadowd_ring_truncated_frames_total",
        "shadowd_ring_dropped_frames_total",
        "shadowd_ring_unparsed_frames_total",
    ] {
        assert_eq!(scrape.sum(lost, &[]), 0, "{lost}");
    }
    // Every packet the program saw is in exactly one outcome.
    let outcomes: u64 = scrape.sum("shadowd_tc_packets_total", &[]);
    assert_eq!(outcomes, scrape.sum("shadowd_tc_seen_packets_total", &[]));
}

#[test]
fn traffic_to_other_ports_is_not_cloned() {
    let topo = Topology::new();
    let _other = HttpServer::start(
        &topo.server,
        &format!("{}:{OTHER_PORT}", Topology::SERVER_V4),
    );
    let daemon = Shadowd::start(&topo.server, &shadowd_args());
    for _ in 0..5 {
        let (code, _) = curl(
            &topo.client,
            &[&format!(
                "http://{}:{OTHER_PORT}/bytes/2000",
                Topology::SERVER_V4
            )],
        );
        assert_eq!(code, "200");
    }
    let scrape = eventually(
        Duration::from_secs(10),
        "the program to count the traffic",
        || {
            let scrape = daemon.scrape();
            (tc(&scrape, "not_matched") >= 10).then_some(scrape)
        },
    );
    assert_eq!(
        tc(&scrape, "cloned_request") + tc(&scrape, "cloned_response"),
        0
    );
    assert_eq!(scrape.sum("shadowd_ring_frames_total", &[]), 0);
}

/// Connects from the shadowd namespace to a server on a capture port, with `mark` on the
/// socket, and fetches one response.
fn marked_request(ns: &Netns, to: SocketAddr, mark: u32) {
    ns.enter(|| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_mark(mark).expect("SO_MARK");
        socket
            .connect_timeout(&to.into(), Duration::from_secs(5))
            .expect("connect");
        let mut stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200"));
    });
}

#[test]
fn packets_with_the_loop_guard_mark_are_not_cloned() {
    let topo = Topology::new();
    // A "shadow service" reached from the shadowd host on a capture port.
    let target: SocketAddr = format!("{}:{CAPTURE_PORT}", Topology::CLIENT_V4)
        .parse()
        .unwrap();
    let _shadow = HttpServer::start(&topo.client, &target.to_string());
    let daemon = Shadowd::start(&topo.server, &shadowd_args());

    marked_request(&topo.server, target, LOOP_MARK);
    let scrape = eventually(
        Duration::from_secs(10),
        "marked packets to be counted",
        || {
            let scrape = daemon.scrape();
            (tc(&scrape, "loop_guarded") >= 3).then_some(scrape)
        },
    );
    // Other components set bits of their own outside the mask (Calico and Cilium in the
    // upper half): the guard compares only the bits under it.
    let guarded = tc(&scrape, "loop_guarded");
    marked_request(&topo.server, target, LOOP_MARK | 0xABCD_0000);
    let scrape = eventually(
        Duration::from_secs(10),
        "packets marked with more bits to be counted",
        || {
            let scrape = daemon.scrape();
            (tc(&scrape, "loop_guarded") >= guarded + 3).then_some(scrape)
        },
    );
    assert_eq!(
        tc(&scrape, "cloned_request"),
        0,
        "marked request-direction packets were cloned"
    );

    // The same request without the mark is not cloned either, but as leaving the
    // interface (a request production sends, not one it received); the marked ones were held
    // back by the guard before that.
    marked_request(&topo.server, target, 0);
    let scrape = eventually(
        Duration::from_secs(10),
        "unmarked packets to be counted",
        || {
            let scrape = daemon.scrape();
            (tc(&scrape, "wrong_direction") >= 3).then_some(scrape)
        },
    );
    assert_eq!(tc(&scrape, "cloned_request"), 0);
    // And the answers, which arrive from a capture port, are not taken for production's.
    assert_eq!(tc(&scrape, "cloned_response"), 0);
}

#[test]
fn a_broken_mirror_never_affects_production() {
    let topo = Topology::new();
    let _server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    let daemon = Shadowd::start(&topo.server, &mirror_args());
    let url = format!("http://{}:{CAPTURE_PORT}/bytes/20000", Topology::SERVER_V4);
    let expected: Vec<u8> = (0..20000).map(|i| b'a' + (i % 26) as u8).collect();

    topo.server.ip(&["link", "set", "shadow0", "down"]);
    for _ in 0..10 {
        assert_eq!(
            curl(&topo.client, &[&url]),
            ("200".to_string(), expected.clone())
        );
    }
    let failed_down = eventually(
        Duration::from_secs(10),
        "clone failures to be counted",
        || {
            let failed = tc(&daemon.scrape(), "clone_failed");
            (failed > 0).then_some(failed)
        },
    );

    topo.server.ip(&["link", "del", "shadow0"]);
    for _ in 0..10 {
        assert_eq!(
            curl(&topo.client, &[&url]),
            ("200".to_string(), expected.clone())
        );
    }
    eventually(
        Duration::from_secs(10),
        "clone failures with the mirror deleted",
        || (tc(&daemon.scrape(), "clone_failed") > failed_down).then_some(()),
    );
    assert!(daemon.stop(libc::SIGTERM).success());
}

#[test]
fn a_full_ring_buffer_never_affects_production() {
    let topo = Topology::new();
    let _server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    // The smallest ring buffer, read twice a second: most copies find it full.
    let mut args = shadowd_args();
    args.extend(["--ringbuf-size", "32768", "--ringbuf-poll-us", "500000"]);
    let daemon = Shadowd::start(&topo.server, &args);
    let url = format!("http://{}:{CAPTURE_PORT}/bytes/200000", Topology::SERVER_V4);
    let expected: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..5 {
        assert_eq!(
            curl(&topo.client, &[&url]),
            ("200".to_string(), expected.clone())
        );
    }
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "copies that did not fit to be counted, and the others read",
        |scrape| tc(scrape, "clone_failed") > 0 && scrape.sum("shadowd_ring_frames_total", &[]) > 0,
    );
    // Every packet still has exactly one outcome.
    assert_eq!(
        scrape.sum("shadowd_tc_packets_total", &[]),
        scrape.sum("shadowd_tc_seen_packets_total", &[])
    );
    assert!(daemon.stop(libc::SIGTERM).success());
}

/// IDs of loaded shadowd TC programs.
fn shadowd_programs() -> BTreeSet<u32> {
    loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| matches!(p.name_as_str(), Some("shadow_ingress" | "shadow_egress")))
        .map(|p| p.id())
        .collect()
}

/// Programs attached with TCX to the server interface, ingress and egress.
fn attached(ns: &Netns) -> usize {
    tcx::attachments(ns, Topology::SERVER_IF)
        .iter()
        .map(|hook| hook.program_ids.len())
        .sum()
}

fn has_mirror(ns: &Netns) -> bool {
    ns.links()
        .iter()
        .any(|l| l == "shadow0" || l == "shadow0-peer")
}

#[test]
fn a_mirror_name_taken_by_a_link_shadowd_did_not_make_is_refused_and_left_alone() {
    let topo = Topology::new();
    // A bridge, as a node's CNI bridge would be, and a veth pair not named as shadowd
    // names its pairs, without shadowd's mark.
    topo.server
        .ip(&["link", "add", "shadowbr0", "type", "bridge"]);
    topo.server.ip(&[
        "link", "add", "shadowv0", "type", "veth", "peer", "name", "other0",
    ]);
    for (name, found) in [
        ("shadowbr0", "(a bridge link)"),
        (
            "shadowv0",
            "(a veth without shadowd's mark whose peer is not shadowv0-peer)",
        ),
    ] {
        // Bounded: a daemon that took the name would run, not exit.
        let output = topo
            .server
            .command("timeout")
            .arg("20")
            .arg(binary())
            .arg("run")
            .args(mirror_args())
            .args(["--mirror-interface", name])
            .output()
            .expect("running shadowd");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "interface {name} exists and is not a mirror pair shadowd made {found}"
            )),
            "{name}: {stderr}"
        );
        assert!(
            topo.server.links().iter().any(|l| l == name),
            "{name} is still there"
        );
        assert_eq!(attached(&topo.server), 0, "nothing was attached");
    }
}

#[test]
fn nothing_is_left_behind_after_sigterm_or_sigkill() {
    let topo = Topology::new();
    let before = shadowd_programs();
    let new_programs = || shadowd_programs().difference(&before).count();

    let daemon = Shadowd::start(&topo.server, &mirror_args());
    assert_eq!(attached(&topo.server), 2);
    assert!(has_mirror(&topo.server));
    assert_eq!(new_programs(), 2);
    assert!(daemon.stop(libc::SIGTERM).success());
    assert_eq!(attached(&topo.server), 0);
    assert!(!has_mirror(&topo.server), "mirror pair left after SIGTERM");
    eventually(Duration::from_secs(10), "programs to be unloaded", || {
        (new_programs() == 0).then_some(())
    });

    let daemon = Shadowd::start(&topo.server, &mirror_args());
    daemon.stop(libc::SIGKILL);
    assert_eq!(
        attached(&topo.server),
        0,
        "TCX links outlived a killed daemon"
    );
    eventually(
        Duration::from_secs(10),
        "programs of a killed daemon to be unloaded",
        || (new_programs() == 0).then_some(()),
    );
    assert!(
        has_mirror(&topo.server),
        "a killed daemon cannot delete its mirror pair"
    );

    // A restart replaces the stale pair and works: traffic after it reaches the reader
    // through the new pair, every byte of both directions.
    let daemon = Shadowd::start(&topo.server, &mirror_args());
    assert_eq!(attached(&topo.server), 2);
    assert!(daemon.log_text().contains("left by an earlier run"));
    let server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    let url = format!("http://{}:{CAPTURE_PORT}/bytes/5000", Topology::SERVER_V4);
    assert_eq!(curl(&topo.client, &[&url]).0, "200");
    let (sent_by_client, sent_by_server) = server.totals();
    let scrape = assert_every_byte_delivered(&daemon, sent_by_client, sent_by_server);
    assert_eq!(tc(&scrape, "clone_failed"), 0, "the new pair is up");
    drop(server);
    assert!(daemon.stop(libc::SIGTERM).success());
    assert!(!has_mirror(&topo.server));
    assert_eq!(attached(&topo.server), 0);

    // The ring buffer output creates no interface; its links go with the process too.
    let daemon = Shadowd::start(&topo.server, &shadowd_args());
    assert_eq!(attached(&topo.server), 2);
    assert!(!has_mirror(&topo.server));
    daemon.stop(libc::SIGKILL);
    assert_eq!(attached(&topo.server), 0);
    eventually(
        Duration::from_secs(10),
        "programs of a killed ring buffer daemon to be unloaded",
        || (new_programs() == 0).then_some(()),
    );
}

/// Five GETs, each on a connection of its own, answered 200.
fn five_gets(topo: &Topology) {
    for _ in 0..5 {
        let (code, _) = curl(
            &topo.client,
            &[&format!(
                "http://{}:{CAPTURE_PORT}/bytes/100",
                Topology::SERVER_V4
            )],
        );
        assert_eq!(code, "200");
    }
}

#[test]
fn programs_after_shadowd_on_the_interface_still_see_every_packet() {
    let topo = Topology::new();
    let _server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    let first = Shadowd::start(&topo.server, &mirror_args());
    // A second shadowd on the same hooks, attached first in the chain (before the first
    // one): the first only sees packets if the second hands them on (TCX_NEXT) instead of
    // ending the chain. One uses the mirror output, the other the ring buffer: both
    // outputs are in the chain.
    let second = Shadowd::start_with_admin(&topo.server, &shadowd_args(), "127.0.0.1:8878");
    five_gets(&topo);
    eventually(
        Duration::from_secs(10),
        "both programs to count the traffic",
        || {
            // Capture-port packets only (stray link traffic may land between the two
            // scrapes); at least a SYN and the request of each of the 5 connections.
            let (a, b) = (first.scrape(), second.scrape());
            let cloned = tc(&a, "cloned_request");
            (cloned >= 10 && cloned == tc(&b, "cloned_request")).then_some(())
        },
    );
}

#[test]
fn a_program_that_ends_the_chain_before_shadowd_started_hides_nothing_from_it() {
    let topo = Topology::new();
    let _server = HttpServer::start(
        &topo.server,
        &format!("{}:{CAPTURE_PORT}", Topology::SERVER_V4),
    );
    // A CNI's program on the interface already, ending the chain for every packet.
    let _cni = tcx::PassProgram::attach(&topo.server, Topology::SERVER_IF);
    let daemon = Shadowd::start(&topo.server, &shadowd_args());
    // shadowd attached first: its programs run before the one that ends the chain.
    let ours = shadowd_programs();
    for hook in tcx::attachments(&topo.server, Topology::SERVER_IF) {
        assert_eq!(hook.program_ids.len(), 2, "{hook:?}");
        assert!(ours.contains(&hook.program_ids[0]), "{hook:?} {ours:?}");
    }
    five_gets(&topo);
    eventually(
        Duration::from_secs(10),
        "shadowd to see the traffic",
        || (tc(&daemon.scrape(), "cloned_request") >= 10).then_some(()),
    );
}

/// Adds a veth from `server` (named `name`, with interface index `index`) to `client`,
/// with addresses `198.18.<net>.2` and `.1`.
fn veth_with_index(client: &Netns, server: &Netns, name: &str, index: u32, net: u8) {
    let peer = format!("{name}p");
    run(Command::new("ip").args([
        "-n",
        &server.name,
        "link",
        "add",
        name,
        "index",
        &index.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        &client.name,
    ]));
    server.ip(&["addr", "add", &format!("198.18.{net}.2/24"), "dev", name]);
    client.ip(&["addr", "add", &format!("198.18.{net}.1/24"), "dev", &peer]);
    server.ip(&["link", "set", name, "up"]);
    client.ip(&["link", "set", &peer, "up"]);
}

/// Requests cloned on `interface` so far.
fn cloned_requests_on(scrape: &Scrape, interface: &str) -> u64 {
    scrape.sum(
        "shadowd_tc_packets_total",
        &[("interface", interface), ("outcome", "cloned_request")],
    )
}

/// Interfaces whose indexes differ by the size of the program's slot array share its entry:
/// the second's slots go to the spill map, and each still counts its own packets (a packet
/// whose slots are not found is counted in the catch-all slot, on no interface).
#[test]
fn interfaces_whose_indexes_share_a_slot_entry_each_count_their_own_packets() {
    let client = Netns::new("c");
    let server = Netns::new("s");
    let first = 70_001;
    let second = first + shadow_common::INTERFACE_SLOT_ENTRIES;
    veth_with_index(&client, &server, "srva", first, 10);
    veth_with_index(&client, &server, "srvb", second, 11);
    let _servers: Vec<HttpServer> = [10, 11]
        .iter()
        .map(|net| HttpServer::start(&server, &format!("198.18.{net}.2:{CAPTURE_PORT}")))
        .collect();
    let daemon = Shadowd::start(
        &server,
        &[
            "--interface",
            "srva",
            "--interface",
            "srvb",
            "--capture-port",
            CAPTURE_PORT,
        ],
    );
    for (net, interface, other) in [(10, "srva", "srvb"), (11, "srvb", "srva")] {
        let before = daemon.scrape();
        for _ in 0..3 {
            let (code, _) = curl(
                &client,
                &[&format!("http://198.18.{net}.2:{CAPTURE_PORT}/bytes/100")],
            );
            assert_eq!(code, "200");
        }
        let scrape = daemon.settled_scrape(
            Duration::from_secs(10),
            "the program to count the requests",
            |scrape| {
                cloned_requests_on(scrape, interface) >= cloned_requests_on(&before, interface) + 3
            },
        );
        assert_eq!(
            cloned_requests_on(&scrape, other),
            cloned_requests_on(&before, other),
            "requests to {interface} counted on {other}"
        );
    }
}
