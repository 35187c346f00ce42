//! `cargo xtask mutants [MODULE]`: cargo-mutants over the modules where a wrong line loses or
//! invents copies, against their crate's unit and property tests, with caught and missed
//! mutants counted per module. Slow (every mutant is a build and a test run), so not in CI.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result, bail};
use clap::{Args, builder::PossibleValuesParser};

use crate::{setup, test};

const CARGO_MUTANTS_VERSION: &str = "27.1.0";

/// A module to mutate: its name, its crate, the source files whose mutants it counts (paths
/// from the workspace root), and the unit tests run against each mutant (libtest name
/// filters: the module's own tests and those of what drives it; every test when all modules
/// run at once).
struct Module {
    name: &'static str,
    package: &'static str,
    files: &'static [&'static str],
    tests: &'static [&'static str],
}

const MODULES: [Module; 6] = [
    Module {
        name: "http",
        package: "shadow-wire",
        files: &["shadow-wire/src/http/"],
        tests: &["http::", "end_to_end::", "fuzzing::"],
    },
    Module {
        name: "reassembly",
        package: "shadow-wire",
        files: &["shadow-wire/src/reassembly/"],
        tests: &["reassembly::", "end_to_end::", "fuzzing::"],
    },
    Module {
        name: "route",
        package: "shadow-user",
        files: &["shadow-user/src/route/"],
        tests: &["route::", "config::", "replay::", "check::"],
    },
    Module {
        name: "copy",
        package: "shadow-user",
        files: &[
            "shadow-user/src/replay/copy.rs",
            "shadow-user/src/replay/copy/",
        ],
        tests: &["replay::", "route::"],
    },
    Module {
        name: "ledger",
        package: "shadow-user",
        files: &[
            "shadow-user/src/replay/offer.rs",
            "shadow-user/src/replay/stats.rs",
            "shadow-user/src/replay/summary.rs",
        ],
        tests: &["replay::", "pipeline::"],
    },
    Module {
        name: "compare",
        package: "shadow-user",
        files: &["shadow-user/src/compare/"],
        tests: &["compare::", "pipeline::", "replay::", "diag::"],
    },
];

/// What cargo-mutants writes for each outcome: one mutant per line.
const OUTCOMES: [&str; 4] = ["caught", "missed", "timeout", "unviable"];

#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// The module to mutate; every module when absent.
    #[arg(value_parser = PossibleValuesParser::new(MODULES.map(|module| module.name)))]
    module: Option<String>,
    /// Test again only what the last run of the same module did not catch (after adding
    /// tests); the counts printed are then of this run alone.
    #[arg(long)]
    iterate: bool,
    /// Test one shard of the mutants, K of N (`0/4`: every fourth from the first): a sample
    /// of a large module in a quarter of the time.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
}

pub fn run(args: &MutantsArgs) -> Result<()> {
    // shadow-user's build script builds the eBPF program, which needs what setup installs.
    setup::run()?;
    // A cargo subcommand tells its version only when cargo runs it.
    setup::install_cargo_tool(
        "cargo-mutants",
        CARGO_MUTANTS_VERSION,
        &["cargo", "mutants", "--version"],
    )?;
    let modules: Vec<Module> = MODULES
        .into_iter()
        .filter(|module| {
            args.module
                .as_deref()
                .is_none_or(|chosen| chosen == module.name)
        })
        .collect();
    let root = setup::workspace_root();
    // Each module's results stay where the next run of another module cannot replace them.
    let out = root
        .join("target/mutants")
        .join(args.module.as_deref().unwrap_or("all"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // One run over every chosen module: the scratch copy of the tree is built once.
    let mut cmd = test::cargo();
    // Without debug info an incremental build of a mutant takes 2–4 s instead of about 20 s
    // here: the build, not the tests, would be most of the run.
    cmd.env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_TEST_DEBUG", "0");
    cmd.args(["mutants", "--jobs", "1"])
        .arg("--output")
        .arg(&out);
    let mut packages: Vec<&str> = modules.iter().map(|module| module.package).collect();
    packages.sort_unstable();
    packages.dedup();
    for package in packages {
        cmd.args(["--package", package]);
    }
    if args.iterate {
        cmd.arg("--iterate");
    }
    if let Some(shard) = &args.shard {
        // Every Nth mutant (round robin), not a run of neighbours: a fair sample.
        cmd.args(["--shard", shard, "--sharding", "round-robin"]);
    }
    for module in &modules {
        for path in module.files {
            let glob = match path.strip_suffix('/') {
                Some(dir) => format!("{dir}/**"),
                None => path.to_string(),
            };
            cmd.args(["--file", &glob]);
        }
    }
    // Test modules are code that checks, not code under test.
    cmd.args(["--exclude", "**/tests/**", "--exclude", "**/tests.rs"]);
    // The unit and property tests: the root network tests take many minutes a run. One
    // module runs the tests that reach it; all of them, every test.
    cmd.args(["--", "--lib"]);
    if let [module] = &modules[..] {
        cmd.arg("--").args(module.tests);
    }
    println!("mutants: {cmd:?}");
    let status = cmd.status().context("starting cargo mutants")?;
    // cargo-mutants exits 2 when mutants were missed and 3 on timeouts: findings, reported
    // below. Anything else non-zero means the run itself failed (a red baseline, say).
    if !matches!(status.code(), Some(0 | 2 | 3)) {
        bail!("cargo mutants failed: {status}");
    }
    let results = out.join("mutants.out");
    report(&results, &modules)
}

/// Counts each outcome per module and prints a table, then where the missed ones are listed.
fn report(results: &Path, modules: &[Module]) -> Result<()> {
    let mut counts: BTreeMap<&str, [usize; OUTCOMES.len()]> = BTreeMap::new();
    for (index, outcome) in OUTCOMES.iter().enumerate() {
        let file = results.join(format!("{outcome}.txt"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let module = modules
                .iter()
                .find(|module| module.files.iter().any(|path| line.starts_with(path)))
                .map_or("other", |module| module.name);
            counts.entry(module).or_default()[index] += 1;
        }
    }
    println!(
        "\n| module | mutants | caught | missed | timeout | unviable | caught or timed out, of viable |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (module, [caught, missed, timeout, unviable]) in &counts {
        let viable = caught + missed + timeout;
        let share = if viable == 0 {
            "-".to_string()
        } else {
            format!(
                "{:.0} %",
                100.0 * (*caught + *timeout) as f64 / viable as f64
            )
        };
        println!(
            "| {module} | {} | {caught} | {missed} | {timeout} | {unviable} | {share} |",
            viable + unviable
        );
    }
    // An --iterate run leaves out what earlier runs caught or found unviable, and lists them.
    let earlier = std::fs::read_to_string(results.join("previously_caught.txt"))
        .map_or(0, |text| {
            text.lines().filter(|line| !line.trim().is_empty()).count()
        });
    if earlier > 0 {
        println!("\nmutants: and {earlier} caught or unviable in earlier runs, not tested again");
    }
    println!(
        "\nmutants: the missed ones are listed in {}",
        results.join("missed.txt").display()
    );
    Ok(())
}
