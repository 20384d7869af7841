//! Support for ringway's black-box tests: start the real binary on a config,
//! run recording upstreams on 127.0.0.1, and speak raw HTTP/1.1 bytes.
//!
//! The binary is found at `$RINGWAY_BIN`, or next to this test executable's
//! `deps/` folder (`target/<profile>/ringway`). Build it first:
//! `cargo build --workspace --bins`; a binary older than the engine's
//! sources fails the tests with that command ([`fresh`]).
//!
//! Tests wait on events, never on time alone: [`wait_until`] polls for what
//! the test waits for (a log line, a metric, what the origin saw) with a
//! deadline, and [`Origin::quiet`] is the event behind "nothing was forwarded".

pub mod client;
pub mod fleet;
pub mod fresh;
pub mod gateway;
pub mod h2raw;
pub mod haproxy;
pub mod jwks_server;
pub mod origin;
pub mod pki;
pub mod prom;
pub mod redis;
pub mod ws;

pub use client::{Response, read_response, send_raw};
pub use gateway::Gateway;
pub use origin::{Origin, Reply, Seen};

use std::time::Duration;

/// The longest any single wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A port that was free on 127.0.0.1 a moment ago (the OS picked it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// Polls `done` every 10 ms until it holds, for up to [`WAIT`]; whether it did.
/// How the tests wait for an event (a log line, a metric, what the origin
/// saw) instead of sleeping and hoping it happened.
pub fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Hex SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes (xorshift), so big bodies are not all one byte.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(seed).fill(&mut out);
    out
}

/// The bytes of [`pattern`] made piece by piece: filling buffers one after
/// another gives the same bytes as one `pattern(total, seed)`, so a body
/// streamed without ever being whole in memory can still be checked.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }

    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut x = self.0;
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        self.0 = x;
    }
}

/// Runs `f` twice: on the default driver and with the epoll fallback forced.
pub fn on_both_drivers(f: impl Fn(&[(&str, &str)])) {
    f(&[]);
    f(&[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
}
