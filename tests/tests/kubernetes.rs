//! The `kubernetes` source on a node made of namespaces, with Mappings and endpoints served by
//! a stand-in API server: production pods behind veths named as CNIs name them (Calico's
//! `cali*`, Cilium's `lxc*`), a client node whose nftables DNAT stands in for kube-proxy
//! (ClusterIP:80 to podIP:8080), and the node's uplink watched. Exactly the production
//! Service's requests are copied: not another Service's on the same port, not copies arriving
//! at a shadow pod on the production port of another node; pods coming and going, and
//! Mapping resources, are followed without a restart; a watch that breaks keeps the last
//! state and lists again after `410 Gone`. With `KUBECONFIG` set, one test reads a real
//! cluster.

use std::time::Duration;

use serde_json::json;
use shadowd_tests::{
    clients::{Piece, exchange},
    eventually,
    http_server::HttpServer,
    kube_api::{KubeApi, endpoint_slice, mapping, service},
    netns::{Netns, ShadowHost, Topology},
    run,
    shadowd::{ADMIN, Shadowd, binary, http_get},
};

/// The node's name in the EndpointSlices.
const NODE: &str = "node-a";
/// Where the client node's kube-proxy sends `myservice`'s ClusterIP.
const CLUSTER_IP: &str = "198.18.3.10";
/// The production pods' port (the Service's targetPort).
const TARGET_PORT: u16 = 8080;
/// The address every pod veth's host side has, the pods' gateway.
const GATEWAY: &str = "198.18.2.1";
const SHADOW_MAPPING: &str = "myservice-shadow-mapping";
const SETTLE: Duration = Duration::from_secs(20);

/// A pod: its namespace behind a veth whose host side is in the node's namespace.
struct Pod {
    address: &'static str,
    // Declared before the namespace: the server stops before its namespace goes.
    _server: HttpServer,
    ns: Netns,
}

impl Pod {
    /// A pod at `address` serving on the target port, behind the node-side veth `veth`.
    fn start(node: &Netns, veth: &str, address: &'static str) -> Pod {
        let ns = Netns::new("p");
        run(std::process::Command::new("ip").args([
            "link", "add", veth, "netns", &node.name, "type", "veth", "peer", "eth0", "netns",
            &ns.name,
        ]));
        node.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", veth]);
        node.ip(&["link", "set", veth, "up"]);
        node.ip(&["route", "add", &format!("{address}/32"), "dev", veth]);
        ns.ip(&["addr", "add", &format!("{address}/32"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["route", "add", GATEWAY, "dev", "eth0"]);
        ns.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
        let server = HttpServer::start(&ns, &format!("{address}:{TARGET_PORT}"));
        Pod {
            address,
            _server: server,
            ns,
        }
    }

    fn endpoint(&self) -> String {
        format!("{}:{TARGET_PORT}", self.address)
    }
}

/// The node (the topology's server namespace, uplink `srv0`), a client node routing pods
/// and the ClusterIP through it, a shadow host, and the API.
struct Node {
    topo: Topology,
    shadow_host: ShadowHost,
    shadow: HttpServer,
    api: KubeApi,
}

impl Node {
    fn new() -> Node {
        let topo = Topology::new();
        topo.server.sysctl("net.ipv4.ip_forward", "1");
        for net in ["198.18.2.0/24", "198.18.3.0/24"] {
            topo.client
                .ip(&["route", "add", net, "via", Topology::SERVER_V4]);
        }
        // The client node's kube-proxy: the ClusterIP goes to production's pod A.
        kube_proxy(&topo.client, "198.18.2.2");
        let shadow_host = ShadowHost::new(&topo);
        topo.server
            .set_hosts(&[(ShadowHost::ADDRESS, "myservice-shadow.default")]);
        let shadow = HttpServer::start(&shadow_host.ns, &format!("{}:80", ShadowHost::ADDRESS));
        let api = KubeApi::start(&topo.server);
        // No v2 Mappings here: their watch fails (404) and shadowd still works.
        api.set_missing("mappings.v2", true);
        publish_user_example(&api);
        Node {
            topo,
            shadow_host,
            shadow,
            api,
        }
    }

    /// shadowd on the uplink with the kubernetes source, as node `NODE`.
    fn shadowd(&self) -> Shadowd<'_> {
        self.shadowd_watching(&["--interface", Topology::SERVER_IF])
    }

    /// shadowd watching `interfaces` (flags) with the kubernetes source, as node `NODE`.
    fn shadowd_watching(&self, interfaces: &[&str]) -> Shadowd<'_> {
        let mut args = interfaces.to_vec();
        args.push("--kubernetes");
        Shadowd::start_with_env(
            &self.topo.server,
            &args,
            ADMIN,
            &[("KUBECONFIG", self.api.kubeconfig()), ("NODE_NAME", NODE)],
        )
    }

