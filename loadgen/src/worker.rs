//! One worker thread: a monoio runtime owning its share of the connections
//! (see `connection.rs` for each connection's loop). All counting goes into
//! the worker's own [`Tally`]: no atomics except progress and `-n` tokens.

use std::rc::Rc;
use std::sync::Arc;

use crate::connection::Connection;
use crate::plan::{Plan, StartLine};
use crate::recorder::Recorder;
use crate::report::Tally;
use crate::transport::Stream;

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 4096;

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
            let _ = start.wait();
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

/// Starts one connection's task. A connection gets the worker's
/// [`Recorder`] (for everything it counts), its global index (which picks
/// its target and its open-loop offset) and, maybe, a stream opened before
/// the start line. Every protocol shares the connection loop (connect,
/// watchdog, retries, `-n` tokens); `Connection::cycle` runs the session
/// of the run's [`Protocol`](crate::plan::Protocol) on each connection it opens.
fn spawn_connection(
    recorder: Rc<Recorder>,
    global: usize,
    ready: Option<Stream>,
) -> monoio::task::JoinHandle<()> {
    monoio::spawn(Connection::new(recorder, global, ready).run())
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
    let Some(phases) = start.wait() else {
        return Tally::new(plan.mix_lines);
    };
    let recorder = Rc::new(Recorder::new(plan.clone(), index, phases));
    let mut tasks = Vec::new();
    for (global, stream) in globals.into_iter().zip(ready) {
        tasks.push(spawn_connection(recorder.clone(), global, stream));
    }
    for task in tasks {
        task.await;
    }
    match Rc::try_unwrap(recorder) {
        Ok(recorder) => recorder.into_tally(),
        // Unreachable: every task holding a clone has ended.
        Err(_) => Tally::new(plan.mix_lines),
    }
}
