//! The daemon's options, defined once for both places they come from: `shadowd run`'s flags
//! (clap reads the fields and their docs as help) and the `config:` of the `shadowd` Module
//! (serde reads the same fields). Every option is optional here; [`DaemonOptions::over`]
//! puts the flags over the Module, and `Settings::resolve` applies the defaults and checks
//! the values, before anything is attached.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::capture::OutputKind;

/// Every option of `shadowd run` and of the `shadowd` Module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
pub struct DaemonOptions {
    /// Interface to watch (ingress and egress); repeat for several. `auto`: the host side
    /// of the veth of each production pod on this node, followed as pods come and go.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub interfaces: Option<Vec<String>>,

    /// Host side of a production pod's veth to watch, where requests to the pod leave and
    /// its answers arrive (so it sees clients on the same node too); repeat for several.
    #[arg(long = "pod-interface", value_name = "IFACE")]
    pub pod_interfaces: Option<Vec<String>>,

    /// TCP port of a production service to capture; repeat for several. Default: the ports
    /// of the production services of shadowed Mappings.
    #[arg(long = "capture-port", short = 'p', value_name = "PORT")]
    pub capture_ports: Option<Vec<u16>>,

    /// Address of the admin server (/readyz, /healthz, /metrics, /diag) [default:
    /// 127.0.0.1:8877].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// Address of a listener that serves /metrics only, for a scraper that cannot reach
    /// the admin server's loopback address [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// How often, in milliseconds, the configuration files are checked for changes; 0
    /// turns the check off, so only SIGHUP reloads [default: 2000].
    #[arg(long, value_name = "MS")]
    pub config_poll_ms: Option<u64>,

    /// How the TC program hands copies over: `ringbuf` copies each packet into a BPF ring
    /// buffer; `mirror` clones it onto a mirror veth read with an AF_PACKET ring, which
    /// costs the production CPU more [default: ringbuf].
    #[arg(long, value_enum, value_name = "OUTPUT")]
    pub capture_output: Option<OutputKind>,

    /// Bytes of the BPF ring buffer of `--capture-output ringbuf` (power of two, at least
    /// 32768) [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub ringbuf_size: Option<u32>,

    /// With `--capture-output ringbuf`: how often, in microseconds, the reader looks for
    /// new copies while traffic flows; bounds how long a copy waits [default: 1000].
    #[arg(long, value_name = "US")]
    pub ringbuf_poll_us: Option<u64>,

    /// With `--capture-output mirror`: name of the mirror veth the clones are sent to; its
    /// peer is `<NAME>-peer` [default: shadow0].
    #[arg(long, value_name = "NAME")]
    pub mirror_interface: Option<String>,

    /// `skb->mark` that shadowd's own replay traffic carries; marked packets are never
    /// cloned. 0 turns the guard off [default: 0x5A].
    #[arg(long, value_parser = parse_u32, value_name = "MARK")]
    pub loop_guard_mark: Option<u32>,

    /// The bits of `skb->mark` the loop guard compares; the mark must lie within them.
    /// Other components (kube-proxy, Cilium, Calico) set bits outside it [default: 0xFF;
    /// every bit for a mark above the low byte].
    #[arg(long, value_parser = parse_u32, value_name = "MASK")]
    pub loop_guard_mask: Option<u32>,

    /// With `--capture-output mirror`: bytes per capture ring block (power of two, at least
    /// 128 KiB; above the largest frame) [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub ring_block_size: Option<u32>,

    /// With `--capture-output mirror`: number of capture ring blocks [default: 32].
    #[arg(long, value_name = "N")]
    pub ring_blocks: Option<u32>,

    /// With `--capture-output mirror`: longest wait, in milliseconds, before the kernel hands
    /// over a partly filled block [default: 1].
    #[arg(long, value_name = "MS")]
    pub ring_block_timeout_ms: Option<u64>,

    /// Read Mappings (Services' `getambassador.io/config` annotations, `getambassador.io`
    /// Mapping resources) and where production's pods on this node listen from the
    /// Kubernetes API, live (in-cluster credentials, or KUBECONFIG) [default: off].
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub kubernetes: Option<bool>,

    /// With `--kubernetes`: the name of this node, as EndpointSlices name it (the DaemonSet
    /// sets NODE_NAME from the downward API).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Show production's credentials (`Authorization`, `Proxy-Authorization`, `Cookie`) in
    /// the `curl` commands of response diff samples, instead of `REDACTED` [default: off].
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub diff_show_credentials: Option<bool>,

    /// How copies reach shadow services.
    #[command(flatten)]
    #[serde(flatten)]
    pub shadow: ShadowOptions,

