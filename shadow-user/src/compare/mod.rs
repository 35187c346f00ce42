//! Production and shadow side by side, per shadow Mapping, on the same requests: status
//! classes and latency of production responses (measured on the wire: last request byte →
//! first response byte) and of shadow responses (measured by replay: copy sent → first
//! response byte), and how many requests got a different status class on the two sides.

mod join;
mod quantiles;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use crate::metrics::Registered;

pub use join::Join;

use crate::labels::{MappingLabel, label_value};
pub use quantiles::Quantiles;

/// Which side a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Production,
    Shadow,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Shadow => "shadow",
        }
    }
}

/// Status classes in display order.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index of `status`'s class in [`CLASSES`] (anything outside 100–599 counts as 5xx).
pub fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// One side of one Mapping.
#[derive(Debug, Default)]
pub struct Side {
    pub classes: [Counter; 5],
    pub latency: Quantiles,
}

impl Side {
    pub fn count(&self) -> u64 {
        self.classes.iter().map(Counter::get).sum()
    }
}

/// Both sides of one Mapping.
#[derive(Debug, Default)]
pub struct Pair {
    pub production: Side,
    pub shadow: Side,
    /// Requests answered on both sides with different status classes.
    pub differing: Counter,
    /// Requests answered on both sides (the base of `differing`).
    pub compared: Counter,
}

label_value!(Role);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    mapping: String,
    role: Role,
    /// One of [`CLASSES`].
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    mapping: String,
    role: Role,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// The comparison of every shadow Mapping, shared by the capture thread and replay.
#[derive(Debug)]
pub struct Comparison {
    pairs: RwLock<HashMap<String, Arc<Pair>>>,
    join: Join,
    responses: Family<ResponseLabels, Counter>,
    latency: Family<RoleLabels, Histogram>,
    differing: Family<MappingLabel, Counter>,
    /// Field-by-field diffing of the Mappings that ask for it.
    pub differ: crate::diff::Differ,
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            pairs: RwLock::default(),
            join: Join::default(),
            responses: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            differing: Family::default(),
            differ: crate::diff::Differ::default(),
        }
    }
}

impl Comparison {
    /// The pair of `mapping`, created on first use.
    pub fn pair(&self, mapping: &str) -> Arc<Pair> {
        if let Some(pair) = self
            .pairs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(mapping)
        {
            return pair.clone();
        }
        self.pairs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mapping.to_string())
            .or_default()
            .clone()
    }

    /// The Mappings seen so far, by name.
    pub fn mappings(&self) -> Vec<(String, Arc<Pair>)> {
        let mut all: Vec<_> = self
            .pairs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, pair)| (name.clone(), pair.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Records one final response of `role` for request `id` (0 = a request with no copy).
    pub fn record(&self, mapping: &str, role: Role, status: u16, latency: Duration, id: u64) {
        let pair = self.pair(mapping);
        let class = class_index(status);
        let side = match role {
            Role::Production => &pair.production,
            Role::Shadow => &pair.shadow,
        };
        side.classes[class].inc();
        side.latency.record(latency);
        self.responses
            .get_or_create(&ResponseLabels {
                mapping: mapping.to_string(),
                role,
                class: CLASSES[class],
            })
            .inc();
        self.latency
            .get_or_create(&RoleLabels {
                mapping: mapping.to_string(),
                role,
            })
            .observe(latency.as_secs_f64());
        if id != 0
            && let Some(other) = self.join.meet(id, role, class)
        {
            pair.compared.inc();
            if other != class {
                pair.differing.inc();
                self.differing
                    .get_or_create(&MappingLabel {
                        mapping: mapping.to_string(),
                    })
                    .inc();
            }
        }
    }
}

impl Registered for Comparison {
    /// Registers `shadowd_responses_total`, `shadowd_response_latency_seconds` and
    /// `shadowd_status_class_differences_total`.
    fn register_in(&self, registry: &mut Registry) {
        registry.register(
            "responses",
            "Responses by shadow Mapping, role (production on the wire, shadow by replay) and status class",
            self.responses.clone(),
        );
        registry.register(
            "response_latency_seconds",
            "Latency to the first response byte, by shadow Mapping and role",
            self.latency.clone(),
        );
        registry.register(
            "status_class_differences",
            "Requests whose production and shadow status classes differ",
            self.differing.clone(),
        );
        registry.register(
            "comparison_unmatched",
            "Requests whose other side never answered in time to be compared",
            self.join.unmatched.clone(),
        );
        self.differ.register_in(registry);
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn statuses_fall_in_their_class_and_anything_else_in_5xx() {
        let classes: Vec<&str> = [
            100, 199, 200, 204, 299, 301, 399, 404, 499, 500, 599, 0, 600, 999,
        ]
        .into_iter()
        .map(|status| CLASSES[class_index(status)])
        .collect();
        assert_eq!(
            classes,
            [
                "1xx", "1xx", "2xx", "2xx", "2xx", "3xx", "3xx", "4xx", "4xx", "5xx", "5xx", "5xx",
                "5xx", "5xx"
            ]
        );
    }

    #[test]
    fn each_side_counts_its_classes_and_latency_and_differences_need_both_sides() {
        let comparison = Comparison::default();
        let ms = Duration::from_millis;
        comparison.record("m", Role::Production, 200, ms(2), 1);
        comparison.record("m", Role::Shadow, 500, ms(40), 1);
        comparison.record("m", Role::Production, 404, ms(3), 2);
        comparison.record("m", Role::Shadow, 404, ms(30), 2);
        comparison.record("m", Role::Shadow, 204, ms(20), 3);
        comparison.record("m", Role::Production, 200, ms(2), 3);
        // Production's answer to a request with no copy is compared with nothing.
        comparison.record("m", Role::Production, 302, ms(1), 0);
        comparison.record("a", Role::Shadow, 200, ms(1), 9);
        let names: Vec<String> = comparison
            .mappings()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["a", "m"], "by name");
        let pair = comparison.pair("m");
        assert!(
            Arc::ptr_eq(&pair, &comparison.mappings()[1].1),
            "one pair per Mapping"
        );
        assert_eq!(pair.production.count(), 4);
        assert_eq!(pair.shadow.count(), 3);
        let counts = |side: &Side| side.classes.each_ref().map(Counter::get);
        assert_eq!(counts(&pair.production), [0, 2, 1, 1, 0]);
        assert_eq!(counts(&pair.shadow), [0, 1, 0, 1, 1]);
        // Three compared (either side first), one of them with different classes.
        assert_eq!((pair.compared.get(), pair.differing.get()), (3, 1));
        assert_eq!(
            pair.shadow.latency.quantile(1.0).unwrap().as_millis() / 10,
            4
        );

        let mut registry = Registry::default();
        comparison.register_in(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for sample in [
            "responses_total{mapping=\"m\",role=\"production\",class=\"2xx\"} 2",
            "responses_total{mapping=\"m\",role=\"shadow\",class=\"5xx\"} 1",
            "status_class_differences_total{mapping=\"m\"} 1",
            // The latency histogram's buckets, in seconds, from 0.5 ms to 10 s.
            "response_latency_seconds_bucket{le=\"0.0005\",mapping=\"m\",role=\"shadow\"} 0",
            "response_latency_seconds_bucket{le=\"0.05\",mapping=\"m\",role=\"shadow\"} 3",
            "response_latency_seconds_bucket{le=\"10.0\",mapping=\"m\",role=\"production\"} 4",
            "response_latency_seconds_count{mapping=\"m\",role=\"production\"} 4",
        ] {
            assert!(text.contains(sample), "{sample} in\n{text}");
        }
    }
}
