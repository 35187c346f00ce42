//! Command-line interface: `shadowd run`, `shadowd check` and `shadowd extract`.
//!
//! `run` options are all optional here: each may come from the command line or from the
//! `shadowd` Module in the configuration, the command line winning (`settings.rs` merges
//! them and applies the defaults).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "shadowd",
    version,
    about = "Copies live HTTP traffic to shadow services, out of the production path",
    long_about = "shadowd clones the packets of production connections in the kernel (a TC \
                  eBPF program), rebuilds the HTTP requests in userspace and replays them to \
                  shadow services chosen by Ambassador Mappings with `shadow: true`. \
                  Production traffic is never delayed, dropped or altered."
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to interfaces and capture the connections of the capture ports.
    #[command(
        after_help = "Examples:\n  shadowd run --config /etc/shadowd/ --interface eth0\n  \
                            shadowd run --interface eth0 --capture-port 80"
    )]
    Run(RunArgs),
    /// Show a running daemon's production vs shadow table and loss ledger.
    #[command(after_help = "Example:\n  shadowd status --admin 127.0.0.1:8877")]
    Status(StatusArgs),
    /// Load a configuration, print its route table, errors and notices.
    #[command(
        after_help = "Exit codes: 0 no errors, 1 loaded with errors, 64 unusable.\n\n\
                            Example:\n  shadowd check --config examples/"
    )]
    Check(CheckArgs),
    /// Replay the requests of a capture file to their shadow services (a summary at the end).
    #[command(after_help = "Example:\n  shadowd replay --pcap web.pcap --config mappings.yaml")]
    Replay(ReplayArgs),
    /// Write shell completions or man pages.
    #[command(
        after_help = "Examples:\n  shadowd generate completions bash > /etc/bash_completion.d/shadowd\n  \
                            shadowd generate man /usr/local/share/man/man1"
    )]
    Generate {
        #[command(subcommand)]
        what: GenerateWhat,
    },
    /// Print the HTTP requests of a capture file as JSON lines (a summary goes to stderr).
    #[command(after_help = "Example:\n  tcpdump -i eth0 -w web.pcap port 80\n  \
                            shadowd extract --pcap web.pcap --config mappings.yaml")]
    Extract(ExtractArgs),
}

#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// Completions for a shell, on standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Man pages (`shadowd.1` and one per subcommand) into a directory.
    Man { dir: PathBuf },
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Admin address of the running daemon.
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "ADDR")]
    pub admin: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Mapping YAML file or directory; repeat for several.
    #[arg(long, short = 'c', required = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ExtractArgs {
    /// Capture file: pcap or pcapng (Ethernet, raw IP or Linux cooked frames).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,

    /// Mapping YAML file or directory: adds the matched shadow Mapping and the copy's Host to
    /// each request, and gives the server ports.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Server port; repeat for several. Without it (and without --config), servers are
    /// learned from SYNs (or taken to be the end with the lower port).
    #[arg(long = "capture-port", short = 'p', value_name = "PORT")]
    pub capture_ports: Vec<u16>,
}

/// How copies reach shadow services (`run` and `replay`).
#[derive(Debug, Clone, Default, Args)]
pub struct ShadowArgs {
    /// PEM file of CA certificates trusted for `https://` shadow services, besides the
    /// system's.
    #[arg(long, value_name = "FILE")]
    pub shadow_ca_file: Option<PathBuf>,

    /// UNSAFE, for test setups only: accept any certificate from `https://` shadow services.
    #[arg(long)]
    pub unsafe_skip_shadow_tls_verify: bool,

    /// Connections open at once to one shadow service [default: 256].
    #[arg(long, value_name = "N")]
    pub shadow_max_connections: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Capture file: pcap or pcapng.
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,

    /// Mapping YAML file or directory; repeat for several.
    #[arg(long, short = 'c', required = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Server port of the captured traffic; repeat for several [default: from the Mappings].
    #[arg(long = "capture-port", short = 'p', value_name = "PORT")]
    pub capture_ports: Vec<u16>,

    #[command(flatten)]
    pub shadow: ShadowArgs,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Mapping YAML file or directory; repeat for several. Reloaded on SIGHUP and when a
    /// file changes.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// How often, in milliseconds, the configuration files are checked for changes; 0
    /// turns the check off, so only SIGHUP reloads [default: 2000].
    #[arg(long, value_name = "MS")]
    pub config_poll_ms: Option<u64>,

    /// Interface to watch (ingress and egress); repeat for several.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// TCP port of a production service to capture; repeat for several. Default: the ports
    /// of the production services of shadowed Mappings.
    #[arg(long = "capture-port", short = 'p', value_name = "PORT")]
    pub capture_ports: Vec<u16>,

    /// How the TC program hands copies over: `ringbuf` copies each packet into a BPF ring
    /// buffer; `mirror` clones it onto a mirror veth read with an AF_PACKET ring, which
    /// costs the production CPU more [default: ringbuf].
    #[arg(long, value_enum, value_name = "OUTPUT")]
    pub capture_output: Option<crate::capture::OutputKind>,

    /// Bytes of the BPF ring buffer of `--capture-output ringbuf` (power of two)
    /// [default: 16777216].
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

    /// Address of the admin server (/readyz, /healthz, /metrics, /diag) [default:
    /// 127.0.0.1:8877].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// Address of a listener that serves /metrics only, for a scraper that cannot reach
    /// the admin server's loopback address [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

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

    #[command(flatten)]
    pub shadow: ShadowArgs,
}

/// Accepts decimal or `0x` hexadecimal.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["shadowd", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn run_flags_parse() {
        let args = run_args(&[
            "-i",
            "eth0",
            "--interface",
            "eth1",
            "-p",
            "80",
            "--loop-guard-mark",
            "0x10",
            "-c",
            "a.yaml",
        ]);
        assert_eq!(args.interfaces, ["eth0", "eth1"]);
        assert_eq!(args.capture_ports, [80]);
        assert_eq!(args.loop_guard_mark, Some(16));
        assert_eq!(args.mirror_interface, None);
        assert_eq!(args.config, [PathBuf::from("a.yaml")]);
    }

    #[test]
    fn check_requires_a_config() {
        assert!(Cli::try_parse_from(["shadowd", "check"]).is_err());
        assert!(Cli::try_parse_from(["shadowd", "check", "--config", "x"]).is_ok());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
