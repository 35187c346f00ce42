//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` for a while each, on the pinned
//! nightly (libFuzzer's instrumentation needs `-Z` flags), installing cargo-fuzz if missing.
//! A crash stops nothing: every chosen target runs, and the command then fails naming those
//! that crashed; cargo-fuzz prints where it saved each crashing input.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};
use clap::{Args, builder::PossibleValuesParser};

use crate::{setup, test};

/// The targets in `fuzz/Cargo.toml`, in the order they run.
const TARGETS: [&str; 6] = [
    "http_flow",
    "reassembly",
    "packet",
    "response_reader",
    "pcap",
    "response_diff",
];

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The target to fuzz; every target in turn when absent.
    #[arg(value_parser = PossibleValuesParser::new(TARGETS))]
    target: Option<String>,
    /// How long each target runs, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

pub fn run(args: &FuzzArgs) -> Result<()> {
    // The pinned nightly and the rest of the toolchain come with the set-up.
    setup::run()?;
    let nightly = setup::pinned_nightly()?;
    install_cargo_fuzz()?;
    let root = setup::workspace_root();
    let targets: Vec<&str> = match &args.target {
        Some(target) => vec![target.as_str()],
        None => TARGETS.to_vec(),
    };
    let mut crashed = Vec::new();
    for target in targets {
        println!("fuzz: {target} for {} s", args.seconds);
        if !fuzz_target(&root, &nightly, target, args.seconds)? {
            crashed.push(target);
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz: {} failed; each crashing input is under fuzz/artifacts/<target>/: fix the \
             bug, then add the input to fuzz/corpus/<target>/ so `cargo test` keeps checking it",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// Runs one target; false if it found a crash (or failed to build).
fn fuzz_target(root: &Path, nightly: &str, target: &str, seconds: u64) -> Result<bool> {
    // libFuzzer adds what it finds to the first corpus directory: a scratch one under
    // fuzz/target (ignored by git), so the committed seeds stay a small, chosen set.
    let scratch = root.join("fuzz/target/corpus").join(target);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .arg(format!("+{nightly}"))
        .args(["fuzz", "run", target])
        .arg(&scratch)
        .arg(root.join("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // A slow input is a hang worth reporting, not something to wait 20 minutes for.
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    if target != "packet" {
        cmd.arg(format!("-dict={}", root.join("fuzz/http.dict").display()));
    }
    // `cargo xtask` runs under the stable toolchain; let `+nightly` choose for cargo-fuzz too.
    cmd.env_remove("RUSTUP_TOOLCHAIN");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    Ok(status.success())
}

fn install_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if installed {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz");
    test::status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}
