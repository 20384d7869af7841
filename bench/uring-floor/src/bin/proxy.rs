//! uring-floor-proxy LISTEN UPSTREAM [close|single] — the least CPU per request a
//! reverse proxy reaches on this kernel over loopback, to put ringway's and
//! nginx's requests per CPU-second against (issue #20's targets). Not a
//! proxy for use: it parses nothing and moves bytes as they come.
//!
//! One thread, one io_uring set up as ringway's is (COOP_TASKRUN,
//! SINGLE_ISSUER, DEFER_TASKRUN), one multishot accept, and one multishot
//! receive per socket for its whole life taking buffers from a
//! provided-buffer ring: what arrives on a client goes to its upstream
//! connection from the buffer it landed in, and back the same way; the
//! buffer returns to the ring when the send completes. No clock read, no
//! timer, no allocation per request.
//!
//! Keep-alive (default): each client gets its own upstream connection,
//! opened when the client is accepted. `close`: the clients send
//! `Connection: close`; the upstream connections are pooled, each client
//! takes one, a fixed keep-alive request goes upstream in place of the
//! client's (so the pooled connection stays open), and the client is
//! closed once the response has been sent to it. `single` (keep-alive): the
//! operations ringway's runtime gives it instead of multishot receives —
//! a readiness poll then a one-shot receive into the connection's own
//! buffer for each request from a client, a one-shot receive on the
//! upstream connection armed when the request has been sent — to tell what
//! the pattern of operations costs apart from what ringway's code costs.

use io_uring::{cqueue, opcode, squeue, types};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use uring_floor::{BufRing, GROUP};

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
/// A send to a client in `close` mode: the client is closed when it completes.
const SEND_LAST: u64 = 3;
/// `single` mode: a client's readiness poll, a one-shot receive into the
/// socket's own buffer, a send from the other socket's buffer (the buffer
/// id field says which way: 0 up, 1 down).
const POLL: u64 = 4;
const RECV_ONE: u64 = 5;
const SEND_ONE: u64 = 6;

/// What a completion is for: kind (3 bits), buffer id (16), descriptor
/// (32) and the descriptor's generation (13), so a completion left over from
/// a closed socket is not taken for one of the socket that reused its number.
fn data(kind: u64, fd: RawFd, bid: u16, generation: u16) -> u64 {
    kind | (bid as u64) << 3 | (fd as u32 as u64) << 19 | ((generation & 0x1fff) as u64) << 51
}

fn parts(d: u64) -> (u64, RawFd, u16, u16) {
    (
        d & 7,
        (d >> 19) as u32 as RawFd,
        ((d >> 3) & 0xffff) as u16,
        (d >> 51) as u16,
    )
}

#[derive(Clone, Copy)]
struct Peer {
    other: RawFd,
    client: bool,
    generation: u16,
}

/// Ends a socket: `shutdown` first, which ends its multishot receive (a
/// plain `close` would not: the pending receive holds the socket open).
fn end(fd: RawFd) {
    // SAFETY: our descriptor, not used after this.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
        libc::close(fd);
    }
}

