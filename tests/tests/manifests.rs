//! The Kubernetes manifests in `deploy/kubernetes/`: every YAML file parses (every document),
//! the kustomization lists exactly those files, and the DaemonSet fits what shadowd really
//! does — its probes and scrape ask for the port of the Module's `admin` address (that those
//! paths answer is checked on a running daemon in `observe.rs`); the ConfigMap it mounts passes `shadowd check`; and it runs in the node's
//! network namespace with the capabilities capture needs and without `privileged`.
//!
//! Needs no root and no cluster: only the files and the `shadowd` binary (`$SHADOWD_BIN`, else `target/debug/shadowd`).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize as _;
use serde_yaml_ng::Value;
use shadowd_tests::shadowd::binary;

/// Where the configuration is mounted and what the container args must name.
const CONFIG_DIR: &str = "/etc/shadowd";
/// `shadowd run`'s admin address when neither `--admin` nor the Module sets one
/// (`settings::DEFAULT_ADMIN`).
const DEFAULT_ADMIN: &str = "127.0.0.1:8877";
/// What `shadowd run` needs beyond an unprivileged root: load the program (BPF, PERFMON;
/// NET_ADMIN for a TC program), attach it and mark replay sockets (NET_ADMIN), and, with the
/// mirror output, create the mirror pair (NET_ADMIN) and read its ring (NET_RAW): granted so
/// that switching the output is a Module change only.
const CAPABILITIES: [&str; 4] = ["BPF", "NET_ADMIN", "NET_RAW", "PERFMON"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifests_dir() -> PathBuf {
    workspace().join("deploy/kubernetes")
}

/// One YAML document of one manifest file.
struct Document {
    file: PathBuf,
    /// From 1.
    number: usize,
    value: Value,
}

impl Document {
    fn kind(&self) -> &str {
        str_at(&self.value, &["kind"]).unwrap_or("")
    }

    fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"]).unwrap_or("")
    }

    fn describe(&self) -> String {
        format!(
            "{} document {} ({} {})",
            self.file.display(),
            self.number,
            self.kind(),
            self.name()
        )
    }
}

/// Every document of every YAML file under `deploy/kubernetes/`.
struct Manifests {
    files: Vec<PathBuf>,
    documents: Vec<Document>,
}

