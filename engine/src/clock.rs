//! The request path's clock: one read per poll of a connection's task.
//!
//! A keep-alive request used to read the monotonic clock about 16 times
//! (deadlines for each read and write, the pool's idle stamps, the latency
//! stamps, the idle registration), 2–3% of the gateway's CPU under load.
//! Nothing in one poll of a task waits: the poll runs from one wakeup to the
//! next `Pending` in a few microseconds, so every stamp taken inside it can be
//! the same instant — the moment the task was woken, which is when the event
//! it handles (a completed read or write) was seen. [`Polling`] marks such a
//! poll; inside it [`now`] reads the clock the first time it is asked and
//! hands back that reading afterwards. Outside one it reads the clock every
//! time, so background tasks and other threads see no difference.
//!
//! Deadlines made from the cached instant fall early by at most the time the
//! poll has run so far, never late; a latency measured between two polls
//! spans the two wakeups.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum State {
    /// Not inside a marked poll: every call reads the clock.
    Off,
    /// Inside one, not read yet.
    Unread,
    /// Inside one, read at this instant.
    Read(Instant),
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State::Off) };
}

/// Now: the cached instant inside a [`Polling`] scope, else the clock.
#[inline]
pub fn now() -> Instant {
    STATE.with(|s| match s.get() {
        State::Read(t) => t,
        State::Unread => {
            let t = Instant::now();
            s.set(State::Read(t));
            t
        }
        State::Off => Instant::now(),
    })
}

/// Time since `t` by [`now`] (zero if `t` is later): `Instant::elapsed`
/// on this clock.
#[inline]
pub fn elapsed(t: Instant) -> Duration {
    now().saturating_duration_since(t)
}

/// Marks one poll of a task: while it lives, [`now`] reads the clock at
/// most once. Restores what was there before when dropped (also when the
/// poll unwinds).
pub struct Polling(State);

impl Polling {
    #[inline]
    pub fn enter() -> Polling {
        Polling(STATE.with(|s| s.replace(State::Unread)))
    }
}

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        STATE.with(|s| s.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_is_off() -> bool {
        STATE.with(|s| matches!(s.get(), State::Off))
    }

    #[test]
    fn one_reading_inside_a_poll_fresh_ones_outside() {
        let outside = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > outside, "outside a poll every call reads the clock");
        {
            let _p = Polling::enter();
            let first = now();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(now(), first, "inside a poll the first reading is kept");
            assert!(first > outside);
        }
        assert!(state_is_off());
        let after = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > after);
    }

    #[test]
    fn nested_polls_restore_the_outer_reading_and_unwinding_restores_off() {
        {
            let _outer = Polling::enter();
            let a = now();
            {
                let _inner = Polling::enter();
                std::thread::sleep(Duration::from_millis(2));
                assert!(now() > a, "an inner poll takes its own reading");
            }
            assert_eq!(now(), a);
        }
        let caught = std::panic::catch_unwind(|| {
            let _p = Polling::enter();
            let _ = now();
            panic!("inside a poll");
        });
        assert!(caught.is_err());
        assert!(
            state_is_off(),
            "the guard restored the state while unwinding"
        );
    }
}
