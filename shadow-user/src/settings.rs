//! `shadowd run` settings: command-line flags over the `shadowd` Module over defaults.

use std::{net::SocketAddr, time::Duration};

use crate::{
    capture::{
        LoopGuard, OutputKind, loop_guard::LoopGuardError, mirror::RingConfig, ports::PortSet,
        ringbuf::RingBufConfig,
    },
    cmd::cli::{RunArgs, ShadowArgs},
    config::ModuleSettings,
    replay::upstream::{TlsClient, TlsOptions, TlsSetupError, UpstreamConfig},
};

pub const DEFAULT_ADMIN: &str = "127.0.0.1:8877";
pub const DEFAULT_MIRROR: &str = "shadow0";
/// How often the configuration files are checked for changes, by default.
pub const DEFAULT_CONFIG_POLL: Duration = Duration::from_secs(2);

/// Everything `run` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interfaces: Vec<String>,
    /// Ports given explicitly (flag or Module); `None` = derived from the route table.
    pub explicit_ports: Option<PortSet>,
    pub output: OutputKind,
    pub mirror_interface: String,
    pub admin: SocketAddr,
    /// The /metrics-only listener, if any.
    pub metrics: Option<SocketAddr>,
    /// How often the configuration files are checked for changes; `None` = only on SIGHUP.
    pub config_poll: Option<Duration>,
    pub loop_guard: LoopGuard,
    pub ring: RingConfig,
    pub ringbuf: RingBufConfig,
    pub reassembly: crate::reassembly::Limits,
    pub http: crate::http::Limits,
    /// Bytes of the replay budget (`limits.max_replay_bytes`).
    pub replay_bytes: usize,
    pub shadow: ShadowSettings,
}

/// How copies reach shadow services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowSettings {
    pub tls: TlsOptions,
    pub max_connections: Option<usize>,
}

impl ShadowSettings {
    /// Flags over Module settings.
    pub fn resolve(args: &ShadowArgs, module: Option<&ModuleSettings>) -> Self {
        let module = module.cloned().unwrap_or_default();
        ShadowSettings {
            tls: TlsOptions {
                extra_ca_file: args.shadow_ca_file.clone().or(module.shadow_ca_file),
                insecure_skip_verify: args.unsafe_skip_shadow_tls_verify
                    || module.unsafe_skip_shadow_tls_verify.unwrap_or(false),
            },
            max_connections: args
                .shadow_max_connections
                .or(module.shadow_max_connections),
        }
    }

    /// The upstream settings, with the loop-guard mark on every socket.
    pub fn upstream(&self, loop_guard_mark: u32) -> Result<UpstreamConfig, TlsSetupError> {
        if self.tls.insecure_skip_verify {
            tracing::warn!(
                "shadow TLS certificates are NOT verified (--unsafe-skip-shadow-tls-verify)"
            );
        }
        let mut config = UpstreamConfig::new(TlsClient::new(&self.tls)?);
        config.loop_guard_mark = loop_guard_mark;
        if let Some(max) = self.max_connections {
            config.max_connections_per_service = max.max(1);
        }
        Ok(config)
    }
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("no interface to watch: give --interface or `interfaces` in the shadowd Module")]
    NoInterface,
    #[error(
        "no capture ports: give --capture-port, `capture_ports` in the shadowd Module, or --config with Mappings"
    )]
    NoPorts,
    #[error(transparent)]
    LoopGuard(#[from] LoopGuardError),
}

