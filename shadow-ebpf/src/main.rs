//! TC classifier: clones every TCP packet of connections to a capture port onto the mirror
//! interface (or copies it into a BPF ring buffer), counts every packet's outcome, and always
//! lets the original continue unchanged.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod classifier;
#[cfg(target_arch = "bpf")]
mod headers;
#[cfg(target_arch = "bpf")]
mod ringbuf;

/// The program only exists for the BPF target; a host build (`cargo build --workspace`) gets
/// this empty binary instead.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach a panic, so this is dead code.
    unsafe { core::hint::unreachable_unchecked() }
}
