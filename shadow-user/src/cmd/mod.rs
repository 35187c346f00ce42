//! The subcommands of `shadowd`: the command line (`cli`), the daemon (`run`), and the
//! tools beside it (`check`, `status`, `extract`, `replay`, `generate`), and `main`, which
//! parses the one and runs the other.

pub(crate) mod check;
pub(crate) mod cli;
pub(crate) mod extract;
pub(crate) mod generate;
pub(crate) mod progress;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod status;

use clap::Parser as _;

use crate::{error_chain, logging};
use cli::{Cli, Command};

/// The `shadowd` binary: parses the command line, runs the chosen command and exits with its
/// code.
pub fn main() -> ! {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    // The daemon's copies: one thread by default. Two cost more CPU per copy in the bench
    // (0.155 against 0.124 CPU-s per 10,000 copies at 20,000 a second), spent waking each other.
    let threads = match &cli.command {
        Command::Run(args) => args.replay_threads.map_or(1, usize::from),
        _ => 2,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "starting the async runtime");
            std::process::exit(1);
        }
    };
    let code = match cli.command {
        Command::Extract(args) => extract::command(&args),
        Command::Replay(args) => runtime.block_on(replay::command(&args)),
        Command::Generate { what } => generate::command(what),
        Command::Status(args) => match args.watch {
            Some(seconds) => status::watch(
                args.admin,
                std::time::Duration::from_secs_f64(seconds.max(0.1)),
                None,
                &mut std::io::stdout(),
            ),
            None => status::status(args.admin, &mut std::io::stdout()),
        },
        Command::Diff(args) => status::diff(args.admin, args.json, &mut std::io::stdout()),
        Command::Check(args) => check::check(&args.config, &mut std::io::stdout()),
        Command::Run(args) => match runtime.block_on(run::run(args)) {
            Ok(()) => 0,
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "shadowd run failed");
                err.exit_code()
            }
        },
    };
    std::process::exit(code);
}
