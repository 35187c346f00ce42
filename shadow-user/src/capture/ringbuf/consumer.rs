//! The BPF ring buffer mapped into this process and read in batches: the consumer position
//! is published once per batch, not once per record.
//!
//! That position shares a cache line the program reads on every copy (to find free space and
//! to decide on a wake-up); publishing it after each record would pull that line away from
//! the production CPU hundreds of thousands of times a second.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use aya::maps::MapData;

/// Record header flags (`BPF_RINGBUF_BUSY_BIT`, `BPF_RINGBUF_DISCARD_BIT`).
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
/// Record header length (`BPF_RINGBUF_HDR_SZ`): the length word and a page offset.
const HEADER: u64 = 8;
/// Most records handed out before the consumer position is published, so a long backlog
/// frees space for the program as it goes.
const BATCH: usize = 512;

/// The ring buffer's memory: the consumer page (ours to write), then the producer page and
/// the data area mapped twice in a row (so a record that wraps is contiguous).
pub struct Consumer {
    map: MapData,
    consumer_page: NonNull<u8>,
    producer: NonNull<u8>,
    producer_len: usize,
    page: usize,
    mask: u64,
    /// Where the next record starts; published to the kernel by [`Consumer::drain`].
    position: u64,
}

// SAFETY: the mappings are owned by this value and only read or written through `&mut self`.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Maps the ring buffer `map` of `size` bytes (its `max_entries`).
    pub fn new(map: MapData, size: u32) -> io::Result<Consumer> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer_page = mmap(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer_len = page + 2 * size as usize;
        let producer = match mmap(fd, producer_len, libc::PROT_READ, page) {
            Ok(producer) => producer,
            Err(err) => {
                // SAFETY: unmaps the mapping made just above.
                unsafe { libc::munmap(consumer_page.as_ptr().cast(), page) };
                return Err(err);
            }
        };
        let mut consumer = Consumer {
            map,
            consumer_page,
            producer,
            producer_len,
            page,
            mask: u64::from(size) - 1,
            position: 0,
        };
        consumer.position = consumer.consumer_position().load(Ordering::Acquire);
        Ok(consumer)
    }

    /// Hands the committed records to `each` in order, publishing the consumer position
    /// every [`BATCH`] records and at the end; returns how many records there were. Stops at
    /// a record the program is still writing, and after one ring's worth of bytes: under a
    /// load that refills the ring as fast as it is read, the reader's loop must still come
    /// round (its heartbeat, the stop flag, the current capture scope).
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        let mut handed = 0;
        let mut unpublished = 0;
        let end_of_pass = self.position + self.mask + 1;
        loop {
            let produced = self.producer_position().load(Ordering::Acquire);
            if self.position >= produced.min(end_of_pass) {
                break;
            }
            let offset = (self.position & self.mask) as usize;
            // SAFETY: the data area starts one page into the producer mapping and is mapped
            // twice, so `offset` (< size) plus a record (≤ size) stays inside the mapping;
            // record headers are 8-byte aligned.
            let header =
                unsafe { AtomicU32::from_ptr(self.data().add(offset).cast::<u32>().as_ptr()) };
            let length = header.load(Ordering::Acquire);
            if length & BUSY != 0 {
                break;
            }
            let payload = length & !(BUSY | DISCARD);
            if length & DISCARD == 0 {
                // SAFETY: the committed record's payload follows its header, within the
                // double mapping as above; the kernel does not reuse it before the consumer
                // position passes it.
                let record = unsafe {
                    std::slice::from_raw_parts(
                        self.data().add(offset + HEADER as usize).as_ptr(),
                        payload as usize,
                    )
                };
                each(record);
                handed += 1;
            }
            self.position += (u64::from(payload) + HEADER).next_multiple_of(8);
            unpublished += 1;
            if unpublished == BATCH {
                self.publish();
                unpublished = 0;
            }
        }
        if unpublished > 0 {
            self.publish();
        }
        handed
    }

    fn publish(&self) {
        self.consumer_position()
            .store(self.position, Ordering::Release);
    }

    fn consumer_position(&self) -> &AtomicU64 {
        // SAFETY: the consumer position is the first (8-byte aligned) word of the consumer
        // page, which lives as long as `self`; the kernel reads it atomically.
        unsafe { AtomicU64::from_ptr(self.consumer_page.cast::<u64>().as_ptr()) }
    }

    fn producer_position(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer page; only the kernel writes it.
        unsafe { AtomicU64::from_ptr(self.producer.cast::<u64>().as_ptr()) }
    }

    fn data(&self) -> NonNull<u8> {
        // SAFETY: the data area starts one page into the producer mapping.
        unsafe { self.producer.add(self.page) }
    }
}

impl AsRawFd for Consumer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the two mappings made in `new`.
        unsafe {
            libc::munmap(self.consumer_page.as_ptr().cast(), self.page);
            libc::munmap(self.producer.as_ptr().cast(), self.producer_len);
        }
    }
}

fn mmap(fd: i32, len: usize, prot: i32, offset: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh shared mapping of the ring buffer's descriptor; checked below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(map.cast()).ok_or_else(|| io::Error::other("null mapping"))
}
