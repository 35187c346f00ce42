//! Observability end to end: metrics after real traffic agree with what the servers saw,
//! `/diag` puts production and shadow side by side and shows the loss ledger, diagnostics
//! reach `/diag`, Ambassador's errors URL and the gauge, `shadowd status` prints the same,
//! latency figures match servers of known delay, the routes the manifests probe (admin
//! server) and scrape (metrics listener, which serves nothing else) answer, the admin server
//! bounds its connections and slow heads, and the HTML page renders in a real browser.

use std::{io::Read, net::TcpStream, path::Path, time::Duration};

use serde_yaml_ng::Value;
use shadowd_tests::{
    browser::Browser,
    eventually,
    fixtures::{MappingFile, SHADOW_MAPPING, ShadowSetup, production_get, user_example},
    http_server::Behaviour,
    shadowd::{binary, http_get},
};

/// What the admin server serves at once (`admin/listener.rs`).
const MAX_ADMIN_CONNECTIONS: usize = 64;

const MAPPING: &str = SHADOW_MAPPING;
/// The HTML diagnostics page, as a browser in the production namespace reaches it.
const DIAG_PAGE: &str = "http://127.0.0.1:8877/diag";

/// Production answering 500 under /myservice/fail/, a healthy shadow, and the user's example
/// with `extra` added to the shadow Mapping.
fn setup(extra: &str) -> (ShadowSetup, MappingFile) {
    let behaviour = Behaviour {
        fail_prefix: Some("/myservice/fail/"),
        ..Default::default()
    };
    (
        ShadowSetup::new(behaviour),
        MappingFile::new(&user_example(extra)),
    )
}

#[test]
fn metrics_diag_and_status_show_both_sides_and_a_balanced_ledger() {
    let (s, mappings) = setup("");
    let daemon = s.start(&mappings);
    for i in 0..12 {
        assert_eq!(production_get(&s.topo, &format!("/myservice/ok/{i}")), 200);
    }
    for i in 0..4 {
        assert_eq!(
            production_get(&s.topo, &format!("/myservice/fail/{i}")),
            500
        );
    }
    assert_eq!(production_get(&s.topo, "/elsewhere"), 200);

    let shadowed = 16u64;
    let scrape = daemon.settled_scrape(
        Duration::from_secs(20),
        "both sides to be compared",
        |scrape| {
            scrape.sum("shadowd_responses_total", &[("role", "shadow")]) == shadowed
                && scrape.sum("shadowd_responses_total", &[("role", "production")]) == shadowed
        },
    );
    // The counters agree with what the servers saw.
    assert_eq!(s.shadow.received().len() as u64, shadowed);
    assert_eq!(s.production.received().len() as u64, shadowed + 1);
    let responses = |role: &str, class: &str| {
        scrape.sum(
            "shadowd_responses_total",
            &[("mapping", MAPPING), ("role", role), ("class", class)],
        )
    };
    assert_eq!(responses("production", "2xx"), 12);
    assert_eq!(responses("production", "5xx"), 4);
    assert_eq!(responses("shadow", "2xx"), 16);
    assert_eq!(
        scrape.sum(
            "shadowd_status_class_differences_total",
            &[("mapping", MAPPING)]
        ),
        4
    );
    assert_eq!(
        scrape.sum(
            "shadowd_response_latency_seconds_count",
            &[("role", "production")]
        ),
        shadowed
    );

    let (status, body) = daemon.get("/diag?json=true").expect("diag");
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON report");
    let comparison = &report["comparison"][0];
    assert_eq!(comparison["mapping"], MAPPING);
    assert_eq!(comparison["production"]["classes"]["5xx"], 4);
    assert_eq!(comparison["shadow"]["classes"]["2xx"], 16);
    assert_eq!(comparison["status_class_differences"], 4);
    assert_eq!(comparison["compared"], 16);
    assert!(comparison["production"]["p99_ms"].as_f64().is_some());
    let ledger = &report["ledger"][0];
    assert_eq!(ledger["observed"], 16);
    assert_eq!(ledger["copied"], 16);
    assert_eq!(ledger["balanced"], true);
    assert_eq!(report["ready"], true);
    assert_eq!(report["route_table"][0]["shadow"]["mapping"], MAPPING);

    let (status, html) = daemon.get("/diag").expect("diag html");
    assert_eq!(status, 200);
    assert!(
        html.contains("<table id=\"comparison\">") && html.contains("4 of 16"),
        "{html}"
    );

    let status = s
        .topo
        .server
        .command(binary().to_str().unwrap())
        .args(["status"])
        .output()
        .expect("shadowd status");
    let text = String::from_utf8_lossy(&status.stdout);
    println!("{text}");
    assert!(status.status.success());
    assert!(
        text.contains("status class differs on 4 of 16 compared requests"),
        "{text}"
    );
    assert!(text.contains(MAPPING) && text.contains("yes"), "{text}");
}

