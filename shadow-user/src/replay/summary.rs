//! The summary `shadowd replay` prints: per shadow Mapping, what was observed and how every
//! request ended.

use std::fmt::Write as _;

use super::stats::{DropLabels, ReplayStats, Undelivered};
use crate::labels::MappingLabel;
use crate::{active::ActiveConfig, pcap::FileCounts};

/// The names of the shadow Mappings of `config`, once each, sorted.
pub fn shadow_mappings(config: &ActiveConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .table
        .groups()
        .iter()
        .filter_map(|group| group.shadow.as_ref().map(|plan| plan.name.clone()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One shadow Mapping's ledger as replay counted it.
struct Tally {
    observed: u64,
    copied: u64,
    sampled_out: u64,
    /// The reasons that happened.
    dropped: Vec<(Undelivered, u64)>,
}

fn tally(stats: &ReplayStats, name: &str) -> Tally {
    let label = MappingLabel {
        mapping: name.to_string(),
    };
    let get = |family: &prometheus_client::metrics::family::Family<MappingLabel, _>| {
        let counter: &prometheus_client::metrics::counter::Counter = &family.get_or_create(&label);
        counter.get()
    };
    let dropped = Undelivered::ALL
        .into_iter()
        .map(|reason| {
            let labels = DropLabels {
                mapping: name.to_string(),
                reason,
            };
            (reason, stats.dropped.get_or_create(&labels).get())
        })
        .filter(|(_, dropped)| *dropped > 0)
        .collect();
    Tally {
        observed: get(&stats.observed),
        copied: get(&stats.copied),
        sampled_out: get(&stats.sampled_out),
        dropped,
    }
}

/// Renders the file counts and, per shadow Mapping of `config`, the replay ledger.
pub fn render(counts: &FileCounts, stats: &ReplayStats, config: &ActiveConfig) -> String {
    let mut text = format!(
        "packets {} (tcp segments {}, other {}, snapped {})\n",
        counts.packets, counts.segments, counts.skipped, counts.truncated
    );
    for name in shadow_mappings(config) {
        let tally = tally(stats, &name);
        let _ = write!(
            text,
            "{name}: observed {}, copied {}, sampled out {}",
            tally.observed, tally.copied, tally.sampled_out
        );
        for (reason, dropped) in tally.dropped {
            let _ = write!(text, ", dropped ({reason}) {dropped}");
        }
        text.push('\n');
    }
    text
}

/// Replay so far, all shadow Mappings together, for a progress bar.
pub fn progress(stats: &ReplayStats, names: &[String]) -> String {
    let (mut observed, mut copied, mut dropped) = (0, 0, 0);
    for name in names {
        let tally = tally(stats, name);
        observed += tally.observed;
        copied += tally.copied;
        dropped += tally.dropped.iter().map(|(_, n)| n).sum::<u64>();
    }
    format!("{observed} requests to copy, {copied} copied, {dropped} dropped")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        config::Diagnostics,
        route::{self, RouteTable},
    };

    #[test]
    fn each_shadow_mapping_by_name_with_every_outcome_and_only_the_reasons_that_happened() {
        let table = RouteTable::build(
            &[
                route::tests::mapping("a", "/a/", "a"),
                route::tests::shadow("a-shadow", "/a/", "a-shadow"),
                route::tests::mapping("b", "/b/", "b"),
                // Groups sort by prefix, descending: these come before /a/ and are listed after it.
                route::tests::shadow("z-shadow", "/b/", "z-shadow"),
                route::tests::mapping("c", "/c/", "c"),
                route::tests::shadow("z-shadow.other", "/c/", "z-shadow"),
                route::tests::mapping("unshadowed", "/d/", "d"),
            ],
            &mut Diagnostics::default(),
        );
        let config = ActiveConfig {
            table,
            ..ActiveConfig::default()
        };
        let stats = ReplayStats::default();
        for _ in 0..4 {
            stats.observed("a-shadow");
        }
        stats.sampled_out("a-shadow");
        stats.queued("a-shadow");
        stats.copied("a-shadow", 200, Duration::from_millis(1), 1);
        stats.dropped("a-shadow", Undelivered::QueueFull, false);
        stats.dropped("a-shadow", Undelivered::Timeout, false);
        let counts = FileCounts {
            packets: 10,
            segments: 8,
            skipped: 2,
            truncated: 1,
        };
        assert_eq!(
            render(&counts, &stats, &config),
            "packets 10 (tcp segments 8, other 2, snapped 1)\n\
             a-shadow: observed 4, copied 1, sampled out 1, dropped (queue_full) 1, dropped (timeout) 1\n\
             z-shadow: observed 0, copied 0, sampled out 0\n\
             z-shadow.other: observed 0, copied 0, sampled out 0\n"
        );
    }
}
