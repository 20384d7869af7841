//! uring-floor ADDR CONNECTIONS SECONDS — a minimal HTTP/1.1 keep-alive
//! client on a raw io_uring: one thread, `GET /` on every connection,
//! closed loop. Each connection has one multishot receive armed for its
//! whole life, taking buffers from a provided-buffer ring (so no receive is
//! re-armed and no buffer waits per connection); sends skip their
//! completions; the ring is set up with COOP_TASKRUN, SINGLE_ISSUER and
//! DEFER_TASKRUN like ringway-load's. No clock read per request, no latency
//! histogram: it prints requests, wall time and its own CPU time
//! (getrusage), i.e. the floor a generator's CPU per request can reach.

use io_uring::{cqueue, opcode, squeue, types};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use uring_floor::{BufRing, GROUP, cpu_seconds};

const SEND: u64 = 0;
const RECV: u64 = 1;

/// Complete responses at the start of `buf`, and the bytes they took.
fn responses(mut buf: &[u8]) -> (u64, usize) {
    let (mut n, total) = (0, buf.len());
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = r.parse(buf) else {
            break;
        };
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < head + len {
            break;
        }
        buf = &buf[head + len..];
        n += 1;
    }
    (n, total - buf.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, conns, secs] = args.as_slice() else {
        eprintln!("usage: uring-floor ADDR CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let end = Duration::from_secs_f64(secs.parse().expect("SECONDS"));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: uring-floor\r\n\r\n");
    let mut ring = uring_floor::ring();
    let mut bufs = BufRing::new(&ring);
    let sockets: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr.as_str()).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let send = |i: usize| {
        opcode::Send::new(
            types::Fd(sockets[i].as_raw_fd()),
            request.as_ptr(),
            request.len() as u32,
        )
        .build()
        .user_data((i as u64) << 1 | SEND)
        .flags(squeue::Flags::SKIP_SUCCESS)
    };
    let recv = |i: usize| {
        opcode::RecvMulti::new(types::Fd(sockets[i].as_raw_fd()), GROUP)
            .build()
            .user_data((i as u64) << 1 | RECV)
    };
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); conns];
    let mut next: Vec<squeue::Entry> = (0..conns).flat_map(|i| [send(i), recv(i)]).collect();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let (mut done, mut waiting, mut stopping) = (0u64, conns, false);
    while waiting > 0 {
        // SAFETY: every entry points at memory (the request, the sockets)
        // that lives until the end of main.
        unsafe {
            let mut sq = ring.submission();
            for e in next.drain(..) {
                sq.push(&e).expect("submission queue full");
            }
        }
        ring.submit_and_wait(1).expect("io_uring_enter");
        stopping = stopping || t0.elapsed() >= end;
        let mut recycled = false;
        for cqe in ring.completion() {
            let i = (cqe.user_data() >> 1) as usize;
            let res = cqe.result();
            assert!(res > 0, "connection {i}: result {res}");
            if cqe.user_data() & 1 == SEND {
                continue;
            }
            let id = cqueue::buffer_select(cqe.flags()).expect("a provided buffer");
            if !cqueue::more(cqe.flags()) {
                next.push(recv(i));
            }
            let data = bufs.buffer(id, res as usize);
            let n = if partial[i].is_empty() {
                let (n, used) = responses(data);
                partial[i].extend_from_slice(&data[used..]);
                n
            } else {
                partial[i].extend_from_slice(data);
                let (n, used) = responses(&partial[i]);
                partial[i].drain(..used);
                n
            };
            bufs.give_back(id);
            recycled = true;
            done += n;
            if n > 0 {
                if stopping {
                    waiting -= 1;
                } else {
                    next.push(send(i));
                }
            }
        }
        if recycled {
            bufs.publish();
        }
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    println!(
        "requests {done} wall_s {wall:.3} cpu_s {cpu:.3} req_per_s {:.0} req_per_cpu_s {:.0}",
        done as f64 / wall,
        done as f64 / cpu
    );
}
