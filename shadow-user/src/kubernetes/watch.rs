//! Watches the cluster (kube-runtime's watcher: LIST, then WATCH from its resourceVersion,
//! bookmarks, a new LIST after `410 Gone`, backoff after errors) and publishes a
//! [`ClusterSnapshot`] whenever what shadowd takes from it changes. Endpoints that leave
//! stay for [`REMOVED_ENDPOINT_GRACE`], so connections still draining from a removed pod
//! are copied to their end.

use std::{
    collections::BTreeMap, fmt::Debug, hash::Hash, net::SocketAddr, sync::Arc, time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};

use super::{health::WatchHealth, snapshot::ClusterSnapshot};

/// How long an endpoint that left its Service stays captured.
pub const REMOVED_ENDPOINT_GRACE: Duration = Duration::from_secs(30);

/// How long a burst of events is gathered before the snapshot is built again.
const SETTLE: Duration = Duration::from_millis(100);

const SERVICES: &str = "services";
const ENDPOINT_SLICES: &str = "endpointslices";
const MAPPINGS_V3: &str = "mappings.v3alpha1";
const MAPPINGS_V2: &str = "mappings.v2";
/// Every watch, and whether it must have listed before a snapshot is published (and
/// shadowd is ready); the Mapping ones must have listed or failed (a cluster without
/// Ambassador's CRDs has none).
const RESOURCES: [(&str, bool); 4] = [
    (SERVICES, true),
    (ENDPOINT_SLICES, true),
    (MAPPINGS_V3, false),
    (MAPPINGS_V2, false),
];

/// The running watches.
pub struct ClusterSource {
    /// The latest snapshot; `None` until the first one.
    pub snapshots: watch::Receiver<Option<Arc<ClusterSnapshot>>>,
    /// How each watch is doing.
    pub health: WatchHealth,
}

impl ClusterSource {
    /// Watches the cluster `client` talks to, for the node named `node`.
    pub fn start(client: Client, node: String, registry: &mut Registry) -> ClusterSource {
        let health = WatchHealth::new(&RESOURCES, registry);
        let changed = Arc::new(Notify::new());
        let stores = Stores {
            services: follow(Api::all(client.clone()), SERVICES, &health, &changed, ()),
            slices: follow(
                Api::all(client.clone()),
                ENDPOINT_SLICES,
                &health,
                &changed,
                (),
            ),
            mappings: [
                (MAPPINGS_V3, MAPPING_VERSIONS[0]),
                (MAPPINGS_V2, MAPPING_VERSIONS[1]),
            ]
            .map(|(name, version)| {
                let resource = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk("getambassador.io", version, "Mapping"),
                    "mappings",
                );
                let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
                follow(api, name, &health, &changed, resource)
            }),
        };
        let (sender, snapshots) = watch::channel(None);
        tokio::spawn(publish(node, stores, health.clone(), changed, sender));
        ClusterSource { snapshots, health }
    }
}

/// The versions of the Mapping watches, in the order of `Stores::mappings`.
const MAPPING_VERSIONS: [&str; 2] = ["v3alpha1", "v2"];

/// `mapping` with its apiVersion and kind, which a LIST's items may lack.
fn with_type(mapping: &DynamicObject, version: &str) -> DynamicObject {
    let mut mapping = mapping.clone();
    if mapping.types.is_none() {
        mapping.types = Some(kube::api::TypeMeta {
            api_version: format!("getambassador.io/{version}"),
            kind: "Mapping".into(),
        });
    }
    mapping
}

/// The reflectors' stores.
struct Stores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    mappings: [Store<DynamicObject>; 2],
}

/// Watches `api` into a store on a task of its own, saying how it goes in `health` and each
/// change on `changed`.
fn follow<K>(
    api: Api<K>,
    resource: &'static str,
    health: &WatchHealth,
    changed: &Arc<Notify>,
    dynamic: K::DynamicType,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dynamic);
    let store = writer.as_reader();
    // managedFields are most of an object's bytes and nothing shadowd reads: every node
    // keeps every Service and EndpointSlice.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer);
    let (health, changed) = (health.clone(), changed.clone());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    health.listed(resource);
                    changed.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    health.working(resource);
                    changed.notify_one();
                }
                Err(err) => {
                    tracing::warn!(resource, error = %crate::error_chain(&err), "watching the Kubernetes API; retrying, the last good state stays in use");
                    health.failed(resource, &crate::error_chain(&err));
                    // A Mapping watch that fails lets the first snapshot go out without it.
                    changed.notify_one();
                }
            }
        }
    });
    store
}

