//! Builds the TC program (`shadow-ebpf`) for the BPF target so `shadowd` can embed the object.
//!
//! The nightly used for the BPF build is pinned in `shadow-ebpf/nightly-toolchain`: its LLVM
//! must match the one `bpf-linker` was built against (LLVM 22), which a floating `nightly`
//! does not guarantee. `cargo xtask setup` installs the same toolchain.

use aya_build::{Package, Toolchain};

const EBPF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shadow-ebpf");
const NIGHTLY: &str = include_str!("../shadow-ebpf/nightly-toolchain");

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed={EBPF_DIR}/nightly-toolchain");
    aya_build::build_ebpf(
        [Package {
            name: "shadow-ebpf",
            root_dir: EBPF_DIR,
            ..Default::default()
        }],
        Toolchain::Custom(NIGHTLY.trim()),
    )
}
