//! Writing the capture ports into the program's map: one flag per port, written one at a
//! time, so a reload changes the map all or nothing: a write the kernel refuses puts back
//! the ports that were there, and the caller keeps the configuration they belong to.

use aya::maps::{Array, MapData, MapError};

use super::ports::PortSet;

/// A map of one flag per port, as the program reads it.
pub trait PortFlags {
    fn set_flag(&mut self, port: u16, on: bool) -> Result<(), MapError>;
}

impl PortFlags for Array<MapData, u8> {
    fn set_flag(&mut self, port: u16, on: bool) -> Result<(), MapError> {
        self.set(u32::from(port), u8::from(on), 0)
    }
}

/// Makes `map` flag exactly `wanted`, given that it flags `current`: new ports first, then
/// the ports no longer wanted go, so a port in both sets is never missing. If a write
/// fails, the ports of `current` are written back; either way `current` ends up saying what
/// the map holds.
pub fn replace(
    map: &mut impl PortFlags,
    current: &mut PortSet,
    wanted: &PortSet,
) -> Result<(), MapError> {
    let before = current.clone();
    let Err(err) = write(map, current, wanted) else {
        return Ok(());
    };
    if let Err(undo) = write(map, current, &before) {
        tracing::error!(
            error = %crate::error_chain(&undo),
            ports = ?current,
            "restoring the capture ports after a failed update: the kernel captures these"
        );
    }
    Err(err)
}

/// Writes the flags that differ between `current` and `wanted`; `current` follows every
/// write that succeeded.
fn write(
    map: &mut impl PortFlags,
    current: &mut PortSet,
    wanted: &PortSet,
) -> Result<(), MapError> {
    let changed: Vec<(u16, bool)> = wanted
        .iter()
        .filter(|port| !current.contains(*port))
        .map(|port| (port, true))
        .chain(
            current
                .iter()
                .filter(|port| !wanted.contains(*port))
                .map(|port| (port, false)),
        )
        .collect();
    for (port, on) in changed {
        map.set_flag(port, on)?;
        current.set(port, on);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A map that refuses the writes numbered in `refused` (the first write is 1).
    struct Flaky {
        flagged: BTreeSet<u16>,
        writes: usize,
        refused: Vec<usize>,
    }

    impl Flaky {
        fn new(flagged: &[u16], refused: &[usize]) -> Flaky {
            Flaky {
                flagged: flagged.iter().copied().collect(),
                writes: 0,
                refused: refused.to_vec(),
            }
        }

        fn flagged(&self) -> Vec<u16> {
            self.flagged.iter().copied().collect()
        }
    }

    impl PortFlags for Flaky {
        fn set_flag(&mut self, port: u16, on: bool) -> Result<(), MapError> {
            self.writes += 1;
            if self.refused.contains(&self.writes) {
                return Err(MapError::KeyNotFound);
            }
            match on {
                true => self.flagged.insert(port),
                false => self.flagged.remove(&port),
            };
            Ok(())
        }
    }

    #[test]
    fn every_change_goes_in_adds_before_removals() {
        let mut map = Flaky::new(&[80, 9090], &[]);
        let mut current = PortSet::new([80, 9090]);
        replace(&mut map, &mut current, &PortSet::new([80, 81])).unwrap();
        assert_eq!(map.flagged(), [80, 81]);
        assert_eq!(current.iter().collect::<Vec<_>>(), [80, 81]);
    }

    #[test]
    fn a_write_refused_half_way_puts_the_old_ports_back() {
        // Adds 81, 82, 83 and removes 9090: the third write is refused after two went in.
        let mut map = Flaky::new(&[80, 9090], &[3]);
        let mut current = PortSet::new([80, 9090]);
        assert!(replace(&mut map, &mut current, &PortSet::new([80, 81, 82, 83])).is_err());
        assert_eq!(map.flagged(), [80, 9090]);
        assert_eq!(current.iter().collect::<Vec<_>>(), [80, 9090]);
    }

    #[test]
    fn a_map_that_refuses_the_undo_too_is_described_as_it_is() {
        // 81 goes in, 82 is refused, and so is taking 81 back out.
        let mut map = Flaky::new(&[80], &[2, 3]);
        let mut current = PortSet::new([80]);
        assert!(replace(&mut map, &mut current, &PortSet::new([81, 82])).is_err());
        assert_eq!(map.flagged(), [80, 81]);
        assert_eq!(current.iter().collect::<Vec<_>>(), [80, 81]);
    }
}
