//! Every component's metrics, each registered once under `shadowd_` by its own
//! [`Registered::register_in`], composed here in the order `/metrics` lists them.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::{
    active::ConfigMetrics,
    admin::AdminMetrics,
    capture::stats::ReaderStats,
    pipeline::{FlowTotals, HttpCounters},
    reassembly::ReassemblyStats,
    replay::ReplayStats,
};

/// The daemon's metrics, by component.
pub struct Metrics {
    pub admin: AdminMetrics,
    pub reader: Arc<ReaderStats>,
    pub reassembly: ReassemblyStats,
    pub http: HttpCounters,
    pub totals: Arc<FlowTotals>,
    pub config: ConfigMetrics,
    /// Replay's ledger and the comparison of both sides' answers.
    pub replay: ReplayStats,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        Metrics {
            admin: AdminMetrics::register(registry),
            reader: Arc::new(ReaderStats::register(registry)),
            reassembly: ReassemblyStats::register(registry),
            http: HttpCounters::register(registry),
            totals: Arc::new(FlowTotals::register(registry)),
            config: ConfigMetrics::register(registry),
            replay: ReplayStats::register(registry),
        }
    }
}

/// A component's metrics: made with `Default`, then registered under their names.
pub trait Registered: Default {
    /// Registers every metric of `self` in `registry`.
    fn register_in(&self, registry: &mut Registry);

    /// A new set, registered in `registry`.
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        metrics.register_in(registry);
        metrics
    }
}

/// The reassembler's counters are named where they are defined, with the parsers.
impl Registered for ReassemblyStats {
    fn register_in(&self, registry: &mut Registry) {
        ReassemblyStats::register_in(self, registry);
    }
}
