//! Writing the capture scope into the program's maps (a flag per port, and the endpoint
//! table), one entry at a time, so a reload changes them all or nothing: a write the kernel
//! refuses puts back what was there, and the caller keeps the configuration it belongs to.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{Array, HashMap, MapData, MapError};
use shadow_common::{EndpointKey, PORT_ANY_ADDRESS};

use super::scope::CaptureScope;

/// The program's two scope maps, as it reads them.
pub trait ScopeMaps {
    /// Sets the flags of `port` (0: not captured).
    fn set_port_flags(&mut self, port: u16, flags: u8) -> Result<(), MapError>;
    fn insert_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError>;
    fn remove_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError>;
}

/// The maps of the loaded program.
pub struct KernelScopeMaps {
    pub ports: Array<MapData, u8>,
    pub endpoints: HashMap<MapData, EndpointKey, u8>,
}

impl ScopeMaps for KernelScopeMaps {
    fn set_port_flags(&mut self, port: u16, flags: u8) -> Result<(), MapError> {
        self.ports.set(u32::from(port), flags, 0)
    }

    fn insert_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError> {
        self.endpoints.insert(key, 1, 0)
    }

    fn remove_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError> {
        self.endpoints.remove(&key)
    }
}

/// What the maps hold: the flags of each flagged port and the endpoint keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapContents {
    ports: BTreeMap<u16, u8>,
    endpoints: BTreeSet<EndpointKey>,
}

impl From<&CaptureScope> for MapContents {
    fn from(scope: &CaptureScope) -> Self {
        MapContents {
            ports: scope.port_flags().collect(),
            endpoints: scope.endpoint_keys().collect(),
        }
    }
}

/// Makes `maps` hold `wanted`, given that they hold `current`: endpoints that leave first
/// (room in a full map), then new endpoints, then the port flags, then endpoints whose port
/// `wanted` captures at any address, so a server in both scopes is never missing. If a
/// write fails, `current`'s old contents are written back; either way `current` ends up
/// saying what the maps hold.
pub fn replace(
    maps: &mut impl ScopeMaps,
    current: &mut MapContents,
    wanted: &MapContents,
) -> Result<(), MapError> {
    let before = current.clone();
    let Err(err) = write(maps, current, wanted) else {
        return Ok(());
    };
    if let Err(undo) = write(maps, current, &before) {
        tracing::error!(
            error = %crate::error_chain(&undo),
            contents = ?current,
            "restoring the capture scope after a failed update: the kernel captures this"
        );
    }
    Err(err)
}

