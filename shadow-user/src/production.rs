//! Where the shadowed production services listen: each production `service` of a group with
//! a shadow, resolved to the endpoints capture takes in. An IP literal is its own endpoint.
//! With the `kubernetes` source, a cluster Service is found at the endpoints of its pods on
//! this node, on the targetPort (where its requests arrive after kube-proxy's DNAT). Other
//! names go through the system resolver (`/etc/hosts`, DNS). A name that does not resolve
//! cannot be told apart from other servers by address, so its port is captured at any
//! address, and a notice says so: copies of other services' requests on that port are then
//! possible, which capture by endpoint rules out.

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, SocketAddr, ToSocketAddrs as _},
};

use crate::{
    capture::{ports::PortSet, scope::CaptureScope},
    config::Diagnostics,
    kubernetes::{ClusterSnapshot, InCluster},
    route::RouteTable,
};

/// Port captured when nothing else names one: the default port of a Mapping's service.
pub const DEFAULT_CAPTURE_PORT: u16 = 80;

/// A host, port and the namespace of the Mapping naming them, and the rkey of the first
/// production Mapping that does.
type Wanted = BTreeMap<(String, u16, String), String>;

/// How each production service was found, and the scope they make together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductionScope {
    /// What capture takes in.
    pub scope: CaptureScope,
    /// Each production service (`host:port` as written), and how it is captured.
    pub services: Vec<(String, Found)>,
}

/// How one production service is captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// An IP literal, a name that resolved to these endpoints, or a cluster Service with
    /// these endpoints on this node (none: no pod of it runs here).
    Endpoints(Vec<SocketAddr>),
    /// A name that did not resolve (the resolver's error): its port at any address.
    AnyAddress(String),
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Endpoints(endpoints) if endpoints.is_empty() => {
                f.write_str("no endpoints on this node")
            }
            Found::Endpoints(endpoints) => {
                let list: Vec<String> = endpoints.iter().map(SocketAddr::to_string).collect();
                f.write_str(&list.join(", "))
            }
            Found::AnyAddress(error) => write!(f, "its port at any address ({error})"),
        }
    }
}

/// Resolves names to addresses: the system resolver, or a stand-in in tests.
pub trait Resolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, then DNS with the search domains).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

impl ProductionScope {
    /// The scope of `table`'s shadowed production services, found in `cluster` when given,
    /// else by `resolver`; notices for names that do not resolve go to `diagnostics`.
    pub fn resolve(
        table: &RouteTable,
        cluster: Option<&ClusterSnapshot>,
        resolver: &impl Resolver,
        diagnostics: &mut Diagnostics,
    ) -> ProductionScope {
        let mut resolved = ProductionScope::default();
        for ((host, port, namespace), rkey) in wanted(table) {
            let found = find(&host, port, &namespace, cluster, resolver);
            match &found {
                Found::Endpoints(endpoints) => {
                    for endpoint in endpoints {
                        resolved.scope.add_endpoint(*endpoint);
                    }
                }
                Found::AnyAddress(error) => {
                    resolved.scope.add_port(port);
                    diagnostics.notice(
                        rkey,
                        format!(
                            "production service {host}:{port} does not resolve ({error}): port \
                             {port} is captured at any address, other services' requests on it \
                             included"
                        ),
                    );
                }
            }
            resolved.services.push((format!("{host}:{port}"), found));
        }
        resolved
    }

    /// The scope capture uses: ports given on the command line or in the Module, else the
    /// production services' (nothing, when none of them has an endpoint on this node), else,
    /// with no shadowed production service at all, port 80 at any address; but nothing with
    /// the `kubernetes` source, whose Mappings may just not be there yet.
    pub fn capture_scope(&self, explicit: Option<&PortSet>, kubernetes: bool) -> CaptureScope {
        if let Some(explicit) = explicit {
            return CaptureScope::ports(explicit.iter());
        }
        if self.services.is_empty() && !kubernetes {
            CaptureScope::ports([DEFAULT_CAPTURE_PORT])
        } else {
            self.scope.clone()
        }
    }
}

/// The production services of the groups with a shadow, each with its first Mapping's rkey.
fn wanted(table: &RouteTable) -> Wanted {
    let mut wanted = Wanted::new();
    for production in table.shadowed_production() {
        let key = (
            production.service.host.clone(),
            production.service.port,
            production.namespace.clone(),
        );
        wanted.entry(key).or_insert_with(|| production.rkey.clone());
    }
    wanted
}

