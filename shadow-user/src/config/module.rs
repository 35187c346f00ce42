//! Daemon settings from an Ambassador-style `kind: Module` named `shadowd`, so a whole
//! deployment (Mappings and settings) can live in one ConfigMap. Command-line flags override
//! every field.

use std::net::SocketAddr;

use serde::Deserialize;

/// `config:` of the `shadowd` Module. Every field is optional; unknown fields are errors
/// (a misspelt limit must not be silently ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSettings {
    /// Interfaces to watch (`--interface`).
    pub interfaces: Option<Vec<String>>,
    /// Capture ports, replacing those derived from the Mappings (`--capture-port`).
    pub capture_ports: Option<Vec<u16>>,
    /// Admin server address (`--admin`).
    pub admin: Option<SocketAddr>,
    /// Address of the /metrics-only listener (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// Milliseconds between checks of the configuration files; 0 = SIGHUP only
    /// (`--config-poll-ms`).
    pub config_poll_ms: Option<u64>,
    /// `mirror` or `ringbuf` (`--capture-output`).
    pub capture_output: Option<crate::capture::OutputKind>,
    /// BPF ring buffer bytes and reader poll interval (`--ringbuf-size`,
    /// `--ringbuf-poll-us`).
    pub ringbuf_size: Option<u32>,
    /// See `ringbuf_size`.
    pub ringbuf_poll_us: Option<u64>,
    /// Mirror veth name (`--mirror-interface`).
    pub mirror_interface: Option<String>,
    /// `skb->mark` of replay traffic (`--loop-guard-mark`).
    pub loop_guard_mark: Option<u32>,
    /// The bits of `skb->mark` the loop guard compares (`--loop-guard-mask`).
    pub loop_guard_mask: Option<u32>,
    /// Capture ring geometry (`--ring-block-size`, `--ring-blocks`, `--ring-block-timeout-ms`).
    pub ring_block_size: Option<u32>,
    /// See `ring_block_size`.
    pub ring_blocks: Option<u32>,
    /// See `ring_block_size`.
    pub ring_block_timeout_ms: Option<u64>,
    /// Extra CA certificates for `https://` shadows (`--shadow-ca-file`).
    pub shadow_ca_file: Option<std::path::PathBuf>,
    /// UNSAFE, test setups only (`--unsafe-skip-shadow-tls-verify`).
    pub unsafe_skip_shadow_tls_verify: Option<bool>,
    /// Connections at once to one shadow service (`--shadow-max-connections`).
    pub shadow_max_connections: Option<usize>,
    /// Header fields removed from every copy, after each shadow Mapping's own
    /// `remove_request_headers` (say `[Authorization, Cookie]`, to keep production
    /// credentials from test services). Applied on reload, like the Mappings.
    pub remove_request_headers: Option<Vec<String>>,
    /// Reassembly and HTTP limits.
    pub limits: Option<LimitSettings>,
}

/// `config.limits` of the Module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Connections tracked at once (default 65536).
    pub max_flows: Option<usize>,
    /// Out-of-order bytes one connection direction may hold (default 4 MiB).
    pub flow_buffer_bytes: Option<usize>,
    /// Out-of-order bytes all connections may hold (default 256 MiB).
    pub total_buffer_bytes: Option<usize>,
    /// Seconds without a segment before a connection is ended (default 60).
    pub idle_timeout_s: Option<u64>,
    /// Milliseconds bytes may wait for a missing segment before it is given up (default
    /// 1000).
    pub hole_timeout_ms: Option<u64>,
    /// Largest request or response head (default 64 KiB).
    pub max_head_bytes: Option<usize>,
    /// Most header fields in a head (default: as many as fit in `max_head_bytes`).
    pub max_headers: Option<usize>,
    /// Largest request body copied, as a policy (default: no limit; bodies stream to
    /// the shadow as they arrive, so their size costs no memory).
    pub max_body_bytes: Option<usize>,
    /// Bytes of requests one connection may hold while production has not confirmed them
    /// (default 1 MiB), and all connections together (default 64 MiB).
    pub max_held_bytes: Option<usize>,
    /// See `max_held_bytes`.
    pub max_held_total_bytes: Option<usize>,
    /// Bytes the parsers of all connections may buffer of messages in progress (default
    /// 128 MiB); a message that finds no room is dropped as `parse_budget_full`.
    pub max_parse_total_bytes: Option<usize>,
    /// Bytes copies waiting for or being sent to their shadows may hold together, each
    /// counted with a fixed overhead (default 256 MiB); it bounds replay's connections too.
    pub max_replay_bytes: Option<usize>,
}

impl LimitSettings {
    /// Reassembly limits with these overrides.
    pub fn reassembly(&self) -> crate::reassembly::Limits {
        let default = crate::reassembly::Limits::default();
        crate::reassembly::Limits {
            max_flows: self.max_flows.unwrap_or(default.max_flows),
            max_flow_buffer: self.flow_buffer_bytes.unwrap_or(default.max_flow_buffer),
            max_total_buffer: self.total_buffer_bytes.unwrap_or(default.max_total_buffer),
            idle_timeout: self
                .idle_timeout_s
                .map_or(default.idle_timeout, std::time::Duration::from_secs),
            hole_timeout: self
                .hole_timeout_ms
                .map_or(default.hole_timeout, std::time::Duration::from_millis),
        }
    }

    /// The replay byte budget with this override.
    pub fn replay_bytes(&self) -> usize {
        self.max_replay_bytes
            .unwrap_or(crate::replay::ReplaySettings::DEFAULT_MAX_BYTES)
    }

    /// HTTP limits with these overrides.
    pub fn http(&self) -> crate::http::Limits {
        let default = crate::http::Limits::default();
        crate::http::Limits {
            max_head_bytes: self.max_head_bytes.unwrap_or(default.max_head_bytes),
            max_headers: self.max_headers.or(default.max_headers),
            max_body_bytes: self.max_body_bytes.or(default.max_body_bytes),
            stream_body_after: default.stream_body_after,
            max_held_bytes: self.max_held_bytes.unwrap_or(default.max_held_bytes),
            max_held_total_bytes: self
                .max_held_total_bytes
                .unwrap_or(default.max_held_total_bytes),
            max_parse_total_bytes: self
                .max_parse_total_bytes
                .unwrap_or(default.max_parse_total_bytes),
        }
    }
}
