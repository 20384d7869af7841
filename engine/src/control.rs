//! What the control side (the main thread, the signal thread, the admin
//! thread) and the workers share: the drain flag, the current config
//! snapshot and its generation, reload counters, and listener changes a
//! reload hands to each worker. Workers read it every few ms, never per
//! request. See CONTROL.md beside this file for the whole control flow.

use crate::snapshot::Snapshot;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

/// State every thread may read, checked by each worker every few ms, never per request.
pub struct Shared {
    pub draining: AtomicBool,
    /// Bumped after a successful reload has stored a new snapshot in `config`.
    pub generation: AtomicU64,
    pub config: Mutex<Arc<Snapshot>>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Per worker: listeners a reload opened or closed, picked up with the new generation.
    pub listener_changes: Mutex<Vec<Vec<ListenerChange>>>,
}

/// A listener change for one worker.
pub enum ListenerChange {
    /// A new listener, its TLS certificates, and what its connections
    /// start with (PROXY protocol header, HTTP/2 prior knowledge).
    Add(
        std::net::TcpListener,
        Option<Arc<ringway_tls::ServerTls>>,
        crate::snapshot::ListenMode,
    ),
    /// Stop the accept loop of the listener bound to this address.
    Remove(SocketAddr),
}

impl Shared {
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let workers = snapshot.workers;
        Shared {
            draining: AtomicBool::new(false),
            generation: AtomicU64::new(snapshot.generation),
            config: Mutex::new(snapshot),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            listener_changes: Mutex::new((0..workers).map(|_| Vec::new()).collect()),
        }
    }

    /// The latest snapshot (a lock taken only when the generation changed).
    pub fn latest(&self) -> Arc<Snapshot> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the listener changes queued for `worker` by the last reloads.
    pub fn take_listener_changes(&self, worker: usize) -> Vec<ListenerChange> {
        let mut queues = self
            .listener_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        queues
            .get_mut(worker)
            .map(std::mem::take)
            .unwrap_or_default()
    }
}
