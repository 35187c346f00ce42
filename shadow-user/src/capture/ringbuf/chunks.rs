//! Puts packets back together from the ring buffer's chunk records: chunks of one packet
//! arrive in order from one CPU, possibly interleaved with other CPUs' packets.

use shadow_common::{CHUNK_TRUNCATED, ChunkHeader, MAX_RINGBUF_FRAME};

/// A packet being put back together from its chunks.
struct Assembly {
    header: ChunkHeader,
    bytes: Vec<u8>,
}

/// Puts packets back together: chunks of one packet arrive in order from one CPU, possibly
/// interleaved with other CPUs' packets.
#[derive(Default)]
pub struct Reassembler {
    /// Packet in progress, by CPU.
    pending: Vec<Option<Assembly>>,
}

/// What one record completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Nothing yet: more chunks of this packet follow.
    Partial,
    /// A whole packet, or the start of one cut at the program's size limit (then shorter
    /// than `header.frame_len`).
    Packet {
        header: ChunkHeader,
        bytes: &'a [u8],
    },
    /// The record was not a chunk header followed by its data.
    Malformed,
}

impl Reassembler {
    /// Takes one record; `incomplete` is called for every packet given up because its
    /// chunks stopped short (the ring was full for the rest).
    pub fn push<'a>(&'a mut self, record: &'a [u8], mut incomplete: impl FnMut()) -> Record<'a> {
        let header_len = std::mem::size_of::<ChunkHeader>();
        let Some(header_bytes) = record.get(..header_len) else {
            return Record::Malformed;
        };
        // SAFETY: `ChunkHeader` is plain integers (any bit pattern is valid); the read is
        // unaligned-safe and bounded by the slice checked above.
        let header = unsafe { header_bytes.as_ptr().cast::<ChunkHeader>().read_unaligned() };
        let Some(data) = record
            .get(header_len..)
            .and_then(|rest| rest.get(..header.chunk_len as usize))
        else {
            return Record::Malformed;
        };
        let copied_len = header.offset as usize + data.len();
        let whole = |header: &ChunkHeader| {
            if header.flags & CHUNK_TRUNCATED != 0 {
                copied_len >= MAX_RINGBUF_FRAME as usize
            } else {
                copied_len >= header.frame_len as usize
            }
        };
        let cpu = header.cpu as usize;
        if self.pending.len() <= cpu {
            self.pending.resize_with(cpu + 1, || None);
        }
        let slot = &mut self.pending[cpu];

        if header.offset == 0 {
            if slot.take().is_some() {
                incomplete();
            }
            if whole(&header) {
                // The common case: one record, no copy.
                return Record::Packet {
                    header,
                    bytes: data,
                };
            }
            // Never more than the program copies, whatever length the packet claims.
            let mut bytes =
                Vec::with_capacity((header.frame_len as usize).min(MAX_RINGBUF_FRAME as usize));
            bytes.extend_from_slice(data);
            *slot = Some(Assembly { header, bytes });
            return Record::Partial;
        }
        match slot {
            Some(assembly)
                if assembly.header.sequence == header.sequence
                    && assembly.bytes.len() == header.offset as usize =>
            {
                assembly.bytes.extend_from_slice(data);
            }
            _ => {
                // A middle chunk of a packet whose start is gone.
                if slot.take().is_some() {
                    incomplete();
                }
                incomplete();
                return Record::Partial;
            }
        }
        if !whole(&header) {
            return Record::Partial;
        }
        let assembly = slot.as_ref().expect("extended above");
        Record::Packet {
            header: assembly.header,
            bytes: &assembly.bytes,
        }
    }

    /// Forgets the packet of `cpu` handed out by [`Reassembler::push`], if it was put
    /// together from several chunks.
    pub fn release(&mut self, cpu: u32) {
        if let Some(slot) = self.pending.get_mut(cpu as usize) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(header: ChunkHeader, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // SAFETY: `ChunkHeader` is plain integers with no padding.
        out.extend_from_slice(unsafe {
            std::slice::from_raw_parts(
                (&raw const header).cast::<u8>(),
                std::mem::size_of::<ChunkHeader>(),
            )
        });
        out.extend_from_slice(data);
        out.resize(out.len() + 7, 0xEE); // trailing record padding is ignored
        out
    }

    fn chunk(cpu: u32, sequence: u32, frame_len: u32, offset: u32, data: &[u8]) -> Vec<u8> {
        record(
            ChunkHeader {
                timestamp_ns: 1,
                sequence,
                cpu,
                frame_len,
                offset,
                chunk_len: data.len() as u32,
                flags: 0,
            },
            data,
        )
    }

    fn packet(record: Record<'_>) -> Option<Vec<u8>> {
        match record {
            Record::Packet { bytes, .. } => Some(bytes.to_vec()),
            _ => None,
        }
    }

    #[test]
    fn a_single_chunk_is_a_whole_packet() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        let got = packet(r.push(&chunk(0, 1, 3, 0, b"abc"), || lost += 1));
        assert_eq!(got.as_deref(), Some(&b"abc"[..]));
        assert_eq!(lost, 0);
    }

