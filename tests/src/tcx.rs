//! The programs attached with TCX to an interface, as the kernel reports them: which
//! programs, and the revision it bumps at every attach or detach on that hook.

use aya::programs::{SchedClassifier, TcAttachType};

use crate::netns::Netns;

/// One hook's attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachments {
    /// Bumped by the kernel at every attach or detach: equal revisions mean nothing was
    /// attached or detached in between.
    pub revision: u64,
    /// The ids of the programs attached, in order.
    pub program_ids: Vec<u32>,
}

/// The ingress then the egress attachments of `interface` in `ns`.
pub fn attachments(ns: &Netns, interface: &str) -> [Attachments; 2] {
    ns.enter(|| {
        [TcAttachType::Ingress, TcAttachType::Egress].map(|hook| {
            let (revision, programs) =
                SchedClassifier::query_tcx(interface, hook).expect("query tcx");
            Attachments {
                revision,
                program_ids: programs.iter().map(|program| program.id()).collect(),
            }
        })
    })
}

/// A TC program that ends the TCX chain for every packet (`TCX_PASS`), as a CNI's program
/// that passes or redirects does, built from LLVM IR with the LLVM the build uses.
pub struct PassProgram {
    /// Keeps the program loaded and its links attached; dropping it detaches them.
    _ebpf: aya::Ebpf,
}

const PASS_IR: &str = r#"target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"
@_license = dso_local global [4 x i8] c"GPL\00", section "license", align 1
@llvm.compiler.used = appending global [2 x ptr] [ptr @_license, ptr @pass], section "llvm.metadata"
define dso_local i32 @pass(ptr %skb) #0 section "classifier" {
  ret i32 0
}
attributes #0 = { nounwind }
"#;

impl PassProgram {
    /// Attaches it to `interface` in `ns`, at ingress and egress, last in each chain.
    pub fn attach(ns: &Netns, interface: &str) -> PassProgram {
        let dir = std::env::temp_dir().join(format!("shadowd-pass-{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let (ir, object) = (dir.join("pass.ll"), dir.join("pass.o"));
        std::fs::write(&ir, PASS_IR).unwrap();
        crate::run(
            std::process::Command::new("/usr/lib/llvm-22/bin/llc")
                .args(["-march=bpf", "-filetype=obj", "-o"])
                .arg(&object)
                .arg(&ir),
        );
        let ebpf = ns.enter(|| {
            let mut ebpf = aya::Ebpf::load_file(&object).expect("loading the pass program");
            let program: &mut SchedClassifier = ebpf
                .program_mut("pass")
                .expect("the pass program")
                .try_into()
                .expect("a classifier");
            program.load().expect("the verifier takes it");
            for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
                program
                    .attach_with_options(
                        interface,
                        hook,
                        aya::programs::tc::TcAttachOptions::TcxOrder(
                            aya::programs::LinkOrder::last(),
                        ),
                    )
                    .expect("attaching with TCX");
            }
            ebpf
        });
        std::fs::remove_dir_all(&dir).ok();
        PassProgram { _ebpf: ebpf }
    }
}
