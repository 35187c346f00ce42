//! shadowd's `/metrics` read back (with the tests' Prometheus text reader): the loss ledger of the
//! shadow Mapping (observed = copied + sampled out + dropped + in flight), with the
//! capture-side counters that explain requests lost before they were observed.

use std::collections::BTreeMap;

use serde::Serialize;

// The same Prometheus text reader the integration tests use.
pub use shadowd_tests::metrics::{MappingLedger, Scrape};

/// The shadow Mapping's ledger and the counters of loss before a request is observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// The shadow Mapping's requests: observed = copied + sampled out + dropped + in flight.
    #[serde(flatten)]
    pub replay: MappingLedger,
    pub ring_dropped_frames: u64,
    pub reassembly_gaps: BTreeMap<String, u64>,
    pub http_dropped_messages: BTreeMap<String, u64>,
    pub tc_clone_failed: u64,
    /// Packets the TC program cloned, and frames the capture ring delivered.
    pub tc_cloned: u64,
    pub ring_frames: u64,
    /// Not shadowd's: the kernel's drop counter of the mirror veth (`shadow0` tx_dropped),
    /// clones the peer's receive backlog turned away before they reached the ring.
    pub mirror_veth_dropped: u64,
    /// Whether ring drops are packets the program counted as cloned (the mirror output's
    /// AF_PACKET ring), or packets it already counted as `clone_failed` (the ring buffer
    /// output: a packet whose chunks did not all fit).
    pub ring_drops_were_cloned: bool,
    /// Bytes held out of order (waiting behind a hole) and flows still open at the end:
    /// requests behind a hole are neither observed nor counted lost until the hole is given
    /// up (buffer limits, the flow's end, 60 s idle).
    pub out_of_order_bytes: u64,
    pub open_flows: u64,
    /// Copies whose responses were diffed, and responses to diff that were not.
    #[serde(default)]
    pub diff_compared: u64,
    #[serde(default)]
    pub diff_lost: u64,
}

impl Ledger {
    pub fn from_scrape(scrape: &Scrape, mapping: &str, output: &str) -> Ledger {
        Ledger {
            replay: scrape.ledger(mapping),
            ring_dropped_frames: scrape.sum("shadowd_ring_dropped_frames_total", &[]),
            reassembly_gaps: scrape.by_label("shadowd_reassembly_gaps_total", "reason"),
            http_dropped_messages: scrape.by_label("shadowd_http_dropped_messages_total", "reason"),
            tc_clone_failed: scrape.sum("shadowd_tc_packets_total", &[("outcome", "clone_failed")]),
            tc_cloned: scrape.sum("shadowd_tc_packets_total", &[("outcome", "cloned_request")])
                + scrape.sum(
                    "shadowd_tc_packets_total",
                    &[("outcome", "cloned_response")],
                ),
            ring_frames: scrape.sum("shadowd_ring_frames_total", &[]),
            mirror_veth_dropped: 0,
            ring_drops_were_cloned: output == "mirror",
            out_of_order_bytes: scrape.sum("shadowd_reassembly_out_of_order_bytes", &[]),
            open_flows: scrape.sum("shadowd_reassembly_flows", &[]),
            diff_compared: scrape.sum("shadowd_diff_compared_total", &[]),
            diff_lost: scrape.sum("shadowd_diff_lost_total", &[]),
        }
    }

    /// Clones that neither reached the ring nor were counted dropped anywhere shadowd
    /// looks: cloned − ring frames (− ring drops, with the mirror output). Frames still
    /// queued at the end count too, so read after settling.
    pub fn clones_unaccounted(&self) -> i64 {
        let ring_drops = if self.ring_drops_were_cloned {
            self.ring_dropped_frames
        } else {
            0
        };
        self.tc_cloned as i64 - self.ring_frames as i64 - ring_drops as i64
    }

    /// Whether anything was lost before replay saw it, by shadowd's own counters (ring,
    /// gaps, HTTP, TC clone).
    pub fn capture_losses(&self) -> u64 {
        self.ring_dropped_frames
            + self.reassembly_gaps.values().sum::<u64>()
            + self.http_dropped_messages.values().sum::<u64>()
            + self.tc_clone_failed
    }

    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        format!(
            "{}; gaps {:?}, http drops {:?}, clone failures {}; cloned {} = ring frames {} + ring \
             drops {} + lost before the ring {} (mirror veth counted {}); {} bytes held out of \
             order in {} open flows",
            self.replay,
            self.reassembly_gaps,
            self.http_dropped_messages,
            self.tc_clone_failed,
            self.tc_cloned,
            self.ring_frames,
            self.ring_dropped_frames,
            self.clones_unaccounted(),
            self.mirror_veth_dropped,
            self.out_of_order_bytes,
            self.open_flows,
        )
    }
}
