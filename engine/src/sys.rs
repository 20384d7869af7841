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