#[test]
fn a_second_shadow_error_reaches_diag_ambassador_and_the_gauge() {
    let (s, mappings) = setup(
        "---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-shadow-next\nprefix: /myservice/\nservice: other.default\nshadow: true\n",
    );
    let daemon = s.start(&mappings);
    let error =
        "cannot accept myservice-shadow-next as second shadow after myservice-shadow-mapping";

    let (_, body) = daemon
        .get("/ambassador/v0/diag/?json=true&filter=errors")
        .expect("ambassador diag");
    let errors: Vec<(String, String)> = serde_json::from_str(&body).expect("[[rkey, message]]");
    // Keyed by the group, named after its first Mapping: the file's first document.
    let file = Path::new(mappings.arg())
        .file_name()
        .unwrap()
        .to_string_lossy();
    assert_eq!(errors, [(format!("{file}.1"), error.to_string())]);
    let (_, body) = daemon.get("/diag?json=true").expect("diag");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["errors"][0][1], error);
    assert_eq!(daemon.scrape().sum("shadowd_diagnostics_errors", &[]), 1);
}

#[test]
fn latency_figures_match_servers_of_known_delay_on_both_sides() {
    // Far apart, so that swapped roles, a unit mix-up (ms read as s, or the reverse) or a
    // latency that is always 0 each fall outside the bounds: a figure is at least its
    // server's delay and below the next bound.
    let production_delay = Duration::from_millis(300);
    let shadow_delay = Duration::from_millis(30);
    let s = ShadowSetup::with_shadow(
        Behaviour {
            delay: production_delay,
            ..Default::default()
        },
        Behaviour {
            delay: shadow_delay,
            ..Default::default()
        },
    );
    let mappings = MappingFile::new(&user_example(""));
    let daemon = s.start(&mappings);
    let requests = 8u64;
    for i in 0..requests {
        assert_eq!(
            production_get(&s.topo, &format!("/myservice/slow/{i}")),
            200
        );
    }
    let scrape = daemon.settled_scrape(Duration::from_secs(20), "both sides timed", |scrape| {
        ["production", "shadow"].iter().all(|role| {
            scrape.sum("shadowd_response_latency_seconds_count", &[("role", role)]) == requests
        })
    });
    let bounds = |role: &str| match role {
        "production" => (production_delay, 10 * production_delay),
        _ => (shadow_delay, production_delay),
    };
    for role in ["production", "shadow"] {
        let (low, high) = bounds(role);
        let total: f64 = scrape
            .samples
            .iter()
            .filter(|s| {
                s.name == "shadowd_response_latency_seconds_sum"
                    && s.labels.get("role").map(String::as_str) == Some(role)
            })
            .map(|s| s.value)
            .sum();
        let mean = Duration::from_secs_f64(total / requests as f64);
        assert!(
            low <= mean && mean < high,
            "{role} mean latency {mean:?}, its server waits {low:?}"
        );
    }

    let (_, body) = daemon.get("/diag?json=true").expect("diag");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON report");
    for role in ["production", "shadow"] {
        let (low, high) = bounds(role);
        let side = &report["comparison"][0][role];
        for quantile in ["p50_ms", "p99_ms"] {
            let ms = side[quantile]
                .as_f64()
                .unwrap_or_else(|| panic!("{role} {quantile} in {side}"));
            let figure = Duration::from_secs_f64(ms / 1000.0);
            assert!(
                low <= figure && figure < high,
                "{role} {quantile} {figure:?}, its server waits {low:?}"
            );
        }
    }
}

