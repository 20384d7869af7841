//! The few raw system calls ringway makes outside monoio. Every `unsafe`
//! block of the engine lives in this file.

use std::os::fd::RawFd;

/// What a non-blocking peek says about an idle pooled connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Nothing to read and not closed: safe to reuse.
    Idle,
    /// The peer closed, reset, or sent bytes nobody asked for: discard.
    Unusable,
}

/// Peeks one byte without blocking to tell a live idle connection from one the peer closed.
pub fn peek_idle(fd: RawFd) -> Peek {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of
    // the call; the buffer is one valid, writable byte.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error().raw_os_error();
        if e == Some(libc::EAGAIN) || e == Some(libc::EWOULDBLOCK) {
            return Peek::Idle;
        }
    }
    Peek::Unusable
}

/// Reads (or, with `peek`, looks at) what a socket holds without blocking:
/// `Ok(0)` is end of stream, `WouldBlock` nothing yet. Used for the PROXY
/// protocol header, which must be taken off the socket to its last byte and
/// not one byte further.
pub fn recv_now(fd: RawFd, buf: &mut [u8], peek: bool) -> std::io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `fd` is an open socket owned by the caller for the duration of
    // the call; `buf` is valid and writable for `buf.len()` bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Half-closes the read side of a socket so a pending read completes with EOF.
/// Used to wake idle keep-alive connections when draining.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor only affects that socket; an fd
    // that was closed meanwhile gives EBADF/ENOTSOCK, which is ignored.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// Half-closes the write side of a socket: the peer reads end of stream.
/// Used when one direction of a tunnel ends.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: as for `shutdown_read`.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// Sends SIGHUP to `pid`; false if it failed (no such process, not permitted).
pub fn send_sighup(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGHUP) == 0 }
}

/// Storage for one future at a time, from a per-worker pool of blocks, so a
/// connection's large busy state (one request's exchange) does not live in
/// its task while it is idle, and no request allocates.
pub mod pooled {
    use std::alloc::Layout;
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::ptr::NonNull;

    /// Bytes per block: the largest future [`run`] can hold.
    pub const BLOCK: usize = 8192;
    /// Alignment of a block (monoio's futures ask for 128).
    pub const ALIGN: usize = 128;
    /// Free blocks kept per pool.
    const KEEP: usize = 1024;

    fn layout() -> Layout {
        Layout::from_size_align(BLOCK, ALIGN).expect("a valid layout")
    }

    /// A worker's free blocks.
    #[derive(Default)]
    pub struct Blocks {
        free: RefCell<Vec<NonNull<u8>>>,
    }

    impl Blocks {
        fn take(&self) -> NonNull<u8> {
            if let Some(b) = self.free.borrow_mut().pop() {
                return b;
            }
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { std::alloc::alloc(layout()) };
            NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout()))
        }

        fn put(&self, b: NonNull<u8>) {
            let mut free = self.free.borrow_mut();
            if free.len() < KEEP {
                free.push(b);
            } else {
                // SAFETY: `b` came from `alloc` with this layout and is no longer used.
                unsafe { std::alloc::dealloc(b.as_ptr(), layout()) };
            }
        }

        /// Blocks kept for reuse.
        pub fn kept(&self) -> usize {
            self.free.borrow().len()
        }
    }

    impl Drop for Blocks {
        fn drop(&mut self) {
            for b in self.free.get_mut().drain(..) {
                // SAFETY: as in `put`.
                unsafe { std::alloc::dealloc(b.as_ptr(), layout()) };
            }
        }
    }

    /// Owns one future written into a block: drops it in place and returns
    /// the block, also when the awaiting task is dropped or unwinds.
    struct Slot<'p, F> {
        fut: NonNull<F>,
        blocks: &'p Blocks,
    }

    impl<F> Drop for Slot<'_, F> {
        fn drop(&mut self) {
            // SAFETY: `fut` was written by `run` and is dropped exactly once, here.
            unsafe { std::ptr::drop_in_place(self.fut.as_ptr()) };
            self.blocks.put(self.fut.cast());
        }
    }

    /// Runs the future `make` returns in a block of `blocks` and returns its
    /// output. The caller's future holds a pointer, not the future itself.
    pub async fn run<F: Future>(blocks: &Blocks, make: impl FnOnce() -> F) -> F::Output {
        const {
            assert!(
                std::mem::size_of::<F>() <= BLOCK,
                "the future outgrew a block"
            );
            assert!(std::mem::align_of::<F>() <= ALIGN);
        }
        let block = blocks.take();
        let fut = block.cast::<F>();
        // SAFETY: the block is BLOCK bytes aligned to ALIGN, which fits F
        // (checked at compile time), and no one else uses it until `put`.
        unsafe { fut.as_ptr().write(make()) };
        let slot = Slot { fut, blocks };
        // SAFETY: the future never moves: it stays in its block until `Slot`
        // drops it in place.
        let pinned = unsafe { Pin::new_unchecked(&mut *slot.fut.as_ptr()) };
        pinned.await
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::rc::Rc;

        #[test]
        fn futures_run_in_reused_blocks_and_are_dropped() {
            let blocks = Blocks::default();
            let dropped = Rc::new(std::cell::Cell::new(0));
            struct Count(Rc<std::cell::Cell<usize>>);
            impl Drop for Count {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..10u64 {
                    let d = Count(dropped.clone());
                    let big = [i as u8; 3000];
                    let out = run(&blocks, || async move {
                        monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                        let _keep = &d;
                        big.iter().map(|&b| u64::from(b)).sum::<u64>()
                    })
                    .await;
                    assert_eq!(out, 3000 * i);
                }
                // A future dropped before it finished is dropped in place too.
                let d = Count(dropped.clone());
                let never = run(&blocks, || async move {
                    let _keep = d;
                    std::future::pending::<()>().await
                });
                let _ = monoio::time::timeout(std::time::Duration::from_millis(1), never).await;
            });
            assert_eq!(dropped.get(), 11);
            assert_eq!(blocks.kept(), 1, "one block served every run");
        }
    }
}

