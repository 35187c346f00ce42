//! The TC program's cost per packet, measured in the kernel with `BPF_PROG_TEST_RUN`: a
//! packet of a port nothing captures (stopped by the port array), one to a port captured
//! for listed endpoints but another address (the endpoint hash lookup, a miss), one to a
//! listed endpoint (a hit), and one to a port captured at any address. The second against
//! the first is what the port pre-filter saves every packet of other services.
//!
//! How the cost grows: a listed endpoint with 1 endpoint and 1 interface in the maps, and
//! with 10,000 endpoints and 200 interfaces (each with its counters' slots); the two should
//! be equal.
//!
//! The program runs with no output configured, so a match ends at `mirror_unset` and only
//! the decision is measured. Needs root (it loads the program); says so and measures
//! nothing otherwise. Run with `cargo bench -p shadow-user --bench classifier`.

use std::{
    hint::black_box,
    os::fd::{AsFd as _, AsRawFd as _},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap},
    programs::SchedClassifier,
};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use shadow_common::{
    EndpointKey, InterfaceSlots, MAP_CAPTURE_ENDPOINTS, MAP_CAPTURE_PORTS, MAP_INTERFACE_SLOTS,
    PORT_ANY_ADDRESS, PORT_LISTED_ENDPOINTS, PROGRAM_INGRESS, interface_position,
};

/// The interface `BPF_PROG_TEST_RUN` runs a packet on: the loopback device.
const TEST_RUN_IFINDEX: u32 = 1;

/// The TC object `build.rs` builds, as the daemon embeds it.
static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shadow-tc"));

/// `BPF_PROG_TEST_RUN`, the command number of `bpf(2)`.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr`, whole: the kernel reads what the given size says
/// and refuses non-zero bytes past the last field it knows, so there is no implicit padding.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so the size is a multiple of 8 with every byte defined.
    tail: u32,
}
const _: () = assert!(std::mem::size_of::<TestRunAttr>() == 80);

/// A minimal Ethernet + IPv4 + TCP segment with one payload byte, from 198.18.0.1:40000 to
/// `destination`.
fn segment(destination: [u8; 4], port: u16) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + 20 + 1];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&41u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&destination);
    let tcp = &mut frame[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    frame[54] = b'G';
    frame
}

/// Runs the program on `packet` `repeat` times in the kernel; the time per run.
fn test_run(prog_fd: i32, packet: &[u8], repeat: u32) -> Duration {
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        repeat,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a valid, zero-padded `bpf_attr` for this command whose pointers
    // (the packet) outlive the call; the kernel writes only inside `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
    Duration::from_nanos(u64::from(attr.duration))
}

/// The program loaded (not attached), port 80 captured for 198.18.0.2, port 9090 at any
/// address, and with them `other_endpoints` endpoints more; counters' slots for the test
/// run's interface and `other_interfaces` more.
fn loaded(other_endpoints: u16, other_interfaces: u32) -> Ebpf {
    let mut ebpf = EbpfLoader::new()
        .load(PROGRAM_OBJECT)
        .expect("load the TC object");
    let mut ports: Array<_, u8> =
        Array::try_from(ebpf.map_mut(MAP_CAPTURE_PORTS).unwrap()).unwrap();
    ports.set(80, PORT_LISTED_ENDPOINTS, 0).unwrap();
    ports.set(9090, PORT_ANY_ADDRESS, 0).unwrap();
    let mut endpoints: HashMap<_, EndpointKey, u8> =
        HashMap::try_from(ebpf.map_mut(MAP_CAPTURE_ENDPOINTS).unwrap()).unwrap();
    endpoints
        .insert(EndpointKey::ipv4([198, 18, 0, 2], 80), 1, 0)
        .unwrap();
    for n in 0..other_endpoints {
        let [a, b] = n.to_be_bytes();
        endpoints
            .insert(EndpointKey::ipv4([198, 19, a, b], 80), 1, 0)
            .unwrap();
    }
    let mut slots: Array<_, InterfaceSlots> =
        Array::try_from(ebpf.map_mut(MAP_INTERFACE_SLOTS).unwrap()).unwrap();
    for (n, ifindex) in std::iter::once(TEST_RUN_IFINDEX)
        .chain((0..other_interfaces).map(|n| 1000 + n))
        .enumerate()
    {
        let entry = InterfaceSlots {
            ifindex,
            slots: 1 + 2 * n as u32,
        };
        slots.set(interface_position(ifindex), entry, 0).unwrap();
    }
    let program: &mut SchedClassifier = ebpf
        .program_mut(PROGRAM_INGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    program.load().expect("verify the TC program");
    ebpf
}

fn classifier(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("classifier bench: needs root to load the TC program; skipped");
        return;
    }
    let listed_endpoint = segment([198, 18, 0, 2], 80);
    let ebpf = loaded(1000, 0);
    let mut group = c.benchmark_group("tc_program");
    group.measurement_time(Duration::from_secs(3));
    for (name, packet) in [
        ("other_port", segment([198, 18, 0, 9], 443)),
        ("listed_port_other_address", segment([198, 18, 0, 9], 80)),
        ("listed_endpoint", listed_endpoint.clone()),
        ("port_at_any_address", segment([198, 18, 0, 9], 9090)),
    ] {
        bench_packet(&mut group, &ebpf, name, &packet);
    }
    group.finish();
    drop(ebpf);

    let mut group = c.benchmark_group("tc_program_scale");
    group.measurement_time(Duration::from_secs(3));
    for (name, endpoints, interfaces) in [
        ("listed_endpoint_of_1_on_1_interface", 0, 0),
        ("listed_endpoint_of_10000_on_200_interfaces", 9999, 199),
    ] {
        let ebpf = loaded(endpoints, interfaces);
        bench_packet(&mut group, &ebpf, name, &listed_endpoint);
    }
    group.finish();
}

/// The program of `ebpf` run on `packet`, timed by the kernel.
fn bench_packet(group: &mut BenchmarkGroup<WallTime>, ebpf: &Ebpf, name: &str, packet: &[u8]) {
    let program: &SchedClassifier = ebpf.program(PROGRAM_INGRESS).unwrap().try_into().unwrap();
    let fd = program.fd().unwrap().as_fd().as_raw_fd();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            // The kernel times the runs itself and returns their mean.
            let repeat = u32::try_from(iters).unwrap_or(u32::MAX).max(1);
            test_run(fd, black_box(packet), repeat) * repeat
        })
    });
}

criterion_group!(benches, classifier);
criterion_main!(benches);
