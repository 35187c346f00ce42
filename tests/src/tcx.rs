//! The programs attached with TCX to an interface, as the kernel reports them: which
//! programs, and the revision it bumps at every attach or detach on that hook.

use aya::programs::{SchedClassifier, TcAttachType};

use crate::netns::Netns;

/// One hook's attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachments {
    /// Bumped by the kernel at every attach or detach: equal revisions mean nothing was
    /// attached or detached in between.
    pub revision: u64,
    /// The ids of the programs attached, in order.
    pub program_ids: Vec<u32>,
}

/// The ingress then the egress attachments of `interface` in `ns`.
pub fn attachments(ns: &Netns, interface: &str) -> [Attachments; 2] {
    ns.enter(|| {
        [TcAttachType::Ingress, TcAttachType::Egress].map(|hook| {
            let (revision, programs) =
                SchedClassifier::query_tcx(interface, hook).expect("query tcx");
            Attachments {
                revision,
                program_ids: programs.iter().map(|program| program.id()).collect(),
            }
        })
    })
}