/// Marks a descriptor non-blocking (for splice(2) on sockets, which waits
/// in the kernel unless the socket itself is non-blocking).
pub fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl(2) F_GETFL/F_SETFL on a descriptor the caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK == 0
            && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One non-blocking splice(2) of up to `len` bytes from `from` to `to`
/// (one of them a pipe): `Ok(0)` is end of stream, `WouldBlock` nothing to
/// move now.
pub fn splice_now(from: RawFd, to: RawFd, len: usize) -> std::io::Result<usize> {
    // SAFETY: splice(2) between two descriptors the caller owns, without
    // offsets (both are sockets or pipes); no memory is passed.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sets a pipe's capacity (F_SETPIPE_SZ); returns the capacity it has.
pub fn set_pipe_size(fd: RawFd, bytes: usize) -> usize {
    // SAFETY: fcntl(2) on a pipe descriptor the caller owns.
    unsafe {
        let n = libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes as libc::c_int);
        if n > 0 {
            return n as usize;
        }
        libc::fcntl(fd, libc::F_GETPIPE_SZ).max(0) as usize
    }
}

/// A new non-blocking pipe: (read end, write end).
pub fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array on success;
    // each is then owned by exactly one OwnedFd.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// A second descriptor for the socket `fd` (close-on-exec), owned by the
/// caller: what a parked connection keeps once its task (and monoio's
/// handle on the first descriptor) is gone.
pub fn dup(fd: RawFd) -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: `fd` is open for the duration of the call (the caller holds
    // the socket); the copy is a new descriptor the result owns.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

/// An epoll set of parked idle connections (`Worker::park`): each socket is
/// watched once (`EPOLLONESHOT`) for bytes, end of stream or an error, and
/// carries a key (the connection's registry slot). The upstream pool keeps
/// a second one, of every upstream socket it has pooled, watched for
/// closes only ([`Watch::add_for_close`]). The worker waits on the
/// set's own descriptor through monoio ([`Watch::waiter`]), so a thousand
/// parked connections cost one pending readiness wait, and kernel memory
/// rather than the worker's.
pub struct Watch {
    epfd: std::os::fd::OwnedFd,
}

impl Watch {
    pub fn new() -> std::io::Result<Watch> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1(2) takes flags only; a descriptor it returns
        // is owned by exactly one OwnedFd.
        unsafe {
            let fd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Watch {
                epfd: std::os::fd::OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Starts watching `fd` for one readiness event carrying `key`.
    pub fn add(&self, fd: RawFd, key: u64) -> std::io::Result<()> {
        self.insert(
            fd,
            key,
            libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT,
        )
    }

    /// Starts watching `fd`, for as long as the socket is open, for the
    /// peer closing or resetting it — not for bytes: the set only becomes
    /// ready when the peer sends a FIN or an RST, so a socket carrying
    /// traffic never wakes its watcher. (Edge-triggered: each close is
    /// reported once. The kernel drops the entry when the socket is closed.)
    pub fn add_for_close(&self, fd: RawFd, key: u64) -> std::io::Result<()> {
        self.insert(fd, key, libc::EPOLLRDHUP | libc::EPOLLET)
    }

    fn insert(&self, fd: RawFd, key: u64, events: libc::c_int) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: key,
        };
        // SAFETY: epoll_ctl(2) on our epoll descriptor and a socket the caller
        // owns; the event is a valid, initialised struct.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (before the socket goes back to a task).
    pub fn remove(&self, fd: RawFd) {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; an fd not in the set gives ENOENT, ignored.
        unsafe {
            libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev);
        }
    }

    /// Appends the keys of every watched socket that became ready, without
    /// waiting.
    pub fn ready(&self, keys: &mut Vec<u64>) {
        use std::os::fd::AsRawFd;
        const BATCH: usize = 64;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: epoll_wait(2) writes at most BATCH events into the array.
            let n = unsafe {
                libc::epoll_wait(self.epfd.as_raw_fd(), evs.as_mut_ptr(), BATCH as i32, 0)
            };
            if n <= 0 {
                return;
            }
            keys.extend(evs[..n as usize].iter().map(|e| e.u64));
            if (n as usize) < BATCH {
                return;
            }
        }
    }

    /// A handle on the set's descriptor that monoio can wait on for
    /// readability (the set is readable when a watched socket is ready).
    /// It is typed as a TCP stream only because that is the type monoio
    /// waits on; it is never read or written.
    pub fn waiter(&self) -> std::io::Result<monoio::net::TcpStream> {
        use std::os::fd::AsRawFd;
        let fd = dup(self.epfd.as_raw_fd())?;
        monoio::net::TcpStream::from_std(std::net::TcpStream::from(fd))
    }
}

/// Asks the allocator (mimalloc, the binary's global allocator) to collect
/// this thread's freed pages and return those it no longer uses to the
/// system at once. On its own mimalloc returns them lazily, on later
/// allocations; a worker whose connections just parked may allocate nothing
/// for hours. Forced (`true`): the unforced pass left ~0.9 KiB per parked
/// connection resident, the forced one 0.3 KiB. Called by the sweep after
/// a batch of connections parked, never per request. Harmless under another
/// allocator (mimalloc's own heap is then empty).
pub fn collect_freed_memory() {
    // SAFETY: mi_collect only walks the calling thread's mimalloc heap and
    // the pages it owns.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
