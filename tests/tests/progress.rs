//! Progress on long work: `shadowd extract` and `shadowd replay` of a large capture draw a
//! progress bar (bytes read, requests found; for replay, copies sent and dropped) on a
//! terminal, and nothing but their summary when stderr is not one. The terminal is a
//! pseudo-terminal from `script(1)`.

use std::{path::Path, process::Command};

use shadowd_tests::shadowd::binary;

/// A classic pcap of one connection (Ethernet, IPv4, TCP): handshake, then `requests`
/// keep-alive GETs each answered by a 204, so that production's answers confirm them.
fn capture(path: &Path, requests: usize) {
    let mut file = Vec::new();
    // Little-endian pcap header: version 2.4, snap length 262144, Ethernet.
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&262_144u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    let (client, server) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let mut packet = |from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8], n: u32| {
        let (src, dst, sport, dport) = if from_client {
            (client, server, 40000u16, 80u16)
        } else {
            (server, client, 80, 40000)
        };
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&ack.to_be_bytes());
        frame.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        file.extend_from_slice(&(n / 1000).to_le_bytes());
        file.extend_from_slice(&((n % 1000) * 1000).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&frame);
    };
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let (mut c, mut s) = (1000u32, 5000u32);
    packet(true, c, 0, SYN, b"", 0);
    packet(false, s, c + 1, SYN | ACK, b"", 1);
    c += 1;
    s += 1;
    packet(true, c, s, ACK, b"", 2);
    let request = b"GET /items/0123456789 HTTP/1.1\r\nHost: myservice\r\nAccept: */*\r\n\r\n";
    let response = b"HTTP/1.1 204 No Content\r\n\r\n";
    for i in 0..requests {
        let n = 3 + 2 * i as u32;
        packet(true, c, s, ACK, request, n);
        c += request.len() as u32;
        packet(false, s, c, ACK, response, n + 1);
        s += response.len() as u32;
    }
    std::fs::write(path, file).unwrap();
}

fn pcap_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "shadowd-progress-{}-{name}.pcap",
        std::process::id()
    ))
}

/// `shadowd args` with stderr on a pseudo-terminal: what the terminal showed.
fn on_a_terminal(args: &str) -> String {
    let output = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args} > /dev/null", binary().display()),
            "/dev/null",
        ])
        .output()
        .expect("script(1)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `shadowd args` draws `progress` and the file's bytes read on a terminal, then `summary`;
/// piped, only the summary. Returns the piped run's output.
fn progress_then_summary(args: &str, progress: &str, summary: &str) -> std::process::Output {
    let shown = on_a_terminal(args);
    assert!(shown.contains(progress), "a progress message: {shown:?}");
    assert!(shown.contains("MiB/"), "bytes read of the file: {shown:?}");
    assert!(shown.contains(summary), "then the summary: {shown:?}");
    let piped = Command::new(binary())
        .args(args.split(' '))
        .output()
        .unwrap();
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains(progress) && !stderr.contains("MiB/"),
        "{stderr}"
    );
    assert!(stderr.contains(summary), "{stderr}");
    piped
}

#[test]
fn extract_shows_progress_on_a_terminal_and_only_its_summary_elsewhere() {
    let pcap = pcap_path("extract");
    capture(&pcap, 120_000);
    let args = format!("extract --pcap {} --capture-port 80", pcap.display());
    let piped = progress_then_summary(&args, " requests, ", "requests 120000");
    std::fs::remove_file(&pcap).ok();
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).lines().count(),
        120_000
    );
}

#[test]
fn replay_shows_copies_and_drops_on_a_terminal_and_only_its_summary_elsewhere() {
    let pcap = pcap_path("replay");
    capture(&pcap, 120_000);
    // The shadow is a loopback port nothing listens on: every copy is dropped, fast
    // (refused, then the breaker's circuit_open), and counted.
    let mappings = std::env::temp_dir().join(format!(
        "shadowd-progress-{}-mappings.yaml",
        std::process::id()
    ));
    std::fs::write(
        &mappings,
        "apiVersion: ambassador/v0\nkind: Mapping\nname: items\nprefix: /items/\nservice: 198.18.0.2:80\n---\n\
         apiVersion: ambassador/v0\nkind: Mapping\nname: items-shadow\nprefix: /items/\nservice: 127.0.0.1:9\nshadow: true\n",
    )
    .unwrap();
    let args = format!(
        "replay --pcap {} --config {}",
        pcap.display(),
        mappings.display()
    );
    progress_then_summary(
        &args,
        " requests to copy, ",
        "items-shadow: observed 120000, copied 0",
    );
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&mappings).ok();
}
