//! `shadowd run` settings: command-line flags over the `shadowd` Module over defaults,
//! resolved from the one definition of the options (`options.rs`) and checked before
//! anything is attached.

mod options;

pub use options::{DaemonOptions, ShadowOptions};

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use crate::{
    capture::{
        LoopGuard, OutputKind, loop_guard::LoopGuardError, mirror::RingConfig, ports::PortSet,
        ringbuf::RingBufConfig,
    },
    cmd::cli::RunArgs,
    replay::upstream::{TlsClient, TlsOptions, TlsSetupError, UpstreamConfig},
};

pub const DEFAULT_ADMIN: &str = "127.0.0.1:8877";
pub const DEFAULT_MIRROR: &str = "shadow0";
/// How often the configuration files are checked for changes, by default.
pub const DEFAULT_CONFIG_POLL: Duration = Duration::from_secs(2);
/// The smallest ring buffer: the TC program's largest record (16 KiB and a header) fits.
pub const MIN_RINGBUF_SIZE: u32 = 32 << 10;

/// The interface name that stands for production's pods' veths, found and followed.
pub const AUTO_INTERFACES: &str = "auto";

/// Everything `run` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every interface to watch, node interfaces first.
    pub interfaces: Vec<String>,
    /// Those of `interfaces` that are pods' veths: requests leave through them.
    pub pod_interfaces: BTreeSet<String>,
    /// `interfaces: auto`: the veths of production's pods on this node too, followed.
    pub auto_interfaces: bool,
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
    /// With `--kubernetes`: this node's name; `None` = files and DNS only.
    pub kubernetes_node: Option<String>,
    /// Response diff samples show production's credentials.
    pub diff_show_credentials: bool,
}

/// How copies reach shadow services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowSettings {
    pub tls: TlsOptions,
    pub max_connections: Option<usize>,
}

impl ShadowSettings {
    /// Flags over the Module's options.
    pub fn resolve(flags: &ShadowOptions, module: Option<&DaemonOptions>) -> Self {
        let options = match module {
            Some(module) => flags.clone().over(module.shadow.clone()),
            None => flags.clone(),
        };
        ShadowSettings {
            tls: TlsOptions {
                extra_ca_file: options.shadow_ca_file,
                insecure_skip_verify: options.unsafe_skip_shadow_tls_verify.unwrap_or(false),
            },
            max_connections: options.shadow_max_connections,
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
    #[error(
        "no interface to watch: give --interface or --pod-interface, or `interfaces` or `pod_interfaces` in the shadowd Module"
    )]
    NoInterface,
    #[error(
        "no capture ports: give --capture-port, `capture_ports` in the shadowd Module, --config with Mappings, or --kubernetes"
    )]
    NoPorts,
    #[error(
        "--kubernetes needs this node's name: give --node-name, NODE_NAME (the downward API's spec.nodeName), or `node_name` in the shadowd Module"
    )]
    NoNodeName,
    #[error(
        "interfaces: auto finds the veths of production's endpoints, and capture ports capture by port at any address: give one or the other"
    )]
    AutoWithPorts,
    #[error(transparent)]
    LoopGuard(#[from] LoopGuardError),
    #[error("{count} interfaces to watch; the TC program counts at most {max}")]
    TooManyInterfaces { count: usize, max: usize },
    #[error(
        "ring buffer size {size} must be a power of two of at least 32768 bytes (a 16 KiB record must fit)"
    )]
    RingBufSize { size: u32 },
    #[error("capture ring block size {size} must be a power of two of at least 128 KiB")]
    RingBlockSize { size: u32 },
    #[error("mirror interface name {name:?} is not an interface name of at most 15 bytes")]
    MirrorName { name: String },
}

