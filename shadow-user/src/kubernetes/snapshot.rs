//! What shadowd takes from the cluster at one moment: the Mapping documents of annotated
//! Services and of Mapping resources, rendered as YAML for the configuration parser, and this
//! node's serving endpoints of every Service port, which is where production's requests
//! arrive after kube-proxy's DNAT (`podIP:targetPort`).

use std::{
    borrow::Borrow,
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{ResourceExt as _, api::DynamicObject};

use crate::config::{ANNOTATION, ClusterDocument};

/// The label EndpointSlices carry with the name of their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port: its namespace, Service name and port name (`""` when unnamed, as an
/// EndpointSlice port of an unnamed Service port is).
type PortKey = (String, String, String);

/// One moment of the cluster, as shadowd uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// Mapping documents, in a stable order (by source).
    pub documents: Vec<ClusterDocument>,
    /// `(namespace, name)` of every Service, with its ports: port number to port name.
    services: BTreeMap<(String, String), BTreeMap<u16, String>>,
    /// This node's serving endpoints of each Service port.
    endpoints: BTreeMap<PortKey, BTreeSet<SocketAddr>>,
}

/// How a production `service` is found in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InCluster {
    /// Not a Service name (an external name, or an IP address): ask the system resolver.
    NotAService,
    /// No such Service, or it has no such port.
    Missing(String),
    /// The Service port's endpoints on this node (none: no pod of it runs here).
    Endpoints(Vec<SocketAddr>),
}

impl ClusterSnapshot {
    /// The snapshot of these objects, for the node named `node`.
    pub fn build(
        services: &[impl Borrow<Service>],
        slices: &[impl Borrow<EndpointSlice>],
        mappings: &[impl Borrow<DynamicObject>],
        node: &str,
    ) -> ClusterSnapshot {
        let mut snapshot = ClusterSnapshot::default();
        for service in services.iter().map(Borrow::borrow) {
            let key = (service.namespace().unwrap_or_default(), service.name_any());
            let ports = service
                .spec
                .iter()
                .flat_map(|spec| spec.ports.iter().flatten())
                // A UDP port of the same number has endpoints shadowd never sees.
                .filter(|port| port.protocol.as_deref().is_none_or(|p| p == "TCP"))
                .filter_map(|port| {
                    let number = u16::try_from(port.port).ok()?;
                    Some((number, port.name.clone().unwrap_or_default()))
                })
                .collect();
            snapshot.services.insert(key, ports);
            if let Some(document) = annotation_document(service) {
                snapshot.documents.push(document);
            }
        }
        for slice in slices.iter().map(Borrow::borrow) {
            snapshot.add_slice(slice, node);
        }
        let mut seen = BTreeSet::new();
        // v3alpha1 first: a cluster serving both versions shows each Mapping in both.
        let mut mappings: Vec<&DynamicObject> = mappings.iter().map(Borrow::borrow).collect();
        mappings.sort_by_key(|m| !is_v3alpha1(m));
        for mapping in mappings {
            let key = (mapping.namespace().unwrap_or_default(), mapping.name_any());
            if seen.insert(key)
                && let Some(document) = mapping_document(mapping)
            {
                snapshot.documents.push(document);
            }
        }
        snapshot.documents.sort_by(|a, b| a.source.cmp(&b.source));
        snapshot
    }

