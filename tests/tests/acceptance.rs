//! Only what production's TCP stack accepted is copied, with the real TC program: segments
//! forged from the client namespace on connections that were never opened (no handshake,
//! guessed numbers; production's kernel answers them with RST) are never copied and are
//! counted; a keep-alive connection opened before shadowd started has every request sent on
//! it afterwards copied, as production's answers confirm where each one starts.

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use shadowd_tests::{
    clients::{connect, read_responses},
    fixtures::{
        MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, production_get, user_example,
    },
    forge::{self, Forged, flags},
    http_server::Behaviour,
    netns::Topology,
    shadowing::expected_copy,
};

/// A complete request as an attacker would forge it.
fn forged_request(i: usize) -> Vec<u8> {
    format!(
        "POST /myservice/forged/{i} HTTP/1.1\r\nHost: myservice\r\nContent-Length: 7\r\n\r\nDROP {i:02}"
    )
    .into_bytes()
}

#[test]
fn forged_segments_on_connections_never_opened_are_never_copied() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    let client: Ipv4Addr = Topology::CLIENT_V4.parse().unwrap();
    let production: SocketAddrV4 = PRODUCTION.parse().unwrap();
    let requests: Vec<Vec<u8>> = (0..30).map(forged_request).collect();
    // 20 segments as a sender that never saw a SYN-ACK writes them (some ACK number), and
    // 10 without ACK at all, each on a connection of its own.
    let segments: Vec<Forged<'_>> = requests
        .iter()
        .enumerate()
        .map(|(i, payload)| Forged {
            src: SocketAddrV4::new(client, 50_000 + i as u16),
            dst: production,
            seq: 0x1000_0000u32.wrapping_mul(i as u32 + 1),
            ack: 0x2222_0000 + i as u32,
            flags: if i < 20 {
                flags::ACK | flags::PSH
            } else {
                flags::PSH
            },
            payload,
        })
        .collect();
    forge::send(&setup.topo.client, &segments);
    // A real request after them: once its copy is in, the forged ones had their chance.
    assert_eq!(production_get(&setup.topo, "/myservice/real"), 200);
    let scrape = daemon.settled_scrape(
        Duration::from_secs(15),
        "the real copy and the forged requests counted",
        |scrape| {
            scrape.replay("copied_requests_total", SHADOW_MAPPING) == 1
                && scrape.sum("shadowd_http_unconfirmed_requests_total", &[]) == 20
        },
    );
    let received = setup.shadow.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].starts_with(b"GET /myservice/real "));
    assert!(setup.production.received().len() == 1);
    // Every forged request is accounted for, by what gave it away.
    assert_eq!(
        scrape.sum(
            "shadowd_reassembly_rejected_segments_total",
            &[("reason", "no_ack")]
        ),
        10
    );
    assert_eq!(
        scrape.replay("dropped_requests_total", SHADOW_MAPPING),
        20,
        "the unconfirmed ones in the ledger"
    );
    assert_eq!(
        scrape.sum(
            "shadowd_replay_dropped_requests_total",
            &[("mapping", SHADOW_MAPPING), ("reason", "unconfirmed")]
        ),
        20
    );
    assert_eq!(
        scrape.sum("shadowd_reassembly_unverified_flows_total", &[]),
        20
    );
    scrape.assert_ledger_balances(SHADOW_MAPPING);
}