/// The endpoints of `host` for a Mapping in `namespace`, or why it has none.
fn find(
    host: &str,
    port: u16,
    namespace: &str,
    cluster: Option<&ClusterSnapshot>,
    resolver: &impl Resolver,
) -> Found {
    // `[fd00::2]` as written in a service.
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
        return Found::Endpoints(vec![SocketAddr::new(ip, port)]);
    }
    // Not a Service of the cluster (an external name, say): the resolver may know it.
    if let Some(InCluster::Endpoints(endpoints)) = cluster.map(|c| c.find(host, port, namespace)) {
        return Found::Endpoints(endpoints);
    }
    match resolver.resolve(host, port) {
        Ok(endpoints) if !endpoints.is_empty() => {
            let mut endpoints = endpoints;
            endpoints.sort();
            endpoints.dedup();
            Found::Endpoints(endpoints)
        }
        Ok(_) => Found::AnyAddress("no addresses".into()),
        Err(err) => Found::AnyAddress(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::route::tests::{mapping, shadow};

    /// Names from a table; any other name fails as an unknown host would.
    struct Hosts(HashMap<&'static str, Vec<&'static str>>);

    impl Resolver for Hosts {
        fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            let addresses = self.0.get(host).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "failed to lookup address")
            })?;
            Ok(addresses
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
                .collect())
        }
    }

    /// A group shadowed on `/a/` whose production service is `production`.
    fn table(production: &str) -> RouteTable {
        let mappings = [
            mapping("prod", "/a/", production),
            shadow("copy", "/a/", "shadow"),
        ];
        RouteTable::build(&mappings, &mut Diagnostics::default())
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_name_that_resolves_is_captured_at_its_addresses_only() {
        let hosts = Hosts(HashMap::from([(
            "myservice.default",
            vec!["198.18.0.2", "fd00::2", "198.18.0.2"],
        )]));
        let mut diagnostics = Diagnostics::default();
        let found = ProductionScope::resolve(
            &table("myservice.default:8080"),
            None,
            &hosts,
            &mut diagnostics,
        );
        assert!(found.scope.is_server(addr("198.18.0.2:8080")));
        assert!(found.scope.is_server(addr("[fd00::2]:8080")));
        assert!(!found.scope.is_server(addr("198.18.0.3:8080")));
        assert_eq!(
            found.services,
            [(
                "myservice.default:8080".to_string(),
                Found::Endpoints(vec![addr("198.18.0.2:8080"), addr("[fd00::2]:8080")])
            )]
        );
        assert!(diagnostics.notices.is_empty());
    }

    #[test]
    fn literals_are_their_own_endpoints() {
        let nobody = Hosts(HashMap::new());
        for (service, endpoint) in [
            ("198.18.0.2", "198.18.0.2:80"),
            ("[fd00::2]:8080", "[fd00::2]:8080"),
        ] {
            let found = ProductionScope::resolve(
                &table(service),
                None,
                &nobody,
                &mut Diagnostics::default(),
            );
            assert_eq!(
                found.scope.items().collect::<Vec<_>>(),
                [endpoint],
                "{service}"
            );
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_captures_its_port_and_says_so() {
        let mut diagnostics = Diagnostics::default();
        let found = ProductionScope::resolve(
            &table("myservice.default"),
            None,
            &Hosts(HashMap::new()),
            &mut diagnostics,
        );
        assert!(found.scope.is_server(addr("198.18.0.77:80")));
        assert_eq!(diagnostics.notices.len(), 1);
        let (rkey, message) = &diagnostics.notices[0];
        assert_eq!(rkey, "prod.default.1");
        assert!(
            message.contains("myservice.default:80 does not resolve")
                && message.contains("port 80 is captured at any address"),
            "{message}"
        );
    }

    #[test]
    fn only_groups_with_a_shadow_are_captured() {
        let unshadowed = RouteTable::build(
            &[mapping("prod", "/a/", "198.18.0.2")],
            &mut Diagnostics::default(),
        );
        let mut diagnostics = Diagnostics::default();
        let found =
            ProductionScope::resolve(&unshadowed, None, &Hosts(HashMap::new()), &mut diagnostics);
        assert!(found.scope.is_empty() && found.services.is_empty());
        assert_eq!(
            found.capture_scope(None, false),
            CaptureScope::ports([DEFAULT_CAPTURE_PORT])
        );
        // With the kubernetes source, nothing shadowed yet means nothing captured.
        assert!(found.capture_scope(None, true).is_empty());
    }

    #[test]
    fn a_cluster_service_without_pods_on_this_node_captures_nothing() {
        let found = ProductionScope {
            scope: CaptureScope::default(),
            services: vec![("myservice:80".into(), Found::Endpoints(vec![]))],
        };
        assert!(found.capture_scope(None, false).is_empty());
        assert_eq!(found.services[0].1.to_string(), "no endpoints on this node");
    }

    #[test]
    fn explicit_ports_replace_the_services() {
        let found = ProductionScope::resolve(
            &table("198.18.0.2"),
            None,
            &Hosts(HashMap::new()),
            &mut Diagnostics::default(),
        );
        let explicit = PortSet::new([9000]);
        assert_eq!(
            found.capture_scope(Some(&explicit), false),
            CaptureScope::ports([9000])
        );
        assert_eq!(
            found
                .capture_scope(None, false)
                .endpoints()
                .collect::<Vec<_>>(),
            [addr("198.18.0.2:80")]
        );
    }
}
