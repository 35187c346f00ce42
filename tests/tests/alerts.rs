//! The alert rules in `deploy/prometheus/` and the dashboard in `deploy/grafana/`: `promtool`
//! checks the rules and runs their unit tests, the Prometheus Operator's copy holds the same
//! groups, and a real Prometheus scraping a running shadowd (real traffic through the program)
//! fires `ShadowdShadowDown` for a shadow that goes down and nothing while all is well
//! (responses diffed too: nothing is flagged), and answers every query of the dashboard with
//! data.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_yaml_ng::Value;
use shadowd_tests::{
    eventually,
    fixtures::{MappingFile, SHADOW_MAPPING, ShadowSetup, production_get, user_example},
    http_server::Behaviour,
    netns::Netns,
    shadowd::Shadowd,
};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool (cargo xtask setup installs the prometheus package)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn yaml(name: &str) -> Value {
    let text = std::fs::read_to_string(rules_dir().join(name)).expect("rules file");
    serde_yaml_ng::from_str(&text).expect("YAML")
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "shadowd-rules.yaml"]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    promtool(&["test", "rules", "shadowd-rules.test.yaml"]);
}

#[test]
fn the_prometheus_operator_rule_holds_the_same_groups() {
    let rule = yaml("prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["spec"]["groups"], yaml("shadowd-rules.yaml")["groups"]);
}

/// A Prometheus inside `ns`, scraping shadowd's admin server every second with the rules
/// loaded, their windows and waits shortened to seconds; killed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    const ADDR: &'static str = "127.0.0.1:9090";

    fn start(ns: &Netns) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("shadowd-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = std::fs::read_to_string(rules_dir().join("shadowd-rules.yaml")).unwrap();
        let mut quick = rules.replace("[5m]", "[10s]").replace("[15m]", "[10s]");
        for wait in ["10m", "5m", "15m", "1m"] {
            quick = quick.replace(&format!("for: {wait}"), "for: 0s");
        }
        std::fs::write(dir.join("rules.yaml"), quick).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: shadowd\n    static_configs:\n      - targets: ['127.0.0.1:8877']\n",
        )
        .unwrap();
        let child = ns
            .command("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", Self::ADDR))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus");
        let prometheus = Prometheus { child, dir };
        eventually(Duration::from_secs(20), "Prometheus to be ready", || {
            ns.http_get(Self::ADDR, "/-/ready")
                .filter(|(status, _)| *status == 200)
        });
        prometheus
    }

    /// The names of the alerts firing now.
    fn firing(&self, ns: &Netns) -> Vec<String> {
        let (_, body) = ns
            .http_get(Self::ADDR, "/api/v1/alerts")
            .expect("the alerts API answers");
        let alerts: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let mut names: Vec<String> = alerts["data"]["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|alert| alert["state"] == "firing")
            .map(|alert| alert["labels"]["alertname"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The value of an instant `query` that returns one sample.
    fn value(&self, ns: &Netns, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let (_, body) = ns.http_get(Self::ADDR, &path)?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query for a URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_real_prometheus_fires_shadow_down_and_nothing_while_all_is_well() {
    let ShadowSetup {
        topo,
        shadow_host: _shadow_host,
        production: _production,
        shadow: _shadow,
    } = ShadowSetup::new(Behaviour::default());
    // Responses diffed too: the diff series exist, and a shadow that answers as production
    // does flags nothing.
    let mappings = MappingFile::new(&user_example("diff: true\n"));
    let _daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            shadowd_tests::netns::Topology::SERVER_IF,
            "--config",
            mappings.arg(),
        ],
    );
    let prometheus = Prometheus::start(&topo.server);
    let copied = format!(
        "sum(rate(shadowd_replay_copied_requests_total{{mapping=\"{SHADOW_MAPPING}\"}}[10s]))"
    );
    let mut sent = 0;
    let mut traffic = |count: usize| {
        for _ in 0..count {
            assert_eq!(production_get(&topo, &format!("/myservice/{sent}")), 200);
            sent += 1;
        }
    };

    // All is well: copies arrive, as Prometheus sees it, and no alert fires.
    eventually(Duration::from_secs(30), "Prometheus to see copies", || {
        traffic(5);
        std::thread::sleep(Duration::from_millis(200));
        prometheus
            .value(&topo.server, &copied)
            .filter(|rate| *rate > 0.0)
    });
    for _ in 0..5 {
        traffic(5);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            prometheus.firing(&topo.server),
            Vec::<String>::new(),
            "no alert while all is well"
        );
    }

    // The shadow goes down (its link does: connects fail at once), and the alert fires.
    topo.server.ip(&["link", "set", "shd0", "down"]);
    let firing = eventually(Duration::from_secs(60), "ShadowdShadowDown to fire", || {
        traffic(5);
        std::thread::sleep(Duration::from_millis(500));
        let firing = prometheus.firing(&topo.server);
        firing
            .contains(&"ShadowdShadowDown".to_string())
            .then_some(firing)
    });
    assert!(
        firing.contains(&"ShadowdCopiesDropped".to_string()),
        "the drops fire too: {firing:?}"
    );
    assert!(
        !firing.contains(&"ShadowdLedgerUnbalanced".to_string()),
        "{firing:?}"
    );

    // Every query of the dashboard, with all Mappings and a rate window of 10 s, has data.
    let empty: Vec<String> = dashboard_queries()
        .into_iter()
        .map(|expr| {
            expr.replace("$mapping", ".*")
                .replace("$__rate_interval", "10s")
        })
        .filter(|query| prometheus.value(&topo.server, query).is_none())
        .collect();
    assert!(empty.is_empty(), "queries without data: {empty:#?}");
}

/// The query of every target of every panel of `deploy/grafana/shadowd.json`.
fn dashboard_queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/shadowd.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(queries.len() > 10, "{queries:?}");
    queries
}

#[test]
fn the_dashboard_imports_as_is() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/shadowd.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "mapping"]);
    // Every panel reads the chosen data source, none a fixed one.
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
        }
    }
}
