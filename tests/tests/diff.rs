//! Response diffing end to end: production and a shadow that both answer JSON with a
//! timestamp, a request id and a request-id header that differ on every response (noise),
//! where the shadow gets one field wrong on a share of one endpoint's requests and changes
//! the status code of another; gzip-encoded chunked bodies and a non-JSON page answered
//! alike. Exactly the two real differences are flagged, in `/diag` (JSON, and HTML in a real
//! browser), in `shadowd diff` and in the metrics; the noise is not. Offline, `shadowd replay
//! --pcap --diff` on a capture of the same traffic fails (exit 2) against the buggy shadow
//! and passes against one that only differs by noise. Where requests never repeat, a
//! reference instance (a second production) shows the noise production alone cannot.

use std::time::Duration;

use shadowd_tests::{
    browser::Browser,
    fixtures::{MappingFile, SHADOW_MAPPING, ShadowSetup, production_get, user_example},
    http_server::Behaviour,
    json_service::{production, shadow},
    netns::Topology,
    shadowd::binary,
    tcpdump::Tcpdump,
};

/// Requests sent to each endpoint.
const PER_ENDPOINT: u64 = 45;

/// The JSON service as production, and as the shadow with its two bugs.
fn json_service_setup() -> ShadowSetup {
    ShadowSetup::with_shadow(answering(production), answering(shadow))
}

/// A server answering as `respond` does.
fn answering(respond: fn(&str) -> Vec<u8>) -> Behaviour {
    Behaviour {
        respond: Some(respond),
        ..Default::default()
    }
}

