//! The `kubernetes` source: Mappings from the cluster (annotated Services, `getambassador.io`
//! Mapping resources) and the endpoints of production's pods on this node, watched live and
//! handed to the daemon as [`ClusterSnapshot`]s, which go through the same validation and
//! atomic swap as a reload of the files.

mod health;
mod snapshot;
mod watch;

pub use health::{WatchHealth, WatchReport};
pub use snapshot::{ClusterSnapshot, InCluster};
pub use watch::ClusterSource;
