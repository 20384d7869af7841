//! What the floor client (`src/main.rs`) and the floor proxy
//! (`src/bin/proxy.rs`) share: the provided-buffer ring and the CPU clock.

use io_uring::{IoUring, types};
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffer group every multishot receive takes from.
pub const GROUP: u16 = 1;
const BUFFERS: u16 = 512;
const BUFFER_BYTES: usize = 4096;

/// A ring set up as ringway's and ringway-load's are: COOP_TASKRUN,
/// SINGLE_ISSUER, DEFER_TASKRUN.
pub fn ring() -> IoUring {
    IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)
        .expect("io_uring (Linux 6.1+)")
}

/// This process's user + system CPU seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The provided-buffer ring: entries the kernel picks receive buffers from.
pub struct BufRing {
    entries: *mut types::BufRingEntry,
    memory: Vec<u8>,
    tail: u16,
}

impl BufRing {
    pub fn new(ring: &IoUring) -> BufRing {
        let bytes = BUFFERS as usize * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping, page aligned as the kernel wants.
        let entries = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        assert_ne!(entries, libc::MAP_FAILED, "mmap");
        let mut b = BufRing {
            entries: entries.cast(),
            memory: vec![0; BUFFERS as usize * BUFFER_BYTES],
            tail: 0,
        };
        // SAFETY: the mapping outlives the ring (both live until exit).
        unsafe {
            ring.submitter()
                .register_buf_ring(entries as u64, BUFFERS, GROUP)
        }
        .expect("register_buf_ring (Linux 5.19+)");
        for id in 0..BUFFERS {
            b.give_back(id);
        }
        b.publish();
        b
    }

    pub fn buffer(&self, id: u16, len: usize) -> &[u8] {
        &self.memory[id as usize * BUFFER_BYTES..][..len]
    }

    pub fn give_back(&mut self, id: u16) {
        // SAFETY: the index is masked into the mapping; the buffer is ours.
        unsafe {
            let e = &mut *self.entries.add((self.tail & (BUFFERS - 1)) as usize);
            e.set_addr(self.memory.as_ptr().add(id as usize * BUFFER_BYTES) as u64);
            e.set_len(BUFFER_BYTES as u32);
            e.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    pub fn publish(&self) {
        // SAFETY: the tail field of entry 0, written with release ordering
        // as the kernel reads it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}
