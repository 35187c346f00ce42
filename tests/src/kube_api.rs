//! A stand-in for the Kubernetes API server, for tests of shadowd's `kubernetes` source: the
//! real API's LIST (with the collection's resourceVersion) and WATCH (a chunked stream of
//! ADDED / MODIFIED / DELETED events from a resourceVersion, BOOKMARKs when asked, and a
//! `410 Gone` ERROR event for a version older than it keeps, after which clients list again),
//! for Services, EndpointSlices and Ambassador's Mappings. Objects are the JSON of k8s-openapi
//! types the tests build. It listens on loopback in the namespace it is started in; a
//! kubeconfig file points shadowd at it.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::netns::Netns;

/// A resource the server serves: its collection path, list kind and apiVersion.
struct Collection {
    name: &'static str,
    path: &'static str,
    list_kind: &'static str,
    api_version: &'static str,
}

const COLLECTIONS: [Collection; 4] = [
    Collection {
        name: "services",
        path: "/api/v1/services",
        list_kind: "ServiceList",
        api_version: "v1",
    },
    Collection {
        name: "endpointslices",
        path: "/apis/discovery.k8s.io/v1/endpointslices",
        list_kind: "EndpointSliceList",
        api_version: "discovery.k8s.io/v1",
    },
    Collection {
        name: "mappings.v3alpha1",
        path: "/apis/getambassador.io/v3alpha1/mappings",
        list_kind: "MappingList",
        api_version: "getambassador.io/v3alpha1",
    },
    Collection {
        name: "mappings.v2",
        path: "/apis/getambassador.io/v2/mappings",
        list_kind: "MappingList",
        api_version: "getambassador.io/v2",
    },
];

/// One change, as a watch reports it.
#[derive(Clone)]
struct Change {
    version: u64,
    collection: &'static str,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    version: u64,
    /// `(collection, namespace, name)` → object.
    objects: BTreeMap<(&'static str, String, String), Value>,
    changes: Vec<Change>,
    /// Watches from a version below this are answered `410 Gone`.
    oldest: u64,
    /// Bumped by [`KubeApi::expire`]: open watches end with `410 Gone`.
    epoch: u64,
    /// Collections answered 404, as for a CRD that is not installed.
    missing: BTreeSet<&'static str>,
    /// `GET` targets served, in order.
    requests: Vec<String>,
    /// The latest version each collection's watches have written out.
    delivered: BTreeMap<&'static str, u64>,
}

/// The running server; stops when dropped.
pub struct KubeApi {
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    port: u16,
    kubeconfig: PathBuf,
}

impl KubeApi {
    /// Starts the server on loopback in `ns`, and writes a kubeconfig for it.
    pub fn start(ns: &Netns) -> KubeApi {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").expect("bind the API"));
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || accept(listener, shared, stop));
        }
        let kubeconfig = std::env::temp_dir().join(format!("{}-kubeconfig.yaml", ns.name));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\n"
            ),
        )
        .expect("write the kubeconfig");
        KubeApi {
            shared,
            stop,
            port,
            kubeconfig,
        }
    }

    /// The kubeconfig file that points at this server.
    pub fn kubeconfig(&self) -> &str {
        self.kubeconfig.to_str().expect("utf-8 temp path")
    }

    /// The server's port on loopback.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds or replaces `object` (JSON with `metadata.name` and `metadata.namespace`) in
    /// `collection` (`services`, `endpointslices`, `mappings.v3alpha1`, `mappings.v2`);
    /// returns its resourceVersion.
    pub fn apply(&self, collection: &'static str, object: Value) -> u64 {
        self.change(collection, object, false)
    }

    /// The latest resourceVersion a watch of `collection` has written to its client.
    pub fn delivered(&self, collection: &'static str) -> u64 {
        self.lock().delivered.get(collection).copied().unwrap_or(0)
    }

    /// Deletes `object` (by name and namespace) from `collection`.
    pub fn delete(&self, collection: &'static str, object: Value) {
        self.change(collection, object, true);
    }

    /// Answers `collection` with 404 (a CRD that is not installed), or serves it again.
    pub fn set_missing(&self, collection: &'static str, missing: bool) {
        let mut state = self.lock();
        if missing {
            state.missing.insert(collection);
        } else {
            state.missing.remove(collection);
        }
    }

    /// Forgets every change so far, as etcd's compaction does: open watches end with
    /// `410 Gone`, and so does any watch from an older version, until clients list again.
    pub fn expire(&self) {
        let mut state = self.lock();
        state.oldest = state.version + 1;
        state.epoch += 1;
        state.changes.clear();
        self.shared.1.notify_all();
    }

    /// The `GET` targets served so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn change(&self, collection: &'static str, mut object: Value, delete: bool) -> u64 {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = (
            collection,
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_string(),
        );
        let kind = if delete {
            state.objects.remove(&key);
            "DELETED"
        } else if state.objects.insert(key, object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.changes.push(Change {
            version,
            collection,
            kind,
            object,
        });
        self.shared.1.notify_all();
        version
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().expect("API state")
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shared.1.notify_all();
        std::fs::remove_file(&self.kubeconfig).ok();
    }
}

