//! A service's addresses: resolved through the system resolver (so `/etc/hosts` and search
//! domains apply), kept for the DNS time to live. After a failed connect the next connect
//! resolves again, but the last good addresses stay at hand for [`LAST_GOOD_FOR`]: a
//! resolver that fails then (a DNS outage, not the shadow's) does not fail every copy.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How long addresses stay usable when resolving again fails.
pub(super) const LAST_GOOD_FOR: Duration = Duration::from_secs(300);

/// The last addresses resolved for one service.
#[derive(Debug)]
pub(super) struct AddressCache {
    ttl: Duration,
    entry: Mutex<Option<Entry>>,
}

#[derive(Debug)]
struct Entry {
    addresses: Arc<[SocketAddr]>,
    resolved: Instant,
    /// `None`: the TTL is too large to add to a time, so never.
    expires: Option<Instant>,
}

impl AddressCache {
    pub fn new(ttl: Duration) -> Self {
        AddressCache {
            ttl,
            entry: Mutex::new(None),
        }
    }

    /// The cached addresses, unless none are cached or they are older than the TTL.
    pub fn fresh(&self, now: Instant) -> Option<Arc<[SocketAddr]>> {
        let entry = self.lock();
        entry
            .as_ref()
            .filter(|e| e.expires.is_none_or(|expires| now < expires))
            .map(|e| e.addresses.clone())
    }

    /// Keeps `addresses`, resolved at `now`.
    pub fn store(&self, addresses: Arc<[SocketAddr]>, now: Instant) {
        let expires = now.checked_add(self.ttl);
        *self.lock() = Some(Entry {
            addresses,
            resolved: now,
            expires,
        });
    }

    /// The addresses are no longer fresh: the next connect resolves again.
    pub fn expire(&self) {
        if let Some(entry) = self.lock().as_mut() {
            entry.expires = Some(entry.resolved);
        }
    }

    /// The last addresses resolved, if that was less than [`LAST_GOOD_FOR`] before `now`.
    pub fn last_good(&self, now: Instant) -> Option<Arc<[SocketAddr]>> {
        let entry = self.lock();
        entry
            .as_ref()
            .filter(|e| now.saturating_duration_since(e.resolved) < LAST_GOOD_FOR)
            .map(|e| e.addresses.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entry>> {
        // Nothing panics while holding the lock; a poisoned cache is still a valid one.
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Resolves `host` (a name, an IPv4 literal or a bracketed IPv6 literal) with the system
/// resolver. An empty answer is an error.
pub(super) async fn resolve(host: &str, port: u16) -> io::Result<Arc<[SocketAddr]>> {
    let addresses: Arc<[SocketAddr]> = tokio::net::lookup_host((bare_host(host), port))
        .await?
        .collect();
    if addresses.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ));
    }
    Ok(addresses)
}

/// The host without the brackets of an IPv6 literal (`[::1]` → `::1`), as resolvers and
/// TLS server names want it.
pub(super) fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(port: u16) -> Arc<[SocketAddr]> {
        Arc::from([SocketAddr::from(([127, 0, 0, 1], port))])
    }

    #[test]
    fn addresses_expire_after_the_ttl() {
        let cache = AddressCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(cache.fresh(t0).is_none());
        cache.store(addresses(1), t0);
        assert_eq!(
            cache.fresh(t0 + Duration::from_secs(29)),
            Some(addresses(1))
        );
        assert!(cache.fresh(t0 + Duration::from_secs(30)).is_none());
    }

    #[test]
    fn expired_addresses_are_resolved_again_but_stay_at_hand_for_a_while() {
        let cache = AddressCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        cache.store(addresses(1), t0);
        cache.expire();
        assert!(cache.fresh(t0).is_none());
        assert_eq!(cache.last_good(t0), Some(addresses(1)));
        assert_eq!(
            cache.last_good(t0 + LAST_GOOD_FOR - Duration::from_secs(1)),
            Some(addresses(1))
        );
        assert!(cache.last_good(t0 + LAST_GOOD_FOR).is_none());
        cache.store(addresses(2), t0);
        assert_eq!(cache.fresh(t0), Some(addresses(2)));
    }

    #[test]
    fn huge_ttls_do_not_overflow() {
        let cache = AddressCache::new(Duration::MAX);
        let t0 = Instant::now();
        cache.store(addresses(1), t0);
        assert!(cache.fresh(t0 + Duration::from_secs(3600)).is_some());
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("myservice.default"), "myservice.default");
    }

    #[tokio::test]
    async fn hosts_file_names_and_literals_resolve() {
        let local = resolve("localhost", 8080).await.unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
        let v6 = resolve("[::1]", 80).await.unwrap();
        assert_eq!(
            &v6[..],
            &[SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 80))]
        );
    }
}
