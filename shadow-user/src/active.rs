//! The configuration `shadowd run` works with: the route table built from the Mapping files,
//! its diagnostics, and how it is replaced (SIGHUP, or a change in the files) without
//! stopping capture. A configuration that cannot be read or parsed never replaces a good one.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash as _, Hasher as _},
    path::PathBuf,
    sync::Arc,
};

use arc_swap::ArcSwap;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::metrics::Registered;

use crate::{
    capture::{ports::PortSet, scope::CaptureScope},
    config::{self, ConfigError, Diagnostics},
    kubernetes::ClusterSnapshot,
    labels::label_value,
    production::{ProductionScope, SystemResolver},
    route::RouteTable,
};

/// One loaded configuration.
#[derive(Debug, Default)]
pub struct ActiveConfig {
    pub table: RouteTable,
    /// Where the shadowed production services listen, as resolved when loaded.
    pub production: ProductionScope,
    pub diagnostics: Diagnostics,
    pub module: Option<crate::settings::DaemonOptions>,
    pub mappings: usize,
    /// Hash of the sources' names and contents, to notice changes.
    pub fingerprint: u64,
    /// With the `kubernetes` source, the cluster as it was when loaded.
    pub cluster: Option<Arc<ClusterSnapshot>>,
    /// Whether the `kubernetes` source is on (its state may not have arrived yet).
    pub kubernetes: bool,
}

/// The current configuration, shared with the capture thread and the admin server.
pub type SharedConfig = Arc<ArcSwap<ActiveConfig>>;

impl ActiveConfig {
    /// Loads `paths` and builds the route table. No paths: an empty table.
    pub fn load(paths: &[PathBuf]) -> Result<ActiveConfig, ConfigError> {
        Self::load_with_cluster(paths, None, false)
    }

    /// Loads `paths` and the Mappings of `cluster`, builds the route table and finds the
    /// production services, in the cluster first.
    pub fn load_with_cluster(
        paths: &[PathBuf],
        cluster: Option<Arc<ClusterSnapshot>>,
        kubernetes: bool,
    ) -> Result<ActiveConfig, ConfigError> {
        if paths.is_empty() && cluster.is_none() {
            return Ok(ActiveConfig {
                kubernetes,
                ..ActiveConfig::default()
            });
        }
        let documents = cluster.as_ref().map_or(&[][..], |c| &c.documents[..]);
        let loaded = config::load_with_cluster(paths, documents)?;
        let mut diagnostics = loaded.diagnostics;
        let mut table = RouteTable::build(&loaded.mappings, &mut diagnostics);
        if let Some(names) = loaded
            .module
            .as_ref()
            .and_then(|module| module.remove_request_headers.as_ref())
        {
            table.remove_from_every_copy(names);
        }
        table.notice_credentials(&mut diagnostics);
        let production = ProductionScope::resolve(
            &table,
            cluster.as_deref(),
            &SystemResolver,
            &mut diagnostics,
        );
        Ok(ActiveConfig {
            table,
            production,
            diagnostics,
            module: loaded.module,
            mappings: loaded.mappings.len(),
            fingerprint: fingerprint(paths).unwrap_or_default(),
            cluster,
            kubernetes,
        })
    }

    /// What to capture: the explicit ports at any address, else the shadowed production
    /// services, else port 80 at any address.
    pub fn capture_scope(&self, explicit: Option<&PortSet>) -> CaptureScope {
        self.production.capture_scope(explicit, self.kubernetes)
    }

    /// Whether the production services resolve differently now than when loaded (a DNS or
    /// `/etc/hosts` change): then the configuration is worth loading again.
    pub fn production_moved(&self) -> bool {
        let mut ignored = Diagnostics::default();
        let cluster = self.cluster.as_deref();
        ProductionScope::resolve(&self.table, cluster, &SystemResolver, &mut ignored)
            != self.production
    }

    /// Logs every error and notice.
    pub fn log(&self) {
        for (rkey, message) in &self.diagnostics.errors {
            tracing::error!(rkey, "{message}");
        }
        for (rkey, message) in &self.diagnostics.notices {
            tracing::info!(rkey, "{message}");
        }
    }
}

/// Hash of the files `paths` stand for, names and contents; `None` when one cannot be read.
pub fn fingerprint(paths: &[PathBuf]) -> Option<u64> {
    let files = config::files(paths).ok()?;
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).ok()?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// How a reload ended: the `outcome` of `shadowd_config_reloads_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration is in use.
    Applied,
    /// It did not parse: the running one stays.
    Rejected,
    /// It parsed, but the kernel refused its capture scope: the running one stays.
    Failed,
}

impl ReloadOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::Rejected => "rejected",
            ReloadOutcome::Failed => "failed",
        }
    }
}

label_value!(ReloadOutcome);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: ReloadOutcome,
}

/// Metrics of the configuration, registered as `shadowd_config_*` and
/// `shadowd_diagnostics_errors`.
#[derive(Debug, Default, Clone)]
pub struct ConfigMetrics {
    pub reloads: Family<OutcomeLabel, Counter>,
    pub errors: Gauge,
    pub mappings: Gauge,
}

impl ConfigMetrics {
    /// Records the configuration now in use.
    pub fn in_use(&self, config: &ActiveConfig) {
        self.errors.set(config.diagnostics.errors.len() as i64);
        self.mappings.set(config.mappings as i64);
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

impl Registered for ConfigMetrics {
    fn register_in(&self, registry: &mut Registry) {
        registry.register(
            "diagnostics_errors",
            "Errors in the configuration in use",
            self.errors.clone(),
        );
        let config = registry.sub_registry_with_prefix("config");
        config.register(
            "reloads",
            "Configuration reloads by outcome (applied, rejected, failed)",
            self.reloads.clone(),
        );
        config.register("mappings", "Mappings loaded", self.mappings.clone());
    }
}
