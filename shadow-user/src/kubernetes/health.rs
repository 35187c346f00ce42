//! How each watch of the cluster is doing: listed yet or not, its errors and the last one,
//! for `/readyz`, `/diag` and the metrics. A failing watch keeps the last good state and is
//! retried with backoff; this is where that shows.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::{Deserialize, Serialize};

/// Label of the watch metrics: the resource watched.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

/// The state of one watch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// `services`, `endpointslices`, `mappings.v3alpha1`, `mappings.v2`.
    pub resource: String,
    /// Whether shadowd is ready only once this watch has listed.
    pub required: bool,
    /// Whether the first full list arrived.
    pub listed: bool,
    /// Errors since the start (each retried with backoff).
    pub errors: u64,
    /// The last error, until the watch works again.
    pub last_error: Option<String>,
}

/// Every watch's state, shared by the watchers and the admin server.
#[derive(Clone, Debug, Default)]
pub struct WatchHealth {
    watches: Arc<Mutex<Vec<WatchReport>>>,
    errors: Family<ResourceLabel, Counter>,
    listed: Family<ResourceLabel, Gauge>,
}

impl WatchHealth {
    /// Watches of `resources` (each with whether it is required for readiness), none listed
    /// yet, with their metrics in `registry`.
    pub fn new(resources: &[(&str, bool)], registry: &mut Registry) -> Self {
        let health = WatchHealth {
            watches: Arc::new(Mutex::new(
                resources
                    .iter()
                    .map(|(resource, required)| WatchReport {
                        resource: resource.to_string(),
                        required: *required,
                        ..WatchReport::default()
                    })
                    .collect(),
            )),
            ..WatchHealth::default()
        };
        registry.register(
            "kubernetes_watch_errors",
            "Errors of a watch of the Kubernetes API (each retried with backoff; the last good state stays in use)",
            health.errors.clone(),
        );
        registry.register(
            "kubernetes_watch_listed",
            "1 once the watch has listed its resource, 0 before",
            health.listed.clone(),
        );
        for (resource, _) in resources {
            health.listed.get_or_create(&label(resource)).set(0);
            // Zero rather than absent: a rate over it works from the start.
            drop(health.errors.get_or_create(&label(resource)));
        }
        health
    }

    /// `resource` listed in full, and works.
    pub fn listed(&self, resource: &str) {
        self.update(resource, |report| {
            report.listed = true;
            report.last_error = None;
        });
        self.listed.get_or_create(&label(resource)).set(1);
    }

    /// `resource`'s watch works again (an event arrived).
    pub fn working(&self, resource: &str) {
        self.update(resource, |report| report.last_error = None);
    }

    /// `resource`'s watch failed with `error`; it is retried.
    pub fn failed(&self, resource: &str, error: &str) {
        self.update(resource, |report| {
            report.errors += 1;
            report.last_error = Some(error.to_string());
        });
        self.errors.get_or_create(&label(resource)).inc();
    }

    /// Every watch's state.
    pub fn reports(&self) -> Vec<WatchReport> {
        self.lock().clone()
    }

    /// Whether every required watch has listed.
    pub fn ready(&self) -> bool {
        self.lock().iter().all(|r| r.listed || !r.required)
    }

    /// Whether every watch has listed, or failed at least once (so waiting longer for it
    /// would not tell more).
    pub fn all_settled(&self) -> bool {
        self.lock().iter().all(|r| r.listed || r.errors > 0)
    }

    fn update(&self, resource: &str, change: impl FnOnce(&mut WatchReport)) {
        if let Some(report) = self.lock().iter_mut().find(|r| r.resource == resource) {
            change(report);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WatchReport>> {
        // Nothing panics while holding it; a poisoned list is still a valid one.
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn label(resource: &str) -> ResourceLabel {
    ResourceLabel {
        resource: resource.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_listed_fails_and_recovers() {
        let mut registry = Registry::default();
        let health = WatchHealth::new(&[("services", true), ("mappings.v2", false)], &mut registry);
        assert!(!health.all_settled() && !health.ready());
        health.failed("mappings.v2", "404 Not Found");
        assert!(!health.all_settled() && !health.ready());
        health.listed("services");
        assert!(health.all_settled() && health.ready());
        health.failed("services", "connection refused");
        let services = &health.reports()[0];
        assert!(services.listed && services.errors == 1);
        assert_eq!(services.last_error.as_deref(), Some("connection refused"));
        health.working("services");
        assert_eq!(health.reports()[0].last_error, None);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("kubernetes_watch_errors_total{resource=\"services\"} 1"));
        assert!(text.contains("kubernetes_watch_listed{resource=\"services\"} 1"));
        assert!(text.contains("kubernetes_watch_listed{resource=\"mappings.v2\"} 0"));
    }
}
