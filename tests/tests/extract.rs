//! HTTP extraction on real traffic: curl (chunked upload, `Expect: 100-continue`, a 2 MiB
//! POST) and a raw client that pipelines, recorded by tcpdump in namespaces as Ethernet and
//! as Linux-cooked (v1, v2) pcap, and converted to pcapng; `shadowd extract` must list
//! exactly the requests the server received from each, and live `shadowd run` must count
//! the same number. With Mappings, each request names the shadow Mapping and Host of its copy.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use serde_json::json;
use shadowd_tests::{
    clients::curl_ok,
    eventually,
    fixtures::MappingFile,
    http_server::HttpServer,
    netns::{Netns, Topology},
    shadowd::{Shadowd, binary},
    shadowing::shadow_host,
    tcpdump::Tcpdump,
};

const PORT: &str = "8080";

/// Writes `requests` in one go on one connection, then reads until `expected` responses
/// ended (the last request asks the server to close).
fn pipelined(ns: &Netns, requests: &[u8]) -> Vec<u8> {
    ns.enter(|| {
        let mut stream = TcpStream::connect(format!("{}:{PORT}", Topology::SERVER_V4)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(requests).unwrap();
        let mut responses = Vec::new();
        stream.read_to_end(&mut responses).unwrap();
        responses
    })
}

/// The traffic of the test, against the server in `topo`.
fn client_traffic(topo: &Topology, files: &Files) {
    let url = |path: &str| format!("http://{}:{PORT}{path}", Topology::SERVER_V4);
    curl_ok(&topo.client, &[&url("/search?q=shadow&page=2")]);
    curl_ok(
        &topo.client,
        &[
            "-H",
            "X-Odd-Case: yes",
            "-H",
            "x-odd-case: again",
            &url("/headers"),
        ],
    );
    curl_ok(
        &topo.client,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", files.small),
            &url("/chunked"),
        ],
    );
    curl_ok(
        &topo.client,
        &[
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", files.mib),
            &url("/expect"),
        ],
    );
    curl_ok(
        &topo.client,
        &[
            "--data-binary",
            &format!("@{}", files.two_mib),
            &url("/big"),
        ],
    );
    let mut requests = Vec::new();
    requests.extend_from_slice(b"GET /pipe/1 HTTP/1.1\r\nHost: myservice\r\n\r\n");
    requests.extend_from_slice(
        b"POST /pipe/2 HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5\r\n\r\nhello",
    );
    requests.extend_from_slice(b"POST /pipe/3 HTTP/1.1\r\nHost: myservice\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n11\r\n0123456789abcdefg\r\n0\r\nTrailer: x\r\n\r\n");
    // A value with a byte above 0x7F that is not UTF-8: extract must keep it exactly.
    requests.extend_from_slice(
        b"GET /pipe/4 HTTP/1.1\r\nHost: myservice:8080\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n",
    );
    let responses = pipelined(&topo.client, &requests);
    assert_eq!(
        responses
            .windows(12)
            .filter(|w| w == b"HTTP/1.1 200")
            .count(),
        4
    );
}

/// Request bodies the clients send, in files for curl.
struct Files {
    small: String,
    mib: String,
    two_mib: String,
}

impl Files {
    fn new(prefix: &str) -> Files {
        let write = |name: &str, len: usize| {
            let path = std::env::temp_dir().join(format!("{prefix}-{name}"));
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            std::fs::write(&path, bytes).unwrap();
            path.to_str().unwrap().to_string()
        };
        Files {
            small: write("small", 70_001),
            mib: write("mib", 1 << 20),
            two_mib: write("two-mib", 2 << 20),
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for path in [&self.small, &self.mib, &self.two_mib] {
            std::fs::remove_file(path).ok();
        }
    }
}

/// (method, target, headers, body length, body hash-free fingerprint) of a raw request, as
/// the test reads it independently of shadowd.
fn describe_raw(raw: &[u8]) -> String {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end - 4]);
    let mut request_line = head.split("\r\n").next().unwrap().split(' ');
    let (method, target, version) = (
        request_line.next().unwrap().to_string(),
        request_line.next().unwrap().to_string(),
        request_line.next().unwrap().to_string(),
    );
    let headers: Vec<[String; 2]> = head_lines(&raw[..head_end - 4])
        .into_iter()
        .map(|line| {
            let colon = line.iter().position(|&b| b == b':').unwrap();
            let value = line[colon + 1..].trim_ascii();
            [
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                wire_text(value),
            ]
        })
        .collect();
    let body = &raw[head_end..];
    format!(
        "{method} {target} {version} {headers:?} {} {}",
        body.len(),
        sha256_hex(body)
    )
}