/// Builds a snapshot after every burst of changes, once the watches have listed, and
/// sends it when it differs from the last one.
async fn publish(
    node: String,
    stores: Stores,
    health: WatchHealth,
    changed: Arc<Notify>,
    sender: watch::Sender<Option<Arc<ClusterSnapshot>>>,
) {
    let mut draining = Draining::default();
    let mut previous = ClusterSnapshot::default();
    let mut wake: Option<Instant> = None;
    loop {
        match wake {
            Some(at) => tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep_until(at) => {}
            },
            None => changed.notified().await,
        }
        tokio::time::sleep(SETTLE).await;
        if !health.ready() || !health.all_settled() {
            continue;
        }
        let mappings: Vec<DynamicObject> = stores
            .mappings
            .iter()
            .zip(MAPPING_VERSIONS)
            .flat_map(|(store, version)| {
                store
                    .state()
                    .into_iter()
                    .map(move |m| with_type(&m, version))
            })
            .collect();
        let live = ClusterSnapshot::build(
            &stores.services.state(),
            &stores.slices.state(),
            &mappings,
            &node,
        );
        let mut next = live.clone();
        wake = draining.keep(&previous, &mut next, Instant::now());
        previous = live;
        sender.send_if_modified(|current| {
            let modified = current.as_deref() != Some(&next);
            if modified {
                *current = Some(Arc::new(next));
            }
            modified
        });
    }
}

/// Endpoints that left the cluster's view and when they stop being captured.
#[derive(Debug, Default)]
struct Draining {
    until: BTreeMap<((String, String, String), SocketAddr), Instant>,
}

impl Draining {
    /// Adds to `next` the endpoints of `previous` (both as the cluster says, without kept
    /// ones) that left less than [`REMOVED_ENDPOINT_GRACE`] before `now`; returns when the
    /// first of them expires.
    fn keep(
        &mut self,
        previous: &ClusterSnapshot,
        next: &mut ClusterSnapshot,
        now: Instant,
    ) -> Option<Instant> {
        for (key, endpoint) in previous.all_endpoints() {
            if !next.has_endpoint(key, endpoint) {
                self.until
                    .entry((key.clone(), *endpoint))
                    .or_insert(now + REMOVED_ENDPOINT_GRACE);
            }
        }
        self.until
            .retain(|(key, endpoint), until| *until > now && !next.has_endpoint(key, endpoint));
        for (key, endpoint) in self.until.keys() {
            next.keep_endpoint(key.clone(), *endpoint);
        }
        self.until.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::{
            core::v1::{ServicePort, ServiceSpec},
            discovery::v1::{Endpoint, EndpointPort},
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    use super::*;
    use crate::kubernetes::InCluster;

    /// Service `default/web` on port 80, served on node `n` by pods at `addresses`.
    fn cluster(addresses: &[&str]) -> ClusterSnapshot {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                labels: Some([("kubernetes.io/service-name".into(), "web".into())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            ports: Some(vec![EndpointPort {
                port: Some(8080),
                ..EndpointPort::default()
            }]),
            endpoints: addresses
                .iter()
                .map(|address| Endpoint {
                    addresses: vec![address.to_string()],
                    node_name: Some("n".into()),
                    ..Endpoint::default()
                })
                .collect(),
        };
        ClusterSnapshot::build(&[service], &[slice], &[] as &[DynamicObject], "n")
    }

    fn endpoints(snapshot: &ClusterSnapshot) -> Vec<String> {
        match snapshot.find("web", 80, "default") {
            InCluster::Endpoints(list) => list.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_removed_endpoint_stays_for_the_grace_then_goes() {
        let start = Instant::now();
        let mut draining = Draining::default();
        let before = cluster(&["198.18.5.2", "198.18.5.3"]);
        let live = cluster(&["198.18.5.2"]);
        let mut next = live.clone();
        let wake = draining.keep(&before, &mut next, start);
        assert_eq!(endpoints(&next), ["198.18.5.2:8080", "198.18.5.3:8080"]);
        assert_eq!(wake, Some(start + REMOVED_ENDPOINT_GRACE));

        // Later changes keep it until its own deadline, not a new one.
        let mut again = live.clone();
        let halfway = start + REMOVED_ENDPOINT_GRACE / 2;
        assert_eq!(
            draining.keep(&live, &mut again, halfway),
            Some(start + REMOVED_ENDPOINT_GRACE)
        );
        assert_eq!(endpoints(&again), ["198.18.5.2:8080", "198.18.5.3:8080"]);

        let mut after = live.clone();
        let wake = draining.keep(&live, &mut after, start + REMOVED_ENDPOINT_GRACE);
        assert_eq!(endpoints(&after), ["198.18.5.2:8080"]);
        assert_eq!(wake, None);
    }

    #[test]
    fn an_endpoint_that_comes_back_is_no_longer_draining() {
        let start = Instant::now();
        let mut draining = Draining::default();
        let both = cluster(&["198.18.5.2", "198.18.5.3"]);
        let one = cluster(&["198.18.5.2"]);
        draining.keep(&both, &mut one.clone(), start);
        let mut back = both.clone();
        assert_eq!(draining.keep(&one, &mut back, start), None);
        let mut gone_again = one.clone();
        let later = start + REMOVED_ENDPOINT_GRACE * 2;
        // Left again later: a new grace from then.
        assert_eq!(
            draining.keep(&both, &mut gone_again, later),
            Some(later + REMOVED_ENDPOINT_GRACE)
        );
    }
}
