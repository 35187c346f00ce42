//! The summary `shadowd replay` prints: per shadow Mapping, what was observed and how every
//! request ended.

use std::fmt::Write as _;

use super::stats::{DropLabels, MappingLabel, ReplayStats, reason};
use crate::{active::ActiveConfig, pcap::FileCounts};

/// Renders the file counts and, per shadow Mapping of `config`, the replay ledger.
pub fn render(counts: &FileCounts, stats: &ReplayStats, config: &ActiveConfig) -> String {
    let mut text = format!(
        "packets {} (tcp segments {}, other {}, snapped {})\n",
        counts.packets, counts.segments, counts.skipped, counts.truncated
    );
    let mut names: Vec<&str> = config
        .table
        .groups()
        .iter()
        .filter_map(|group| group.shadow.as_ref().map(|plan| plan.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let label = MappingLabel {
            mapping: name.to_string(),
        };
        let get = |family: &prometheus_client::metrics::family::Family<MappingLabel, _>| {
            let counter: &prometheus_client::metrics::counter::Counter =
                &family.get_or_create(&label);
            counter.get()
        };
        let _ = write!(
            text,
            "{name}: observed {}, copied {}, sampled out {}",
            get(&stats.observed),
            get(&stats.copied),
            get(&stats.sampled_out)
        );
        for reason in reason::ALL {
            let dropped = stats
                .dropped
                .get_or_create(&DropLabels {
                    mapping: name.to_string(),
                    reason,
                })
                .get();
            if dropped > 0 {
                let _ = write!(text, ", dropped ({reason}) {dropped}");
            }
        }
        text.push('\n');
    }
    text
}