#[test]
fn only_the_shadows_real_differences_are_flagged_and_noise_is_cancelled() {
    let s = json_service_setup();
    let mappings = MappingFile::new(&user_example("diff: true\n"));
    let daemon = s.start(&mappings);
    for i in 0..PER_ENDPOINT {
        // A few distinct requests per endpoint: production answers identical ones often.
        for path in [
            format!("/myservice/users/{}", i % 5),
            format!("/myservice/orders/{}", i % 4),
            format!("/myservice/page/{}", i % 3),
        ] {
            assert_eq!(production_get(&s.topo, &path), 200, "{path}");
        }
    }
    let total = 3 * PER_ENDPOINT;
    let scrape = daemon.settled_scrape(Duration::from_secs(30), "every copy diffed", |scrape| {
        scrape.sum("shadowd_diff_compared_total", &[]) == total
    });
    assert_eq!(
        scrape.sum(
            "shadowd_diff_compared_total",
            &[("mapping", SHADOW_MAPPING), ("outcome", "different")]
        ),
        2 * PER_ENDPOINT,
        "users (noise differs in every response) and orders (status)"
    );
    assert_eq!(scrape.sum("shadowd_diff_lost_total", &[]), 0);

    let (status, body) = daemon.get("/diag?json=true").expect("diag");
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON report");
    let mapping = &report["diff"][0];
    assert_eq!(mapping["mapping"], SHADOW_MAPPING);
    assert_eq!(mapping["compared"], total);
    let endpoint = |name: &str| {
        mapping["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"] == name)
            .unwrap_or_else(|| panic!("{name} in {mapping:#}"))
            .clone()
    };
    let field = |endpoint: &serde_json::Value, name: &str| {
        endpoint["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("{name} in {endpoint:#}"))
            .clone()
    };
    let flagged: Vec<(String, String)> = mapping["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["fields"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["flagged"] == true)
                .map(|f| {
                    (
                        e["endpoint"].as_str().unwrap().to_string(),
                        f["field"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        flagged,
        [
            (
                "GET /myservice/orders/{id}".to_string(),
                "status".to_string()
            ),
            (
                "GET /myservice/users/{id}".to_string(),
                "$.name".to_string()
            ),
        ],
        "{mapping:#}"
    );
    let users = endpoint("GET /myservice/users/{id}");
    assert_eq!(users["compared"], PER_ENDPOINT);
    assert_eq!(users["noise_compared"], PER_ENDPOINT - 5);
    for noisy in ["$.at", "$.request_id", "header.x-request-id"] {
        let noisy = field(&users, noisy);
        assert_eq!(noisy["flagged"], false, "{noisy}");
        assert_eq!(noisy["noise_rate"], 1.0, "{noisy}");
    }
    let name = field(&users, "$.name");
    // Users 0 to 4, 9 requests each: user 2's name is wrong.
    assert_eq!(name["difference_rate"], 0.2);
    assert_eq!(name["noise_rate"], 0.0);
    let sample = &name["samples"][0];
    let (production_name, shadow_name) = (
        sample["production"].as_str().unwrap(),
        sample["shadow"].as_str().unwrap(),
    );
    assert_eq!(production_name.to_lowercase(), shadow_name.to_lowercase());
    assert!(shadow_name.starts_with("\"U"), "{sample:#}");
    assert!(
        sample["request"]
            .as_str()
            .unwrap()
            .starts_with("curl -X 'GET' 'http://myservice/myservice/users/"),
        "{sample:#}"
    );
    assert_eq!(sample["shadow_head"]["status"], 200);
    // Gzip-encoded, chunked: decoded, the bodies agree; only the status differs.
    let orders = endpoint("GET /myservice/orders/{id}");
    let order_fields: Vec<&str> = orders["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(order_fields, ["$.at", "$.request_id", "status"]);
    let status = field(&orders, "status");
    assert_eq!(status["samples"][0]["production"], "200");
    assert_eq!(status["samples"][0]["shadow"], "201");
    // A non-JSON page answered alike: nothing differs.
    let page = endpoint("GET /myservice/page/{id}");
    assert_eq!(
        (page["equal"].as_u64(), page["different"].as_u64()),
        (Some(PER_ENDPOINT), Some(0))
    );

    // `shadowd diff`: the same report in a terminal, exit code 2 for flagged fields.
    let diff = s
        .topo
        .server
        .command(binary().to_str().unwrap())
        .args(["diff"])
        .output()
        .expect("shadowd diff");
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(diff.status.code(), Some(2), "{text}");
    assert!(text.contains("FLAGGED $.name"), "{text}");
    assert!(text.contains("FLAGGED status"), "{text}");
    assert!(text.contains("noise   $.at"), "{text}");

    // The page, in a real browser: the flagged fields and their samples.
    let dom = Browser::new(&s.topo.server).dom("http://127.0.0.1:8877/diag");
    assert!(dom.contains("Response differences"), "{dom}");
    assert_eq!(
        dom.matches("<td class=\"bad\">FLAGGED</td>").count(),
        2,
        "{dom}"
    );
    assert!(
        dom.contains("GET /myservice/users/{id} · $.name</h3>"),
        "{dom}"
    );
}

/// `shadowd replay --pcap … --diff` on `pcap` against the shadow Mapping's `service`: its
/// exit code and report.
fn replay_diff(s: &ShadowSetup, pcap: &std::path::Path, service: &str) -> (Option<i32>, String) {
    let mappings = MappingFile::new(&user_example("").replace(
        "service: myservice-shadow.default",
        &format!("service: {service}"),
    ));
    let output = s
        .topo
        .server
        .command(binary().to_str().unwrap())
        .args(["replay", "--diff", "--pcap"])
        .arg(pcap)
        .args(["--config", mappings.arg()])
        .output()
        .expect("shadowd replay");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{}\n{report}", String::from_utf8_lossy(&output.stderr));
    (output.status.code(), report)
}

#[test]
fn replay_of_a_capture_with_diff_is_a_gate_that_fails_on_a_flagged_field_only() {
    let s = json_service_setup();
    // A shadow as good as production (noise aside), on another port.
    let _good = shadowd_tests::http_server::HttpServer::start_with(
        &s.shadow_host.ns,
        &format!("{}:8080", shadowd_tests::netns::ShadowHost::ADDRESS),
        answering(production),
    );
    let tcpdump = Tcpdump::start("80", &s.topo.server, "diff", &["-i", Topology::SERVER_IF]);
    for i in 0..30 {
        for path in [
            format!("/myservice/users/{}", i % 4),
            format!("/myservice/orders/{}", i % 3),
        ] {
            assert_eq!(production_get(&s.topo, &path), 200, "{path}");
        }
    }
    assert_eq!(production_get(&s.topo, "/myservice/page/last"), 200);
    let pcap = tcpdump.finish(b"/myservice/page/last");

    let (code, report) = replay_diff(&s, &pcap, "myservice-shadow.default");
    assert_eq!(code, Some(2), "flagged fields fail the gate: {report}");
    assert!(report.contains("61 compared"), "{report}");
    assert!(report.contains("FLAGGED $.name"), "{report}");
    assert!(report.contains("FLAGGED status"), "{report}");
    assert!(report.contains("noise   $.at"), "{report}");

    let (code, report) = replay_diff(&s, &pcap, "myservice-shadow.default:8080");
    assert_eq!(code, Some(0), "noise alone passes: {report}");
    assert!(
        report.contains("61 compared") && !report.contains("FLAGGED"),
        "{report}"
    );
    std::fs::remove_file(&pcap).ok();
}

#[test]
fn a_reference_instance_cancels_the_noise_of_requests_that_never_repeat() {
    let s = json_service_setup();
    // A second instance of production's version, on the shadow host's port 8080.
    let reference = shadowd_tests::http_server::HttpServer::start_with(
        &s.shadow_host.ns,
        &format!("{}:8080", shadowd_tests::netns::ShadowHost::ADDRESS),
        answering(production),
    );
    let mappings = MappingFile::new(&user_example(
        "diff:\n  reference: myservice-shadow.default:8080\n",
    ));
    let daemon = s.start(&mappings);
    // Every request different: production's own answers never show the noise.
    let per_endpoint = 30u64;
    for i in 0..per_endpoint {
        for path in [
            format!("/myservice/users/{i}"),
            format!("/myservice/orders/{}", 100 + i),
        ] {
            assert_eq!(production_get(&s.topo, &path), 200, "{path}");
        }
    }
    let total = 2 * per_endpoint;
    daemon.settled_scrape(Duration::from_secs(30), "every copy diffed", |scrape| {
        scrape.sum("shadowd_diff_compared_total", &[]) == total
    });
    assert_eq!(
        reference.received().len() as u64,
        total,
        "the reference got every copy"
    );
    let (_, body) = daemon.get("/diag?json=true").expect("diag");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON report");
    let mapping = &report["diff"][0];
    let mut flagged: Vec<String> = Vec::new();
    for endpoint in mapping["endpoints"].as_array().unwrap() {
        assert_eq!(endpoint["reference_compared"], per_endpoint, "{endpoint:#}");
        assert_eq!(
            endpoint["noise_compared"], per_endpoint,
            "no identical pairs"
        );
        for field in endpoint["fields"].as_array().unwrap() {
            if field["flagged"] == true {
                flagged.push(field["field"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(flagged, ["status", "$.name"], "{mapping:#}");
    // The ledger counts the shadow's copies only.
    assert_eq!(report["ledger"][0]["copied"], total);
    assert_eq!(report["ledger"][0]["balanced"], true);
}
