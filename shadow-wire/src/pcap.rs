//! Reads classic pcap and pcapng capture files (tcpdump, Wireshark) into timestamped TCP
//! segments, for the same reassembly and HTTP code as live capture.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use pcap_parser::{PcapBlockOwned, PcapError, create_reader, pcapng::Block};

use crate::packet::{Segment, parse_link};

/// Errors reading a capture file.
#[derive(Debug, thiserror::Error)]
pub enum PcapReadError {
    /// The file could not be opened.
    #[error("opening {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a capture the reader knows, or is damaged.
    #[error("{path} is not a pcap or pcapng file, or is damaged at byte {offset}: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where the reader stopped.
        offset: usize,
        /// What the reader said.
        detail: String,
    },
}

/// Counts of what a file held besides TCP segments.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FileCounts {
    /// Frames read.
    pub packets: u64,
    /// TCP segments among them.
    pub segments: u64,
    /// Frames that were not TCP, or not parseable (see `shadowd_ring_unparsed_frames` live).
    pub skipped: u64,
    /// Frames cut by the capture's snap length: not used, their bytes are incomplete.
    pub truncated: u64,
}

/// Reads `path`, calling `each` for every TCP segment in file order.
pub fn read_segments(
    path: &Path,
    each: impl FnMut(SystemTime, &Segment<'_>),
) -> Result<FileCounts, PcapReadError> {
    read_segments_through(path, |file| file, each)
}

/// As [`read_segments`], reading the file through `through` (one that counts the bytes for
/// a progress bar, say).
pub fn read_segments_through<R: io::Read + Send>(
    path: &Path,
    through: impl FnOnce(File) -> R,
    each: impl FnMut(SystemTime, &Segment<'_>),
) -> Result<FileCounts, PcapReadError> {
    let file = File::open(path).map_err(|source| PcapReadError::Open {
        path: path.into(),
        source,
    })?;
    read_segments_from(through(file), path, READ_BUFFER, each)
}

/// Bytes of a capture file held while reading it: more than any block (a 64 KiB GSO frame
/// and its headers, or a 256 KiB snap length).
const READ_BUFFER: usize = 1 << 20;

/// Reads a capture from `file` (named `path` in errors) through a buffer of `buffer` bytes,
/// calling `each` for every TCP segment in file order.
pub fn read_segments_from(
    file: impl io::Read + Send,
    path: &Path,
    buffer: usize,
    mut each: impl FnMut(SystemTime, &Segment<'_>),
) -> Result<FileCounts, PcapReadError> {
    let format_error = |offset: usize, detail: String| PcapReadError::Format {
        path: path.into(),
        offset,
        detail,
    };
    let mut reader = create_reader(buffer, file).map_err(|e| format_error(0, format!("{e:?}")))?;
    let mut counts = FileCounts::default();
    // Per pcapng interface: (link type, units per second, offset in seconds).
    let mut interfaces: Vec<(i32, u64, i64)> = Vec::new();
    let mut legacy = (1i32, 1_000_000u64);
    let mut consumed = 0usize;
    // Byte order of the pcapng section being read, once its header was seen.
    let mut section_big_endian = None;
    loop {
        if let Some(detail) = short_pcapng_block(reader.data(), &mut section_big_endian) {
            return Err(format_error(consumed, detail.into()));
        }
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        let units = if header.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                        legacy = (header.network.0, units);
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        let ts = timestamp(
                            u64::from(packet.ts_sec),
                            u64::from(packet.ts_usec),
                            legacy.1,
                            0,
                        );
                        deliver(
                            legacy.0,
                            ts,
                            packet.data,
                            packet.caplen < packet.origlen,
                            &mut counts,
                            &mut each,
                        );
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push((
                            idb.linktype.0,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        ));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (link, units, offset_s) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((1, 1_000_000, 0));
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let units = units.max(1);
                        let ts = timestamp(raw / units, raw % units, units, offset_s);
                        deliver(
                            link,
                            ts,
                            epb.data,
                            epb.caplen < epb.origlen,
                            &mut counts,
                            &mut each,
                        );
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = interfaces.first().map_or(1, |i| i.0);
                        let truncated = (spb.data.len() as u32) < spb.origlen;
                        deliver(
                            link,
                            SystemTime::UNIX_EPOCH,
                            spb.data,
                            truncated,
                            &mut counts,
                            &mut each,
                        );
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                consumed += offset;
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Err(format_error(consumed, "file ends inside a block".into()));
                }
                reader
                    .refill()
                    .map_err(|e| format_error(consumed, format!("{e:?}")))?;
            }
            Err(err) => return Err(format_error(consumed, format!("{err:?}"))),
        }
    }
    Ok(counts)
}

