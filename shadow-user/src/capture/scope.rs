//! What capture takes in: the production servers, as ports captured at any address and as
//! endpoints (address and port). It decides the direction of each segment and can be
//! swapped while capture runs.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
};

use shadow_common::{EndpointKey, PORT_ANY_ADDRESS, PORT_LISTED_ENDPOINTS};

use super::ports::PortSet;

/// The servers whose connections are captured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureScope {
    /// Ports captured whatever the server's address.
    any_address: PortSet,
    /// Production endpoints, addresses canonical (IPv4 as IPv4, never IPv4-mapped).
    endpoints: BTreeSet<SocketAddr>,
    /// The ports of `endpoints`: a bitmap test spares other ports the set lookup.
    endpoint_ports: PortSet,
}

impl CaptureScope {
    /// Every server on `ports`, whatever its address.
    pub fn ports(ports: impl IntoIterator<Item = u16>) -> Self {
        CaptureScope {
            any_address: PortSet::new(ports),
            ..CaptureScope::default()
        }
    }

    /// Adds `port` at any address.
    pub fn add_port(&mut self, port: u16) {
        self.any_address.set(port, true);
    }

    /// Adds the server at `endpoint`.
    pub fn add_endpoint(&mut self, endpoint: SocketAddr) {
        let endpoint = canonical(endpoint);
        self.endpoint_ports.set(endpoint.port(), true);
        self.endpoints.insert(endpoint);
    }

    /// Whether `end` of a segment is a captured server.
    pub fn is_server(&self, end: SocketAddr) -> bool {
        self.any_address.contains(end.port())
            || (self.endpoint_ports.contains(end.port())
                && self.endpoints.contains(&canonical(end)))
    }

    /// The endpoints captured, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().copied()
    }

    /// Whether nothing at all is captured.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.any_address.iter().next().is_none()
    }

    /// The flag of every port the program's port map marks, in ascending port order.
    pub fn port_flags(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        let any = self.any_address.iter().map(|port| (port, PORT_ANY_ADDRESS));
        let listed = self
            .endpoint_ports
            .iter()
            .map(|port| (port, PORT_LISTED_ENDPOINTS));
        let mut flags: std::collections::BTreeMap<u16, u8> = Default::default();
        for (port, flag) in any.chain(listed) {
            *flags.entry(port).or_default() |= flag;
        }
        flags.into_iter()
    }

    /// The keys of the program's endpoint map.
    pub fn endpoint_keys(&self) -> impl Iterator<Item = EndpointKey> + '_ {
        self.endpoints
            .iter()
            .map(|endpoint| endpoint_key(*endpoint))
    }
}

impl CaptureScope {
    /// Each endpoint (`198.18.0.2:80`, `[fd00::2]:80`), then each port at any address
    /// (`port 8080 at any address`), as `/diag` and the logs say them.
    pub fn items(&self) -> impl Iterator<Item = String> + '_ {
        let endpoints = self.endpoints.iter().map(SocketAddr::to_string);
        let ports = self
            .any_address
            .iter()
            .map(|port| format!("port {port} at any address"));
        endpoints.chain(ports)
    }
}

impl std::fmt::Display for CaptureScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&self.items().collect::<Vec<_>>().join(", "))
    }
}

/// `endpoint` with an IPv4-mapped IPv6 address written as the IPv4 address it stands for, as
/// packets of an IPv4 connection carry it.
fn canonical(endpoint: SocketAddr) -> SocketAddr {
    SocketAddr::new(endpoint.ip().to_canonical(), endpoint.port())
}

/// The program's key for `endpoint`.
pub fn endpoint_key(endpoint: SocketAddr) -> EndpointKey {
    match endpoint.ip().to_canonical() {
        IpAddr::V4(v4) => EndpointKey::ipv4(v4.octets(), endpoint.port()),
        IpAddr::V6(v6) => EndpointKey::ipv6(v6.octets(), endpoint.port()),
    }
}

/// A `CaptureScope` shared between the controller (which replaces it) and the capture thread
/// (which takes a snapshot once per ring block, not per packet).
#[derive(Clone, Debug)]
pub struct SharedScope(Arc<RwLock<Arc<CaptureScope>>>);

impl SharedScope {
    pub fn new(scope: CaptureScope) -> Self {
        SharedScope(Arc::new(RwLock::new(Arc::new(scope))))
    }

    pub fn snapshot(&self) -> Arc<CaptureScope> {
        // A poisoned lock still holds a whole `Arc`: keep using it.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, scope: CaptureScope) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_endpoint_captures_its_address_and_port_only() {
        let mut scope = CaptureScope::default();
        scope.add_endpoint(addr("198.18.0.2:8080"));
        assert!(scope.is_server(addr("198.18.0.2:8080")));
        assert!(!scope.is_server(addr("198.18.0.3:8080")));
        assert!(!scope.is_server(addr("198.18.0.2:80")));
    }

    #[test]
    fn a_port_captures_every_address() {
        let mut scope = CaptureScope::ports([80]);
        scope.add_endpoint(addr("[fd00::2]:8080"));
        assert!(scope.is_server(addr("198.18.0.9:80")));
        assert!(scope.is_server(addr("[fd00::9]:80")));
        assert!(scope.is_server(addr("[fd00::2]:8080")));
        assert!(!scope.is_server(addr("[fd00::3]:8080")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let mut scope = CaptureScope::default();
        scope.add_endpoint(addr("[::ffff:198.18.0.2]:80"));
        assert!(scope.is_server(addr("198.18.0.2:80")));
        assert!(scope.is_server(addr("[::ffff:198.18.0.2]:80")));
        assert_eq!(scope.to_string(), "198.18.0.2:80");
        assert_eq!(
            endpoint_key(addr("198.18.0.2:80")),
            EndpointKey::ipv4([198, 18, 0, 2], 80)
        );
    }

    #[test]
    fn port_flags_say_how_each_port_is_captured() {
        let mut scope = CaptureScope::ports([80, 443]);
        scope.add_endpoint(addr("198.18.0.2:80"));
        scope.add_endpoint(addr("198.18.0.2:8080"));
        assert_eq!(
            scope.port_flags().collect::<Vec<_>>(),
            [
                (80, PORT_ANY_ADDRESS | PORT_LISTED_ENDPOINTS),
                (443, PORT_ANY_ADDRESS),
                (8080, PORT_LISTED_ENDPOINTS)
            ]
        );
        assert_eq!(
            scope.to_string(),
            "198.18.0.2:80, 198.18.0.2:8080, port 80 at any address, port 443 at any address"
        );
        assert!(!scope.is_empty() && CaptureScope::default().is_empty());
    }

    #[test]
    fn replace_is_seen_by_new_snapshots() {
        let shared = SharedScope::new(CaptureScope::ports([80]));
        let old = shared.snapshot();
        shared.replace(CaptureScope::ports([443]));
        assert!(old.is_server(addr("198.18.0.2:80")));
        assert!(shared.snapshot().is_server(addr("198.18.0.2:443")));
        assert!(!shared.snapshot().is_server(addr("198.18.0.2:80")));
    }
}
