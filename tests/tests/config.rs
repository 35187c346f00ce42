//! `shadowd run --config`: capture ports come from the Mappings, requests are routed to
//! their shadow Mapping, a reload swaps the table (and the capture ports) without detaching,
//! a broken configuration leaves the running one in place, and an unusable one at start-up
//! exits 64 before anything is attached.

use std::{path::PathBuf, time::Duration};

use shadowd_tests::{
    eventually,
    http_server::HttpServer,
    metrics::Scrape,
    netns::{Netns, Topology},
    run,
    shadowd::{Shadowd, binary},
};

/// A Mapping file in a fresh directory, removed on drop.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(ns: &Netns, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("{}-config", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mappings.yaml");
        std::fs::write(&path, text).unwrap();
        ConfigFile { dir, path }
    }

    fn write(&self, text: &str) {
        // Write then rename, as a ConfigMap update does: never a half-written file.
        let temp = self.dir.join(".mappings.yaml.new");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &self.path).unwrap();
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The user's example, with the production service on `port` and the given prefix.
fn mappings(prefix: &str, port: u16) -> String {
    format!(
        "apiVersion: ambassador/v0\nkind: Mapping\nname: myservice-mapping\nprefix: {prefix}\nservice: myservice.default:{port}\n---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-shadow-mapping\nprefix: {prefix}\nservice: myservice-shadow.default\nshadow: true\n"
    )
}

fn get(ns: &Netns, port: u16, path: &str) {
    let code = run(ns
        .command("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{}:{port}{path}", Topology::SERVER_V4)));
    assert_eq!(code, "200");
}

fn matched(scrape: &Scrape) -> u64 {
    scrape.sum(
        "shadowd_replay_observed_requests_total",
        &[("mapping", "myservice-shadow-mapping")],
    )
}

fn reloads(scrape: &Scrape, outcome: &str) -> u64 {
    scrape.sum("shadowd_config_reloads_total", &[("outcome", outcome)])
}

#[test]
fn ports_come_from_the_mappings_and_requests_are_routed() {
    let topo = Topology::new();
    let _server = HttpServer::start(&topo.server, &format!("{}:8080", Topology::SERVER_V4));
    let config = ConfigFile::new(&topo.server, &mappings("/myservice/", 8080));
    let daemon = Shadowd::start(
        &topo.server,
        &["--interface", Topology::SERVER_IF, "--config", config.arg()],
    );
    assert!(
        daemon.log_text().contains("ports={8080}"),
        "{}",
        daemon.log_text()
    );
    for path in ["/myservice/a", "/myservice/b?x=1", "/other", "/myservicex"] {
        get(&topo.client, 8080, path);
    }
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "the requests to be routed",
        |scrape| scrape.sum("shadowd_http_requests_total", &[]) >= 4,
    );
    assert_eq!(matched(&scrape), 2);
    assert_eq!(
        scrape.sum("shadowd_http_requests_not_shadowed_total", &[]),
        2
    );
    assert_eq!(scrape.sum("shadowd_diagnostics_errors", &[]), 0);
    assert_eq!(scrape.sum("shadowd_config_mappings", &[]), 2);
}

#[test]
fn reload_swaps_table_and_ports_and_keeps_the_old_on_a_bad_config() {
    let topo = Topology::new();
    let _server = HttpServer::start(&topo.server, &format!("{}:8080", Topology::SERVER_V4));
    let _server2 = HttpServer::start(&topo.server, &format!("{}:9090", Topology::SERVER_V4));
    let config = ConfigFile::new(&topo.server, &mappings("/myservice/", 8080));
    let daemon = Shadowd::start(
        &topo.server,
        &["--interface", Topology::SERVER_IF, "--config", config.arg()],
    );

    // A change in the file is picked up: new prefix, and port 9090 instead of 8080.
    config.write(&mappings("/v2/", 9090));
    eventually(
        Duration::from_secs(15),
        "the file change to be applied",
        || (reloads(&daemon.scrape(), "applied") >= 1).then_some(()),
    );
    get(&topo.client, 9090, "/v2/items");
    get(&topo.client, 8080, "/v2/not-captured-any-more");
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "the request on 9090 to be routed",
        |scrape| matched(scrape) >= 1,
    );
    assert_eq!(matched(&scrape), 1);
    assert_eq!(
        scrape.sum("shadowd_http_requests_total", &[]),
        1,
        "8080 is no longer captured"
    );

    // A broken file is rejected; the running table keeps routing.
    config.write("apiVersion: ambassador/v0\nkind: Mapping\nname: [broken\n");
    eventually(
        Duration::from_secs(15),
        "the broken file to be rejected",
        || (reloads(&daemon.scrape(), "rejected") >= 1).then_some(()),
    );
    get(&topo.client, 9090, "/v2/still-shadowed");
    eventually(
        Duration::from_secs(10),
        "the old table to keep routing",
        || (matched(&daemon.scrape()) >= 2).then_some(()),
    );

    // SIGHUP reloads on demand: a second shadow is an error, but the configuration applies.
    config.write(&(mappings("/v2/", 9090) + "---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-shadow-next\nprefix: /v2/\nservice: other.default\nshadow: true\n"));
    daemon.signal(libc::SIGHUP);
    let scrape = daemon.settled_scrape(
        Duration::from_secs(15),
        "SIGHUP to apply the new file",
        |scrape| reloads(scrape, "applied") >= 2,
    );
    assert_eq!(scrape.sum("shadowd_diagnostics_errors", &[]), 1);
    assert!(daemon.log_text().contains(
        "cannot accept myservice-shadow-next as second shadow after myservice-shadow-mapping"
    ));
}

#[test]
fn an_unusable_configuration_exits_64_before_attaching() {
    let topo = Topology::new();
    let config = ConfigFile::new(&topo.server, "kind: Mapping\nname: [broken\n");
    // Every bpf(2) call the daemon makes is traced: "before attaching" means no program was
    // loaded, no map created and no link made, not only that no device is left behind.
    let trace = config.dir.join("bpf-calls");
    let output = topo
        .server
        .command("strace")
        .args(["--follow-forks", "--trace=bpf,execve", "--output"])
        .arg(&trace)
        .arg(binary())
        .args([
            "run",
            "--interface",
            Topology::SERVER_IF,
            "--config",
            config.arg(),
        ])
        .output()
        .expect("running shadowd under strace");
    assert_eq!(
        output.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mappings.yaml, document 1, line 3: not valid YAML"),
        "{stderr}"
    );
    let calls = std::fs::read_to_string(&trace).expect("the strace output");
    assert!(
        calls.contains("execve(") && calls.contains("shadowd"),
        "strace saw the daemon start: {calls}"
    );
    assert!(
        !calls.contains("bpf("),
        "bpf calls before the exit: {calls}"
    );
    assert!(
        !topo.server.links().iter().any(|l| l.starts_with("shadow0")),
        "nothing was set up"
    );
}