impl Settings {
    /// `args` over `module` over the defaults, checked.
    pub fn resolve(
        args: &RunArgs,
        module: Option<&DaemonOptions>,
    ) -> Result<Settings, SettingsError> {
        let options = match module {
            Some(module) => args.options.clone().over(module),
            None => args.options.clone(),
        };
        let pod_interfaces: BTreeSet<String> = options
            .pod_interfaces
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut interfaces = options.interfaces.clone().unwrap_or_default();
        let auto_interfaces = interfaces.iter().any(|name| name == AUTO_INTERFACES);
        interfaces.retain(|name| name != AUTO_INTERFACES && !pod_interfaces.contains(name));
        interfaces.extend(pod_interfaces.iter().cloned());
        if interfaces.is_empty() && !auto_interfaces {
            return Err(SettingsError::NoInterface);
        }
        let explicit_ports = options
            .capture_ports
            .as_ref()
            .map(|ports| PortSet::new(ports.iter().copied()));
        if auto_interfaces && explicit_ports.is_some() {
            return Err(SettingsError::AutoWithPorts);
        }
        let kubernetes_node = match options.kubernetes {
            Some(true) => Some(options.node_name.clone().ok_or(SettingsError::NoNodeName)?),
            _ => None,
        };
        if explicit_ports.is_none() && args.config.is_empty() && kubernetes_node.is_none() {
            return Err(SettingsError::NoPorts);
        }
        let limits = options.limits.clone().unwrap_or_default();
        let settings = Settings {
            interfaces,
            pod_interfaces,
            auto_interfaces,
            explicit_ports,
            output: options.capture_output.unwrap_or_default(),
            mirror_interface: options
                .mirror_interface
                .clone()
                .unwrap_or_else(|| DEFAULT_MIRROR.into()),
            admin: options
                .admin
                .unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("valid default address")),
            metrics: options.metrics,
            config_poll: match options.config_poll_ms {
                None => Some(DEFAULT_CONFIG_POLL),
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            loop_guard: loop_guard(&options)?,
            ring: ring(&options),
            ringbuf: ringbuf(&options),
            reassembly: limits.reassembly(),
            http: limits.http(),
            replay_bytes: limits.replay_bytes(),
            shadow: ShadowSettings::resolve(&options.shadow, None),
            kubernetes_node,
            diff_show_credentials: options.diff_show_credentials.unwrap_or(false),
        };
        settings.check()?;
        Ok(settings)
    }

    /// Refuses what the TC program, the kernel or the capture rings cannot take.
    fn check(&self) -> Result<(), SettingsError> {
        let max = crate::capture::program::MAX_INTERFACES;
        if self.interfaces.len() > max {
            return Err(SettingsError::TooManyInterfaces {
                count: self.interfaces.len(),
                max,
            });
        }
        let size = self.ringbuf.size;
        if self.output == OutputKind::Ringbuf
            && (!size.is_power_of_two() || size < MIN_RINGBUF_SIZE)
        {
            return Err(SettingsError::RingBufSize { size });
        }
        let size = self.ring.block_size;
        if self.output == OutputKind::Mirror && (!size.is_power_of_two() || size < 128 << 10) {
            return Err(SettingsError::RingBlockSize { size });
        }
        if self.output == OutputKind::Mirror
            && !crate::capture::mirror::valid_name(&self.mirror_interface)
        {
            return Err(SettingsError::MirrorName {
                name: self.mirror_interface.clone(),
            });
        }
        Ok(())
    }
}

/// The loop guard's mark, and its mask (by default the low byte, or every bit for a mark
/// above it).
fn loop_guard(options: &DaemonOptions) -> Result<LoopGuard, LoopGuardError> {
    let mark = options.loop_guard_mark.unwrap_or(LoopGuard::DEFAULT.mark);
    let mask = options
        .loop_guard_mask
        .unwrap_or_else(|| LoopGuard::default_mask(mark));
    LoopGuard::new(mark, mask)
}

fn ring(options: &DaemonOptions) -> RingConfig {
    let default = RingConfig::default();
    RingConfig {
        block_size: options.ring_block_size.unwrap_or(default.block_size),
        block_count: options.ring_blocks.unwrap_or(default.block_count),
        block_timeout: options
            .ring_block_timeout_ms
            .map_or(default.block_timeout, Duration::from_millis),
    }
}