fn deliver(
    link: i32,
    ts: SystemTime,
    data: &[u8],
    truncated: bool,
    counts: &mut FileCounts,
    each: &mut impl FnMut(SystemTime, &Segment<'_>),
) {
    counts.packets += 1;
    if truncated {
        counts.truncated += 1;
        return;
    }
    match parse_link(link, data) {
        Ok(segment) => {
            counts.segments += 1;
            each(ts, &segment);
        }
        Err(_) => counts.skipped += 1,
    }
}

/// pcapng's section header block type, the same in either byte order.
const PCAPNG_SECTION_HEADER: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

/// Why the pcapng block at the front of `data` cannot be read, if its length is shorter
/// than its own framing (type, length, trailing length: 12 bytes). pcap-parser 0.17
/// subtracts the framing from such a length without checking and panics, so these are
/// refused here first. `big_endian` follows the section headers as they come.
fn short_pcapng_block(data: &[u8], big_endian: &mut Option<bool>) -> Option<&'static str> {
    let (Some(kind), Some(len)) = (data.get(..4), data.get(4..8)) else {
        return None;
    };
    if kind == PCAPNG_SECTION_HEADER {
        // The byte-order magic 0x1A2B3C4D follows the length.
        *big_endian = Some(data.get(8..12)? == [0x1A, 0x2B, 0x3C, 0x4D]);
    }
    let len: [u8; 4] = len.try_into().ok()?;
    let len = match (*big_endian)? {
        true => u32::from_be_bytes(len),
        false => u32::from_le_bytes(len),
    };
    (len < 12).then_some("a pcapng block shorter than its framing")
}

/// The capture time a file records, clamped to what a `SystemTime` after the epoch holds:
/// every field comes from the file, so any value must give a time, never a panic.
fn timestamp(seconds: u64, fraction: u64, units_per_second: u64, offset_s: i64) -> SystemTime {
    const NANOS: i128 = 1_000_000_000;
    let fraction_ns = if units_per_second == 0 {
        0
    } else {
        i128::from(fraction) * NANOS / i128::from(units_per_second)
    };
    let total = (i128::from(seconds) + i128::from(offset_s)) * NANOS + fraction_ns;
    let nanos = u64::try_from(total.max(0)).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{tcp_flags, tests::tcp_frame};

    /// A classic little-endian pcap file (microsecond timestamps) of Ethernet frames.
    fn classic_pcap(frames: &[(u32, u32, Vec<u8>)], snaplen: u32) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&4u16.to_le_bytes());
        file.extend_from_slice(&0i32.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&snaplen.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        for (sec, usec, frame) in frames {
            let caplen = (frame.len() as u32).min(snaplen);
            file.extend_from_slice(&sec.to_le_bytes());
            file.extend_from_slice(&usec.to_le_bytes());
            file.extend_from_slice(&caplen.to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(&frame[..caplen as usize]);
        }
        file
    }

    fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("shadowd-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn classic_pcap_segments_with_timestamps() {
        let a = "198.18.0.1:40000".parse().unwrap();
        let b = "198.18.0.2:80".parse().unwrap();
        let frames = vec![
            (10, 5, tcp_frame(a, b, 1, tcp_flags::SYN, b"")),
            (
                10,
                6,
                tcp_frame(a, b, 2, tcp_flags::ACK, b"GET / HTTP/1.1\r\n\r\n"),
            ),
        ];
        let path = write_temp("ok.pcap", &classic_pcap(&frames, 65535));
        let mut seen = Vec::new();
        let counts = read_segments(&path, |ts, seg| seen.push((ts, seg.payload.to_vec()))).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(counts.segments, 2);
        assert_eq!(seen[1].1, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(seen[1].0, SystemTime::UNIX_EPOCH + Duration::new(10, 6_000));
    }

    #[test]
    fn snapped_frames_are_counted_not_used() {
        let a = "198.18.0.1:40000".parse().unwrap();
        let b = "198.18.0.2:80".parse().unwrap();
        let frames = vec![(1, 0, tcp_frame(a, b, 2, tcp_flags::ACK, &[b'x'; 200]))];
        let path = write_temp("snap.pcap", &classic_pcap(&frames, 100));
        let counts =
            read_segments(&path, |_, _| panic!("a truncated frame was delivered")).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(counts.truncated, 1);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let path = write_temp(
            "bad.pcap",
            b"this is not a capture file at all, not even close",
        );
        let err = read_segments(&path, |_, _| {}).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(matches!(err, PcapReadError::Format { .. }), "{err}");
    }

    #[test]
    fn any_recorded_time_gives_a_time() {
        let at = |s: u64, ns: u64| SystemTime::UNIX_EPOCH + Duration::new(s, ns as u32);
        assert_eq!(timestamp(10, 6, 1_000_000, 0), at(10, 6_000));
        assert_eq!(timestamp(10, 0, 1_000_000, -4), at(6, 0));
        // Offsets a crafted if_tsoffset may hold, either way, and a zero resolution.
        assert_eq!(
            timestamp(10, 0, 1_000_000, i64::MIN),
            SystemTime::UNIX_EPOCH
        );
        assert!(timestamp(u64::MAX, u64::MAX, 1, i64::MAX) > at(1 << 33, 0));
        assert_eq!(timestamp(5, 7, 0, 0), at(5, 0));
    }

    #[test]
    fn a_pcapng_block_shorter_than_its_framing_is_a_format_error() {
        let mut file = vec![0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A];
        file.extend_from_slice(&[1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        file.extend_from_slice(&[28, 0, 0, 0]);
        file.extend_from_slice(&[1, 0, 0, 0x80, 5, 0, 0, 0]);
        file.extend_from_slice(&[0; 64]);
        let err = read_segments_from(&file[..], Path::new("short"), 4096, |_, _| {}).unwrap_err();
        assert!(matches!(err, PcapReadError::Format { .. }), "{err}");
    }
}
