//! BPF maps of the running shadowd, found by name: freezing one makes every later write to
//! it from userspace fail, as a kernel that refuses an update would, while the program
//! still reads it.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::loaded_maps;

/// `BPF_MAP_FREEZE` of `enum bpf_cmd` (linux/bpf.h).
const BPF_MAP_FREEZE: libc::c_long = 22;

/// Freezes the newest loaded map called `name` (the kernel keeps 15 characters of it).
pub fn freeze_newest(name: &str) {
    let map = loaded_maps()
        .filter_map(Result::ok)
        .filter(|map| map.name_as_str() == Some(name))
        .max_by_key(|map| map.id())
        .unwrap_or_else(|| panic!("no loaded map named {name}"));
    let fd = map.fd().expect("a descriptor of the map");
    // The `map_fd` member of `union bpf_attr` for this command; the kernel zeroes the rest.
    let attr: u32 = fd.as_fd().as_raw_fd() as u32;
    // SAFETY: bpf(2) reads `size_of::<u32>()` bytes from `attr`, which lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_FREEZE,
            &attr as *const u32,
            std::mem::size_of::<u32>() as libc::c_uint,
        )
    };
    assert_eq!(
        rc,
        0,
        "freezing map {name}: {}",
        std::io::Error::last_os_error()
    );
}
