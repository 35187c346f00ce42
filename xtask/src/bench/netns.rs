//! The bench topology, on the test harness's namespaces (removed on drop, stale ones found
//! by the creating process's id): client, production and shadow host, with the shadow's
//! name resolved in production's namespace.

pub use shadowd_tests::netns::{Netns, remove_stale};
use shadowd_tests::netns::{ShadowHost, Topology as Nodes};

/// Three namespaces: the client (`cli0` 198.18.0.1) reaches production (`srv0` 198.18.0.2,
/// the interface shadowd watches) over one veth; production reaches the shadow host
/// (`shd0` 198.18.1.1 → `shd1` 198.18.1.2) over another, so copies never cross the watched
/// interface.
pub struct Topology {
    pub client: Netns,
    pub production: Netns,
    pub shadow: Netns,
}

impl Topology {
    pub const PRODUCTION_IF: &'static str = Nodes::SERVER_IF;
    pub const PRODUCTION_ADDR: &'static str = Nodes::SERVER_V4;
    pub const SHADOW_IF: &'static str = "shd1";
    pub const SHADOW_ADDR: &'static str = ShadowHost::ADDRESS;
    /// What the shadow Mapping names; resolved through the production namespace's hosts.
    pub const SHADOW_NAME: &'static str = "shadow.bench";
    /// What the production Mapping names: resolved the same way, so capture is by endpoint.
    pub const PRODUCTION_NAME: &'static str = "production.bench";

    pub fn new() -> Topology {
        let nodes = Nodes::new();
        let shadow = ShadowHost::new(&nodes);
        let Nodes { client, server } = nodes;
        server.set_hosts(&[
            (Self::SHADOW_ADDR, Self::SHADOW_NAME),
            (Self::PRODUCTION_ADDR, Self::PRODUCTION_NAME),
        ]);
        Topology {
            client,
            production: server,
            shadow: shadow.ns,
        }
    }
}