    /// `myservice`'s EndpointSlice says its pods on this node are at `pods`; returns the
    /// slice's resourceVersion.
    fn serve_myservice_at(&self, pods: &[&str]) -> u64 {
        let endpoints: Vec<(&str, &str)> = pods.iter().map(|pod| (*pod, NODE)).collect();
        self.api.apply(
            "endpointslices",
            endpoint_slice("default", "myservice", TARGET_PORT.into(), &endpoints),
        )
    }

    /// `GET path` from the client node to `addr`, on a connection of its own.
    fn get(&self, addr: &str, path: &str) {
        get_from(&self.topo.client, addr, path);
    }

    /// The paths the shadow received, sorted.
    fn shadow_paths(&self) -> Vec<String> {
        self.shadow.received_targets()
    }
}

/// `GET path` from `ns` to `addr`, on a connection of its own.
fn get_from(ns: &Netns, addr: &str, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: myservice\r\n\r\n");
    let statuses = exchange(ns, addr, &[Piece::now(request.as_bytes())], 1);
    assert_eq!(statuses, [200], "GET {path} from {addr}");
}

/// nftables in `ns` sending the ClusterIP's port 80 to `pod`'s target port, as kube-proxy's
/// DNAT does on the client's node.
fn kube_proxy(ns: &Netns, pod: &str) {
    let rules = format!(
        "table ip kube-proxy {{ chain output {{ type nat hook output priority -100; ip daddr {CLUSTER_IP} tcp dport 80 dnat to {pod}:{TARGET_PORT}; }}; }}"
    );
    run(ns.command("nft").arg(rules));
}

/// The user's example as the cluster holds it: Service annotations on `myservice` (port 80
/// to 8080) and `myservice-shadow`, and the slices of this node's pods.
fn publish_user_example(api: &KubeApi) {
    api.apply(
        "services",
        service(
            "default",
            "myservice",
            80,
            TARGET_PORT.into(),
            Some("---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-mapping\nprefix: /myservice/\nservice: myservice.default\n"),
        ),
    );
    api.apply(
        "services",
        service(
            "default",
            "myservice-shadow",
            80,
            80,
            Some("---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-shadow-mapping\nprefix: /myservice/\nservice: myservice-shadow.default\nshadow: true\n"),
        ),
    );
    api.apply(
        "services",
        service("default", "other", 80, TARGET_PORT.into(), None),
    );
    api.apply(
        "endpointslices",
        endpoint_slice(
            "default",
            "myservice",
            TARGET_PORT.into(),
            &[("198.18.2.2", NODE)],
        ),
    );
    api.apply(
        "endpointslices",
        endpoint_slice(
            "default",
            "other",
            TARGET_PORT.into(),
            &[("198.18.2.3", NODE)],
        ),
    );
}

/// `/diag?json=true` of `shadowd`.
fn diag(shadowd: &Shadowd<'_>) -> serde_json::Value {
    let (_, body) = shadowd.get("/diag?json=true").expect("/diag");
    serde_json::from_str(&body).expect("JSON /diag")
}

