//! Deadlines of a connection's operations on one timer per busy task.
//!
//! Every read and write on the request path has a deadline (the header
//! timeout, the upstream's response timeout, the body idle limit). With one
//! monoio `Sleep` per operation, a keep-alive request built, registered,
//! polled and cancelled four timer entries, about an eighth of the
//! gateway's instructions in user space, and each entry (384 bytes, padded
//! to cache lines) sat inside the operation's future, where it was moved
//! when the future was built.
//!
//! Here an operation is wrapped in [`Timed`], which holds only its
//! deadline. When it is left waiting, it reports that deadline to the task
//! being polled ([`Scope`]); after the poll the task arms one timer for the
//! earliest deadline reported. The timer comes from its worker's pool while
//! the task has an operation with a deadline, and goes back as soon as it
//! has none (an idle keep-alive connection holds no timer). A timer armed
//! earlier than the deadline asked for is left alone: it fires early at
//! worst, and the task, woken once for nothing, arms it again; only a
//! deadline earlier than the armed one moves the entry in monoio's wheel.
//! The pool belongs to a worker (one runtime): an entry stays bound to the
//! timer wheel it was made in.
//!
//! Semantics are those of `monoio::time::timeout_at`: the operation is
//! polled first; once the clock has reached the deadline a waiting
//! operation is dropped (cancelled) and [`Elapsed`] returned. A timer may
//! fire for a deadline nobody waits for any more; that wakes its task once
//! for nothing (or nobody, if the timer is back in the pool).
//!
//! Outside a [`Scope`] (tasks other than connections), a [`Timed`] keeps a
//! monoio `Sleep` of its own, allocated when it first waits.
//!
//! The one assumption: every operation a task waits on is polled whenever
//! the task is (true of `async fn` chains, `select!` and `join!`), so each
//! poll sees every deadline still pending.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

/// The deadline passed before the operation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

#[derive(Clone, Copy)]
enum Want {
    /// No scope: a [`Timed`] keeps its own timer.
    NoScope,
    /// Inside a scope; the earliest deadline reported so far, if any.
    Scoped(Option<Instant>),
}

thread_local! {
    static WANT: Cell<Want> = const { Cell::new(Want::NoScope) };
}

/// Tells the task being polled to wake by `at`. `false` outside a scope.
#[inline]
fn report(at: Instant) -> bool {
    WANT.with(|w| match w.get() {
        Want::NoScope => false,
        Want::Scoped(cur) => {
            let earliest = match cur {
                Some(c) if c <= at => c,
                _ => at,
            };
            w.set(Want::Scoped(Some(earliest)));
            true
        }
    })
}

/// `fut` with a deadline: `Err(Elapsed)` once the clock reaches `at` with
/// `fut` still waiting (it is then dropped).
pub fn timed<F: Future>(at: Instant, fut: F) -> Timed<F> {
    Timed {
        inner: fut,
        at,
        own: None,
    }
}

