//! Settings shared by every shadow upstream: socket mark, pool bound, timeouts, TLS.

use std::time::Duration;

use super::{breaker::BreakerConfig, tls::TlsClient};

/// Settings shared by every upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `SO_MARK` set on every socket to a shadow (0: none). The TC program never clones
    /// packets that carry it, so copies sent to a shadow on a captured port are not
    /// captured and copied again.
    pub loop_guard_mark: u32,
    /// Connections open at once to one service, idle ones included (at least 1). A caller
    /// that finds none free waits its turn.
    pub max_connections_per_service: usize,
    /// Longest wait for a new connection (resolve, TCP, TLS).
    pub connect_timeout: Duration,
    /// How long resolved addresses are used before resolving again. After a failed
    /// connect the next one resolves again, but a resolver that fails then still leaves the
    /// last good addresses usable for a while.
    pub dns_ttl: Duration,
    /// When a service's copies start failing at once, and for how long.
    pub breaker: BreakerConfig,
    /// TLS for `https://` services.
    pub tls: TlsClient,
}

impl UpstreamConfig {
    /// Default bound on connections per service.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default time to live of resolved addresses.
    pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(30);

    /// The defaults (no mark), with `tls` for `https://` services.
    pub fn new(tls: TlsClient) -> Self {
        UpstreamConfig {
            loop_guard_mark: 0,
            max_connections_per_service: Self::DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            dns_ttl: Self::DEFAULT_DNS_TTL,
            breaker: BreakerConfig::default(),
            tls,
        }
    }
}
