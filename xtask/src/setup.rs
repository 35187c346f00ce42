//! `cargo xtask setup`: checks for everything the build and the tests need and installs only
//! what is missing, saying what it does. Idempotent; a second run only checks.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// LLVM major version `bpf-linker` links against; must match the pinned nightly's LLVM.
const LLVM_MAJOR: &str = "22";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the build (LLVM for bpf-linker) and the tests (real peers) use.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "iproute2",
    "curl",
    "tcpdump",
    // Shows that a refused configuration makes no bpf(2) call.
    "strace",
    // Terminates TLS in front of the shadow server in the https shadow tests.
    "socat",
    "openssl",
    // Renders /diag in the browser test.
    "chromium",
    // promtool checks and unit-tests the alert rules; a real Prometheus scrapes a running
    // shadowd with them loaded.
    "prometheus",
    // kube-proxy's DNAT from a ClusterIP to a pod, in the Kubernetes node tests.
    "nftables",
];

/// The nightly toolchain the eBPF crate builds with (LLVM 22, like bpf-linker).
pub fn pinned_nightly() -> Result<String> {
    let path = workspace_root().join("shadow-ebpf/nightly-toolchain");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_string())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

pub fn run() -> Result<()> {
    install_debian_packages()?;
    install_nightly()?;
    install_bpf_linker()?;
    println!("setup: everything the build and the tests need is present");
    Ok(())
}

fn install_debian_packages() -> Result<()> {
    install_debian(DEBIAN_PACKAGES)
}

/// Installs those of `packages` that are missing (`apt-get`, no recommends); a no-op when
/// all are present.
pub fn install_debian(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !debian_package_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: installing Debian packages {}", missing.join(" "));
    run_checked(Command::new("apt-get").args(["update", "-q"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn debian_package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("install ok installed")
        })
        .unwrap_or(false)
}

fn install_nightly() -> Result<()> {
    let toolchain = pinned_nightly()?;
    let installed = Command::new("rustup")
        .args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            &toolchain,
        ])
        .output()
        .context("running rustup")?;
    let has_rust_src = installed.status.success()
        && String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|line| line.trim() == "rust-src");
    if has_rust_src {
        return Ok(());
    }
    println!("setup: installing Rust {toolchain} with rust-src (builds the eBPF program)");
    run_checked(Command::new("rustup").args([
        "toolchain",
        "install",
        &toolchain,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]))
}

fn install_bpf_linker() -> Result<()> {
    let version = Command::new("bpf-linker").arg("--version").output();
    if let Ok(output) = version
        && output.status.success()
        && String::from_utf8_lossy(&output.stdout).contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR}");
    run_checked(
        Command::new("cargo")
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{LLVM_MAJOR}"),
            ])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}")),
    )
}

/// Installs `crate_name@version` with `cargo install --locked` unless the command
/// `asks_version` (program and arguments) already prints `version`.
pub fn install_cargo_tool(crate_name: &str, version: &str, asks_version: &[&str]) -> Result<()> {
    let (program, args) = asks_version.split_first().expect("a command");
    let installed = Command::new(program).args(args).output();
    if let Ok(output) = installed
        && output.status.success()
        && String::from_utf8_lossy(&output.stdout).contains(version)
    {
        return Ok(());
    }
    println!("setup: installing {crate_name} {version} from crates.io");
    run_checked(Command::new("cargo").args([
        "install",
        &format!("{crate_name}@{version}"),
        "--locked",
    ]))
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
