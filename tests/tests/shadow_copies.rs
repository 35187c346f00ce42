//! What real copies look like at the shadow, byte for byte: the user's example file as
//! shipped, the shadow Mapping's `rewrite`, `host_rewrite` and header fields (copy only,
//! production untouched), requests that reached production over IPv6, and copies handed over
//! by the mirror output instead of the ring buffer.

use std::time::Duration;

use shadowd_tests::{
    clients::{Piece, exchange},
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::{Behaviour, HttpServer},
    netns::Topology,
    shadowd::Shadowd,
    shadowing::expected_copy,
};

/// Sends `raw` (one or more requests) to `addr` on one connection; every answer must be 200.
fn send(setup: &ShadowSetup, addr: &str, raw: &[u8], requests: usize) {
    let statuses = exchange(&setup.topo.client, addr, &[Piece::now(raw)], requests);
    assert_eq!(statuses, vec![200; requests]);
}

/// Waits until `copied` copies of the user's shadow Mapping are accounted for and returns
/// what the shadow received, as text for readable failures.
fn copies(setup: &ShadowSetup, daemon: &Shadowd<'_>, observed: u64, copied: u64) -> Vec<String> {
    let scrape = daemon.accounted_for(SHADOW_MAPPING, observed, Duration::from_secs(20));
    assert_eq!(
        scrape.replay("copied_requests_total", SHADOW_MAPPING),
        copied
    );
    text(&setup.shadow.received())
}

fn text(raw: &[Vec<u8>]) -> Vec<String> {
    raw.iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// The same copies, in any order (those of different connections may interleave).
fn assert_same_copies(mut received: Vec<String>, mut expected: Vec<String>) {
    received.sort();
    expected.sort();
    assert_eq!(received, expected);
}

const GET: &[u8] = b"GET /myservice/items?id=1 HTTP/1.1\r\nHost: myservice\r\nAccept: */*\r\n\r\n";
const POST: &[u8] =
    b"POST /myservice/orders HTTP/1.1\r\nHost: myservice:80\r\nContent-Length: 5\r\n\r\nhello";
const OTHER: &[u8] = b"GET /other/x HTTP/1.1\r\nHost: myservice\r\n\r\n";

#[test]
fn the_user_example_file_as_shipped_copies_myservice_and_nothing_else() {
    let setup = ShadowSetup::new(Behaviour::default());
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/myservice-services.yaml"
    );
    let daemon = setup.start_with_config(example, &[]);
    send(&setup, PRODUCTION, &[GET, OTHER, POST].concat(), 3);
    assert_eq!(
        copies(&setup, &daemon, 2, 2),
        text(&[expected_copy(GET), expected_copy(POST)])
    );
    assert_eq!(
        daemon
            .scrape()
            .sum("shadowd_http_requests_not_shadowed_total", &[]),
        1,
        "/other/x matches no Mapping of the example"
    );
}

#[test]
fn shadow_mapping_fields_change_the_copy_and_never_production() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(
        "rewrite: /v2/\nhost_rewrite: api.internal\nremove_request_headers: [x-secret]\nadd_request_headers:\n  x-shadowed: \"yes\"\n  x-run: {value: \"7\"}\n",
    ));
    let daemon = setup.start(&mappings);
    let get = b"GET /myservice/items?id=1 HTTP/1.1\r\nHost: myservice\r\nX-Secret: s3cr3t\r\nAccept: */*\r\n\r\n";
    let post = b"POST /myservice/orders HTTP/1.1\r\nx-secret: a\r\nHost: myservice:80\r\nContent-Length: 5\r\n\r\nhello";
    send(&setup, PRODUCTION, &[&get[..], &post[..]].concat(), 2);
    assert_eq!(
        copies(&setup, &daemon, 2, 2),
        [
            // The prefix replaced, Host rewritten then suffixed, X-Secret gone, the new
            // fields last in the order given; nothing else moves.
            "GET /v2/items?id=1 HTTP/1.1\r\nHost: api.internal-shadow\r\nAccept: */*\r\nx-shadowed: yes\r\nx-run: 7\r\n\r\n",
            "POST /v2/orders HTTP/1.1\r\nHost: api.internal-shadow\r\nContent-Length: 5\r\nx-shadowed: yes\r\nx-run: 7\r\n\r\nhello",
        ]
    );
    assert_eq!(
        setup.production.received(),
        [get.to_vec(), post.to_vec()],
        "production gets the bytes the client sent"
    );
}

#[test]
fn requests_production_received_over_ipv6_are_copied() {
    let setup = ShadowSetup::new(Behaviour::default());
    let v6 = format!("[{}]:80", Topology::SERVER_V6);
    let _production_v6 = HttpServer::start(&setup.topo.server, &v6);
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    send(&setup, &v6, &[GET, POST].concat(), 2);
    send(&setup, PRODUCTION, GET, 1);
    assert_same_copies(
        copies(&setup, &daemon, 3, 3),
        text(&[expected_copy(GET), expected_copy(GET), expected_copy(POST)]),
    );
}

#[test]
fn copies_handed_over_by_the_mirror_output_are_the_same() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start_with_config(mappings.arg(), &["--capture-output", "mirror"]);
    // Pipelined on one connection, and a body sent in a second segment.
    send(&setup, PRODUCTION, &[GET, OTHER, POST].concat(), 3);
    let (head, body) = POST.split_at(POST.len() - 5);
    let statuses = exchange(
        &setup.topo.client,
        PRODUCTION,
        &[
            Piece {
                bytes: head,
                pause: Duration::from_millis(50),
            },
            Piece::now(body),
        ],
        1,
    );
    assert_eq!(statuses, [200]);
    assert_same_copies(
        copies(&setup, &daemon, 3, 3),
        text(&[expected_copy(GET), expected_copy(POST), expected_copy(POST)]),
    );
    let scrape = daemon.scrape();
    assert!(
        scrape.sum("shadowd_ring_frames_total", &[]) > 0,
        "the mirror ring was read"
    );
}