impl Manifests {
    fn load() -> Manifests {
        let mut files = Vec::new();
        yaml_files(&manifests_dir(), &mut files);
        files.sort();
        assert!(
            !files.is_empty(),
            "no YAML under {}",
            manifests_dir().display()
        );
        let mut documents = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|err| panic!("reading {}: {err}", file.display()));
            for (number, value) in parse_documents(&text, &file.display().to_string()) {
                documents.push(Document {
                    file: file.clone(),
                    number,
                    value,
                });
            }
        }
        Manifests { files, documents }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Document> {
        self.documents
            .iter()
            .filter(|doc| doc.kind() == kind)
            .collect()
    }

    /// The only document of `kind`.
    fn only(&self, kind: &str) -> &Document {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "expected exactly one {kind}");
        found[0]
    }

    fn daemonset(&self) -> &Document {
        self.only("DaemonSet")
    }

    /// The DaemonSet's shadowd container.
    fn container(&self) -> &Value {
        let containers = seq_at(
            &self.daemonset().value,
            &["spec", "template", "spec", "containers"],
        );
        containers
            .iter()
            .find(|c| str_at(c, &["name"]) == Some("shadowd"))
            .expect("a container named shadowd")
    }

    fn pod_spec(&self) -> &Value {
        at(&self.daemonset().value, &["spec", "template", "spec"]).expect("a pod template")
    }

    fn configmap(&self, name: &str) -> &Document {
        self.of_kind("ConfigMap")
            .into_iter()
            .find(|doc| doc.name() == name)
            .unwrap_or_else(|| {
                panic!("the DaemonSet mounts ConfigMap {name}, which no manifest defines")
            })
    }

    /// The ConfigMap mounted at [`CONFIG_DIR`], and the key → file name pairs it projects.
    fn mounted_config(&self) -> (&Document, Vec<(String, String)>) {
        let mount = seq_at(self.container(), &["volumeMounts"])
            .iter()
            .find(|m| {
                str_at(m, &["mountPath"]).map(|p| p.trim_end_matches('/')) == Some(CONFIG_DIR)
            })
            .unwrap_or_else(|| panic!("nothing is mounted at {CONFIG_DIR}"));
        assert!(
            at(mount, &["subPath"]).is_none(),
            "{CONFIG_DIR} is a subPath mount: ConfigMap updates would never reach shadowd"
        );
        let volume_name = str_at(mount, &["name"]).expect("the mount names its volume");
        let volume = seq_at(self.pod_spec(), &["volumes"])
            .iter()
            .find(|v| str_at(v, &["name"]) == Some(volume_name))
            .unwrap_or_else(|| panic!("no volume {volume_name}"));
        let map_name = str_at(volume, &["configMap", "name"])
            .unwrap_or_else(|| panic!("volume {volume_name} is not a ConfigMap"));
        let configmap = self.configmap(map_name);
        let data = at(&configmap.value, &["data"])
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{} has no data", configmap.describe()));
        let keys: Vec<(String, String)> = match at(volume, &["configMap", "items"]) {
            // Only the listed keys, under their `path`.
            Some(items) => items
                .as_sequence()
                .expect("items is a list")
                .iter()
                .map(|item| {
                    let key = str_at(item, &["key"]).expect("item key").to_string();
                    let path = str_at(item, &["path"]).expect("item path").to_string();
                    (key, path)
                })
                .collect(),
            None => data
                .keys()
                .map(|key| {
                    let key = key.as_str().expect("string keys").to_string();
                    (key.clone(), key)
                })
                .collect(),
        };
        (configmap, keys)
    }

    /// The `config:` of the `shadowd` Module in the mounted ConfigMap, if there is one.
    fn module(&self) -> Option<Value> {
        let (configmap, keys) = self.mounted_config();
        let mut modules = Vec::new();
        for (key, path) in &keys {
            let text = str_at(&configmap.value, &["data", key.as_str()])
                .unwrap_or_else(|| panic!("{} has no key {key}", configmap.describe()));
            let what = format!("{} key {key}", configmap.describe());
            for (_, doc) in parse_documents(text, &what) {
                let name = str_at(&doc, &["metadata", "name"]).or_else(|| str_at(&doc, &["name"]));
                if str_at(&doc, &["kind"]) == Some("Module") && name == Some("shadowd") {
                    let spec = at(&doc, &["spec"]).unwrap_or(&doc);
                    modules.push((
                        path.clone(),
                        at(spec, &["config"]).cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
        assert!(
            modules.len() <= 1,
            "more than one shadowd Module: {modules:?}"
        );
        modules.pop().map(|(_, config)| config)
    }

    /// The container's `args`.
    fn args(&self) -> Vec<&str> {
        seq_at(self.container(), &["args"])
            .iter()
            .map(|a| a.as_str().expect("args are strings"))
            .collect()
    }

    /// The admin address `shadowd run` will use: `--admin`, else the Module's, else the
    /// default.
    fn admin(&self) -> SocketAddr {
        let from_args = flag_values(&self.args(), &["--admin"])
            .pop()
            .map(str::to_string);
        let from_module = self
            .module()
            .and_then(|config| str_at(&config, &["admin"]).map(str::to_string));
        let text = from_args
            .or(from_module)
            .unwrap_or_else(|| DEFAULT_ADMIN.to_string());
        text.parse()
            .unwrap_or_else(|err| panic!("admin address {text:?}: {err}"))
    }

    /// The /metrics-only listener `shadowd run` will open: `--metrics`, else the Module's.
    fn metrics(&self) -> Option<SocketAddr> {
        let from_args = flag_values(&self.args(), &["--metrics"])
            .pop()
            .map(str::to_string);
        let from_module = self
            .module()
            .and_then(|config| str_at(&config, &["metrics"]).map(str::to_string));
        let text = from_args.or(from_module)?;
        Some(
            text.parse()
                .unwrap_or_else(|err| panic!("metrics address {text:?}: {err}")),
        )
    }

    /// The container port a probe or Service names: a number, or the name of a declared port.
    fn container_port(&self, port: &Value) -> u16 {
        if let Some(number) = port.as_u64() {
            return u16::try_from(number).expect("a port number");
        }
        let name = port.as_str().expect("a port is a number or a name");
        let declared = seq_at(self.container(), &["ports"])
            .iter()
            .find(|p| str_at(p, &["name"]) == Some(name))
            .unwrap_or_else(|| panic!("the container declares no port named {name}"));
        let number = at(declared, &["containerPort"])
            .and_then(Value::as_u64)
            .expect("containerPort");
        u16::try_from(number).expect("a port number")
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every non-empty document of `text`, numbered from 1 as in the file; panics naming `what`
/// and the document if one does not parse.
fn parse_documents(text: &str, what: &str) -> Vec<(usize, Value)> {
    serde_yaml_ng::Deserializer::from_str(text)
        .zip(1..)
        .map(|(document, number)| {
            let value = Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{what}, document {number}: {err}"));
            (number, value)
        })
        .filter(|(_, value)| !value.is_null())
        .collect()
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The list at `path`, or an empty one.
fn seq_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// The values given to a flag in `args`, under any of its `names` (`--flag VALUE`,
/// `--flag=VALUE`, `-f VALUE`).
fn flag_values<'a>(args: &[&'a str], names: &[&str]) -> Vec<&'a str> {
    let mut values = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for name in names {
            if arg == name {
                values.extend(args.get(i + 1).copied());
            } else if let Some(value) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                values.push(value);
            }
        }
    }
    values
}

#[test]
fn every_manifest_parses_and_names_what_it_is() {
    let manifests = Manifests::load();
    assert!(!manifests.documents.is_empty());
    let namespace = str_at(&manifests.only("Kustomization").value, &["namespace"]);
    for doc in &manifests.documents {
        assert!(
            str_at(&doc.value, &["apiVersion"]).is_some_and(|v| !v.is_empty()),
            "{} has no apiVersion",
            doc.describe()
        );
        assert!(!doc.kind().is_empty(), "{} has no kind", doc.describe());
        if doc.kind() == "Kustomization" {
            continue;
        }
        assert!(
            !doc.name().is_empty(),
            "{} has no metadata.name",
            doc.describe()
        );
        // Everything but cluster-wide kinds lives in the kustomization's namespace.
        let cluster_wide = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
        if let (Some(namespace), false) = (namespace, cluster_wide.contains(&doc.kind())) {
            assert_eq!(
                str_at(&doc.value, &["metadata", "namespace"]),
                Some(namespace),
                "{} is not in namespace {namespace}",
                doc.describe()
            );
        }
    }
}

#[test]
fn the_kustomization_lists_every_manifest_and_the_image_it_renames() {
    let manifests = Manifests::load();
    let kustomization = manifests.only("Kustomization");
    let dir = kustomization.file.parent().expect("a directory");
    let resources: BTreeSet<PathBuf> = seq_at(&kustomization.value, &["resources"])
        .iter()
        .map(|r| dir.join(r.as_str().expect("resources are paths")))
        .collect();
    for resource in &resources {
        assert!(
            resource.is_file(),
            "{} lists {}, which does not exist",
            kustomization.describe(),
            resource.display()
        );
    }
    let others: BTreeSet<PathBuf> = manifests
        .files
        .iter()
        .filter(|f| **f != kustomization.file)
        .cloned()
        .collect();
    assert_eq!(
        resources, others,
        "the kustomization's resources and the manifest files differ"
    );

    // `images:` only rewrites an image whose name matches the container's.
    let image = str_at(manifests.container(), &["image"]).expect("the container has an image");
    // Without digest and tag (a `:` after the last `/`; one before it is a registry port).
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let image_name = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    };
    let renamed: Vec<&str> = seq_at(&kustomization.value, &["images"])
        .iter()
        .filter_map(|i| str_at(i, &["name"]))
        .collect();
    assert!(
        renamed.is_empty() || renamed.contains(&image_name),
        "kustomization images {renamed:?} do not name the container's image {image_name}"
    );
}

#[test]
fn probes_and_scraping_reach_the_admin_server_port() {
    let manifests = Manifests::load();
    let admin = manifests.admin();
    let container = manifests.container();

    let declared: Vec<u16> = seq_at(container, &["ports"])
        .iter()
        .filter_map(|p| at(p, &["containerPort"]).and_then(Value::as_u64))
        .map(|p| u16::try_from(p).expect("a port number"))
        .collect();
    assert!(
        declared.contains(&admin.port()),
        "the container declares ports {declared:?}, not the admin port {}",
        admin.port()
    );

    let probes = [
        ("startupProbe", None),
        ("livenessProbe", None),
        ("readinessProbe", Some("/readyz")),
    ];
    for (probe, required) in probes {
        // A startup probe is optional; the others are not.
        if probe == "startupProbe" && at(container, &[probe]).is_none() {
            continue;
        }
        let get = at(container, &[probe, "httpGet"])
            .unwrap_or_else(|| panic!("the container has no {probe}.httpGet"));
        // That the path answers is checked on a running daemon, in `observe.rs`.
        let path = str_at(get, &["path"]).unwrap_or("/");
        // Only /readyz says whether the program is attached.
        if let Some(required) = required {
            assert_eq!(path, required, "{probe}");
        }
        let port = manifests.container_port(at(get, &["port"]).expect("probe port"));
        assert_eq!(port, admin.port(), "{probe} port vs admin address {admin}");
        // hostNetwork: the kubelet probes the node's address unless `host` says otherwise,
        // which reaches a loopback-only admin server only when `host` is loopback.
        let host = str_at(get, &["host"]);
        if admin.ip().is_loopback() {
            assert!(
                host.and_then(|h| h.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback()),
                "admin listens on {admin} only, but {probe} does not probe a loopback host"
            );
        } else {
            assert!(
                admin.ip().is_unspecified(),
                "admin {admin} is bound to one address; probes cannot know it on every node"
            );
        }
    }

    // /diag tells the route table, service names and file paths: the shipped admin server
    // is not open to whatever reaches the node.
    assert!(
        admin.ip().is_loopback(),
        "the admin server listens on {admin}, beyond the node's loopback"
    );

    // The metrics Service: headless, over the DaemonSet's pods, at the port that serves
    // /metrics beyond loopback.
    let scrape = manifests
        .metrics()
        .expect("a metrics listener: Prometheus cannot reach a loopback admin server");
    assert!(
        declared.contains(&scrape.port()),
        "the container declares ports {declared:?}, not the metrics port {}",
        scrape.port()
    );
    let service = manifests.only("Service");
    assert_eq!(str_at(&service.value, &["spec", "clusterIP"]), Some("None"));
    let pod_labels = at(
        &manifests.daemonset().value,
        &["spec", "template", "metadata", "labels"],
    )
    .and_then(Value::as_mapping)
    .expect("pod labels");
    let selector = at(&service.value, &["spec", "selector"])
        .and_then(Value::as_mapping)
        .expect("a selector");
    for (key, value) in selector {
        assert_eq!(
            pod_labels.get(key),
            Some(value),
            "selector {key:?} misses the pods"
        );
    }
    let ports = seq_at(&service.value, &["spec", "ports"]);
    assert!(
        ports.iter().any(|p| {
            let target = at(p, &["targetPort"])
                .or_else(|| at(p, &["port"]))
                .expect("a port");
            manifests.container_port(target) == scrape.port()
        }),
        "the Service targets no metrics port"
    );
    let annotation = |name: &str| str_at(&service.value, &["metadata", "annotations", name]);
    assert_eq!(annotation("prometheus.io/scrape"), Some("true"));
    let scrape_port = scrape.port().to_string();
    assert_eq!(annotation("prometheus.io/port"), Some(scrape_port.as_str()));
}

#[test]
fn the_mounted_configmap_passes_shadowd_check() {
    let manifests = Manifests::load();
    let args = manifests.args();
    assert_eq!(args.first(), Some(&"run"), "container args {args:?}");
    let configs = flag_values(&args, &["--config", "-c"]);
    assert!(
        !configs.is_empty() && configs.iter().all(|c| Path::new(c).starts_with(CONFIG_DIR)),
        "the args {args:?} must read the configuration from {CONFIG_DIR}"
    );
    let interfaces = manifests
        .module()
        .map(|config| match at(&config, &["interfaces"]) {
            // `interfaces: auto`, said as one word.
            Some(Value::String(one)) => usize::from(!one.is_empty()),
            _ => seq_at(&config, &["interfaces"]).len(),
        });
    assert!(
        interfaces.unwrap_or(0) > 0 || !flag_values(&args, &["--interface", "-i"]).is_empty(),
        "no interface to watch: shadowd run would exit 64"
    );

    let (configmap, keys) = manifests.mounted_config();
    let dir = std::env::temp_dir().join(format!("shadowd-manifests-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (key, path) in &keys {
        let text = str_at(&configmap.value, &["data", key.as_str()]).expect("key");
        std::fs::write(dir.join(path), text).expect("writing a key");
    }
    let bin = binary();
    assert!(
        bin.is_file(),
        "{} does not exist: build it with `cargo build -p shadow-user --bin shadowd` or set SHADOWD_BIN",
        bin.display()
    );
    let output = Command::new(&bin)
        .args(["check", "--config"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|err| panic!("starting {}: {err}", bin.display()));
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "shadowd check on {}'s keys {keys:?}:\n{report}{}",
        configmap.describe(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("errors: 0"), "{report}");
    // The Module was read and used (an erroneous one would have failed the check above).
    assert!(
        manifests.module().is_some(),
        "the ConfigMap holds no shadowd Module"
    );
}

#[test]
fn the_daemonset_has_the_node_network_and_capabilities_but_is_not_privileged() {
    let manifests = Manifests::load();
    let pod = manifests.pod_spec();
    assert_eq!(
        at(pod, &["hostNetwork"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        str_at(pod, &["dnsPolicy"]),
        Some("ClusterFirstWithHostNet"),
        "shadow services are cluster DNS names"
    );
    assert_ne!(at(pod, &["hostPID"]).and_then(Value::as_bool), Some(true));
    // Every node, tainted ones included.
    assert!(
        seq_at(pod, &["tolerations"])
            .iter()
            .any(|t| str_at(t, &["operator"]) == Some("Exists") && at(t, &["key"]).is_none()),
        "the DaemonSet does not tolerate every taint"
    );
    // Time for the 3 s replay drain and the clean-up after SIGTERM.
    let grace = at(pod, &["terminationGracePeriodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(30);
    assert!(grace >= 10, "terminationGracePeriodSeconds {grace}");
    // Two shadowd on one node would copy every packet twice (and with the mirror output
    // replace each other's mirror pair).
    assert!(
        at(
            &manifests.daemonset().value,
            &["spec", "updateStrategy", "rollingUpdate", "maxSurge"]
        )
        .is_none_or(|surge| surge.as_u64() == Some(0) || surge.as_str() == Some("0")),
        "maxSurge would run two shadowd on a node"
    );

    let security = at(manifests.container(), &["securityContext"]).expect("a securityContext");
    assert_ne!(
        at(security, &["privileged"]).and_then(Value::as_bool),
        Some(true),
        "the container must not be privileged"
    );
    let added: BTreeSet<String> = seq_at(security, &["capabilities", "add"])
        .iter()
        .map(|c| {
            let c = c.as_str().expect("capability names").to_ascii_uppercase();
            c.strip_prefix("CAP_").map(str::to_string).unwrap_or(c)
        })
        .collect();
    for needed in CAPABILITIES {
        assert!(
            added.contains(needed),
            "capability {needed} missing from {added:?}"
        );
    }
}

#[test]
fn the_kubernetes_source_reads_exactly_what_rbac_grants_with_the_nodes_name() {
    let manifests = Manifests::load();
    let kubernetes = manifests
        .module()
        .and_then(|config| at(&config, &["kubernetes"]).and_then(Value::as_bool))
        .unwrap_or(false)
        || manifests.args().contains(&"--kubernetes");
    assert!(
        kubernetes,
        "the shipped Module turns the kubernetes source on"
    );
    let pod = manifests.pod_spec();
    assert_ne!(
        at(pod, &["automountServiceAccountToken"]).and_then(Value::as_bool),
        Some(false),
        "the kubernetes source needs the account's token"
    );
    let account = str_at(pod, &["serviceAccountName"]).expect("a service account");
    let node_name = seq_at(manifests.container(), &["env"])
        .iter()
        .find(|e| str_at(e, &["name"]) == Some("NODE_NAME"))
        .expect("NODE_NAME in the environment");
    assert_eq!(
        str_at(node_name, &["valueFrom", "fieldRef", "fieldPath"]),
        Some("spec.nodeName")
    );

    // The role bound to that account grants get, list and watch on exactly what the
    // source watches, and nothing else.
    let binding = manifests.only("ClusterRoleBinding");
    let namespace = str_at(&manifests.daemonset().value, &["metadata", "namespace"]);
    assert!(
        seq_at(&binding.value, &["subjects"]).iter().any(|s| {
            str_at(s, &["kind"]) == Some("ServiceAccount")
                && str_at(s, &["name"]) == Some(account)
                && str_at(s, &["namespace"]) == namespace
        }),
        "{} does not bind {account}",
        binding.describe()
    );
    let role = manifests.only("ClusterRole");
    assert_eq!(
        str_at(&binding.value, &["roleRef", "name"]),
        Some(role.name())
    );
    let mut granted = BTreeSet::new();
    for rule in seq_at(&role.value, &["rules"]) {
        let verbs: BTreeSet<&str> = seq_at(rule, &["verbs"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]), "read-only");
        for group in seq_at(rule, &["apiGroups"]) {
            for resource in seq_at(rule, &["resources"]) {
                granted.insert(format!(
                    "{}/{}",
                    group.as_str().expect("a group"),
                    resource.as_str().expect("a resource")
                ));
            }
        }
    }
    assert_eq!(
        granted,
        BTreeSet::from([
            "/services".to_string(),
            "discovery.k8s.io/endpointslices".to_string(),
            "getambassador.io/mappings".to_string(),
        ])
    );
    let account_doc = manifests.only("ServiceAccount");
    assert_eq!(account_doc.name(), account);
}

/// Removes a directory when dropped, so a failing test leaves nothing behind.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
