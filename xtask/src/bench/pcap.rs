//! Reads the request lines out of a classic pcap file written by tcpdump (Ethernet,
//! IPv4, TCP), with the kernel's receive timestamps: for the copy delay.

use std::collections::HashMap;

use anyhow::{Result, bail};

/// First arrival time (seconds since the epoch, microsecond resolution) of each request
/// target whose request line starts a TCP payload.
pub fn request_times(bytes: &[u8]) -> Result<HashMap<String, f64>> {
    if bytes.len() < 24 {
        bail!("pcap shorter than its header");
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into()?);
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        other => bail!("not a little-endian pcap (magic {other:#x})"),
    };
    let link_type = u32::from_le_bytes(bytes[20..24].try_into()?);
    if link_type != 1 {
        bail!("link type {link_type}, not Ethernet");
    }
    let mut times = HashMap::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
        let (secs, frac, caplen) = (word(0), word(4), word(8) as usize);
        let frame = &bytes[at + 16..(at + 16 + caplen).min(bytes.len())];
        at += 16 + caplen;
        let time = secs as f64 + frac as f64 / if nanos { 1e9 } else { 1e6 };
        if let Some(target) = request_target(frame) {
            times.entry(target).or_insert(time);
        }
    }
    Ok(times)
}

/// The target of `METHOD TARGET HTTP/…` at the start of an Ethernet/IPv4/TCP payload.
fn request_target(frame: &[u8]) -> Option<String> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 6 {
        return None;
    }
    let tcp = ip.get(ihl..)?;
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    let payload = tcp.get(data_offset..)?;
    let line_end = payload.iter().position(|b| *b == b'\r')?;
    let line = std::str::from_utf8(&payload[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let _method = parts.next()?;
    let target = parts.next()?;
    parts
        .next()?
        .starts_with("HTTP/")
        .then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_line_with_its_time() {
        let mut file = vec![0u8; 24];
        file[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file[20..24].copy_from_slice(&1u32.to_le_bytes());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6];
        ip.resize(20, 0);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame.extend_from_slice(b"GET /d/abc HTTP/1.1\r\nHost: x\r\n\r\n");
        for word in [7u32, 250_000, frame.len() as u32, frame.len() as u32] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(&frame);
        let times = request_times(&file).unwrap();
        assert_eq!(times.get("/d/abc"), Some(&7.25));
    }
}