    /// Adds the serving endpoints of `slice` that run on `node`.
    fn add_slice(&mut self, slice: &EndpointSlice, node: &str) {
        let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) else {
            return;
        };
        let namespace = slice.namespace().unwrap_or_default();
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let key = (
                namespace.clone(),
                service.clone(),
                port.name.clone().unwrap_or_default(),
            );
            let addresses = slice
                .endpoints
                .iter()
                .filter(|endpoint| endpoint.node_name.as_deref() == Some(node))
                // Serving, terminating ones included: their connections are draining and
                // still production's. `serving` absent (older API servers): `ready`.
                .filter(|endpoint| {
                    let conditions = endpoint.conditions.as_ref();
                    conditions
                        .and_then(|c| c.serving.or(c.ready))
                        .unwrap_or(true)
                })
                .flat_map(|endpoint| &endpoint.addresses)
                .filter_map(|address| address.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, number));
            self.endpoints.entry(key).or_default().extend(addresses);
        }
    }

    /// Where the production `service` `host:port` of a Mapping in `namespace` listens on this
    /// node. `host` is `name`, `name.namespace`, or either with `.svc` and the cluster domain.
    pub fn find(&self, host: &str, port: u16, namespace: &str) -> InCluster {
        let Some((name, namespace)) = service_name(host, namespace) else {
            return InCluster::NotAService;
        };
        let key = (namespace.to_string(), name.to_string());
        let Some(ports) = self.services.get(&key) else {
            return InCluster::Missing(format!("no Service {namespace}/{name} in the cluster"));
        };
        let Some(port_name) = ports.get(&port) else {
            return InCluster::Missing(format!("Service {namespace}/{name} has no port {port}"));
        };
        let endpoints = self
            .endpoints
            .get(&(key.0, key.1, port_name.clone()))
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        InCluster::Endpoints(endpoints)
    }

    /// Every endpoint of every Service port, for the grace of removed ones.
    pub fn all_endpoints(&self) -> impl Iterator<Item = (&PortKey, &SocketAddr)> {
        self.endpoints
            .iter()
            .flat_map(|(key, set)| set.iter().map(move |endpoint| (key, endpoint)))
    }

    /// Keeps `endpoint` of the Service port `key` (removed, but still draining).
    pub fn keep_endpoint(&mut self, key: PortKey, endpoint: SocketAddr) {
        self.endpoints.entry(key).or_default().insert(endpoint);
    }

    /// Whether `endpoint` of the Service port `key` is here.
    pub fn has_endpoint(&self, key: &PortKey, endpoint: &SocketAddr) -> bool {
        self.endpoints
            .get(key)
            .is_some_and(|set| set.contains(endpoint))
    }
}

/// `(name, namespace)` of a cluster Service name, or `None` for other names and addresses.
fn service_name<'a>(host: &'a str, namespace: &'a str) -> Option<(&'a str, &'a str)> {
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let mut labels = host.split('.');
    let name = labels.next().filter(|n| !n.is_empty())?;
    let Some(namespace_label) = labels.next() else {
        return Some((name, namespace));
    };
    match labels.next() {
        None => Some((name, namespace_label)),
        // `name.namespace.svc` and `name.namespace.svc.<cluster domain>`.
        Some("svc") => Some((name, namespace_label)),
        Some(_) => None,
    }
}

/// The annotation of `service` as a document of its own: the Service with only what the
/// parser reads (name, namespace and the annotation).
fn annotation_document(service: &Service) -> Option<ClusterDocument> {
    let text = service.annotations().get(ANNOTATION)?;
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": { ANNOTATION: text },
        },
    });
    Some(ClusterDocument {
        source: format!("Service {namespace}/{name}"),
        yaml: serde_yaml_ng::to_string(&value).ok()?,
    })
}

/// A Mapping resource as a document: its apiVersion, kind, name, namespace and spec.
fn mapping_document(mapping: &DynamicObject) -> Option<ClusterDocument> {
    let namespace = mapping.namespace().unwrap_or_default();
    let name = mapping.name_any();
    let types = mapping.types.as_ref()?;
    let value = serde_json::json!({
        "apiVersion": types.api_version,
        "kind": types.kind,
        "metadata": { "name": name, "namespace": namespace },
        "spec": mapping.data.get("spec").cloned().unwrap_or_default(),
    });
    Some(ClusterDocument {
        source: format!("Mapping {namespace}/{name}"),
        yaml: serde_yaml_ng::to_string(&value).ok()?,
    })
}