fn describe_json(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
    let text = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {line}"))
            .to_string()
    };
    let headers: Vec<[String; 2]> = value["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|pair| {
            // A value that is not UTF-8 comes as {"base64": …} of its exact bytes.
            let value = match pair[1].as_str() {
                Some(text) => text.to_string(),
                None => {
                    use base64::Engine as _;
                    let encoded = pair[1]["base64"].as_str().expect("text or base64");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .expect("valid base64");
                    wire_text(&bytes)
                }
            };
            [pair[0].as_str().unwrap().to_string(), value]
        })
        .collect();
    for key in ["ts", "client", "server"] {
        assert!(!value[key].is_null(), "{key} missing in {line}");
    }
    format!(
        "{} {} {} {headers:?} {} {}",
        text("method"),
        text("target"),
        text("version"),
        value["body_len"],
        text("body_sha256")
    )
}

/// The lines of a head after its request line, as bytes.
fn head_lines(head: &[u8]) -> Vec<&[u8]> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect()
}

/// Bytes for comparison: the text when UTF-8, else every byte in hex.
fn wire_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|b| format!("\\x{b:02x}")).collect(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn multiset(items: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

#[test]
fn extract_lists_exactly_the_requests_the_server_received_and_run_counts_them() {
    let topo = Topology::new();
    let server = HttpServer::start(&topo.server, &format!("{}:{PORT}", Topology::SERVER_V4));
    let files = Files::new(&topo.client.name);
    let daemon = Shadowd::start(
        &topo.server,
        &["--interface", Topology::SERVER_IF, "--capture-port", PORT],
    );
    // The same traffic recorded three ways: Ethernet frames of the interface, and
    // Linux-cooked frames (both versions) from the `any` device, one with nanosecond stamps.
    let captures = [
        Tcpdump::start(PORT, &topo.server, "ethernet", &["-i", Topology::SERVER_IF]),
        Tcpdump::start(PORT, &topo.server, "sll", &["-i", "any", "-y", "LINUX_SLL"]),
        Tcpdump::start(
            PORT,
            &topo.server,
            "sll2",
            &["-i", "any", "-y", "LINUX_SLL2", "--nano"],
        ),
    ];

    client_traffic(&topo, &files);
    let received = server.received();
    assert_eq!(received.len(), 9);

    // Live capture counts the same requests.
    eventually(
        Duration::from_secs(15),
        "shadowd to count every request",
        || {
            (daemon.scrape().sum("shadowd_http_requests_total", &[]) >= received.len() as u64)
                .then_some(())
        },
    );
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.sum("shadowd_http_requests_total", &[]),
        received.len() as u64
    );
    assert_eq!(scrape.sum("shadowd_http_dropped_messages_total", &[]), 0);
    assert_eq!(scrape.sum("shadowd_reassembly_gaps_total", &[]), 0);

    let expected = multiset(received.iter().map(|raw| describe_raw(raw)));
    let mut recorded: Vec<(String, std::path::PathBuf)> = captures
        .into_iter()
        .zip([
            "Ethernet pcap",
            "Linux cooked pcap",
            "Linux cooked v2 pcap, ns",
        ])
        .map(|(capture, kind)| (kind.to_string(), capture.finish(b"GET /pipe/4 HTTP/1.1")))
        .collect();
    let pcapng = recorded[0].1.with_extension("pcapng");
    std::fs::write(
        &pcapng,
        pcap_to_pcapng(&std::fs::read(&recorded[0].1).unwrap()),
    )
    .expect("write pcapng");
    recorded.push(("pcapng".to_string(), pcapng));
    for (kind, path) in &recorded {
        let (stdout, summary) = extract(path, &[]);
        let extracted = multiset(stdout.lines().map(describe_json));
        assert_eq!(extracted, expected, "{kind}");
        assert!(summary.contains("requests 9"), "{kind}: {summary}");
        assert!(
            stdout.contains(r#"["X-Latin",{"base64":"Y2Fm6Q=="}]"#),
            "{kind}: the non-UTF-8 value, byte for byte: {stdout}"
        );
        assert!(!summary.contains("dropped"), "{kind}: {summary}");
    }

    // With Mappings, each request says which shadow Mapping would copy it, and the Host its
    // copy would carry (the `-shadow` rule); requests no shadow takes say null to both.
    let mappings = MappingFile::new(&format!(
        "{}---\n{}---\n{}",
        "apiVersion: ambassador/v0\nkind: Mapping\nname: pipe-mapping\nprefix: /pipe/\nservice: myservice.default:8080\n",
        "apiVersion: ambassador/v0\nkind: Mapping\nname: pipe-shadow\nprefix: /pipe/\nservice: myservice-shadow.default\nshadow: true\n",
        "apiVersion: ambassador/v0\nkind: Mapping\nname: search-mapping\nprefix: /search\nservice: search.default:8080\n",
    ));
    let (stdout, _) = extract(&recorded[0].1, &["--config", mappings.arg()]);
    let mut copied = 0;
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON object");
        let target = value["target"].as_str().expect("target");
        let host = value["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|pair| {
                pair[0]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("host"))
            })
            .and_then(|pair| pair[1].as_str())
            .expect("a Host field");
        let (mapping, copy_host) = match target.starts_with("/pipe/") {
            true => (json!("pipe-shadow"), json!(shadow_host(host))),
            false => (json!(null), json!(null)),
        };
        copied += usize::from(target.starts_with("/pipe/"));
        assert_eq!(value["mapping"], mapping, "{line}");
        assert_eq!(value["shadow_host"], copy_host, "{line}");
    }
    assert_eq!(copied, 4, "the four pipelined requests");
    for (_, path) in &recorded {
        std::fs::remove_file(path).ok();
    }
}

