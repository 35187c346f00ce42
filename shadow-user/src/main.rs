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
    let server_side = if args.capture_ports.is_empty() {
        extract::ServerSide::Inferred(Default::default())
    } else {
        extract::ServerSide::Ports(PortSet::new(args.capture_ports.iter().copied()))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match extract::extract(&args.pcap, server_side, &mut out) {
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
