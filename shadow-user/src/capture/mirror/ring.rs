//! AF_PACKET TPACKET_V3 receive ring on the mirror peer: the kernel fills memory-mapped
//! blocks of frames, the capture thread walks each block and hands every frame to a
//! [`FrameSink`] without copying, then returns the block.
//!
//! Blocks are sized so the largest GSO frame fits whole; a frame the kernel still had to cut
//! (`tp_snaplen < tp_len`) is counted as truncated and not handed on, and frames the kernel
//! dropped because the ring was full are read from `PACKET_STATISTICS`.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::capture::{
    frame::{FrameSink, hand_on},
    heartbeat::ReaderControl,
    scope::SharedScope,
    stats::ReaderStats,
};

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Bytes per block; a power of two, multiple of the page size, larger than any frame
    /// (GSO frames reach 64 KiB, BIG TCP more).
    pub block_size: u32,
    /// Number of blocks; `block_size * block_count` is the ring's memory.
    pub block_count: u32,
    /// How long the kernel keeps a partly filled block before handing it over: bounds the
    /// delay a quiet connection's packets wait in the ring.
    pub block_timeout: Duration,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 20,
            block_count: 32,
            block_timeout: Duration::from_millis(1),
        }
    }
}

/// Errors opening the ring.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{call} on the capture socket of interface index {ifindex}")]
    Syscall {
        call: &'static str,
        ifindex: u32,
        #[source]
        source: io::Error,
    },
}

/// A bound, memory-mapped TPACKET_V3 socket.
pub struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    config: RingConfig,
    ifindex: u32,
}

// SAFETY: the mapping is owned by this value and only touched through `&mut self`.
unsafe impl Send for Ring {}

