//! Waking this VM's root from a stream, through a shared queue.
//!
//! The stock SDK delivers a callout's reply to the context that made the
//! call and drops it when that context is gone. A stream's context dies with
//! the client's request, usually before a slow shadow answers, so streams
//! never call out: they leave the work in the VM and wake the root, which
//! makes the calls and so receives the replies.
//!
//! Queue names are per VM (a queue wakes the root of the VM that registered
//! it), and each VM registers its one name again for every new root, which
//! moves the queue to that root instead of leaking a registration per
//! configuration push.

use crate::host::Host;

const SEQUENCE_KEY: &str = "parallel_run.vm_sequence";

#[derive(Default)]
pub struct Wake {
    /// A number no other VM of this plugin holds.
    vm_number: Option<u64>,
    /// The queue this VM's current root listens on.
    queue: Option<u32>,
    /// A wake-up is on its way: a busy worker sends one per batch of work,
    /// not one per request.
    sent: bool,
}

impl Wake {
    /// Makes the current root the one this VM's streams wake.
    pub fn listen(&mut self, host: &impl Host) {
        if self.vm_number.is_none() {
            self.vm_number = vm_number(host);
        }
        self.queue = self
            .vm_number
            .and_then(|n| host.register_queue(&format!("parallel_run.wake.{n}")));
        if self.queue.is_none() {
            host.log(
                log::Level::Warn,
                "parallel-run: no wake queue; shadow calls go out on the next tick instead",
            );
        }
        // A wake-up sent to the previous root may never be delivered.
        self.sent = false;
    }

    /// Wakes the root, once until it has run. Without a queue the root's
    /// tick does the work instead.
    pub fn root(&mut self, host: &impl Host) {
        if self.sent {
            return;
        }
        if let Some(queue) = self.queue {
            // The wake-up carries no bytes: the root's dequeue then has
            // nothing to hand back, and Envoy skips the call into the VM
            // that allocates a buffer for it. A one-byte message cost a
            // shadowed request 7,700 to 8,400 instructions more (1.6-1.8%,
            // two runs of `python -m bench.instructions --mode shadow`,
            // bench/OPTIMISATIONS.md, session 28).
            self.sent = host.enqueue(queue, &[]);
        }
    }

    /// The root runs now: take this wake-up off the queue. Streams enqueue
    /// at most one until the root has run, and every enqueue gets its own
    /// callback, so one dequeue per callback keeps the queue empty.
    pub fn taken(&mut self, host: &impl Host, queue: u32) {
        host.dequeue(queue);
        self.sent = false;
    }

    /// This VM's number: 1 for the first VM of the plugin, which is Envoy's
    /// main-thread VM (it is configured before any worker VM exists).
    pub fn vm_number(&self) -> Option<u64> {
        self.vm_number
    }

    /// The root runs from its tick: the next stream must wake it again.
    pub fn reset(&mut self) {
        self.sent = false;
    }
}

/// The next number of a counter in shared data. Envoy starts the
/// main-thread VM, which creates the key, before any worker VM exists.
fn vm_number(host: &impl Host) -> Option<u64> {
    // Workers start together and race for the counter: a generous number
    // of rounds of `update`'s own retries.
    (0..8).find_map(|_| {
        host.update(SEQUENCE_KEY, |value| {
            let current: u64 = value
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            let next = current.saturating_add(1);
            (Some(next.to_string().into_bytes()), next)
        })
    })
}
