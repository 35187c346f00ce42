//! Command-line interface: `shadowd run`, `shadowd check` and `shadowd extract`.
//!
//! `run`'s options are defined with the `shadowd` Module's in `settings/options.rs`: each may
//! come from the command line or from the Module, the command line winning.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{
    logging::LogFormat,
    settings::{DaemonOptions, ShadowOptions},
};

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

// Parsed once, at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to interfaces and capture the connections of the capture ports.
    #[command(
        after_help = "Examples:\n  shadowd run --config /etc/shadowd/ --interface eth0\n  \
                            shadowd run --interface eth0 --capture-port 80"
    )]
    Run(RunArgs),
    /// Show a running daemon's production vs shadow table and loss ledger.
    #[command(
        after_help = "Examples:\n  shadowd status --admin 127.0.0.1:8877\n  shadowd status --watch"
    )]
    Status(StatusArgs),
    /// Show a running daemon's response diffs: per shadow Mapping and endpoint, the fields
    /// the shadow answers differently, noise cancelled, with samples of flagged ones.
    #[command(
        after_help = "Exit codes: 0 nothing flagged, 1 unreachable, 2 a field is flagged.\n\n\
                            Examples:\n  shadowd diff --admin 127.0.0.1:8877\n  shadowd diff --json"
    )]
    Diff(DiffArgs),
    /// Load a configuration, print its route table, errors and notices.
    #[command(
        after_help = "Exit codes: 0 no errors, 1 loaded with errors, 64 unusable.\n\n\
                            Example:\n  shadowd check --config examples/"
    )]
    Check(CheckArgs),
    /// Replay the requests of a capture file to their shadow services (a summary at the end);
    /// with `--diff`, compare the shadows' responses with production's.
    #[command(
        after_help = "Exit codes: 0 done, 1 the capture could not be read, 2 with --diff: a field is flagged, \
                            64 unusable configuration.\n\n\
                            Examples:\n  shadowd replay --pcap web.pcap --config mappings.yaml\n  \
                            shadowd replay --pcap web.pcap --config mappings.yaml --diff"
    )]
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

    /// Redraw the view every SECONDS (2 when none is given) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Admin address of the running daemon.
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "ADDR")]
    pub admin: SocketAddr,

    /// Print the report as JSON (as `/diag?json=true` serves it) instead of text.
    #[arg(long)]
    pub json: bool,
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

    /// Diff the shadows' responses with production's in the capture (every shadow Mapping;
    /// those without `diff` settings with the defaults), print the report on standard
    /// output, and exit 2 when a field is flagged.
    #[arg(long)]
    pub diff: bool,

    #[command(flatten)]
    pub shadow: ShadowOptions,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Mapping YAML file or directory; repeat for several. Reloaded on SIGHUP and when a
    /// file changes.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Threads that send the copies (and serve the admin server): one keeps up with tens of
    /// thousands of copies a second and costs the least CPU per copy; more for a node whose
    /// shadowed services send more. A flag only: they start before the Module is read
    /// [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub replay_threads: Option<u16>,

    /// Everything else, which the `shadowd` Module may give too (the flags win).
    #[command(flatten)]
    pub options: DaemonOptions,
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
        let options = &args.options;
        assert_eq!(
            options.interfaces.as_deref(),
            Some(&["eth0".to_string(), "eth1".to_string()][..])
        );
        assert_eq!(options.capture_ports.as_deref(), Some(&[80][..]));
        assert_eq!(options.loop_guard_mark, Some(16));
        assert_eq!(options.mirror_interface, None);
        assert_eq!(options.shadow.unsafe_skip_shadow_tls_verify, None);
        assert_eq!(args.config, [PathBuf::from("a.yaml")]);
        assert_eq!(args.replay_threads, None);
        assert_eq!(run_args(&["--replay-threads", "4"]).replay_threads, Some(4));
        assert!(Cli::try_parse_from(["shadowd", "run", "--replay-threads", "0"]).is_err());
        let unsafe_tls = run_args(&["--unsafe-skip-shadow-tls-verify", "-i", "eth0"]);
        assert_eq!(
            unsafe_tls.options.shadow.unsafe_skip_shadow_tls_verify,
            Some(true)
        );
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