#[test]
fn forged_data_after_a_forged_syn_is_dropped_as_production_drops_it() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    let daemon = setup.start(&mappings);
    // A spoofed source nobody answers for: production's SYN-ACKs leave for a hardware
    // address no host has, and the forger never learns their sequence numbers.
    let spoofed: Ipv4Addr = "198.18.0.77".parse().unwrap();
    setup.topo.server.ip(&[
        "neigh",
        "add",
        "198.18.0.77",
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        Topology::SERVER_IF,
    ]);
    let production: SocketAddrV4 = PRODUCTION.parse().unwrap();
    let requests: Vec<Vec<u8>> = (0..5).map(forged_request).collect();
    let mut segments = Vec::new();
    for (i, payload) in requests.iter().enumerate() {
        let src = SocketAddrV4::new(spoofed, 52_000 + i as u16);
        let isn = 0x0A00_0000 * (i as u32 + 1);
        segments.push(Forged {
            src,
            dst: production,
            seq: isn,
            ack: 0,
            flags: flags::SYN,
            payload: b"",
        });
        segments.push(Forged {
            src,
            dst: production,
            seq: isn.wrapping_add(1),
            // A guess at the SYN-ACK's sequence number.
            ack: 0x3333_0000 + i as u32,
            flags: flags::ACK | flags::PSH,
            payload,
        });
    }
    forge::send(&setup.topo.client, &segments);
    assert_eq!(production_get(&setup.topo, "/myservice/real"), 200);
    let scrape = daemon.settled_scrape(
        Duration::from_secs(15),
        "the real copy and the forged segments counted",
        |scrape| {
            scrape.replay("copied_requests_total", SHADOW_MAPPING) == 1
                && scrape.sum(
                    "shadowd_reassembly_rejected_segments_total",
                    &[("reason", "unacceptable_ack")],
                ) >= 5
        },
    );
    assert_eq!(setup.shadow.received().len(), 1);
    assert_eq!(
        scrape.sum("shadowd_http_unconfirmed_requests_total", &[]),
        0
    );
    assert_eq!(scrape.replay("observed_requests_total", SHADOW_MAPPING), 1);
    scrape.assert_ledger_balances(SHADOW_MAPPING);
}

#[test]
fn a_connection_opened_before_shadowd_started_has_every_later_request_copied() {
    let setup = ShadowSetup::new(Behaviour::default());
    let mappings = MappingFile::new(&user_example(""));
    // A gateway's pooled keep-alive connection, already in use.
    let mut stream = setup.topo.client.enter(|| {
        let stream = connect(PRODUCTION);
        stream.set_nodelay(true).unwrap();
        stream
    });
    let before = b"GET /myservice/before HTTP/1.1\r\nHost: myservice\r\n\r\n";
    stream.write_all(before).unwrap();
    assert_eq!(read_responses(&mut stream, 1), [200]);

    let daemon = setup.start(&mappings);
    let mut sent = Vec::new();
    // One at a time, as most clients do, with a body now and then…
    for i in 0..10 {
        let request = if i % 3 == 0 {
            format!(
                "POST /myservice/after/{i} HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5\r\n\r\nbody{i}"
            )
        } else {
            format!("GET /myservice/after/{i} HTTP/1.1\r\nHost: myservice\r\n\r\n")
        };
        stream.write_all(request.as_bytes()).unwrap();
        assert_eq!(read_responses(&mut stream, 1), [200]);
        sent.push(request.into_bytes());
    }
    // …and three pipelined in one write.
    let pipelined: Vec<Vec<u8>> = (10..13)
        .map(|i| {
            format!("GET /myservice/after/{i} HTTP/1.1\r\nHost: myservice\r\n\r\n").into_bytes()
        })
        .collect();
    stream.write_all(&pipelined.concat()).unwrap();
    assert_eq!(read_responses(&mut stream, 3), [200, 200, 200]);
    sent.extend(pipelined);

    let scrape = daemon.settled_scrape(
        Duration::from_secs(15),
        "every request after the start copied",
        |scrape| scrape.replay("copied_requests_total", SHADOW_MAPPING) == sent.len() as u64,
    );
    // Exactly the requests sent after the start, byte for byte, in the connection's order.
    let expected: Vec<Vec<u8>> = sent.iter().map(|raw| expected_copy(raw)).collect();
    assert_eq!(setup.shadow.received(), expected);
    assert_eq!(
        scrape.sum("shadowd_http_unconfirmed_requests_total", &[]),
        0
    );
    assert_eq!(
        scrape.sum("shadowd_reassembly_unverified_flows_total", &[]),
        1
    );
    scrape.assert_ledger_balances(SHADOW_MAPPING);
}
