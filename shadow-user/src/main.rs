//! The `shadowd` binary: parses the command line and runs the chosen command.

use clap::Parser as _;
use shadowd::{
    cmd::{
        cli::{Cli, Command},
        extract, generate, replay, run,
    },
    error_chain, logging,
};

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        Command::Status(args) => shadowd::cmd::status::status(args.admin, &mut std::io::stdout()),
        Command::Check(args) => shadowd::cmd::check::check(&args.config, &mut std::io::stdout()),
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
