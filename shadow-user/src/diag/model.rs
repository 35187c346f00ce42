//! The diagnostics report served at `/diag?json=true` and read back by `shadowd status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything `/diag` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: String,
    pub ready: bool,
    /// What capture takes in: endpoints, and ports at any address.
    pub capture: Vec<String>,
    /// `[service, how it is captured]` of each shadowed production service.
    pub capture_services: Vec<(String, String)>,
    pub attachments: Vec<AttachmentReport>,
    pub route_table: Vec<GroupReport>,
    /// `[rkey, message]`, as Ambassador serves them.
    pub errors: Vec<(String, String)>,
    pub notices: Vec<(String, String)>,
    pub ledger: Vec<LedgerReport>,
    pub comparison: Vec<ComparisonReport>,
    /// With the kubernetes source, each watch of the cluster.
    #[serde(default)]
    pub kubernetes: Vec<crate::kubernetes::WatchReport>,
    /// Response diffing, per shadow Mapping that diffs.
    #[serde(default)]
    pub diff: Vec<crate::diff::MappingReport>,
}

/// The TC program on one interface and hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentReport {
    pub interface: String,
    pub hook: String,
    pub seen: u64,
    pub cloned: u64,
    pub clone_failed: u64,
    pub loop_guarded: u64,
}

/// One group of the route table, in match order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub rkey: String,
    #[serde(rename = "match")]
    pub criteria: String,
    /// `name -> service` of each production Mapping.
    pub production: Vec<String>,
    pub shadow: Option<ShadowReport>,
    /// `name: where it was read` of each of its Mappings (a file's document, or a cluster
    /// resource such as `Service default/myservice`).
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    pub mapping: String,
    pub service: String,
    pub weight: u8,
}

/// The loss ledger of one shadow Mapping: observed = copied + sampled out + dropped + in
/// flight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerReport {
    pub mapping: String,
    pub observed: u64,
    pub copied: u64,
    pub sampled_out: u64,
    /// By reason; only reasons that happened.
    pub dropped: BTreeMap<String, u64>,
    pub in_flight: i64,
    pub balanced: bool,
}

impl LedgerReport {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// One side's responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    pub count: u64,
    /// `1xx` … `5xx` → count.
    pub classes: BTreeMap<String, u64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The latency distribution: `[fraction, ms]` points, the fraction of responses at or
    /// below each latency, from the fastest to the slowest (empty without responses).
    #[serde(default)]
    pub distribution: Vec<(f64, f64)>,
}

/// Production next to shadow, for one shadow Mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComparisonReport {
    pub mapping: String,
    pub production: SideReport,
    pub shadow: SideReport,
    /// Requests answered on both sides.
    pub compared: u64,
    /// Of those, how many got a different status class.
    pub status_class_differences: u64,
}