/// Writes the entries that differ between `current` and `wanted`; `current` follows every
/// write that succeeded.
fn write(
    maps: &mut impl ScopeMaps,
    current: &mut MapContents,
    wanted: &MapContents,
) -> Result<(), MapError> {
    let covered = |key: &EndpointKey| {
        wanted
            .ports
            .get(&key.port)
            .is_some_and(|flags| flags & PORT_ANY_ADDRESS != 0)
    };
    let leaving: Vec<EndpointKey> = current
        .endpoints
        .difference(&wanted.endpoints)
        .filter(|key| !covered(key))
        .copied()
        .collect();
    for key in leaving {
        maps.remove_endpoint(key)?;
        current.endpoints.remove(&key);
    }
    let added: Vec<EndpointKey> = wanted
        .endpoints
        .difference(&current.endpoints)
        .copied()
        .collect();
    for key in added {
        maps.insert_endpoint(key)?;
        current.endpoints.insert(key);
    }
    let ports: BTreeSet<u16> = wanted
        .ports
        .keys()
        .chain(current.ports.keys())
        .copied()
        .collect();
    for port in ports {
        let flags = wanted.ports.get(&port).copied().unwrap_or(0);
        if current.ports.get(&port).copied().unwrap_or(0) == flags {
            continue;
        }
        maps.set_port_flags(port, flags)?;
        if flags == 0 {
            current.ports.remove(&port);
        } else {
            current.ports.insert(port, flags);
        }
    }
    let removed: Vec<EndpointKey> = current
        .endpoints
        .difference(&wanted.endpoints)
        .copied()
        .collect();
    for key in removed {
        maps.remove_endpoint(key)?;
        current.endpoints.remove(&key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shadow_common::{PORT_ANY_ADDRESS, PORT_LISTED_ENDPOINTS};

    use super::*;

    /// Maps that refuse the writes numbered in `refused` (the first write is 1) and log the
    /// ones they took.
    #[derive(Default)]
    struct Flaky {
        held: MapContents,
        writes: usize,
        refused: Vec<usize>,
        log: Vec<String>,
    }

    impl Flaky {
        fn holding(scope: &CaptureScope, refused: &[usize]) -> Flaky {
            Flaky {
                held: scope.into(),
                refused: refused.to_vec(),
                ..Flaky::default()
            }
        }

        fn take(&mut self, what: String) -> Result<(), MapError> {
            self.writes += 1;
            if self.refused.contains(&self.writes) {
                return Err(MapError::KeyNotFound);
            }
            self.log.push(what);
            Ok(())
        }
    }

    impl ScopeMaps for Flaky {
        fn set_port_flags(&mut self, port: u16, flags: u8) -> Result<(), MapError> {
            self.take(format!("port {port}={flags}"))?;
            match flags {
                0 => self.held.ports.remove(&port),
                _ => self.held.ports.insert(port, flags),
            };
            Ok(())
        }

        fn insert_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError> {
            self.take(format!("+{}", key.port))?;
            self.held.endpoints.insert(key);
            Ok(())
        }

        fn remove_endpoint(&mut self, key: EndpointKey) -> Result<(), MapError> {
            self.take(format!("-{}", key.port))?;
            self.held.endpoints.remove(&key);
            Ok(())
        }
    }

    fn scope(ports: &[u16], endpoints: &[&str]) -> CaptureScope {
        let mut scope = CaptureScope::ports(ports.iter().copied());
        for endpoint in endpoints {
            scope.add_endpoint(endpoint.parse().unwrap());
        }
        scope
    }

    #[test]
    fn leaving_endpoints_go_first_and_new_ones_before_their_port_flag() {
        let old = scope(&[9090], &["198.18.0.2:80"]);
        let new = scope(&[], &["198.18.0.2:8080"]);
        let mut maps = Flaky::holding(&old, &[]);
        let mut current = MapContents::from(&old);
        replace(&mut maps, &mut current, &MapContents::from(&new)).unwrap();
        assert_eq!(maps.held, MapContents::from(&new));
        assert_eq!(current, MapContents::from(&new));
        assert_eq!(
            maps.log,
            ["-80", "+8080", "port 80=0", "port 8080=2", "port 9090=0"]
        );
    }

    #[test]
    fn an_endpoint_its_port_now_covers_goes_after_the_port_flag() {
        // Its name stopped resolving: port 80 at any address takes over from the endpoint.
        let old = scope(&[], &["198.18.0.2:80"]);
        let new = scope(&[80], &[]);
        let mut maps = Flaky::holding(&old, &[]);
        let mut current = MapContents::from(&old);
        replace(&mut maps, &mut current, &MapContents::from(&new)).unwrap();
        assert_eq!(
            maps.log,
            [format!("port 80={PORT_ANY_ADDRESS}"), "-80".into()]
        );
    }

    #[test]
    fn a_server_in_both_scopes_is_never_written() {
        let old = scope(&[80], &["198.18.0.2:8080"]);
        let new = scope(&[80, 81], &["198.18.0.2:8080"]);
        let mut maps = Flaky::holding(&old, &[]);
        let mut current = MapContents::from(&old);
        replace(&mut maps, &mut current, &MapContents::from(&new)).unwrap();
        assert_eq!(maps.log, [format!("port 81={PORT_ANY_ADDRESS}")]);
    }

    #[test]
    fn a_port_gaining_endpoints_keeps_its_any_address_flag() {
        let old = scope(&[80], &[]);
        let new = scope(&[80], &["198.18.0.2:80"]);
        let mut maps = Flaky::holding(&old, &[]);
        let mut current = MapContents::from(&old);
        replace(&mut maps, &mut current, &MapContents::from(&new)).unwrap();
        let both = PORT_ANY_ADDRESS | PORT_LISTED_ENDPOINTS;
        assert_eq!(maps.log, ["+80".to_string(), format!("port 80={both}")]);
    }

    #[test]
    fn a_write_refused_half_way_puts_the_old_contents_back() {
        // +8080 and +8081 go in, port 80's flag is refused.
        let old = scope(&[80], &[]);
        let new = scope(&[], &["198.18.0.2:8080", "198.18.0.2:8081"]);
        let mut maps = Flaky::holding(&old, &[3]);
        let mut current = MapContents::from(&old);
        assert!(replace(&mut maps, &mut current, &MapContents::from(&new)).is_err());
        assert_eq!(maps.held, MapContents::from(&old));
        assert_eq!(current, MapContents::from(&old));
    }

    #[test]
    fn maps_that_refuse_the_undo_too_are_described_as_they_are() {
        // +8080 goes in, port 80's flag is refused, and so is taking 8080 back out.
        let old = scope(&[80], &[]);
        let new = scope(&[], &["198.18.0.2:8080"]);
        let mut maps = Flaky::holding(&old, &[2, 3]);
        let mut current = MapContents::from(&old);
        assert!(replace(&mut maps, &mut current, &MapContents::from(&new)).is_err());
        assert_eq!(maps.held, current);
        assert!(current.endpoints.len() == 1 && current.ports.len() == 1);
    }
}
