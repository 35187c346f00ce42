//! The set of capture ports as userspace sees it: decides the direction of each segment and
//! can be swapped while capture runs.

use std::sync::{Arc, RwLock};

/// Ports whose connections are captured; a bitmap so a lookup is one load.
#[derive(Clone)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl PortSet {
    /// A set holding `ports`.
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for port in ports {
            bits[usize::from(port / 64)] |= 1 << (port % 64);
        }
        PortSet { bits }
    }

    /// Adds `port` when `on`, else removes it.
    pub fn set(&mut self, port: u16, on: bool) {
        let bit = 1 << (port % 64);
        let word = &mut self.bits[usize::from(port / 64)];
        *word = if on { *word | bit } else { *word & !bit };
    }

    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }

    /// The ports in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|port| self.contains(*port))
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A `PortSet` shared between the controller (which replaces it) and the capture thread
/// (which takes a snapshot once per ring block, not per packet).
#[derive(Clone, Debug)]
pub struct SharedPorts(Arc<RwLock<Arc<PortSet>>>);

impl SharedPorts {
    pub fn new(ports: PortSet) -> Self {
        SharedPorts(Arc::new(RwLock::new(Arc::new(ports))))
    }

    pub fn snapshot(&self) -> Arc<PortSet> {
        // A poisoned lock still holds a whole `Arc`: keep using it.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, ports: PortSet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_and_order() {
        let set = PortSet::new([80, 8080, 0, 65535]);
        assert!(set.contains(80) && set.contains(8080) && set.contains(0) && set.contains(65535));
        assert!(!set.contains(81));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 80, 8080, 65535]);
    }

    #[test]
    fn replace_is_seen_by_new_snapshots() {
        let shared = SharedPorts::new(PortSet::new([80]));
        let old = shared.snapshot();
        shared.replace(PortSet::new([443]));
        assert!(old.contains(80));
        assert!(shared.snapshot().contains(443) && !shared.snapshot().contains(80));
    }
}
