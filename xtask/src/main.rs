//! `cargo xtask`: set-up, tests, and the commands a new user runs.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod bench;
mod demo;
mod fuzz;
mod mutants;
mod setup;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Build, set-up and test tasks for shadowd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the build and the tests need, only where it is missing.
    Setup,
    /// Set up if needed, then run every test (unit, property, and root network tests).
    Test(test::TestArgs),
    /// Build and run `shadowd run` with the given arguments (as root).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The user's example end to end: production and shadow services in namespaces,
    /// real traffic, and what the shadow received.
    Demo(demo::DemoArgs),
    /// End-to-end benchmark in network namespaces: baseline vs shadowd vs nginx `mirror`
    /// (throughput, latency, fidelity, cost, copy delay); `--micro` for the criterion
    /// benchmarks of reassembly and HTTP parsing.
    Bench(bench::BenchArgs),
    /// Fuzz the parsers with cargo-fuzz on the pinned nightly (one target, or each in turn).
    Fuzz(fuzz::FuzzArgs),
    /// Mutation testing (cargo-mutants) of the modules where a wrong line loses or invents
    /// copies, against the unit and property tests; counts per module. Slow: not in CI.
    Mutants(mutants::MutantsArgs),
    /// The bench's client process for many open connections (started by the bench).
    #[command(hide = true)]
    OpenConnections(bench::OpenConnectionsArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Test(args) => test::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Mutants(args) => mutants::run(&args),
        Command::Run { args } => {
            setup::run()?;
            let mut cmd = test::cargo();
            cmd.args([
                "run",
                "--package",
                "shadow-user",
                "--bin",
                "shadowd",
                "--",
                "run",
            ]);
            cmd.args(args);
            test::status(&mut cmd)
        }
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::OpenConnections(args) => bench::open_connections(&args),
    }
}