fn is_v3alpha1(mapping: &DynamicObject) -> bool {
    mapping
        .types
        .as_ref()
        .is_some_and(|t| t.api_version.ends_with("/v3alpha1"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::{
            core::v1::{ServicePort, ServiceSpec},
            discovery::v1::{Endpoint, EndpointConditions, EndpointPort},
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };
    use kube::api::TypeMeta;

    use super::*;

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        }
    }

    fn service(name: &str, ports: &[(i32, Option<&str>)], annotation: Option<&str>) -> Service {
        let mut metadata = meta("default", name);
        if let Some(text) = annotation {
            metadata.annotations = Some([(ANNOTATION.to_string(), text.to_string())].into());
        }
        Service {
            metadata,
            spec: Some(ServiceSpec {
                ports: Some(
                    ports
                        .iter()
                        .map(|(port, name)| ServicePort {
                            port: *port,
                            name: name.map(str::to_string),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    /// A slice of `service` with port `(name, number)` and `(address, node, serving)`s.
    fn slice(
        service: &str,
        port: (Option<&str>, i32),
        endpoints: &[(&str, &str, Option<bool>)],
    ) -> EndpointSlice {
        let mut metadata = meta("default", &format!("{service}-abcde"));
        metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into());
        EndpointSlice {
            metadata,
            address_type: "IPv4".into(),
            ports: Some(vec![EndpointPort {
                name: port.0.map(str::to_string),
                port: Some(port.1),
                protocol: Some("TCP".into()),
                ..EndpointPort::default()
            }]),
            endpoints: endpoints
                .iter()
                .map(|(address, node, serving)| Endpoint {
                    addresses: vec![address.to_string()],
                    node_name: Some(node.to_string()),
                    conditions: Some(EndpointConditions {
                        serving: *serving,
                        ready: *serving,
                        terminating: None,
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        }
    }

    fn mapping(version: &str, name: &str, prefix: &str) -> DynamicObject {
        DynamicObject {
            types: Some(TypeMeta {
                api_version: format!("getambassador.io/{version}"),
                kind: "Mapping".into(),
            }),
            metadata: meta("default", name),
            data: serde_json::json!({ "spec": { "prefix": prefix, "service": "myservice" } }),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const NO_MAPPINGS: [DynamicObject; 0] = [];

    #[test]
    fn a_service_port_is_found_at_this_nodes_serving_endpoints_on_the_target_port() {
        let services = [service("myservice", &[(80, Some("http"))], None)];
        let slices = [slice(
            "myservice",
            (Some("http"), 8080),
            &[
                ("198.18.5.2", "node-a", Some(true)),
                ("198.18.5.3", "node-b", Some(true)),
                ("198.18.5.4", "node-a", Some(false)),
                ("198.18.5.5", "node-a", None),
            ],
        )];
        let snapshot = ClusterSnapshot::build(&services, &slices, &NO_MAPPINGS, "node-a");
        assert_eq!(
            snapshot.find("myservice", 80, "default"),
            InCluster::Endpoints(vec![addr("198.18.5.2:8080"), addr("198.18.5.5:8080")])
        );
        for host in [
            "myservice.default",
            "myservice.default.svc",
            "myservice.default.svc.cluster.local",
        ] {
            assert_eq!(
                snapshot.find(host, 80, "elsewhere"),
                snapshot.find("myservice", 80, "default"),
                "{host}"
            );
        }
        let on_b = ClusterSnapshot::build(&services, &slices, &NO_MAPPINGS, "node-b");
        assert_eq!(
            on_b.find("myservice", 80, "default"),
            InCluster::Endpoints(vec![addr("198.18.5.3:8080")])
        );
        let on_c = ClusterSnapshot::build(&services, &slices, &NO_MAPPINGS, "node-c");
        assert_eq!(
            on_c.find("myservice", 80, "default"),
            InCluster::Endpoints(vec![])
        );
    }

    #[test]
    fn unnamed_ports_match_and_named_ports_pick_their_own_slice_port() {
        let services = [
            service("plain", &[(80, None)], None),
            service("two", &[(80, Some("web")), (9090, Some("admin"))], None),
        ];
        let slices = [
            slice("plain", (None, 8080), &[("198.18.5.2", "n", Some(true))]),
            slice(
                "two",
                (Some("web"), 8081),
                &[("198.18.5.3", "n", Some(true))],
            ),
            slice(
                "two",
                (Some("admin"), 9091),
                &[("198.18.5.3", "n", Some(true))],
            ),
        ];
        let snapshot = ClusterSnapshot::build(&services, &slices, &NO_MAPPINGS, "n");
        assert_eq!(
            snapshot.find("plain", 80, "default"),
            InCluster::Endpoints(vec![addr("198.18.5.2:8080")])
        );
        assert_eq!(
            snapshot.find("two", 9090, "default"),
            InCluster::Endpoints(vec![addr("198.18.5.3:9091")])
        );
    }

    #[test]
    fn other_names_addresses_and_missing_services_say_so() {
        let services = [service("myservice", &[(80, None)], None)];
        let snapshot =
            ClusterSnapshot::build(&services, &[] as &[EndpointSlice], &NO_MAPPINGS, "n");
        assert_eq!(
            snapshot.find("example.com.au", 80, "default"),
            InCluster::NotAService
        );
        assert_eq!(
            snapshot.find("198.18.0.2", 80, "default"),
            InCluster::NotAService
        );
        assert_eq!(
            snapshot.find("[fd00::2]", 80, "default"),
            InCluster::NotAService
        );
        assert_eq!(
            snapshot.find("other", 80, "default"),
            InCluster::Missing("no Service default/other in the cluster".into())
        );
        assert_eq!(
            snapshot.find("myservice", 81, "default"),
            InCluster::Missing("Service default/myservice has no port 81".into())
        );
    }

    #[test]
    fn annotations_and_mapping_resources_become_documents_each_mapping_once() {
        let services = [service(
            "myservice",
            &[(80, None)],
            Some(
                "apiVersion: ambassador/v0\nkind: Mapping\nname: m\nprefix: /m/\nservice: myservice\n",
            ),
        )];
        let mappings = [
            mapping("v2", "copy", "/v2-view/"),
            mapping("v3alpha1", "copy", "/v3-view/"),
            mapping("v2", "old", "/old/"),
        ];
        let snapshot = ClusterSnapshot::build(&services, &[] as &[EndpointSlice], &mappings, "n");
        let sources: Vec<&str> = snapshot
            .documents
            .iter()
            .map(|d| d.source.as_str())
            .collect();
        assert_eq!(
            sources,
            [
                "Mapping default/copy",
                "Mapping default/old",
                "Service default/myservice"
            ]
        );
        assert!(snapshot.documents[0].yaml.contains("/v3-view/"));
        assert!(snapshot.documents[2].yaml.contains("prefix: /m/"));
        // The parser names them as Ambassador does: a resource by name and namespace, an
        // annotation's documents by Service, namespace and number.
        let loaded = crate::config::load_with_cluster(&[], &snapshot.documents).unwrap();
        let mut rkeys: Vec<&str> = loaded.mappings.iter().map(|m| m.rkey.as_str()).collect();
        rkeys.sort();
        assert_eq!(
            rkeys,
            ["copy.default", "myservice.default.1", "old.default"]
        );
        assert!(
            loaded.diagnostics.errors.is_empty(),
            "{:?}",
            loaded.diagnostics
        );
        let copy = loaded.mappings.iter().find(|m| m.name == "copy").unwrap();
        assert_eq!(copy.criteria.prefix, "/v3-view/");
    }

    #[test]
    fn a_cluster_resource_that_is_not_yaml_is_an_error_of_its_own() {
        let broken = ClusterDocument {
            source: "Service default/broken".into(),
            yaml: "metadata: [unclosed\n".into(),
        };
        let loaded = crate::config::load_with_cluster(&[], &[broken]).unwrap();
        assert_eq!(loaded.diagnostics.errors.len(), 1);
        assert!(
            loaded.diagnostics.errors[0]
                .1
                .starts_with("Service default/broken, line ")
        );
    }
}