impl Ring {
    /// Opens a ring receiving every frame arriving on `ifindex`.
    pub fn open(ifindex: u32, config: RingConfig) -> Result<Ring, RingError> {
        let fail = |call: &'static str| {
            move |source: io::Error| RingError::Syscall {
                call,
                ifindex,
                source,
            }
        };
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if raw < 0 {
            return Err(fail("socket")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(&fd, libc::PACKET_VERSION, &version).map_err(fail("PACKET_VERSION"))?;
        let one: libc::c_int = 1;
        setsockopt(&fd, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(fail("PACKET_IGNORE_OUTGOING"))?;
        let frame_size = 2048;
        let req = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: config.block_size / frame_size * config.block_count,
            tp_retire_blk_tov: u32::try_from(config.block_timeout.as_millis().max(1))
                .unwrap_or(u32::MAX),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::PACKET_RX_RING, &req).map_err(fail("PACKET_RX_RING"))?;

        let len = config.block_size as usize * config.block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(fail("mmap")(io::Error::last_os_error()));
        }
        let map = NonNull::new(map.cast::<u8>())
            .ok_or_else(|| fail("mmap")(io::Error::other("null mapping")))?;
        let ring = Ring {
            fd,
            map,
            config,
            ifindex,
        };

        // SAFETY: zeroed sockaddr_ll is valid; the fields we need are filled in.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(fail("bind")(io::Error::last_os_error()));
        }
        Ok(ring)
    }

    /// Reads frames until `stop` is set, handing each to `sink`.
    pub fn run(
        &mut self,
        scope: &SharedScope,
        sink: &mut dyn FrameSink,
        stats: &ReaderStats,
        control: &ReaderControl,
    ) {
        let poll_timeout_ms = 100;
        let mut block_index = 0;
        while control.next_pass() {
            let block = self.block(block_index);
            // SAFETY: the block header lies at the start of the block, inside the mapping.
            let status = unsafe { block_status(block) };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                self.wait(poll_timeout_ms, stats);
                self.collect_kernel_stats(stats);
                sink.idle(SystemTime::now());
                continue;
            }
            // SAFETY: the kernel handed this block to us (TP_STATUS_USER) until we reset it.
            unsafe { self.walk_block(block, &scope.snapshot(), sink, stats) };
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            stats.blocks.inc();
            block_index = (block_index + 1) % self.config.block_count as usize;
        }
        self.collect_kernel_stats(stats);
    }

    fn block(&self, index: usize) -> NonNull<u8> {
        // SAFETY: index < block_count, so the offset stays inside the mapping.
        unsafe { self.map.add(index * self.config.block_size as usize) }
    }

    /// Walks the frames of one block owned by userspace.
    ///
    /// # Safety
    /// `block` must be a block currently owned by userspace (status has `TP_STATUS_USER`).
    unsafe fn walk_block(
        &self,
        block: NonNull<u8>,
        scope: &crate::capture::scope::CaptureScope,
        sink: &mut dyn FrameSink,
        stats: &ReaderStats,
    ) {
        // SAFETY: the caller guarantees the block header is ours to read.
        let desc = unsafe { block.cast::<libc::tpacket_block_desc>().as_ref() };
        // SAFETY: TPACKET_V3 blocks always carry the v1 header variant.
        let header = unsafe { desc.hdr.bh1 };
        let block_end = self.config.block_size as usize;
        let mut offset = header.offset_to_first_pkt as usize;
        for _ in 0..header.num_pkts {
            if offset + std::mem::size_of::<libc::tpacket3_hdr>() > block_end {
                stats.malformed_blocks.inc();
                break;
            }
            // SAFETY: offset is inside the block (checked above) and the kernel aligns
            // frame headers to TPACKET_ALIGNMENT.
            let frame = unsafe { block.add(offset).cast::<libc::tpacket3_hdr>().as_ref() };
            let data_start = offset + usize::from(frame.tp_mac);
            let data_len = frame.tp_snaplen as usize;
            if data_start + data_len > block_end {
                stats.malformed_blocks.inc();
                break;
            }
            // SAFETY: bounds checked just above; the bytes stay valid until the block is
            // returned, which happens after this loop.
            let data =
                unsafe { std::slice::from_raw_parts(block.add(data_start).as_ptr(), data_len) };
            self.deliver(frame, data, scope, sink, stats);
            if frame.tp_next_offset == 0 {
                break;
            }
            offset += frame.tp_next_offset as usize;
        }
    }

    fn deliver(
        &self,
        frame: &libc::tpacket3_hdr,
        data: &[u8],
        scope: &crate::capture::scope::CaptureScope,
        sink: &mut dyn FrameSink,
        stats: &ReaderStats,
    ) {
        let timestamp = || {
            SystemTime::UNIX_EPOCH
                + Duration::new(u64::from(frame.tp_sec), frame.tp_nsec.min(999_999_999))
        };
        // `data` is `tp_snaplen` long: shorter than `tp_len` when the kernel cut the frame.
        hand_on(data, frame.tp_len, timestamp, scope, sink, stats);
    }

    fn wait(&self, timeout_ms: i32, stats: &ReaderStats) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc > 0 && pfd.revents & libc::POLLERR != 0 {
            // The mirror went down or away: clear the error so the next poll blocks again.
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: reads one int into `err`.
            unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&raw mut err).cast(),
                    &mut len,
                )
            };
            stats.socket_errors.inc();
            tracing::warn!(
                ifindex = self.ifindex,
                error = %io::Error::from_raw_os_error(err),
                "capture socket reported an error; capture continues when the mirror is back"
            );
            std::thread::sleep(Duration::from_millis(timeout_ms as u64));
        }
    }

    /// Adds the kernel's drop counters (which reset on every read) to `stats`.
    fn collect_kernel_stats(&self, stats: &ReaderStats) {
        let mut kstats = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `kstats`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut kstats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            stats.ring_drops.inc_by(u64::from(kstats.tp_drops));
            stats.ring_freezes.inc_by(u64::from(kstats.tp_freeze_q_cnt));
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let len = self.config.block_size as usize * self.config.block_count as usize;
        // SAFETY: unmaps exactly the mapping created in `open`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), len) };
    }
}

/// The block's status word, shared with the kernel.
///
/// # Safety
/// `block` must point at a block header inside the live mapping.
unsafe fn block_status<'a>(block: NonNull<u8>) -> &'a AtomicU32 {
    // SAFETY: `block_status` is the first u32 of the v1 header, 4-byte aligned; the kernel
    // and this thread only access it atomically.
    unsafe {
        let desc = block.cast::<libc::tpacket_block_desc>().as_ptr();
        AtomicU32::from_ptr(&raw mut (*desc).hdr.bh1.block_status)
    }
}

fn setsockopt<T>(fd: &OwnedFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to `value` with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs [`Ring::run`] on its own thread.
pub fn spawn(
    mut ring: Ring,
    scope: SharedScope,
    mut sink: Box<dyn FrameSink>,
    stats: Arc<ReaderStats>,
    control: ReaderControl,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shadowd-capture".into())
        .spawn(move || {
            let _alive = control.heartbeat().until_end();
            ring.run(&scope, sink.as_mut(), &stats, &control)
        })
}