fn ringbuf(options: &DaemonOptions) -> RingBufConfig {
    let default = RingBufConfig::default();
    RingBufConfig {
        size: options.ringbuf_size.unwrap_or(default.size),
        poll_interval: options
            .ringbuf_poll_us
            .map_or(default.poll_interval, Duration::from_micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shadowd run -c m.yaml` with these options on the command line.
    fn flags(options: DaemonOptions) -> RunArgs {
        RunArgs {
            config: vec!["m.yaml".into()],
            options,
            ..RunArgs::default()
        }
    }

    /// Options watching `eth0`, and these.
    fn on_eth0(options: DaemonOptions) -> DaemonOptions {
        DaemonOptions {
            interfaces: Some(vec!["eth0".into()]),
            ..options
        }
    }

    #[test]
    fn auto_stands_for_the_pods_veths_and_is_no_interface_name() {
        let options = DaemonOptions {
            interfaces: Some(vec!["auto".into(), "eth0".into()]),
            ..DaemonOptions::default()
        };
        let settings = Settings::resolve(&flags(options), None).unwrap();
        assert!(settings.auto_interfaces);
        assert_eq!(settings.interfaces, ["eth0"]);
        let only_auto = DaemonOptions {
            interfaces: Some(vec!["auto".into()]),
            ..DaemonOptions::default()
        };
        let settings = Settings::resolve(&flags(only_auto.clone()), None).unwrap();
        assert!(settings.auto_interfaces && settings.interfaces.is_empty());
        let with_ports = DaemonOptions {
            capture_ports: Some(vec![80]),
            ..only_auto
        };
        assert!(matches!(
            Settings::resolve(&flags(with_ports), None),
            Err(SettingsError::AutoWithPorts)
        ));
        // The Module may say it as one word.
        let module: DaemonOptions = serde_yaml_ng::from_str("interfaces: auto").unwrap();
        assert_eq!(module.interfaces, Some(vec!["auto".to_string()]));
        let module: DaemonOptions = serde_yaml_ng::from_str("interfaces: [eth0, auto]").unwrap();
        assert_eq!(module.interfaces.unwrap().len(), 2);
    }

    #[test]
    fn pod_interfaces_are_watched_after_node_interfaces_and_marked() {
        let options = DaemonOptions {
            interfaces: Some(vec!["eth0".into(), "cali1".into()]),
            pod_interfaces: Some(vec!["cali1".into(), "lxc2".into()]),
            ..DaemonOptions::default()
        };
        let settings = Settings::resolve(&flags(options), None).unwrap();
        assert_eq!(settings.interfaces, ["eth0", "cali1", "lxc2"]);
        assert_eq!(
            settings.pod_interfaces.iter().collect::<Vec<_>>(),
            ["cali1", "lxc2"]
        );
        let only_pods = DaemonOptions {
            pod_interfaces: Some(vec!["cali1".into()]),
            ..DaemonOptions::default()
        };
        assert_eq!(
            Settings::resolve(&flags(only_pods), None)
                .unwrap()
                .interfaces,
            ["cali1"]
        );
    }

    #[test]
    fn the_kubernetes_source_needs_the_nodes_name_and_no_files() {
        let kubernetes = on_eth0(DaemonOptions {
            kubernetes: Some(true),
            ..DaemonOptions::default()
        });
        let without_files = |options| RunArgs {
            config: Vec::new(),
            options,
            ..RunArgs::default()
        };
        assert!(matches!(
            Settings::resolve(&without_files(kubernetes.clone()), None),
            Err(SettingsError::NoNodeName)
        ));
        let named = DaemonOptions {
            node_name: Some("node-a".into()),
            ..kubernetes
        };
        let settings = Settings::resolve(&without_files(named), None).unwrap();
        assert_eq!(settings.kubernetes_node.as_deref(), Some("node-a"));
        assert!(matches!(
            Settings::resolve(&without_files(on_eth0(DaemonOptions::default())), None),
            Err(SettingsError::NoPorts)
        ));
    }

    #[test]
    fn flags_override_the_module_which_overrides_defaults() {
        let module = DaemonOptions {
            interfaces: Some(vec!["eth9".into()]),
            capture_ports: Some(vec![8080]),
            admin: Some("0.0.0.0:9000".parse().unwrap()),
            ring_blocks: Some(8),
            shadow: ShadowOptions {
                shadow_max_connections: Some(7),
                unsafe_skip_shadow_tls_verify: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        let args = flags(DaemonOptions {
            admin: Some("127.0.0.1:1".parse().unwrap()),
            shadow: ShadowOptions {
                shadow_max_connections: Some(3),
                ..Default::default()
            },
            ..Default::default()
        });
        let settings = Settings::resolve(&args, Some(&module)).unwrap();
        assert_eq!(settings.interfaces, ["eth9"]);
        assert!(settings.explicit_ports.as_ref().unwrap().contains(8080));
        assert_eq!(settings.admin, "127.0.0.1:1".parse().unwrap());
        assert_eq!(settings.ring.block_count, 8);
        assert_eq!(settings.mirror_interface, "shadow0");
        assert_eq!(settings.loop_guard, LoopGuard::DEFAULT);
        assert_eq!(settings.config_poll, Some(DEFAULT_CONFIG_POLL));
        assert_eq!(settings.shadow.max_connections, Some(3));
        assert!(settings.shadow.tls.insecure_skip_verify);
    }

    #[test]
    fn a_config_poll_of_zero_leaves_reloads_to_sighup() {
        let args = flags(on_eth0(DaemonOptions::default()));
        let module = |ms| DaemonOptions {
            config_poll_ms: Some(ms),
            ..Default::default()
        };
        let poll = |args: &RunArgs, module: &DaemonOptions| {
            Settings::resolve(args, Some(module)).unwrap().config_poll
        };
        assert_eq!(poll(&args, &module(0)), None);
        assert_eq!(poll(&args, &module(500)), Some(Duration::from_millis(500)));
        let flag = flags(on_eth0(DaemonOptions {
            config_poll_ms: Some(0),
            ..Default::default()
        }));
        assert_eq!(poll(&flag, &module(500)), None, "the flag wins");
    }

    #[test]
    fn a_loop_guard_mark_outside_its_mask_is_refused() {
        let with = |mask| {
            flags(on_eth0(DaemonOptions {
                loop_guard_mark: Some(0x5AD0),
                loop_guard_mask: mask,
                ..Default::default()
            }))
        };
        assert_eq!(
            Settings::resolve(&with(Some(0xFF)), None).unwrap_err(),
            SettingsError::LoopGuard(LoopGuardError::OutsideMask {
                mark: 0x5AD0,
                mask: 0xFF
            })
        );
        // A mark above the low byte with no mask given is compared whole, as before masks.
        let guard = Settings::resolve(&with(None), None).unwrap().loop_guard;
        assert_eq!(guard, LoopGuard::new(0x5AD0, u32::MAX).unwrap());
        let module = DaemonOptions {
            loop_guard_mask: Some(0xFFFF),
            ..Default::default()
        };
        let guard = Settings::resolve(&with(None), Some(&module))
            .unwrap()
            .loop_guard;
        assert_eq!(guard, LoopGuard::new(0x5AD0, 0xFFFF).unwrap());
    }

    #[test]
    fn interfaces_and_ports_must_come_from_somewhere() {
        assert_eq!(
            Settings::resolve(&RunArgs::default(), None).unwrap_err(),
            SettingsError::NoInterface
        );
        let args = RunArgs {
            options: on_eth0(DaemonOptions::default()),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&args, None).unwrap_err(),
            SettingsError::NoPorts
        );
        let with_config = flags(args.options);
        assert!(
            Settings::resolve(&with_config, None)
                .unwrap()
                .explicit_ports
                .is_none()
        );
    }

    #[test]
    fn what_capture_cannot_take_is_refused_before_it_starts() {
        let refused =
            |options: DaemonOptions| Settings::resolve(&flags(on_eth0(options)), None).unwrap_err();
        let interfaces = (0..300).map(|i| format!("eth{i}")).collect();
        assert!(matches!(
            Settings::resolve(
                &flags(DaemonOptions {
                    interfaces: Some(interfaces),
                    ..Default::default()
                }),
                None
            )
            .unwrap_err(),
            SettingsError::TooManyInterfaces { count: 300, .. }
        ));
        for size in [3000, 4096, 16384, 40000] {
            assert_eq!(
                refused(DaemonOptions {
                    ringbuf_size: Some(size),
                    ..Default::default()
                }),
                SettingsError::RingBufSize { size }
            );
        }
        let mirror = |options| DaemonOptions {
            capture_output: Some(OutputKind::Mirror),
            ..options
        };
        assert_eq!(
            refused(mirror(DaemonOptions {
                ring_block_size: Some(64 << 10),
                ..Default::default()
            })),
            SettingsError::RingBlockSize { size: 64 << 10 }
        );
        for name in ["", "a-name-too-long-for-linux", "a/b", "a b"] {
            assert_eq!(
                refused(mirror(DaemonOptions {
                    mirror_interface: Some(name.into()),
                    ..Default::default()
                })),
                SettingsError::MirrorName { name: name.into() }
            );
        }
        // Each output's own settings only matter with that output.
        let ringbuf = DaemonOptions {
            ring_block_size: Some(1),
            mirror_interface: Some(String::new()),
            ..Default::default()
        };
        assert!(Settings::resolve(&flags(on_eth0(ringbuf)), None).is_ok());
    }

    /// The `[default: …]` each option's help states, by argument id.
    fn stated_defaults() -> std::collections::BTreeMap<String, String> {
        let command = <DaemonOptions as clap::Args>::augment_args(clap::Command::new("shadowd"));
        command
            .get_arguments()
            .filter_map(|arg| {
                let help = arg.get_help()?.to_string();
                let stated = help.split("[default: ").nth(1)?;
                let value = stated.split([']', ';']).next()?.to_string();
                Some((arg.get_id().to_string(), value))
            })
            .collect()
    }

    #[test]
    fn the_defaults_the_help_states_are_the_ones_applied() {
        let settings = Settings::resolve(&flags(on_eth0(DaemonOptions::default())), None).unwrap();
        let stated = stated_defaults();
        let applied = [
            ("admin", settings.admin.to_string()),
            (
                "config_poll_ms",
                settings.config_poll.unwrap().as_millis().to_string(),
            ),
            ("capture_output", settings.output.as_str().to_string()),
            ("ringbuf_size", settings.ringbuf.size.to_string()),
            (
                "ringbuf_poll_us",
                settings.ringbuf.poll_interval.as_micros().to_string(),
            ),
            ("mirror_interface", settings.mirror_interface.clone()),
            (
                "loop_guard_mark",
                format!("{:#X}", settings.loop_guard.mark).replace("0X", "0x"),
            ),
            (
                "loop_guard_mask",
                format!("{:#X}", settings.loop_guard.mask).replace("0X", "0x"),
            ),
            ("ring_block_size", settings.ring.block_size.to_string()),
            ("ring_blocks", settings.ring.block_count.to_string()),
            (
                "ring_block_timeout_ms",
                settings.ring.block_timeout.as_millis().to_string(),
            ),
            (
                "kubernetes",
                match settings.kubernetes_node {
                    Some(_) => "on".to_string(),
                    None => "off".to_string(),
                },
            ),
            (
                "diff_show_credentials",
                match settings.diff_show_credentials {
                    true => "on".to_string(),
                    false => "off".to_string(),
                },
            ),
            (
                "shadow_max_connections",
                settings
                    .shadow
                    .upstream(0)
                    .unwrap()
                    .max_connections_per_service
                    .to_string(),
            ),
        ];
        for (id, value) in &applied {
            assert_eq!(
                stated.get(*id),
                Some(value),
                "--{id}'s help and the default applied"
            );
        }
        // Every option whose help states a default is checked above.
        let checked: std::collections::BTreeSet<&str> = applied.iter().map(|(id, _)| *id).collect();
        for id in stated.keys() {
            assert!(
                checked.contains(id.as_str()) || id == "metrics",
                "--{id} states a default no test holds to what is applied"
            );
        }
    }
}