pin_project_lite::pin_project! {
    /// See [`timed`].
    pub struct Timed<F> {
        #[pin]
        inner: F,
        at: Instant,
        // Only outside a scope, allocated at the first wait.
        own: Option<Pin<Box<monoio::time::Sleep>>>,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if crate::clock::now() >= *this.at {
            return Poll::Ready(Err(Elapsed));
        }
        if report(*this.at) {
            return Poll::Pending;
        }
        let at = monoio::time::Instant::from_std(*this.at);
        let own = this
            .own
            .get_or_insert_with(|| Box::pin(monoio::time::sleep_until(at)));
        match own.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Marks one poll of a task whose [`Timed`] operations report to it.
/// [`Scope::end`] gives the earliest deadline reported; dropping the scope
/// (also while unwinding) restores what was there before.
pub struct Scope(Want);

impl Scope {
    #[inline]
    pub fn enter() -> Scope {
        Scope(WANT.with(|w| w.replace(Want::Scoped(None))))
    }

    /// The earliest deadline reported in this poll.
    #[inline]
    pub fn end(self) -> Option<Instant> {
        match WANT.with(|w| w.get()) {
            Want::Scoped(at) => at,
            Want::NoScope => None,
        }
        // `self` drops here and restores the outer state.
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        WANT.with(|w| w.set(self.0));
    }
}

/// A pooled timer: a monoio `Sleep` that wakes whichever task holds it.
struct Timer {
    sleep: RefCell<Pin<Box<monoio::time::Sleep>>>,
    /// The deadline it is armed for; `None` once fired (or never armed).
    armed: Cell<Option<Instant>>,
    /// The holding task's waker.
    owner: Cell<Option<Waker>>,
    /// Given to the `Sleep`, which keeps the first waker it sees: it wakes
    /// `owner`, so the entry can pass from task to task.
    forward: Waker,
}

impl Timer {
    fn new() -> Rc<Timer> {
        Rc::new_cyclic(|weak: &Weak<Timer>| Timer {
            // Registered only when first armed.
            sleep: RefCell::new(Box::pin(monoio::time::sleep_until(
                monoio::time::Instant::now(),
            ))),
            armed: Cell::new(None),
            owner: Cell::new(None),
            forward: forwarding_waker(weak.clone()),
        })
    }

    fn wake_owner(&self) {
        let owner = self.owner.take();
        if let Some(w) = &owner {
            w.wake_by_ref();
        }
        self.owner.set(owner);
    }
}

/// Spare timers kept per worker; more are dropped (cancelled) on return.
const KEEP: usize = 1024;

/// A worker's spare timers (most recently returned first).
#[derive(Default)]
pub struct Timers {
    free: RefCell<Vec<Rc<Timer>>>,
}

impl Timers {
    /// Timers kept for reuse.
    pub fn pooled(&self) -> usize {
        self.free.borrow().len()
    }
}

/// The timer a task holds while it waits on an operation with a deadline
/// (24 bytes in the task when it holds none). Dropped without
/// [`Lease::release`], the timer is dropped too (cancelled).
#[derive(Default)]
pub struct Lease {
    timer: Option<Rc<Timer>>,
    /// What the held timer was last armed for, as seen here. A copy of
    /// `Timer::armed`, kept in the task so that the usual poll (a timer
    /// already armed earlier than asked, not yet due) reads nothing else:
    /// with hundreds of busy connections the timer itself is rarely in cache.
    /// `Some` only while a timer is held.
    armed: Option<Instant>,
}

impl Lease {
    /// After a poll that left the task waiting: arms the timer for `at`
    /// (taking one from `pool` if needed), or gives it back if the task
    /// waits on nothing with a deadline.
    pub fn arm(&mut self, pool: &Timers, at: Option<Instant>, cx: &mut Context<'_>) {
        let Some(at) = at else {
            self.release(pool);
            return;
        };
        // Armed no later than `at` and not yet due: it cannot have fired
        // (monoio fires an entry only once its clock has passed the
        // deadline, and this poll's clock was read after any firing that
        // woke it), so nothing is to be done.
        if let Some(a) = self.armed
            && a <= at
            && crate::clock::now() < a
        {
            return;
        }
        self.arm_slow(pool, at, cx);
        self.armed = self.timer.as_ref().and_then(|t| t.armed.get());
    }

    /// [`Lease::arm`] when the timer must be looked at: none held yet, due
    /// or fired, or armed later than `at`.
    #[cold]
    fn arm_slow(&mut self, pool: &Timers, at: Instant, cx: &mut Context<'_>) {
        let t = self
            .timer
            .get_or_insert_with(|| pool.free.borrow_mut().pop().unwrap_or_else(Timer::new));
        let owner = t.owner.take();
        match owner {
            Some(w) if w.will_wake(cx.waker()) => t.owner.set(Some(w)),
            _ => t.owner.set(Some(cx.waker().clone())),
        }
        let mut sleep = t.sleep.borrow_mut();
        // Armed no later than `at` and not fired: nothing to do. It may
        // fire before `at` (for an operation that finished since); that
        // wakes the task once, and the next arm moves it on. Pushing the
        // entry back on every poll would cost a conversion to monoio's
        // ticks each time, for nothing in the usual case (operations end
        // long before their deadlines).
        if matches!(t.armed.get(), Some(a) if a <= at) && !sleep.is_elapsed() {
            return;
        }
        sleep.as_mut().reset(monoio::time::Instant::from_std(at));
        t.armed.set(Some(at));
        // Hands the `Sleep` the forwarding waker (it keeps the first it is
        // given until it fires).
        let mut fwd = Context::from_waker(&t.forward);
        if sleep.as_mut().poll(&mut fwd).is_ready() {
            // Already due (the poll ran past it): poll the task again so the
            // operation sees its deadline; the next arm re-registers.
            t.armed.set(None);
            cx.waker().wake_by_ref();
        }
    }

    /// Gives the timer back to `pool`, armed as it is (if it fires there,
    /// it wakes no one).
    pub fn release(&mut self, pool: &Timers) {
        self.armed = None;
        if let Some(t) = self.timer.take() {
            t.owner.set(None);
            let mut free = pool.free.borrow_mut();
            if free.len() < KEEP {
                free.push(t);
            }
        }
    }
}

/// Polls a task's body (`poll`) in a [`Scope`], then arms `lease` for the
/// earliest deadline its operations reported, or gives the timer back if
/// the task finished or waits on nothing with a deadline.
#[inline]
pub fn poll_scoped<T>(
    pool: &Timers,
    lease: &mut Lease,
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let scope = Scope::enter();
    let r = poll(cx);
    let at = scope.end();
    match r {
        Poll::Pending => lease.arm(pool, at, cx),
        Poll::Ready(_) => lease.release(pool),
    }
    r
}

pin_project_lite::pin_project! {
    /// A task body whose [`Timed`] operations share one pooled timer.
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        lease: Lease,
        pool: Rc<Timers>,
    }
}

/// Runs `f` with its deadlines on one timer from `pool` (see [`Scoped`]).
pub fn scoped<F: Future>(pool: Rc<Timers>, f: F) -> Scoped<F> {
    Scoped {
        inner: f,
        lease: Lease::default(),
        pool,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        poll_scoped(this.pool, this.lease, cx, |cx| inner.poll(cx))
    }
}

// The forwarding waker: its data is a `Weak<Timer>` (the timer owns the
// `Sleep` that keeps this waker, so a strong count would never drop). Like
// every waker of monoio's single-threaded runtime, it is used only on the
// thread that made it.
static VTABLE: RawWakerVTable = RawWakerVTable::new(fw_clone, fw_wake, fw_wake_by_ref, fw_drop);

fn forwarding_waker(t: Weak<Timer>) -> Waker {
    let raw = RawWaker::new(Weak::into_raw(t).cast(), &VTABLE);
    // SAFETY: the vtable's functions treat the data as the `Weak<Timer>`
    // made here, cloned and dropped through `Weak`'s own counts.
    unsafe { Waker::from_raw(raw) }
}

unsafe fn fw_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` is a live `Weak<Timer>` (see `forwarding_waker`); the
    // ManuallyDrop keeps this call from releasing it.
    let w = std::mem::ManuallyDrop::new(unsafe { Weak::from_raw(p.cast::<Timer>()) });
    RawWaker::new(Weak::into_raw(Weak::clone(&w)).cast(), &VTABLE)
}

unsafe fn fw_wake(p: *const ()) {
    // SAFETY: as in `fw_clone`; this call consumes the waker.
    let w = unsafe { Weak::from_raw(p.cast::<Timer>()) };
    if let Some(t) = w.upgrade() {
        t.wake_owner();
    }
}

unsafe fn fw_wake_by_ref(p: *const ()) {
    // SAFETY: as in `fw_clone`.
    let w = std::mem::ManuallyDrop::new(unsafe { Weak::from_raw(p.cast::<Timer>()) });
    if let Some(t) = w.upgrade() {
        t.wake_owner();
    }
}

unsafe fn fw_drop(p: *const ()) {
    // SAFETY: as in `fw_clone`; this releases the waker's count.
    drop(unsafe { Weak::from_raw(p.cast::<Timer>()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    thread_local! {
        static POOL: Rc<Timers> = Rc::new(Timers::default());
    }

    fn scoped<F: Future>(f: F) -> Scoped<F> {
        super::scoped(POOL.with(Rc::clone), f)
    }

    fn pooled() -> usize {
        POOL.with(|p| p.pooled())
    }

    #[test]
    fn a_waiting_operation_times_out_at_its_deadline_in_and_out_of_a_scope() {
        rt().block_on(async {
            for in_scope in [false, true] {
                let t0 = Instant::now();
                let wait = timed(t0 + Duration::from_millis(30), std::future::pending::<()>());
                let r = if in_scope {
                    scoped(wait).await
                } else {
                    wait.await
                };
                assert_eq!(r, Err(Elapsed));
                let took = t0.elapsed();
                assert!(took >= Duration::from_millis(30), "fired early: {took:?}");
            }
        });
    }

    #[test]
    fn a_finished_operation_wins_and_the_earliest_of_two_deadlines_fires() {
        rt().block_on(async {
            let t0 = Instant::now();
            let quick = timed(
                t0 + Duration::from_secs(5),
                monoio::time::sleep(Duration::from_millis(5)),
            );
            assert_eq!(scoped(quick).await, Ok(()));
            // Two operations waiting in one task: the later deadline is
            // reported first, the earlier one must still fire on time.
            let both = scoped(async {
                let late = timed(t0 + Duration::from_secs(30), std::future::pending::<()>());
                let soon = timed(t0 + Duration::from_millis(40), std::future::pending::<()>());
                monoio::select! {
                    r = late => ("late", r),
                    r = soon => ("soon", r),
                }
            });
            let (which, r) = both.await;
            assert_eq!((which, r), ("soon", Err(Elapsed)));
            assert!(t0.elapsed() >= Duration::from_millis(40));
        });
    }

    #[test]
    fn a_later_deadline_still_fires_after_the_timer_fired_for_a_finished_one() {
        rt().block_on(async {
            // One task: an operation with a near deadline finishes well
            // before it, then one with a later deadline waits. The timer
            // stays armed for the near deadline (the usual poll does not
            // touch it), fires for nothing, and must then be re-armed for
            // the later one.
            let t0 = Instant::now();
            // A task of its own: the bound below must not wake it.
            let r = monoio::spawn(scoped(async move {
                let first = timed(
                    t0 + Duration::from_millis(30),
                    monoio::time::sleep(Duration::from_millis(1)),
                )
                .await;
                assert_eq!(first, Ok(()));
                timed(t0 + Duration::from_millis(80), std::future::pending::<()>()).await
            }));
            // Bounded: a missed re-arm would leave the task asleep for good.
            let r = monoio::time::timeout(Duration::from_secs(10), r).await;
            assert_eq!(r, Ok(Err(Elapsed)), "the later deadline never fired");
            assert!(t0.elapsed() >= Duration::from_millis(80), "fired early");
        });
    }

    #[test]
    fn a_timer_passes_between_tasks_and_wakes_its_current_holder() {
        rt().block_on(async {
            // Task A waits with a far deadline, then finishes: its timer
            // goes back to the pool, armed far away.
            let t0 = Instant::now();
            let a = scoped(async {
                let _ = timed(
                    t0 + Duration::from_secs(60),
                    monoio::time::sleep(Duration::from_millis(2)),
                )
                .await;
            });
            a.await;
            assert_eq!(pooled(), 1);
            // Task B (another task, so another waker) takes the same timer
            // and must be woken at its own, earlier deadline.
            let b = monoio::spawn(scoped(async move {
                timed(t0 + Duration::from_millis(50), std::future::pending::<()>()).await
            }));
            // Bounded: had the entry kept A's waker, B would never wake.
            let b = monoio::time::timeout(Duration::from_secs(10), b).await;
            assert_eq!(b, Ok(Err(Elapsed)), "B was not woken at its deadline");
            assert!(t0.elapsed() >= Duration::from_millis(50));
            assert_eq!(pooled(), 1, "B used the pooled timer and gave it back");
        });
    }

    #[test]
    fn a_task_waiting_without_a_deadline_holds_no_timer() {
        rt().block_on(async {
            let (tx, rx) = local_channel();
            let t = monoio::spawn(scoped(async move {
                // First an operation with a deadline, then a wait without.
                let _ = timed(
                    Instant::now() + Duration::from_secs(60),
                    monoio::time::sleep(Duration::from_millis(2)),
                )
                .await;
                rx.await
            }));
            // The pool regains the timer once the task waits on `rx` alone.
            for _ in 0..1000 {
                if pooled() == 1 {
                    break;
                }
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(pooled(), 1);
            tx.send();
            t.await;
        });
    }

    /// A one-shot signal between two tasks of one thread.
    fn local_channel() -> (Tx, Rx) {
        let s = Rc::new((Cell::new(false), Cell::new(None::<Waker>)));
        (Tx(s.clone()), Rx(s))
    }
    struct Tx(Rc<(Cell<bool>, Cell<Option<Waker>>)>);
    struct Rx(Rc<(Cell<bool>, Cell<Option<Waker>>)>);
    impl Tx {
        fn send(self) {
            self.0.0.set(true);
            if let Some(w) = self.0.1.take() {
                w.wake();
            }
        }
    }
    impl Future for Rx {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0.0.get() {
                Poll::Ready(())
            } else {
                self.0.1.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}
