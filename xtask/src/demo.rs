//! `cargo xtask demo`: the user's example end to end on this machine. Namespaces hold a
//! client, the production `myservice` (with shadowd watching its interface) and
//! `myservice-shadow`; clients send a realistic mix; the demo prints requests as production
//! got them next to their shadow copies, the production vs shadow table and the loss ledger,
//! and exits 0 only if the shadow received exactly the copies it should have. Then a JSON API
//! whose shadow Mapping diffs responses: the shadow (a new version with two bugs) answers
//! with the same noise as production (timestamps, request ids), and `shadowd diff` flags the
//! two bugs and cancels the noise.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use shadowd_tests::{
    clients::{Piece, exchange},
    eventually,
    http_server::{Behaviour, HttpServer},
    json_service,
    netns::{ShadowHost, Topology},
    shadowing::{expected_copy, target},
};

use crate::{setup, test};

const PRODUCTION: &str = "198.18.0.2:80";
const EXAMPLE: &str = "examples/myservice-services.yaml";
/// The JSON API's Mappings: its copies' responses are diffed.
const API_MAPPINGS: &str = "apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: api}
spec: {prefix: /api/, service: myservice.default}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: api-shadow}
spec:
  prefix: /api/
  service: myservice-shadow.default
  shadow: true
  diff: true
";

/// `cargo xtask demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Leave everything running after the report, until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

/// shadowd inside the production namespace, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first so shadowd removes its mirror pair itself.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

pub fn run(args: &DemoArgs) -> Result<()> {
    setup::run()?;
    test::status(test::cargo().args(["build", "--package", "shadow-user", "--bin", "shadowd"]))?;
    let shadowd = setup::workspace_root().join("target/debug/shadowd");
    let example = setup::workspace_root().join(EXAMPLE);

    // Ctrl-C: the guards below do not run on a signal, so clean up by name and leave.
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: removing the demo namespaces");
        cleanup_leftovers();
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")?;

    println!("== setting up: client, production (myservice + shadowd) and shadow namespaces");
    let topo = Topology::new();
    let shadow_host = ShadowHost::new(&topo);
    topo.server.set_hosts(&[(
        ShadowHost::ADDRESS,
        "myservice-shadow.default myservice-shadow",
    )]);
    // Both answer as the JSON service does; the shadow with its two bugs.
    let production = HttpServer::start_with(
        &topo.server,
        PRODUCTION,
        Behaviour {
            respond: Some(json_service::production),
            ..Behaviour::default()
        },
    );
    let shadow = HttpServer::start_with(
        &shadow_host.ns,
        &format!("{}:80", ShadowHost::ADDRESS),
        Behaviour {
            respond: Some(json_service::shadow),
            ..Behaviour::default()
        },
    );
    let log = std::env::temp_dir().join(format!("{}-shadowd.log", topo.server.name));
    let api = std::env::temp_dir().join(format!("{}-api.yaml", topo.server.name));
    std::fs::write(&api, API_MAPPINGS)?;
    let _daemon = Daemon(
        topo.server
            .command(shadowd.to_str().context("utf-8 path")?)
            .args(["run", "--interface", Topology::SERVER_IF, "--config"])
            .arg(&example)
            .arg("--config")
            .arg(&api)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting shadowd")?,
    );
    eventually(Duration::from_secs(30), "shadowd to attach", || {
        admin(&topo, &shadowd, "status").then_some(())
    });
    println!(
        "   shadowd attached to {} with {}",
        Topology::SERVER_IF,
        EXAMPLE
    );

    println!("== sending traffic: 4 clients, GETs and POSTs, some outside /myservice/");
    send_mix(&topo);

    let expected: Vec<Vec<u8>> = production
        .received()
        .iter()
        .filter(|raw| target(raw).starts_with("/myservice/"))
        .map(|raw| expected_copy(raw))
        .collect();
    eventually(
        Duration::from_secs(30),
        "the shadow to get every copy",
        || (shadow.received().len() >= expected.len()).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));

    println!("\n== a few requests as production received them, and their shadow copies");
    for raw in production
        .received()
        .iter()
        .filter(|raw| target(raw).starts_with("/myservice/"))
        .take(3)
    {
        println!("production:\n{}", indent(raw));
        let copy = expected_copy(raw);
        let got = shadow.received().into_iter().find(|r| *r == copy);
        println!(
            "shadow:\n{}",
            got.map_or_else(|| "   (not received)".to_string(), |r| indent(&r))
        );
    }
    println!("== production vs shadow, and the loss ledger (shadowd status)");
    admin(&topo, &shadowd, "print");
    let copies = shadow.received();
    let ok = multiset(&copies) == multiset(&expected);
    println!(
        "== {} of {} requests under /myservice/ reached the shadow exactly, with Host myservice-shadow; {} outside the prefix were not copied",
        copies.len(),
        expected.len(),
        production.received().len() - expected.len()
    );

    println!(
        "\n== response diffing: /api/ is shadowed with `diff: true`; its shadow is a new version"
    );
    let diffed = send_api(&topo);
    eventually(
        Duration::from_secs(30),
        "every /api/ copy to be diffed",
        || {
            (diff_report(&topo, &shadowd)?
                .0
                .contains(&format!("{diffed} compared")))
            .then_some(())
        },
    );
    let (report, code) = diff_report(&topo, &shadowd).context("shadowd diff")?;
    println!("$ shadowd diff\n{report}(exit code {code}: a field is flagged)");
    let flagged_as_expected = code == 2
        && report.contains("FLAGGED $.name")
        && report.contains("FLAGGED status")
        && report.contains("noise   $.at");
    if flagged_as_expected {
        println!(
            "== the shadow's two bugs are flagged; the time stamps and request ids that differ on every response are noise production shows too: cancelled"
        );
    }

    println!(
        "   next: `shadowd check --config {EXAMPLE}`, the README's Configuration and Operations sections, docs/"
    );
    if args.keep {
        println!(
            "\nstill running. In another shell:\n  ip netns exec {} curl -s http://127.0.0.1:8877/diag | less      # the diagnostics page\n  ip netns exec {} curl -H 'Host: myservice' http://{PRODUCTION}/myservice/hello\n  ip netns exec {} {} status\nshadowd's log: {}\nCtrl-C here stops and removes everything.",
            topo.server.name,
            topo.client.name,
            topo.server.name,
            shadowd.display(),
            log.display()
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::fs::remove_file(&log).ok();
    std::fs::remove_file(&api).ok();
    if !ok {
        bail!("the shadow did not receive exactly the expected copies");
    }
    if !flagged_as_expected {
        bail!("shadowd diff did not flag exactly the shadow's two bugs");
    }
    println!("demo passed");
    Ok(())
}

/// `shadowd status` in the production namespace: `print` shows it, `status` only checks the
/// daemon answers and is ready.
fn admin(topo: &Topology, shadowd: &std::path::Path, mode: &str) -> bool {
    let output = topo
        .server
        .command(shadowd.to_str().unwrap_or("shadowd"))
        .arg("status")
        .output();
    match output {
        Ok(out) if mode == "print" => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            out.status.success()
        }
        Ok(out) => out.status.success() && String::from_utf8_lossy(&out.stdout).contains("(ready)"),
        Err(_) => false,
    }
}

