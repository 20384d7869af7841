//! Catching panics of connection tasks. monoio polls tasks without
//! `catch_unwind`, so an uncaught panic would unwind through the scheduler
//! and take down every connection on the core.

use std::any::Any;
use std::future::Future;
use std::ops::DerefMut;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that turns a panic while polling the future behind `P` into
/// `Err(payload)`: boxed (`new`), or pinned where the caller keeps it
/// (`pinned`, no allocation).
pub struct CatchUnwind<P> {
    inner: Pin<P>,
}

impl<F: Future> CatchUnwind<Box<F>> {
    pub fn new(f: F) -> Self {
        CatchUnwind { inner: Box::pin(f) }
    }
}

impl<'a, F: Future> CatchUnwind<&'a mut F> {
    pub fn pinned(f: Pin<&'a mut F>) -> Self {
        CatchUnwind { inner: f }
    }
}

impl<P> Future for CatchUnwind<P>
where
    P: DerefMut + Unpin,
    P::Target: Future,
{
    type Output = Result<<P::Target as Future>::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().inner;
        // The connection future owns everything it touches except the
        // worker's cells, which hold no invariant that a half-finished
        // request could break: asserting unwind safety is sound here.
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The message of a panic payload, for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