impl Settings {
    pub fn resolve(
        args: &RunArgs,
        module: Option<&ModuleSettings>,
    ) -> Result<Settings, SettingsError> {
        let module = module.cloned().unwrap_or_default();
        let interfaces = if args.interfaces.is_empty() {
            module.interfaces.clone().unwrap_or_default()
        } else {
            args.interfaces.clone()
        };
        if interfaces.is_empty() {
            return Err(SettingsError::NoInterface);
        }
        let explicit_ports = if !args.capture_ports.is_empty() {
            Some(PortSet::new(args.capture_ports.iter().copied()))
        } else {
            module
                .capture_ports
                .as_ref()
                .map(|ports| PortSet::new(ports.iter().copied()))
        };
        if explicit_ports.is_none() && args.config.is_empty() {
            return Err(SettingsError::NoPorts);
        }
        let default_ring = RingConfig::default();
        let default_ringbuf = RingBufConfig::default();
        let limits = module.limits.clone().unwrap_or_default();
        let shadow = ShadowSettings::resolve(&args.shadow, Some(&module));
        Ok(Settings {
            interfaces,
            explicit_ports,
            output: args
                .capture_output
                .or(module.capture_output)
                .unwrap_or_default(),
            mirror_interface: args
                .mirror_interface
                .clone()
                .or(module.mirror_interface)
                .unwrap_or_else(|| DEFAULT_MIRROR.into()),
            admin: args
                .admin
                .or(module.admin)
                .unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("valid default address")),
            metrics: args.metrics.or(module.metrics),
            config_poll: match args.config_poll_ms.or(module.config_poll_ms) {
                None => Some(DEFAULT_CONFIG_POLL),
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            loop_guard: {
                let mark = args
                    .loop_guard_mark
                    .or(module.loop_guard_mark)
                    .unwrap_or(LoopGuard::DEFAULT.mark);
                let mask = args
                    .loop_guard_mask
                    .or(module.loop_guard_mask)
                    .unwrap_or_else(|| LoopGuard::default_mask(mark));
                LoopGuard::new(mark, mask)?
            },
            ring: RingConfig {
                block_size: args
                    .ring_block_size
                    .or(module.ring_block_size)
                    .unwrap_or(default_ring.block_size),
                block_count: args
                    .ring_blocks
                    .or(module.ring_blocks)
                    .unwrap_or(default_ring.block_count),
                block_timeout: args
                    .ring_block_timeout_ms
                    .or(module.ring_block_timeout_ms)
                    .map_or(default_ring.block_timeout, Duration::from_millis),
            },
            ringbuf: RingBufConfig {
                size: args
                    .ringbuf_size
                    .or(module.ringbuf_size)
                    .unwrap_or(default_ringbuf.size),
                poll_interval: args
                    .ringbuf_poll_us
                    .or(module.ringbuf_poll_us)
                    .map_or(default_ringbuf.poll_interval, Duration::from_micros),
            },
            reassembly: limits.reassembly(),
            http: limits.http(),
            replay_bytes: limits.replay_bytes(),
            shadow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_module_which_overrides_defaults() {
        let module = ModuleSettings {
            interfaces: Some(vec!["eth9".into()]),
            capture_ports: Some(vec![8080]),
            admin: Some("0.0.0.0:9000".parse().unwrap()),
            ring_blocks: Some(8),
            ..Default::default()
        };
        let args = RunArgs {
            admin: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        };
        let settings = Settings::resolve(&args, Some(&module)).unwrap();
        assert_eq!(settings.interfaces, ["eth9"]);
        assert!(settings.explicit_ports.as_ref().unwrap().contains(8080));
        assert_eq!(settings.admin, "127.0.0.1:1".parse().unwrap());
        assert_eq!(settings.ring.block_count, 8);
        assert_eq!(settings.mirror_interface, "shadow0");
        assert_eq!(settings.loop_guard, LoopGuard::DEFAULT);
        assert_eq!(settings.config_poll, Some(DEFAULT_CONFIG_POLL));
    }

    #[test]
    fn a_config_poll_of_zero_leaves_reloads_to_sighup() {
        let args = RunArgs {
            interfaces: vec!["eth0".into()],
            config: vec!["m.yaml".into()],
            ..Default::default()
        };
        let module = |ms| ModuleSettings {
            config_poll_ms: Some(ms),
            ..Default::default()
        };
        let poll = |args: &RunArgs, module: &ModuleSettings| {
            Settings::resolve(args, Some(module)).unwrap().config_poll
        };
        assert_eq!(poll(&args, &module(0)), None);
        assert_eq!(poll(&args, &module(500)), Some(Duration::from_millis(500)));
        let flag = RunArgs {
            config_poll_ms: Some(0),
            ..args
        };
        assert_eq!(poll(&flag, &module(500)), None, "the flag wins");
    }

    #[test]
    fn a_loop_guard_mark_outside_its_mask_is_refused() {
        let args = RunArgs {
            interfaces: vec!["eth0".into()],
            config: vec!["m.yaml".into()],
            loop_guard_mark: Some(0x5AD0),
            loop_guard_mask: Some(0xFF),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&args, None).unwrap_err(),
            SettingsError::LoopGuard(LoopGuardError::OutsideMask {
                mark: 0x5AD0,
                mask: 0xFF
            })
        );
        // A mark above the low byte with no mask given is compared whole, as before masks.
        let args = RunArgs {
            loop_guard_mask: None,
            ..args
        };
        let guard = Settings::resolve(&args, None).unwrap().loop_guard;
        assert_eq!(guard, LoopGuard::new(0x5AD0, u32::MAX).unwrap());
        let module = ModuleSettings {
            loop_guard_mask: Some(0xFFFF),
            ..Default::default()
        };
        let args = RunArgs {
            loop_guard_mask: None,
            ..args
        };
        let guard = Settings::resolve(&args, Some(&module)).unwrap().loop_guard;
        assert_eq!(guard, LoopGuard::new(0x5AD0, 0xFFFF).unwrap());
    }

    #[test]
    fn interfaces_and_ports_must_come_from_somewhere() {
        assert_eq!(
            Settings::resolve(&RunArgs::default(), None).unwrap_err(),
            SettingsError::NoInterface
        );
        let args = RunArgs {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&args, None).unwrap_err(),
            SettingsError::NoPorts
        );
        let with_config = RunArgs {
            config: vec!["m.yaml".into()],
            ..args
        };
        assert!(
            Settings::resolve(&with_config, None)
                .unwrap()
                .explicit_ports
                .is_none()
        );
    }
}