/// `shadowd extract` of the capture at `path` with `extra` flags: (requests as JSON lines,
/// summary).
fn extract(path: &std::path::Path, extra: &[&str]) -> (String, String) {
    let output = std::process::Command::new(binary())
        .args(["extract", "--pcap"])
        .arg(path)
        .args(["--capture-port", PORT])
        .args(extra)
        .output()
        .expect("running shadowd extract");
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    println!("extract summary of {}:\n{summary}", path.display());
    (String::from_utf8(output.stdout).unwrap(), summary)
}

/// The packets of a classic little-endian pcap file (as tcpdump writes it on this machine)
/// as pcapng, written from the format's description (RFC draft-ietf-opsawg-pcapng): a
/// section header, one interface of the file's link type, one enhanced packet block per
/// packet with the timestamp in microseconds, the pcapng default.
fn pcap_to_pcapng(pcap: &[u8]) -> Vec<u8> {
    let u32_at = |at: usize| u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let link_type = u32_at(20) as u16;
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&total.to_le_bytes());
    };
    // Section header: byte-order magic, version 1.0, section length unknown.
    let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    // Interface description: link type, reserved, snap length 0 (no limit).
    let mut idb = link_type.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    block(&mut out, 1, &idb);
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let (seconds, micros) = (u64::from(u32_at(at)), u64::from(u32_at(at + 4)));
        let (captured, original) = (u32_at(at + 8), u32_at(at + 12));
        let data = &pcap[at + 16..at + 16 + captured as usize];
        let stamp = seconds * 1_000_000 + micros;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((stamp >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(stamp as u32).to_le_bytes());
        epb.extend_from_slice(&captured.to_le_bytes());
        epb.extend_from_slice(&original.to_le_bytes());
        epb.extend_from_slice(data);
        block(&mut out, 6, &epb);
        at += 16 + captured as usize;
    }
    assert_eq!(at, pcap.len(), "the pcap ends with a whole packet");
    out
}