fn upstream(addr: &str) -> RawFd {
    let s = TcpStream::connect(addr).expect("connect upstream");
    s.set_nodelay(true).expect("nodelay");
    s.into_raw_fd()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, up, close, single) = match args.as_slice() {
        [_, l, u] => (l.clone(), u.clone(), false, false),
        [_, l, u, m] if m == "close" => (l.clone(), u.clone(), true, false),
        [_, l, u, m] if m == "single" => (l.clone(), u.clone(), false, true),
        _ => {
            eprintln!("usage: uring-floor-proxy LISTEN UPSTREAM [close|single]");
            std::process::exit(2);
        }
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {up}\r\n\r\n");
    // A send to a socket its peer has closed fails with EPIPE, not a signal.
    // SAFETY: ignoring SIGPIPE, before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let listener = TcpListener::bind(listen.as_str()).expect("bind");
    let mut ring = uring_floor::ring();
    let mut bufs = BufRing::new(&ring);
    let mut peers: Vec<Option<Peer>> = Vec::new();
    let mut pool: Vec<(RawFd, u16)> = Vec::new();
    let mut generations: Vec<u16> = Vec::new();
    // `single` mode: each socket's own receive buffer.
    let mut own: Vec<Vec<u8>> = Vec::new();
    let poll = |fd: RawFd, generation: u16| {
        opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(data(POLL, fd, 0, generation))
    };
    let recv = |fd: RawFd, generation: u16| {
        opcode::RecvMulti::new(types::Fd(fd), GROUP)
            .build()
            .user_data(data(RECV, fd, 0, generation))
    };
    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
        .build()
        .user_data(data(ACCEPT, 0, 0, 0));
    let mut next: Vec<squeue::Entry> = vec![accept.clone()];
    let set = |peers: &mut Vec<Option<Peer>>, fd: RawFd, p: Option<Peer>| {
        let i = fd as usize;
        if peers.len() <= i {
            peers.resize(i + 1, None);
        }
        peers[i] = p;
    };
    // A new generation for a descriptor number just handed out.
    let fresh = |generations: &mut Vec<u16>, fd: RawFd| {
        let i = fd as usize;
        if generations.len() <= i {
            generations.resize(i + 1, 0);
        }
        generations[i] = generations[i].wrapping_add(1) & 0x1fff;
        generations[i]
    };
    loop {
        // SAFETY: every entry points at memory that lives until exit: the
        // request text, the buffer ring's memory.
        unsafe {
            let mut sq = ring.submission();
            for e in next.drain(..) {
                sq.push(&e).expect("submission queue full");
            }
        }
        ring.submit_and_wait(1).expect("io_uring_enter");
        let mut recycled = false;
        let cqes: Vec<cqueue::Entry> = ring.completion().collect();
        for cqe in cqes {
            let (kind, fd, bid, generation) = parts(cqe.user_data());
            let res = cqe.result();
            match kind {
                ACCEPT => {
                    if !cqueue::more(cqe.flags()) {
                        next.push(accept.clone());
                    }
                    if res < 0 {
                        continue;
                    }
                    let client = res;
                    let one: libc::c_int = 1;
                    // SAFETY: setsockopt on a socket we own, with an int.
                    unsafe {
                        libc::setsockopt(
                            client,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            4,
                        );
                    }
                    let pooled = if close { pool.pop() } else { None };
                    let (u, ug) = pooled.unwrap_or_else(|| {
                        let u = upstream(&up);
                        let g = fresh(&mut generations, u);
                        if !single {
                            next.push(recv(u, g));
                        }
                        (u, g)
                    });
                    let cg = fresh(&mut generations, client);
                    set(
                        &mut peers,
                        client,
                        Some(Peer {
                            other: u,
                            client: true,
                            generation: cg,
                        }),
                    );
                    set(
                        &mut peers,
                        u,
                        Some(Peer {
                            other: client,
                            client: false,
                            generation: ug,
                        }),
                    );
                    if single {
                        let top = client.max(u) as usize;
                        if own.len() <= top {
                            own.resize_with(top + 1, Vec::new);
                        }
                        for fd in [client, u] {
                            if own[fd as usize].is_empty() {
                                own[fd as usize] = vec![0; 4096];
                            }
                        }
                        next.push(poll(client, cg));
                    } else {
                        next.push(recv(client, cg));
                    }
                }
                RECV => {
                    let live = peers.get(fd as usize).copied().flatten();
                    let Some(p) = live.filter(|p| p.generation == generation) else {
                        if let Some(id) = cqueue::buffer_select(cqe.flags()) {
                            bufs.give_back(id);
                            recycled = true;
                        }
                        continue;
                    };
                    if res == -libc::ENOBUFS {
                        next.push(recv(fd, generation));
                        continue;
                    }
                    if res <= 0 {
                        // The peer closed (or failed): close the client, and
                        // in keep-alive mode its upstream connection too.
                        if p.client {
                            set(&mut peers, fd, None);
                            end(fd);
                            if close {
                                let g = generations[p.other as usize];
                                pool.push((p.other, g));
                            } else {
                                set(&mut peers, p.other, None);
                                end(p.other);
                            }
                        }
                        continue;
                    }
                    let id = cqueue::buffer_select(cqe.flags()).expect("a provided buffer");
                    if !cqueue::more(cqe.flags()) {
                        next.push(recv(fd, generation));
                    }
                    if close && p.client {
                        // The client's request is not forwarded: the fixed
                        // keep-alive one goes in its place.
                        bufs.give_back(id);
                        recycled = true;
                        next.push(
                            opcode::Send::new(
                                types::Fd(p.other),
                                request.as_ptr(),
                                request.len() as u32,
                            )
                            .build()
                            .user_data(data(SEND, p.other, u16::MAX, 0))
                            .flags(squeue::Flags::SKIP_SUCCESS),
                        );
                        continue;
                    }
                    let b = bufs.buffer(id, res as usize);
                    let kind = if close { SEND_LAST } else { SEND };
                    next.push(
                        opcode::Send::new(types::Fd(p.other), b.as_ptr(), b.len() as u32)
                            .build()
                            .user_data(data(kind, p.other, id, generations[p.other as usize])),
                    );
                }
                SEND | SEND_LAST => {
                    // A failed send (the peer went): its receive sees the end.
                    if bid != u16::MAX {
                        bufs.give_back(bid);
                        recycled = true;
                    }
                    if kind == SEND_LAST {
                        // The response is out: the client is done.
                        let live = peers.get(fd as usize).copied().flatten();
                        if let Some(p) = live.filter(|p| p.generation == generation) {
                            set(&mut peers, fd, None);
                            end(fd);
                            let g = generations[p.other as usize];
                            pool.push((p.other, g));
                        }
                    }
                }
                POLL | RECV_ONE | SEND_ONE => {
                    let live = peers.get(fd as usize).copied().flatten();
                    let Some(p) = live.filter(|p| p.generation == generation) else {
                        continue;
                    };
                    let other_gen = generations[p.other as usize];
                    match kind {
                        POLL if res > 0 => {
                            let b = &mut own[fd as usize];
                            next.push(
                                opcode::Recv::new(types::Fd(fd), b.as_mut_ptr(), b.len() as u32)
                                    .build()
                                    .user_data(data(RECV_ONE, fd, 0, generation)),
                            );
                        }
                        RECV_ONE if res > 0 => {
                            let b = &own[fd as usize][..res as usize];
                            let way = if p.client { 0 } else { 1 };
                            next.push(
                                opcode::Send::new(types::Fd(p.other), b.as_ptr(), b.len() as u32)
                                    .build()
                                    .user_data(data(SEND_ONE, p.other, way, other_gen)),
                            );
                        }
                        SEND_ONE if res >= 0 && bid == 0 => {
                            // The request is upstream: wait for the response.
                            let b = &mut own[fd as usize];
                            next.push(
                                opcode::Recv::new(types::Fd(fd), b.as_mut_ptr(), b.len() as u32)
                                    .build()
                                    .user_data(data(RECV_ONE, fd, 0, generation)),
                            );
                        }
                        SEND_ONE if res >= 0 => {
                            // The response is out: wait for the next request.
                            next.push(poll(fd, generation));
                        }
                        _ => {
                            // End of stream or an error: both sockets go.
                            let (c, u) = if p.client {
                                (fd, p.other)
                            } else {
                                (p.other, fd)
                            };
                            set(&mut peers, c, None);
                            set(&mut peers, u, None);
                            end(c);
                            end(u);
                        }
                    }
                }
                _ => unreachable!(),
            }
        }
        if recycled {
            bufs.publish();
        }
    }
}
