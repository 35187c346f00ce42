//! Exposes the TC program's per-CPU counters as Prometheus metrics, read from the kernel at
//! each scrape.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
};
use shadow_common::Stats;

use super::program::StatsReader;

/// Every outcome counter with its label value; each packet lands in exactly one.
fn outcomes(stats: &Stats) -> [(&'static str, u64); 12] {
    [
        ("not_ip", stats.not_ip),
        ("not_tcp", stats.not_tcp),
        ("unparsed", stats.unparsed),
        ("ipv6_ext_unwalked", stats.ipv6_ext_unwalked),
        ("not_matched", stats.not_matched),
        ("bare_ack", stats.bare_ack),
        ("loop_guarded", stats.loop_guarded),
        ("mirror_unset", stats.mirror_unset),
        ("wrong_direction", stats.wrong_direction),
        ("cloned_request", stats.cloned_request),
        ("cloned_response", stats.cloned_response),
        ("clone_failed", stats.clone_failed),
    ]
}

impl Collector for StatsReader {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.read();
        let per_attachment = [
            (
                "tc_seen_packets",
                "Packets the TC program ran on",
                (|s: &Stats| s.seen) as fn(&Stats) -> u64,
            ),
            (
                "tc_cloned_bytes",
                "Bytes of packets cloned to the mirror interface",
                |s: &Stats| s.cloned_bytes,
            ),
        ];
        for (name, help, value) in per_attachment {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (attachment, stats) in &all {
                let labels = [
                    ("interface", attachment.interface.as_str()),
                    ("hook", attachment.hook),
                ];
                ConstCounter::new(value(stats)).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "tc_packets",
            "Packets by what the TC program did with them",
            None,
            MetricType::Counter,
        )?;
        for (attachment, stats) in &all {
            for (outcome, value) in outcomes(stats) {
                let labels = [
                    ("interface", attachment.interface.as_str()),
                    ("hook", attachment.hook),
                    ("outcome", outcome),
                ];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