/// What the Kubernetes manifests ask of shadowd: the container's probe paths (of the admin
/// server) and the Service's scrape path (of the metrics listener).
fn manifest_paths() -> (Vec<String>, String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let load = |file: &str| -> Value {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    };
    let daemonset = load("daemonset.yaml");
    let probes: Vec<String> = daemonset["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .flat_map(|container| {
            ["livenessProbe", "readinessProbe", "startupProbe"]
                .into_iter()
                .filter_map(|probe| container[probe]["httpGet"]["path"].as_str())
        })
        .map(str::to_string)
        .collect();
    let service = load("service.yaml");
    let scrape = service["metadata"]["annotations"]["prometheus.io/path"]
        .as_str()
        .unwrap_or("/metrics");
    (probes, scrape.to_string())
}

/// Where the tests' daemons open the metrics listener.
const METRICS: &str = "127.0.0.1:8878";

#[test]
fn the_paths_the_manifests_probe_and_scrape_answer_200_on_a_running_daemon() {
    let (probes, scrape) = manifest_paths();
    assert!(probes.len() >= 2, "probe paths: {probes:?}");
    let (s, mappings) = setup("");
    let daemon = s.start_with_config(mappings.arg(), &["--metrics", METRICS]);
    for path in &probes {
        let (status, body) = daemon
            .get(path)
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(status, 200, "{path}: {body}");
    }
    let on_metrics = |path: &str| {
        s.topo
            .server
            .enter(|| http_get(METRICS, path))
            .unwrap_or_else(|| panic!("{path}: no answer on the metrics listener"))
    };
    let (status, body) = on_metrics(&scrape);
    assert_eq!(status, 200, "{scrape}: {body}");
    assert!(body.contains("shadowd_diagnostics_errors"), "{body}");
    // The route table, service names and file paths stay on the admin server.
    for private in ["/diag", "/ambassador/v0/diag/", "/readyz"] {
        assert_eq!(
            on_metrics(private).0,
            404,
            "{private} on the metrics listener"
        );
    }
}

#[test]
fn the_admin_server_closes_connections_beyond_its_bound_and_heads_that_never_come() {
    let (s, mappings) = setup("");
    let daemon = s.start(&mappings);
    let admin = "127.0.0.1:8877";
    // As many connections as it serves, each sending nothing, then one more.
    let mut idle: Vec<TcpStream> = s.topo.server.enter(|| {
        (0..=MAX_ADMIN_CONNECTIONS)
            .map(|_| {
                let stream = TcpStream::connect(admin).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                stream
            })
            .collect()
    });
    // The one beyond the bound is closed at once.
    let extra = idle.pop().expect("the extra connection");
    assert_eq!(read_until_closed(extra), 0, "closed without an answer");
    // The others never sent a head: each is closed after the head timeout (5 s), not held
    // (a read that waits 20 s fails the test).
    for stream in idle {
        assert_eq!(read_until_closed(stream), 0);
    }
    // Then the probes answer again, and the refusal was counted.
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.sum(
            "shadowd_admin_refused_connections_total",
            &[("listener", "admin")]
        ),
        1
    );
}

/// Bytes read from `stream` until the peer closes it (or resets it).
fn read_until_closed(mut stream: TcpStream) -> usize {
    let mut all = Vec::new();
    match stream.read_to_end(&mut all) {
        Ok(_) => all.len(),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => all.len(),
        Err(err) => panic!("the server never closed the connection: {err}"),
    }
}

#[test]
fn the_diag_page_renders_in_a_browser() {
    let (s, mappings) = setup("");
    let daemon = s.start(&mappings);
    assert_eq!(production_get(&s.topo, "/myservice/page"), 200);
    eventually(Duration::from_secs(10), "a comparison row", || {
        (daemon
            .scrape()
            .sum("shadowd_responses_total", &[("role", "shadow")])
            >= 1)
            .then_some(())
    });
    let browser = Browser::new(&s.topo.server);
    let shot = std::env::temp_dir().join(format!("{}-diag.png", s.topo.server.name));
    let dom_text = browser.dom(DIAG_PAGE);
    assert!(
        dom_text.contains("Production vs shadow") && dom_text.contains(MAPPING),
        "{dom_text}"
    );
    // The latency distributions are a picture the browser took in: both sides' lines.
    assert!(
        dom_text.contains("<svg")
            && dom_text.contains("class=\"production\"")
            && dom_text.contains("class=\"shadow\""),
        "{dom_text}"
    );
    let screenshot = browser.load(
        DIAG_PAGE,
        &[
            "--window-size=1200,900",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(
        screenshot.status.success(),
        "{}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
    std::fs::remove_file(&shot).ok();
}
