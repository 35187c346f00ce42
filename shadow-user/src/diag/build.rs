//! Builds the diagnostics [`Report`] from the live state: configuration, TC counters, replay
//! ledger and the production/shadow comparison.

use std::collections::BTreeSet;

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

use super::model::{
    AttachmentReport, ComparisonReport, GroupReport, LedgerReport, Report, ShadowReport, SideReport,
};
use crate::{
    active::SharedConfig,
    capture::{ports::PortSet, program::StatsReader},
    compare::{CLASSES, Side},
    kubernetes::WatchHealth,
    labels::MappingLabel,
    replay::stats::{DropLabels, ReplayStats, Undelivered},
};

/// What the report is built from.
#[derive(Clone)]
pub struct Sources {
    pub config: SharedConfig,
    pub explicit_ports: Option<PortSet>,
    pub program: Option<StatsReader>,
    pub replay: ReplayStats,
    /// With the kubernetes source, its watches.
    pub kubernetes: Option<WatchHealth>,
}

impl Sources {
    pub fn report(&self, ready: bool) -> Report {
        let config = self.config.load();
        let route_table = config
            .table
            .groups()
            .iter()
            .map(|group| GroupReport {
                rkey: group.rkey.clone(),
                criteria: group.criteria.to_string(),
                production: group
                    .production
                    .iter()
                    .map(|p| format!("{} -> {}", p.name, p.service))
                    .collect(),
                shadow: group.shadow.as_ref().map(|plan| ShadowReport {
                    mapping: plan.name.clone(),
                    service: plan.service.to_string(),
                    weight: plan.weight,
                }),
                sources: group
                    .production
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.origin))
                    .chain(
                        group
                            .shadow
                            .iter()
                            .map(|plan| format!("{}: {}", plan.name, plan.origin)),
                    )
                    .collect(),
            })
            .collect();
        // Every Mapping with a shadow now, and every one that saw traffic before a reload.
        let mut mappings: BTreeSet<String> = config
            .table
            .groups()
            .iter()
            .filter_map(|g| g.shadow.as_ref().map(|p| p.name.clone()))
            .collect();
        mappings.extend(
            self.replay
                .comparison
                .mappings()
                .into_iter()
                .map(|(name, _)| name),
        );
        Report {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ready,
            capture: config
                .capture_scope(self.explicit_ports.as_ref())
                .items()
                .collect(),
            capture_services: config
                .production
                .services
                .iter()
                .map(|(service, found)| (service.clone(), found.to_string()))
                .collect(),
            attachments: self.attachments(),
            route_table,
            errors: config.diagnostics.errors.clone(),
            notices: config.diagnostics.notices.clone(),
            ledger: mappings.iter().map(|m| self.ledger(m)).collect(),
            comparison: mappings.iter().map(|m| self.comparison(m)).collect(),
            kubernetes: self
                .kubernetes
                .as_ref()
                .map(WatchHealth::reports)
                .unwrap_or_default(),
            diff: self.replay.comparison.differ.report(),
        }
    }

    fn attachments(&self) -> Vec<AttachmentReport> {
        let Some(program) = &self.program else {
            return Vec::new();
        };
        program
            .read()
            .into_iter()
            .map(|(attachment, stats)| AttachmentReport {
                interface: attachment.interface,
                hook: attachment.hook.to_string(),
                seen: stats.seen,
                cloned: stats.cloned_request + stats.cloned_response,
                clone_failed: stats.clone_failed,
                loop_guarded: stats.loop_guarded,
            })
            .collect()
    }

    fn ledger(&self, mapping: &str) -> LedgerReport {
        let label = MappingLabel {
            mapping: mapping.to_string(),
        };
        let counter = |c: &Counter| c.get();
        let gauge = |g: &Gauge| g.get();
        let observed = counter(&self.replay.observed.get_or_create(&label));
        let copied = counter(&self.replay.copied.get_or_create(&label));
        let sampled_out = counter(&self.replay.sampled_out.get_or_create(&label));
        let in_flight = gauge(&self.replay.in_flight.get_or_create(&label));
        let dropped = Undelivered::ALL
            .iter()
            .map(|reason| {
                let labels = DropLabels {
                    mapping: mapping.to_string(),
                    reason: *reason,
                };
                (
                    reason.to_string(),
                    counter(&self.replay.dropped.get_or_create(&labels)),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut report = LedgerReport {
            mapping: mapping.to_string(),
            observed,
            copied,
            sampled_out,
            dropped,
            in_flight,
            balanced: false,
        };
        report.balanced = i128::from(observed)
            == i128::from(copied)
                + i128::from(sampled_out)
                + i128::from(report.dropped_total())
                + i128::from(in_flight);
        report
    }

    fn comparison(&self, mapping: &str) -> ComparisonReport {
        let pair = self.replay.comparison.pair(mapping);
        ComparisonReport {
            mapping: mapping.to_string(),
            production: side(&pair.production),
            shadow: side(&pair.shadow),
            compared: pair.compared.get(),
            status_class_differences: pair.differing.get(),
        }
    }
}

fn side(side: &Side) -> SideReport {
    let ms = |q: f64| side.latency.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
    SideReport {
        count: side.count(),
        classes: CLASSES
            .iter()
            .zip(&side.classes)
            .filter(|(_, c)| c.get() > 0)
            .map(|(name, c)| (name.to_string(), c.get()))
            .collect(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        distribution: DISTRIBUTION
            .iter()
            .filter_map(|q| ms(*q).map(|ms| (*q, ms)))
            .collect(),
    }
}

/// The fractions the latency distribution is drawn at: finer towards the tail, where sides
/// differ first.
const DISTRIBUTION: [f64; 16] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999,
];