fn accept(listener: TcpListener, shared: Arc<(Mutex<State>, Condvar)>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (shared, stop) = (shared.clone(), stop.clone());
                std::thread::spawn(move || serve(stream, &shared, &stop));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Serves the requests of one connection (clients keep them alive) until it closes.
fn serve(stream: TcpStream, shared: &(Mutex<State>, Condvar), stop: &AtomicBool) {
    stream.set_nonblocking(false).ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        shared
            .0
            .lock()
            .expect("API state")
            .requests
            .push(target.clone());
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: BTreeMap<&str, &str> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let Some(collection) = COLLECTIONS.iter().find(|c| c.path == path) else {
            respond(&mut writer, 404, &not_found(path));
            continue;
        };
        if shared
            .0
            .lock()
            .expect("API state")
            .missing
            .contains(collection.name)
        {
            respond(&mut writer, 404, &not_found(path));
            continue;
        }
        let watching = matches!(query.get("watch"), Some(&"true") | Some(&"1"));
        let ok = if watching {
            let from = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bookmarks = query.get("allowWatchBookmarks") == Some(&"true");
            watch(&mut writer, shared, stop, collection, from, bookmarks)
        } else {
            respond(&mut writer, 200, &list(shared, collection));
            true
        };
        if !ok {
            return;
        }
    }
}

fn list(shared: &(Mutex<State>, Condvar), collection: &Collection) -> Value {
    let state = shared.0.lock().expect("API state");
    let items: Vec<&Value> = state
        .objects
        .iter()
        .filter(|((name, _, _), _)| *name == collection.name)
        .map(|(_, object)| object)
        .collect();
    json!({
        "apiVersion": collection.api_version,
        "kind": collection.list_kind,
        "metadata": { "resourceVersion": state.version.to_string() },
        "items": items,
    })
}

/// Streams the changes of `collection` after version `from` until the client leaves, the
/// server stops or the changes expire; false when the connection is unusable after it.
fn watch(
    writer: &mut TcpStream,
    shared: &(Mutex<State>, Condvar),
    stop: &AtomicBool,
    collection: &Collection,
    mut from: u64,
    bookmarks: bool,
) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut state = shared.0.lock().expect("API state");
    let epoch = state.epoch;
    if from != 0 && from < state.oldest {
        drop(state);
        return chunk(writer, &gone()) && end(writer);
    }
    let mut bookmarked = from;
    loop {
        if stop.load(Ordering::Relaxed) {
            drop(state);
            return end(writer);
        }
        if state.epoch != epoch {
            drop(state);
            return chunk(writer, &gone()) && end(writer);
        }
        let news: Vec<Change> = state
            .changes
            .iter()
            .filter(|c| c.version > from && c.collection == collection.name)
            .cloned()
            .collect();
        let latest = state.version;
        drop(state);
        for change in news {
            from = change.version;
            let event = json!({ "type": change.kind, "object": change.object });
            if !chunk(writer, &event) {
                return false;
            }
            let mut state = shared.0.lock().expect("API state");
            let delivered = state.delivered.entry(collection.name).or_default();
            *delivered = (*delivered).max(change.version);
        }
        if bookmarks && latest > bookmarked {
            bookmarked = latest;
            let event = json!({
                "type": "BOOKMARK",
                "object": {
                    "apiVersion": collection.api_version,
                    "kind": collection.list_kind.trim_end_matches("List"),
                    "metadata": { "resourceVersion": latest.to_string() },
                },
            });
            if !chunk(writer, &event) {
                return false;
            }
        }
        from = from.max(latest);
        state = shared.0.lock().expect("API state");
        if state.version == from && state.epoch == epoch {
            state = shared
                .1
                .wait_timeout(state, Duration::from_millis(500))
                .expect("API state")
                .0;
        }
    }
}

/// The ERROR event of a watch whose version is gone.
fn gone() -> Value {
    json!({
        "type": "ERROR",
        "object": {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "message": "too old resource version",
            "reason": "Expired",
            "code": 410,
        },
    })
}

fn not_found(path: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": format!("the server could not find the requested resource ({path})"),
        "reason": "NotFound",
        "code": 404,
    })
}

fn respond(writer: &mut TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let _ = write!(
        writer,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// Writes `event` as one line in one chunk.
fn chunk(writer: &mut TcpStream, event: &Value) -> bool {
    let line = format!("{event}\n");
    write!(writer, "{:x}\r\n{line}\r\n", line.len()).is_ok() && writer.flush().is_ok()
}

/// Ends a chunked stream.
fn end(writer: &mut TcpStream) -> bool {
    writer.write_all(b"0\r\n\r\n").is_ok()
}

/// The JSON of Service `namespace/name` with one TCP port `port` (unnamed) to `target_port`,
/// and `annotation` as its `getambassador.io/config` when given.
pub fn service(
    namespace: &str,
    name: &str,
    port: i32,
    target_port: i32,
    annotation: Option<&str>,
) -> Value {
    use k8s_openapi::{
        api::core::v1::{Service, ServicePort, ServiceSpec},
        apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
    };
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            annotations: annotation
                .map(|text| [("getambassador.io/config".to_string(), text.to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port,
                target_port: Some(IntOrString::Int(target_port)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    serde_json::to_value(service).expect("a Service as JSON")
}

/// The JSON of an EndpointSlice of Service `namespace/service` with TCP port `port` and a
/// ready endpoint at each `(address, node)`.
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    port: i32,
    endpoints: &[(&str, &str)],
) -> Value {
    use k8s_openapi::{
        api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-slice")),
            namespace: Some(namespace.into()),
            labels: Some(
                [(
                    "kubernetes.io/service-name".to_string(),
                    service.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            port: Some(port),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
        endpoints: endpoints
            .iter()
            .map(|(address, node)| Endpoint {
                addresses: vec![address.to_string()],
                node_name: Some(node.to_string()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                ..Endpoint::default()
            })
            .collect(),
    };
    serde_json::to_value(slice).expect("an EndpointSlice as JSON")
}

/// The JSON of a `getambassador.io/<version>` Mapping `namespace/name` with `spec`.
pub fn mapping(version: &str, namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("getambassador.io/{version}"),
        "kind": "Mapping",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}
