//! State shared by the root and the streams of one VM (one worker thread).
//!
//! The stock SDK delivers a callout's response to the context that made the
//! call, and drops it if that context is gone. A stream's context dies with
//! the client's request, usually before a slow shadow answers, so streams do
//! not call out themselves: they put the shadow call in the outbox and wake
//! the root through a shared queue; the root dispatches and owns the call.

use std::cell::RefCell;
use std::rc::Rc;

use parallel_run_core::ledger::{ExchangeId, Ledger, Settled};
use parallel_run_core::Plan;
use proxy_wasm::hostcalls;

use crate::metrics::Metrics;

/// A plan and its counters: what a configuration push replaces, whole.
pub struct Runtime {
    pub plan: Plan,
    pub metrics: Metrics,
}

/// What an exchange needs to be judged and counted, even after its stream
/// and the plan that started it are gone.
pub struct Tag {
    pub runtime: Rc<Runtime>,
    pub operation: usize,
    pub request_id: String,
    pub kind: Kind,
}

/// What the second response of an exchange is compared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The other backend's answer: the parallel run itself, counted.
    Shadow,
    /// The serving backend's second answer to the same request: what
    /// differs is noise (learned, not counted as an outcome).
    Noise,
}

/// A shadow call waiting for the root to make it.
pub struct Outgoing {
    pub exchange: ExchangeId,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

#[derive(Default)]
pub struct Worker {
    pub ledger: Ledger<Tag>,
    pub outbox: Vec<Outgoing>,
    /// Exchanges completed by a stream, judged later by the root so that the
    /// comparison never runs on the client's path.
    pub settled: Vec<Settled<Tag>>,
    /// The queue this VM's current root listens on.
    pub wake_queue: Option<u32>,
    pub wake_sent: bool,
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// Runs `f` on this VM's worker state. `f` must not call back into code
/// that borrows it again; hostcalls that do not re-enter the VM are fine.
pub fn with<R>(f: impl FnOnce(&mut Worker) -> R) -> R {
    WORKER.with(|worker| f(&mut worker.borrow_mut()))
}

impl Worker {
    /// Wakes the root, once until it has run: a busy worker sends one queue
    /// message per batch, not one per request.
    pub fn wake_root(&mut self) {
        if self.wake_sent {
            return;
        }
        if let Some(queue) = self.wake_queue {
            if hostcalls::enqueue_shared_queue(queue, Some(b"w")).is_ok() {
                self.wake_sent = true;
            }
        }
        // Without a queue the root's tick drains the outbox instead.
    }

    /// Takes the work waiting for the root.
    pub fn take_work(&mut self) -> (Vec<Outgoing>, Vec<Settled<Tag>>) {
        self.wake_sent = false;
        (std::mem::take(&mut self.outbox), std::mem::take(&mut self.settled))
    }
}