/// Four clients: GETs with query strings, POSTs with bodies, and paths outside the prefix.
fn send_mix(topo: &Topology) {
    std::thread::scope(|scope| {
        for client in 0..4 {
            scope.spawn(move || {
                let mut requests = String::new();
                for i in 0..10 {
                    let path = match i % 5 {
                        0 => format!("/myservice/orders?client={client}&page={i}"),
                        1 => format!("/myservice/items/{i}"),
                        2 => "/healthz".to_string(),
                        3 => format!("/other/{client}/{i}"),
                        _ => format!("/myservice/search?q=shadow+{i}"),
                    };
                    if i % 3 == 0 {
                        let body = format!("{{\"client\":{client},\"n\":{i}}}");
                        requests.push_str(&format!(
                            "POST {path} HTTP/1.1\r\nHost: myservice\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        ));
                    } else {
                        requests.push_str(&format!("GET {path} HTTP/1.1\r\nHost: myservice\r\nUser-Agent: demo/{client}\r\n\r\n"));
                    }
                }
                exchange(&topo.client, PRODUCTION, &[Piece::now(requests.as_bytes())], 10);
            });
        }
    });
}

/// GETs of the JSON API's users and orders, a connection each, a few distinct ones so that
/// production answers identical requests (which is how noise is learnt); returns how many.
fn send_api(topo: &Topology) -> usize {
    let mut sent = 0;
    for i in 0..30 {
        for path in [
            format!("/api/users/{}", i % 5),
            format!("/api/orders/{}", i % 4),
        ] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: myservice\r\n\r\n");
            exchange(
                &topo.client,
                PRODUCTION,
                &[Piece::now(request.as_bytes())],
                1,
            );
            sent += 1;
        }
    }
    sent
}

/// `shadowd diff` in the production namespace: its report and exit code.
fn diff_report(topo: &Topology, shadowd: &std::path::Path) -> Option<(String, i32)> {
    let out = topo
        .server
        .command(shadowd.to_str()?)
        .arg("diff")
        .output()
        .ok()?;
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code()?,
    ))
}

fn indent(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|line| format!("   {line}\n"))
        .collect()
}

fn multiset(items: &[Vec<u8>]) -> BTreeMap<Vec<u8>, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.clone()).or_default() += 1;
    }
    counts
}

/// Removes the demo's namespaces after an interrupt (their names start with `shdt<pid>-`).
fn cleanup_leftovers() {
    let prefix = format!("shdt{}-", std::process::id());
    let list = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(list) = list {
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&prefix) {
                let _ = Command::new("ip")
                    .args(["netns", "pids", name])
                    .output()
                    .map(|pids| {
                        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                            let _ = Command::new("kill").arg(pid).status();
                        }
                    });
                let _ = Command::new("ip").args(["netns", "del", name]).status();
                let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
            }
        }
    }
}
