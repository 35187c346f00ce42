//! The `shadowd` binary: parses the command line and runs the chosen command.

use clap::Parser as _;
use shadowd::{
    cli::{Cli, Command},
    error_chain, logging, run,
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
        Command::Extract(args) => extract_command(&args),
        Command::Replay(args) => runtime.block_on(replay_command(&args)),
        Command::Generate { what } => generate_command(what),
        Command::Status(args) => shadowd::status::status(args.admin, &mut std::io::stdout()),
        Command::Check(args) => shadowd::check::check(&args.config, &mut std::io::stdout()),
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

fn extract_command(args: &shadowd::cli::ExtractArgs) -> i32 {
    use shadowd::{capture::ports::PortSet, extract};
    let config = match shadowd::active::ActiveConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "shadowd extract: unusable configuration");
            return 64;
        }
    };
    config.log();
    let server_side = if !args.capture_ports.is_empty() {
        extract::ServerSide::Ports(PortSet::new(args.capture_ports.iter().copied()))
    } else if !args.config.is_empty() {
        extract::ServerSide::Ports(config.capture_ports(None))
    } else {
        extract::ServerSide::Inferred(Default::default())
    };
    let routes = (!args.config.is_empty()).then_some(&config.table);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match extract::extract(&args.pcap, server_side, routes, &mut out) {
        Ok(summary) => {
            drop(out);
            eprint!("{}", summary.render());
            0
        }
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "shadowd extract failed");
            1
        }
    }
}

async fn replay_command(args: &shadowd::cli::ReplayArgs) -> i32 {
    use std::sync::Arc;

    use shadowd::{
        active::ActiveConfig,
        capture::ports::PortSet,
        extract::ServerSide,
        replay::{ReplaySettings, ReplayStats, file::replay_file},
        settings::ShadowSettings,
    };
    let config = match ActiveConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "shadowd replay: unusable configuration");
            return 64;
        }
    };
    config.log();
    let shadow = ShadowSettings::resolve(&args.shadow, config.module.as_ref());
    let upstream = match shadow.upstream(0) {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "shadowd replay: TLS set-up");
            return 64;
        }
    };
    let explicit =
        (!args.capture_ports.is_empty()).then(|| PortSet::new(args.capture_ports.iter().copied()));
    let server_side = ServerSide::Ports(config.capture_ports(explicit.as_ref()));
    let stats = ReplayStats::default();
    let config = Arc::new(config);
    let result = replay_file(
        &args.pcap,
        config.clone(),
        server_side,
        ReplaySettings::new(upstream),
        stats.clone(),
    )
    .await;
    match result {
        Ok(counts) => {
            eprint!(
                "{}",
                shadowd::replay::summary::render(&counts, &stats, &config)
            );
            0
        }
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "shadowd replay failed");
            1
        }
    }
}

fn generate_command(what: shadowd::cli::GenerateWhat) -> i32 {
    use shadowd::{cli::GenerateWhat, generate};
    match what {
        GenerateWhat::Completions { shell } => {
            generate::completions(shell, &mut std::io::stdout());
            0
        }
        GenerateWhat::Man { dir } => match generate::man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            }
            Err(err) => {
                tracing::error!(error = %err, dir = %dir.display(), "writing man pages");
                1
            }
        },
    }
}
