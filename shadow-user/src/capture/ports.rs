//! A set of TCP ports as a bitmap, so a lookup is one load: the capture ports, on the path
//! of every captured segment.

/// A set of ports.
#[derive(Clone, PartialEq, Eq)]
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

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new([])
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
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
}
