//! `shadowd run --config`: capture ports come from the Mappings, requests are routed to
//! their shadow Mapping, a reload swaps the table (and the capture ports) without detaching
//! or losing a connection in progress, SIGHUP reloads on its own, a broken configuration
//! leaves the running one in place (as does one whose capture ports the kernel refuses), and
//! an unusable one at start-up exits 64 before anything
//! is attached.

use std::{io::Write, net::TcpStream, path::PathBuf, time::Duration};

use shadowd_tests::{
    bpf_maps,
    clients::read_responses,
    eventually,
    fixtures::{PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::{Behaviour, HttpServer},
    metrics::Scrape,
    netns::{Netns, Topology},
    run,
    shadowd::{Shadowd, binary},
    shadowing::target,
    tcx,
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
        daemon
            .log_text()
            .contains("capture=port 8080 at any address"),
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
fn sighup_reloads_with_file_polling_off() {
    let topo = Topology::new();
    let _server = HttpServer::start(&topo.server, &format!("{}:8080", Topology::SERVER_V4));
    let config = ConfigFile::new(&topo.server, &mappings("/myservice/", 8080));
    let daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            Topology::SERVER_IF,
            "--config",
            config.arg(),
            "--config-poll-ms",
            "0",
        ],
    );
    let at_start = reloads(&daemon.scrape(), "applied");

    // With polling off a changed file stays unread: three default poll periods later the
    // old table still routes.
    config.write(&mappings("/v2/", 8080));
    std::thread::sleep(Duration::from_secs(6));
    get(&topo.client, 8080, "/myservice/old-table");
    get(&topo.client, 8080, "/v2/not-yet");
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "both requests to be routed",
        |scrape| scrape.sum("shadowd_http_requests_total", &[]) == 2,
    );
    assert_eq!(
        reloads(&scrape, "applied"),
        at_start,
        "a reload without SIGHUP"
    );
    assert_eq!(
        matched(&scrape),
        1,
        "only /myservice/ is shadowed before SIGHUP"
    );

    // SIGHUP alone applies it.
    daemon.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "SIGHUP to apply the file", || {
        (reloads(&daemon.scrape(), "applied") == at_start + 1).then_some(())
    });
    get(&topo.client, 8080, "/v2/after-sighup");
    get(&topo.client, 8080, "/myservice/not-any-more");
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "the requests after SIGHUP to be routed",
        |scrape| scrape.sum("shadowd_http_requests_total", &[]) == 4,
    );
    assert_eq!(matched(&scrape), 2, "/v2/ is shadowed after SIGHUP");
}

#[test]
fn a_reload_whose_ports_the_kernel_refuses_keeps_the_running_table_and_ports() {
    let topo = Topology::new();
    let _server = HttpServer::start(&topo.server, &format!("{}:8080", Topology::SERVER_V4));
    let _other = HttpServer::start(&topo.server, &format!("{}:8081", Topology::SERVER_V4));
    let config = ConfigFile::new(&topo.server, &mappings("/myservice/", 8080));
    let daemon = Shadowd::start(
        &topo.server,
        &[
            "--interface",
            Topology::SERVER_IF,
            "--config",
            config.arg(),
            "--config-poll-ms",
            "0",
        ],
    );
    let at_start = daemon.scrape();
    // The kernel map of capture ports takes no more writes from userspace.
    bpf_maps::freeze_newest("CAPTURE_PORTS");

    // A new table on a new port: the ports cannot change, so neither may the table.
    config.write(&mappings("/v2/", 8081));
    daemon.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "the reload to fail", || {
        (reloads(&daemon.scrape(), "failed") == 1).then_some(())
    });
    get(&topo.client, 8080, "/myservice/old-table");
    get(&topo.client, 8081, "/v2/new-table");
    let scrape = daemon.settled_scrape(
        Duration::from_secs(10),
        "the old port's request to be routed",
        |scrape| matched(scrape) == 1,
    );
    assert_eq!(reloads(&scrape, "applied"), reloads(&at_start, "applied"));
    assert_eq!(
        scrape.sum("shadowd_http_requests_total", &[]),
        1,
        "only the old port is captured"
    );
    let (status, diag) = daemon.get("/diag?json=true").expect("/diag answers");
    assert_eq!(status, 200);
    assert!(
        diag.contains("/myservice/") && !diag.contains("/v2/"),
        "/diag shows the table in use: {diag}"
    );
}

#[test]
fn a_reload_keeps_the_program_attached_and_a_connection_that_spans_it_copied() {
    let s = ShadowSetup::new(Behaviour::default());
    let config = ConfigFile::new(&s.topo.server, &user_example(""));
    let daemon = Shadowd::start(
        &s.topo.server,
        &["--interface", Topology::SERVER_IF, "--config", config.arg()],
    );
    let attached = tcx::attachments(&s.topo.server, Topology::SERVER_IF);
    let applied = reloads(&daemon.scrape(), "applied");

    let mut stream = s
        .topo
        .client
        .enter(|| TcpStream::connect(PRODUCTION).expect("connect"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .write_all(b"GET /myservice/span/1 HTTP/1.1\r\nHost: myservice\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut stream, 1), [200]);
    // The reload falls inside the second request's head: its first bytes are reassembled
    // and parsed under the old table, the rest under the new one.
    stream
        .write_all(b"GET /myservice/span/2 HTTP/1.1\r\nHo")
        .unwrap();
    let seen_before = daemon.settled_scrape(
        Duration::from_secs(10),
        "the first request and the cut head to be captured",
        |scrape| scrape.sum("shadowd_http_requests_total", &[]) == 1,
    );
    let seen_before = seen_before.sum("shadowd_tc_seen_packets_total", &[]);

    // A real change of the table: one more Mapping, same production port.
    config.write(&(user_example("") + "---\napiVersion: ambassador/v0\nkind: Mapping\nname: other-mapping\nprefix: /other/\nservice: myservice.default\n"));
    daemon.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "the reload to be applied", || {
        (reloads(&daemon.scrape(), "applied") == applied + 1).then_some(())
    });
    assert_eq!(reloads(&daemon.scrape(), "rejected"), 0);

    stream.write_all(b"st: myservice\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut stream, 1), [200]);
    stream
        .write_all(b"GET /myservice/span/3 HTTP/1.1\r\nHost: myservice\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut stream, 1), [200]);

    let scrape = daemon.accounted_for(SHADOW_MAPPING, 3, Duration::from_secs(20));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 3);
    let copies: Vec<String> = s.shadow.received().iter().map(|raw| target(raw)).collect();
    assert_eq!(
        copies,
        [
            "/myservice/span/1",
            "/myservice/span/2",
            "/myservice/span/3"
        ],
        "the connection's copies, in order, once each"
    );
    assert_eq!(
        tcx::attachments(&s.topo.server, Topology::SERVER_IF),
        attached,
        "the same programs, never detached or attached again"
    );
    // The program's counters live in its maps: a reload that loaded it anew would start
    // them from zero.
    assert!(scrape.sum("shadowd_tc_seen_packets_total", &[]) > seen_before);
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