/// What `shadowd` captures, as `/diag` lists it.
fn captured(shadowd: &Shadowd<'_>) -> Vec<String> {
    diag(shadowd)["capture"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_services_requests_through_its_cluster_ip_are_copied_and_another_service_on_its_port_is_not()
{
    let node = Node::new();
    let pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    let pod_b = Pod::start(&node.topo.server, "lxc0d4e5f6", "198.18.2.3");
    let shadowd = node.shadowd();
    assert_eq!(captured(&shadowd), [pod_a.endpoint()]);
    for n in 0..10 {
        node.get(&format!("{CLUSTER_IP}:80"), &format!("/myservice/a-{n}"));
        node.get(&pod_b.endpoint(), &format!("/myservice/other-{n}"));
    }
    shadowd.accounted_for(SHADOW_MAPPING, 10, SETTLE);
    let expected: Vec<String> = {
        let mut paths: Vec<String> = (0..10).map(|n| format!("/myservice/a-{n}")).collect();
        paths.sort();
        paths
    };
    assert_eq!(node.shadow_paths(), expected);
    // The group is named after its first Mapping in rkey order, as Ambassador does, and the
    // watches say how they are: v2 Mappings are not served here.
    let report = diag(&shadowd);
    assert_eq!(
        report["route_table"][0]["rkey"],
        "myservice-shadow.default.1"
    );
    // /diag says where each Mapping was read.
    let sources = report["route_table"][0]["sources"].to_string();
    assert!(
        sources.contains("myservice-mapping: Service default/myservice, document 1")
            && sources.contains("myservice-shadow-mapping: Service default/myservice-shadow"),
        "{sources}"
    );
    let watches = report["kubernetes"].as_array().expect("watches").clone();
    let v2 = watches
        .iter()
        .find(|w| w["resource"] == "mappings.v2")
        .unwrap();
    assert!(v2["errors"].as_u64().unwrap() >= 1 && v2["listed"] == false);
    let (status, readyz) = shadowd.get("/readyz").expect("/readyz");
    assert_eq!(status, 200, "{readyz}");
    assert!(readyz.contains("kubernetes services: listed"), "{readyz}");
}

#[test]
fn a_production_pods_veth_sees_clients_on_the_same_node_and_from_other_nodes() {
    let node = Node::new();
    let pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    let client_pod = Pod::start(&node.topo.server, "cali5d6e7f", "198.18.2.5");
    // Requests leave the node through pod A's veth: only a pod interface takes them.
    let shadowd = node.shadowd_watching(&["--pod-interface", "calia1b2c3"]);
    for n in 0..5 {
        get_from(
            &client_pod.ns,
            &pod_a.endpoint(),
            &format!("/myservice/same-node-{n}"),
        );
        node.get(
            &format!("{CLUSTER_IP}:80"),
            &format!("/myservice/other-node-{n}"),
        );
    }
    shadowd.accounted_for(SHADOW_MAPPING, 10, SETTLE);
    let mut expected: Vec<String> = (0..5)
        .flat_map(|n| {
            [
                format!("/myservice/same-node-{n}"),
                format!("/myservice/other-node-{n}"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(node.shadow_paths(), expected);
    let scrape = shadowd.scrape();
    assert_eq!(
        scrape.sum(
            "shadowd_tc_packets_total",
            &[("outcome", "wrong_direction")]
        ),
        0
    );
}

/// The interfaces `shadowd` is attached to, as `/diag` lists them.
fn attached(shadowd: &Shadowd<'_>) -> Vec<String> {
    let mut names: Vec<String> = diag(shadowd)["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["interface"].as_str().map(str::to_string))
        .collect();
    names.dedup();
    names.sort();
    names.dedup();
    names
}

#[test]
fn interfaces_auto_attaches_to_production_pods_veths_as_they_come_and_go() {
    let node = Node::new();
    let pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    let client_pod = Pod::start(&node.topo.server, "cali5d6e7f", "198.18.2.5");
    // Another Service's pod: its veth is not production's.
    let _pod_b = Pod::start(&node.topo.server, "lxc0d4e5f6", "198.18.2.3");
    let shadowd = node.shadowd_watching(&["--interface", "auto"]);
    eventually(SETTLE, "pod A's veth to be attached", || {
        (attached(&shadowd) == ["calia1b2c3"]).then_some(())
    });
    get_from(&client_pod.ns, &pod_a.endpoint(), "/myservice/a-same-node");

    // Pod C starts and joins the Service: its veth is attached without a restart.
    let pod_c = Pod::start(&node.topo.server, "lxc7a8b9c0", "198.18.2.4");
    node.serve_myservice_at(&[pod_a.address, pod_c.address]);
    eventually(SETTLE, "pod C's veth to be attached", || {
        (attached(&shadowd) == ["calia1b2c3", "lxc7a8b9c0"]).then_some(())
    });
    node.get(&pod_c.endpoint(), "/myservice/c-other-node");

    // Pod C is deleted (its veth goes with its namespace): detached.
    drop(pod_c);
    eventually(SETTLE, "pod C's veth to be detached", || {
        (attached(&shadowd) == ["calia1b2c3"]).then_some(())
    });
    node.get(&format!("{CLUSTER_IP}:80"), "/myservice/a-other-node");
    shadowd.accounted_for(SHADOW_MAPPING, 3, SETTLE);
    assert_eq!(
        node.shadow_paths(),
        [
            "/myservice/a-other-node",
            "/myservice/a-same-node",
            "/myservice/c-other-node"
        ]
    );
}

#[test]
fn interfaces_auto_finds_a_pod_behind_a_bridge_by_its_forwarding_entry() {
    let node = Node::new();
    let server = &node.topo.server;
    // The bridge plugin's layout: cni0 with the gateway address, veth* ports.
    server.ip(&["link", "add", "cni0", "type", "bridge"]);
    server.ip(&["addr", "add", "198.18.4.1/24", "dev", "cni0"]);
    server.ip(&["link", "set", "cni0", "up"]);
    node.topo
        .client
        .ip(&["route", "add", "198.18.4.0/24", "via", Topology::SERVER_V4]);
    let pod_ns = Netns::new("p");
    run(std::process::Command::new("ip").args([
        "link",
        "add",
        "veth9f8e7d",
        "netns",
        &server.name,
        "type",
        "veth",
        "peer",
        "eth0",
        "netns",
        &pod_ns.name,
    ]));
    server.ip(&["link", "set", "veth9f8e7d", "master", "cni0"]);
    server.ip(&["link", "set", "veth9f8e7d", "up"]);
    pod_ns.ip(&["addr", "add", "198.18.4.2/24", "dev", "eth0"]);
    pod_ns.ip(&["link", "set", "eth0", "up"]);
    pod_ns.ip(&["route", "add", "default", "via", "198.18.4.1"]);
    let _pod = HttpServer::start(&pod_ns, &format!("198.18.4.2:{TARGET_PORT}"));
    node.serve_myservice_at(&["198.18.4.2"]);
    let shadowd = node.shadowd_watching(&["--interface", "auto"]);
    // The node learns the pod's MAC address once it has talked to it (a kubelet probe, in a
    // cluster); then the bridge's forwarding entry names the veth.
    node.get(&format!("198.18.4.2:{TARGET_PORT}"), "/warm-up");
    eventually(SETTLE, "the bridged pod's veth to be attached", || {
        (attached(&shadowd) == ["veth9f8e7d"]).then_some(())
    });
    node.get(&format!("198.18.4.2:{TARGET_PORT}"), "/myservice/bridged");
    shadowd.accounted_for(SHADOW_MAPPING, 1, SETTLE);
    assert_eq!(node.shadow_paths(), ["/myservice/bridged"]);
}

#[test]
fn pods_coming_and_going_are_followed_without_a_restart() {
    let node = Node::new();
    let pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    let shadowd = node.shadowd();
    let pod_c = Pod::start(&node.topo.server, "cali7a8b9c", "198.18.2.4");
    node.get(&pod_c.endpoint(), "/myservice/c-before");

    // Pod C joins the Service.
    node.serve_myservice_at(&[pod_a.address, pod_c.address]);
    eventually(SETTLE, "pod C to be captured", || {
        (captured(&shadowd) == [pod_a.endpoint(), pod_c.endpoint()]).then_some(())
    });
    node.get(&pod_c.endpoint(), "/myservice/c-joined");

    // Pod A leaves: its connections may still drain, so it stays captured for the grace.
    let version = node.serve_myservice_at(&[pod_c.address]);
    eventually(SETTLE, "the removal to reach shadowd", || {
        (node.api.delivered("endpointslices") >= version).then_some(())
    });
    // Ten times what building and applying a snapshot takes.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(captured(&shadowd), [pod_a.endpoint(), pod_c.endpoint()]);
    node.get(&pod_a.endpoint(), "/myservice/a-draining");
    eventually(Duration::from_secs(45), "pod A's grace to end", || {
        (captured(&shadowd) == [pod_c.endpoint()]).then_some(())
    });
    node.get(&pod_a.endpoint(), "/myservice/a-gone");
    node.get(&pod_c.endpoint(), "/myservice/c-after");
    shadowd.accounted_for(SHADOW_MAPPING, 3, SETTLE);
    assert_eq!(
        node.shadow_paths(),
        [
            "/myservice/a-draining",
            "/myservice/c-after",
            "/myservice/c-joined"
        ]
    );
    assert!(
        shadowd
            .log_text()
            .contains("the cluster changed: reloading")
    );
}

#[test]
fn mapping_resources_are_applied_live_and_a_watch_that_breaks_lists_again() {
    let node = Node::new();
    let _pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    let shadowd = node.shadowd();
    node.get(&format!("{CLUSTER_IP}:80"), "/extra/before");

    // Mapping resources route /extra/ of the same Service, with a shadow of their own.
    node.api.apply(
        "mappings.v3alpha1",
        mapping(
            "v3alpha1",
            "default",
            "extra",
            json!({"prefix": "/extra/", "service": "myservice.default"}),
        ),
    );
    let extra_shadow = mapping(
        "v3alpha1",
        "default",
        "extra-shadow",
        json!({"prefix": "/extra/", "service": "myservice-shadow.default", "shadow": true}),
    );
    node.api.apply("mappings.v3alpha1", extra_shadow.clone());
    eventually(SETTLE, "the Mapping resources to be routed", || {
        let report = diag(&shadowd);
        let groups = report["route_table"].as_array()?.clone();
        groups
            .iter()
            .any(|g| g["rkey"] == "extra-shadow.default" || g["rkey"] == "extra.default")
            .then_some(())
    });
    node.get(&format!("{CLUSTER_IP}:80"), "/extra/while");

    // The API forgets its history: open watches end with 410 Gone and shadowd lists again,
    // keeping what it had meanwhile.
    let lists_before = service_lists(&node.api);
    node.api.expire();
    eventually(SETTLE, "shadowd to list the Services again", || {
        (service_lists(&node.api) > lists_before).then_some(())
    });
    node.api.delete("mappings.v3alpha1", extra_shadow);
    eventually(SETTLE, "the shadow Mapping resource to go", || {
        let report = diag(&shadowd);
        let groups = report["route_table"].as_array()?.clone();
        (!groups
            .iter()
            .any(|g| g["shadow"].to_string().contains("extra-shadow")))
        .then_some(())
    });
    node.get(&format!("{CLUSTER_IP}:80"), "/extra/after");
    shadowd.accounted_for("extra-shadow", 1, SETTLE);
    assert_eq!(node.shadow_paths(), ["/extra/while"]);
    let (status, _) = shadowd.get("/readyz").expect("/readyz");
    assert_eq!(status, 200);
}

/// How many times the Services were listed (not watched).
fn service_lists(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|target| target.starts_with("/api/v1/services") && !target.contains("watch="))
        .count()
}

#[test]
fn copies_reaching_a_shadow_pod_on_the_production_port_on_another_node_are_not_copied_again() {
    let node = Node::new();
    let _pod_a = Pod::start(&node.topo.server, "calia1b2c3", "198.18.2.2");
    // Node B hosts the shadow: its shadowd knows the same cluster, where myservice has no
    // pod on node B, and watches the link copies arrive on; the shadow listens on 80, the
    // port of its Service as of myservice's (the loop a capture by port would make).
    let api_b = KubeApi::start(&node.shadow_host.ns);
    api_b.set_missing("mappings.v2", true);
    publish_user_example(&api_b);
    node.shadow_host
        .ns
        .set_hosts(&[(ShadowHost::ADDRESS, "myservice-shadow.default")]);
    let node_b = Shadowd::start_with_env(
        &node.shadow_host.ns,
        &["--interface", "shd1", "--kubernetes"],
        ADMIN,
        &[("KUBECONFIG", api_b.kubeconfig()), ("NODE_NAME", "node-b")],
    );
    assert_eq!(captured(&node_b), Vec::<String>::new());
    let shadowd = node.shadowd();
    for n in 0..10 {
        node.get(&format!("{CLUSTER_IP}:80"), &format!("/myservice/loop-{n}"));
    }
    shadowd.accounted_for(SHADOW_MAPPING, 10, SETTLE);
    eventually(SETTLE, "the copies to pass node B's link", || {
        let seen = node_b
            .scrape()
            .sum("shadowd_tc_packets_total", &[("outcome", "not_matched")]);
        (seen >= 20).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        node_b
            .scrape()
            .replay("observed_requests_total", SHADOW_MAPPING),
        0
    );
    assert_eq!(node.shadow_paths().len(), 10, "each copy exactly once");
}

#[test]
fn a_real_cluster_is_watched_when_kubeconfig_is_set() {
    let Ok(kubeconfig) = std::env::var("KUBECONFIG") else {
        eprintln!("KUBECONFIG is not set: no real cluster to watch; skipped");
        return;
    };
    // The cluster is reached from the host's own namespace; the program watches loopback,
    // reads only, and is gone with the process.
    let admin = "127.0.0.1:18877";
    let mut child = std::process::Command::new(binary())
        .args(["run", "--interface", "lo", "--kubernetes", "--admin", admin])
        .env("KUBECONFIG", &kubeconfig)
        .env("NODE_NAME", "shadowd-test-no-such-node")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shadowd");
    let listed = std::panic::catch_unwind(|| {
        eventually(Duration::from_secs(60), "the cluster to be listed", || {
            let (status, body) = http_get(admin, "/readyz")?;
            (status == 200 && body.contains("kubernetes endpointslices: listed")).then_some(())
        })
    });
    child.kill().ok();
    child.wait().ok();
    listed.expect("a real cluster listed");
}
