//! One worker thread: a monoio runtime owning its share of the connections
//! (see `connection.rs` for each connection's loop). All counting goes into
//! the worker's own [`Tally`]: no atomics except progress and `-n` tokens.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use crate::connection::Connection;
use crate::report::Tally;
use crate::schedule::{Abort, Budget, Phases};
use crate::transport::Connector;

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 4096;

/// One target as the workers see it.
pub(crate) struct TargetPlan {
    pub connector: Connector,
    /// `pipeline` copies of the request, back to back, built once.
    pub requests: Vec<u8>,
    /// Length of one request inside `requests`.
    pub request_len: usize,
    /// The method is HEAD (responses carry no body).
    pub head: bool,
    /// `--h2`/`--h2c`: what each HTTP/2 stream sends (`requests` is then unused).
    pub h2: Option<crate::h2::H2Request>,
}

/// Progress counters of one worker, read by the control thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// Everything the workers share, read-only except the atomics.
pub(crate) struct Plan {
    pub targets: Vec<TargetPlan>,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    /// HTTP/2: concurrent streams per connection.
    pub streams: usize,
    pub keepalive: bool,
    pub timeout: Duration,
    pub rate: Option<f64>,
    pub budget: Option<Budget>,
    pub abort: Abort,
    pub live: Vec<Live>,
}

/// Start-up rendezvous: every worker builds its runtime, then waits; the
/// control thread fixes the clock; then all start together.
pub(crate) struct StartLine {
    pub barrier: Barrier,
    pub phases: OnceLock<Phases>,
}

impl StartLine {
    fn wait(&self) -> Phases {
        self.barrier.wait();
        self.barrier.wait();
        *self
            .phases
            .get()
            .expect("control thread sets the phases between the two waits")
    }
}

/// Body of a worker thread.
pub(crate) fn run_worker(
    plan: Arc<Plan>,
    index: usize,
    core: Option<core_affinity::CoreId>,
    start: Arc<StartLine>,
) -> anyhow::Result<Tally> {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    if monoio::utils::detect_uring() {
        // Cooperative, deferred task running saves the kernel an interrupt
        // and a context switch per completion (~20% less CPU per request,
        // measured); older kernels reject the flags, so step down.
        for flags in [
            RingFlags::Deferred,
            RingFlags::Cooperative,
            RingFlags::Plain,
        ] {
            let built = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(flags.builder())
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build();
            if let Ok(mut rt) = built {
                return Ok(rt.block_on(worker_main(plan, index, start)));
            }
        }
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut rt) => Ok(rt.block_on(worker_main(plan, index, start))),
        Err(e) => {
            start.wait();
            Err(anyhow::anyhow!(
                "worker {index}: cannot build the monoio runtime: {e}"
            ))
        }
    }
}

/// io_uring setup flags, from the most to the least demanding kernel.
#[derive(Debug, Clone, Copy)]
enum RingFlags {
    /// COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN (Linux 6.1+).
    Deferred,
    /// COOP_TASKRUN (Linux 5.19+).
    Cooperative,
    Plain,
}

impl RingFlags {
    fn builder(self) -> io_uring::Builder {
        let mut ring = io_uring::IoUring::builder();
        match self {
            RingFlags::Deferred => {
                ring.setup_coop_taskrun()
                    .setup_single_issuer()
                    .setup_defer_taskrun();
            }
            RingFlags::Cooperative => {
                ring.setup_coop_taskrun();
            }
            RingFlags::Plain => {}
        }
        ring
    }
}

/// State shared by the connections of one worker.
pub(crate) struct Worker {
    pub plan: Arc<Plan>,
    pub index: usize,
    pub phases: Phases,
    pub tally: RefCell<Tally>,
}

async fn worker_main(plan: Arc<Plan>, index: usize, start: Arc<StartLine>) -> Tally {
    // Connect before the start line, so connection setup is neither in the
    // first latencies nor in the measured time. A failed attempt is simply
    // retried (and counted) by the connection's own loop.
    let globals: Vec<usize> = (index..plan.connections).step_by(plan.threads).collect();
    let wanted = match &plan.budget {
        Some(budget) => budget.total(),
        None => u64::MAX,
    };
    let mut connecting = Vec::with_capacity(globals.len());
    for &global in &globals {
        let target = &plan.targets[global % plan.targets.len()];
        let connector = target.connector.clone();
        let timeout = plan.timeout;
        let wanted = (global as u64) < wanted;
        connecting.push(monoio::spawn(async move {
            if !wanted {
                return None;
            }
            monoio::time::timeout(timeout, connector.connect())
                .await
                .ok()?
                .ok()
        }));
    }
    let mut ready = Vec::with_capacity(globals.len());
    for attempt in connecting {
        ready.push(attempt.await);
    }
    let phases = start.wait();
    let worker = Rc::new(Worker {
        plan: plan.clone(),
        index,
        phases,
        tally: RefCell::new(Tally::new()),
    });
    let mut tasks = Vec::new();
    for (global, stream) in globals.into_iter().zip(ready) {
        let conn = Connection::new(worker.clone(), global, stream);
        tasks.push(monoio::spawn(conn.run()));
    }
    for task in tasks {
        task.await;
    }
    Rc::try_unwrap(worker)
        .ok()
        .expect("all connection tasks ended")
        .tally
        .into_inner()
}