    /// Module only: header fields removed from every copy, after each shadow Mapping's own
    /// `remove_request_headers` (say `[Authorization, Cookie]`, to keep production
    /// credentials from test services). Applied on reload, like the Mappings.
    #[arg(skip)]
    pub remove_request_headers: Option<Vec<String>>,

    /// Module only: reassembly, HTTP and replay limits.
    #[arg(skip)]
    pub limits: Option<LimitSettings>,
}

/// How copies reach shadow services (`run`, `replay` and the Module).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
pub struct ShadowOptions {
    /// PEM file of CA certificates trusted for `https://` shadow services, besides the
    /// system's.
    #[arg(long, value_name = "FILE")]
    pub shadow_ca_file: Option<PathBuf>,

    /// UNSAFE, for test setups only: accept any certificate from `https://` shadow services.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub unsafe_skip_shadow_tls_verify: Option<bool>,

    /// Connections open at once to one shadow service [default: 256].
    #[arg(long, value_name = "N")]
    pub shadow_max_connections: Option<usize>,
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
    /// (default 1 MiB).
    pub max_held_bytes: Option<usize>,
    /// Bytes of requests all connections together may hold while production has not
    /// confirmed them (default 64 MiB).
    pub max_held_total_bytes: Option<usize>,
    /// Bytes the parsers of all connections may buffer of messages in progress (default
    /// 128 MiB); a message that finds no room is dropped as `parse_budget_full`.
    pub max_parse_total_bytes: Option<usize>,
    /// Bytes copies waiting for or being sent to their shadows may hold together, each
    /// counted with a fixed overhead (default 256 MiB); it bounds replay's connections too.
    pub max_replay_bytes: Option<usize>,
}

impl DaemonOptions {
    /// Every name the Module may use: the options the command line has too (clap names each
    /// argument after its field), and those only the Module has. serde cannot refuse unknown
    /// fields of a struct with a flattened part, so the Module's reader checks names with
    /// this.
    pub fn field_names() -> Vec<String> {
        let command = <DaemonOptions as Args>::augment_args(clap::Command::new("shadowd"));
        command
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .chain(["remove_request_headers", "limits"].map(String::from))
            .collect()
    }

    /// Each option of `self` where it is given, else `lower`'s: the flags over the Module.
    pub fn over(self, lower: &DaemonOptions) -> DaemonOptions {
        let lower = lower.clone();
        DaemonOptions {
            interfaces: self.interfaces.or(lower.interfaces),
            pod_interfaces: self.pod_interfaces.or(lower.pod_interfaces),
            capture_ports: self.capture_ports.or(lower.capture_ports),
            admin: self.admin.or(lower.admin),
            metrics: self.metrics.or(lower.metrics),
            config_poll_ms: self.config_poll_ms.or(lower.config_poll_ms),
            capture_output: self.capture_output.or(lower.capture_output),
            ringbuf_size: self.ringbuf_size.or(lower.ringbuf_size),
            ringbuf_poll_us: self.ringbuf_poll_us.or(lower.ringbuf_poll_us),
            mirror_interface: self.mirror_interface.or(lower.mirror_interface),
            loop_guard_mark: self.loop_guard_mark.or(lower.loop_guard_mark),
            loop_guard_mask: self.loop_guard_mask.or(lower.loop_guard_mask),
            ring_block_size: self.ring_block_size.or(lower.ring_block_size),
            ring_blocks: self.ring_blocks.or(lower.ring_blocks),
            ring_block_timeout_ms: self.ring_block_timeout_ms.or(lower.ring_block_timeout_ms),
            kubernetes: self.kubernetes.or(lower.kubernetes),
            node_name: self.node_name.or(lower.node_name),
            diff_show_credentials: self.diff_show_credentials.or(lower.diff_show_credentials),
            shadow: self.shadow.over(lower.shadow),
            remove_request_headers: self.remove_request_headers.or(lower.remove_request_headers),
            limits: self.limits.or(lower.limits),
        }
    }
}

impl ShadowOptions {
    /// Each option of `self` where it is given, else `lower`'s.
    pub fn over(self, lower: ShadowOptions) -> ShadowOptions {
        ShadowOptions {
            shadow_ca_file: self.shadow_ca_file.or(lower.shadow_ca_file),
            unsafe_skip_shadow_tls_verify: self
                .unsafe_skip_shadow_tls_verify
                .or(lower.unsafe_skip_shadow_tls_verify),
            shadow_max_connections: self.shadow_max_connections.or(lower.shadow_max_connections),
        }
    }
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

/// Accepts decimal or `0x` hexadecimal.
/// A list, or one string standing for a list of it (`interfaces: auto`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        Option::<OneOrMany>::deserialize(deserializer)?.map(|value| match value {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }),
    )
}

fn parse_u32(value: &str) -> Result<u32, String> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|err| format!("{value:?} is not a 32-bit number: {err}"))
}