    #[test]
    fn chunks_from_two_cpus_interleave() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        assert_eq!(
            r.push(&chunk(0, 7, 6, 0, b"abc"), || lost += 1),
            Record::Partial
        );
        assert_eq!(
            r.push(&chunk(1, 3, 4, 0, b"wx"), || lost += 1),
            Record::Partial
        );
        let first = packet(r.push(&chunk(0, 7, 6, 3, b"def"), || lost += 1));
        assert_eq!(first.as_deref(), Some(&b"abcdef"[..]));
        r.release(0);
        assert_eq!(
            packet(r.push(&chunk(0, 8, 1, 0, b"g"), || lost += 1)).as_deref(),
            Some(&b"g"[..]),
            "a released packet is not counted as incomplete"
        );
        let second = packet(r.push(&chunk(1, 3, 4, 2, b"yz"), || lost += 1));
        assert_eq!(second.as_deref(), Some(&b"wxyz"[..]));
        assert_eq!(lost, 0);
    }

    #[test]
    fn a_packet_cut_short_by_a_full_ring_is_counted_once_and_not_delivered() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        r.push(&chunk(0, 1, 6, 0, b"abc"), || lost += 1);
        // The rest of packet 1 never came; packet 2 starts.
        let next = packet(r.push(&chunk(0, 2, 2, 0, b"ok"), || lost += 1));
        assert_eq!(next.as_deref(), Some(&b"ok"[..]));
        assert_eq!(lost, 1);
    }

    #[test]
    fn a_middle_chunk_without_its_start_is_counted() {
        let mut r = Reassembler::default();
        let mut lost = 0;
        assert_eq!(
            r.push(&chunk(0, 4, 6, 3, b"def"), || lost += 1),
            Record::Partial
        );
        assert_eq!(lost, 1);
        // A chunk of another packet at the expected offset is not glued on either.
        r.push(&chunk(0, 5, 6, 0, b"abc"), || lost += 1);
        assert_eq!(
            r.push(&chunk(0, 6, 6, 3, b"xyz"), || lost += 1),
            Record::Partial
        );
        assert_eq!(lost, 3);
    }

    #[test]
    fn short_records_are_malformed() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(&[0u8; 10], || {}), Record::Malformed);
        let mut bad = chunk(0, 1, 100, 0, b"abc");
        bad.truncate(std::mem::size_of::<ChunkHeader>() + 2);
        assert_eq!(r.push(&bad, || {}), Record::Malformed);
    }

    /// Splits `packet` into the program's chunk records (large chunks, then the tail).
    fn chunks_of(cpu: u32, sequence: u32, packet: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        packet
            .chunks(chunk)
            .enumerate()
            .map(|(i, data)| chunk_record(cpu, sequence, packet.len(), i * chunk, data))
            .collect()
    }

    fn chunk_record(cpu: u32, sequence: u32, len: usize, offset: usize, data: &[u8]) -> Vec<u8> {
        chunk(cpu, sequence, len as u32, offset as u32, data)
    }

    proptest::proptest! {
        /// Packets from several CPUs, each CPU's chunks in order but interleaved with the
        /// others', some cut short (the ring filled up): every whole packet comes out
        /// exactly as it went in, and every cut one is counted once and never delivered.
        #[test]
        fn interleaved_packets_come_out_whole_and_cut_ones_are_counted(
            packets in proptest::collection::vec(
                (0u32..3, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600), proptest::prelude::any::<bool>()),
                1..40,
            ),
            chunk_size in 16usize..200,
            interleave in proptest::collection::vec(0u32..3, 0..400),
        ) {
            // Per CPU, the records in the order the program wrote them.
            let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> = vec![Default::default(); 3];
            let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
            let mut cut = 0;
            for (sequence, (cpu, bytes, complete)) in packets.iter().enumerate() {
                let mut records = chunks_of(*cpu, sequence as u32, bytes, chunk_size);
                if !complete && records.len() > 1 {
                    records.truncate(records.len() - 1);
                    cut += 1;
                } else {
                    expected[*cpu as usize].push(bytes.clone());
                }
                queues[*cpu as usize].extend(records);
            }
            let mut r = Reassembler::default();
            let mut lost = 0;
            let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
            let mut take = |record: Vec<u8>| {
                if let Record::Packet { header, bytes } = r.push(&record, || lost += 1) {
                    got[header.cpu as usize].push(bytes.to_vec());
                    r.release(header.cpu);
                }
            };
            for cpu in &interleave {
                if let Some(record) = queues[*cpu as usize].pop_front() {
                    take(record);
                }
            }
            for queue in &mut queues {
                while let Some(record) = queue.pop_front() {
                    take(record);
                }
            }
            // A cut packet is only known lost when its CPU's next packet starts.
            let trailing_cut = packets
                .iter()
                .enumerate()
                .filter(|(i, (cpu, bytes, complete))| {
                    !complete
                        && bytes.len() > chunk_size
                        && !packets[i + 1..].iter().any(|(c, _, _)| c == cpu)
                })
                .count();
            proptest::prop_assert_eq!(got, expected);
            proptest::prop_assert_eq!(lost + trailing_cut as i32, cut);
        }
    }
}
