//! Command-line interface: `shadowd run` and the flags later commands share.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Default `skb->mark` of shadowd's own replay traffic ("5had" in hex-speak).
pub const DEFAULT_LOOP_GUARD_MARK: u32 = 0x5AD0;

#[derive(Debug, Parser)]
#[command(
    name = "shadowd",
    version,
    about = "Copies live HTTP traffic to shadow services, out of the production path",
    long_about = "shadowd clones the packets of production connections in the kernel (a TC \
                  eBPF program), rebuilds the HTTP requests in userspace and replays them to \
                  shadow services. Production traffic is never delayed, dropped or altered."
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
    #[command(after_help = "Example:\n  shadowd run --interface eth0 --capture-port 80")]
    Run(RunArgs),
    /// Print the HTTP requests of a capture file as JSON lines (a summary goes to stderr).
    #[command(
        after_help = "Example:\n  tcpdump -i eth0 -w web.pcap port 80\n  shadowd extract --pcap web.pcap --capture-port 80"
    )]
    Extract(ExtractArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExtractArgs {
    /// Capture file: pcap or pcapng (Ethernet, raw IP or Linux cooked frames).
    #[arg(long, value_name = "FILE")]
    pub pcap: std::path::PathBuf,

    /// Server port; repeat for several. Without it, servers are learned from SYNs (or taken
    /// to be the end with the lower port).
    #[arg(long = "capture-port", short = 'p', value_name = "PORT")]
    pub capture_ports: Vec<u16>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Interface to watch (ingress and egress); repeat for several.
    #[arg(long = "interface", short = 'i', required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// TCP port of a production service to capture; repeat for several.
    #[arg(
        long = "capture-port",
        short = 'p',
        required = true,
        value_name = "PORT"
    )]
    pub capture_ports: Vec<u16>,

    /// Name of the mirror veth the clones are sent to; its peer is `<NAME>-peer`.
    #[arg(long, default_value = "shadow0", value_name = "NAME")]
    pub mirror_interface: String,

    /// Address of the admin server (/readyz, /healthz, /metrics).
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "ADDR")]
    pub admin: SocketAddr,

    /// `skb->mark` that shadowd's own replay traffic carries; marked packets are never
    /// cloned. 0 turns the guard off.
    #[arg(long, default_value_t = DEFAULT_LOOP_GUARD_MARK, value_parser = parse_u32)]
    pub loop_guard_mark: u32,

    /// Bytes per capture ring block (power of two, at least 128 KiB; above the largest frame).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub ring_block_size: u32,

    /// Number of capture ring blocks.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub ring_blocks: u32,

    /// Longest wait, in milliseconds, before the kernel hands over a partly filled block.
    #[arg(long, default_value_t = 1, value_name = "MS")]
    pub ring_block_timeout_ms: u64,
}

impl RunArgs {
    pub fn ring_block_timeout(&self) -> Duration {
        Duration::from_millis(self.ring_block_timeout_ms)
    }
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

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "shadowd",
            "run",
            "-i",
            "eth0",
            "--interface",
            "eth1",
            "-p",
            "80",
            "--loop-guard-mark",
            "0x10",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.interfaces, ["eth0", "eth1"]);
        assert_eq!(args.capture_ports, [80]);
        assert_eq!(args.loop_guard_mark, 16);
        assert_eq!(args.mirror_interface, "shadow0");
        assert_eq!(args.admin, "127.0.0.1:8877".parse().unwrap());
    }

    #[test]
    fn run_requires_an_interface() {
        assert!(Cli::try_parse_from(["shadowd", "run", "-p", "80"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
