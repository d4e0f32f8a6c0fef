//! Waking this VM's root from a stream, through a shared queue.
//!
//! Queue names are per VM (a queue wakes the root of the VM that registered
//! it), and each VM registers its one name again for every new root, which
//! moves the queue to that root instead of leaking a registration per
//! configuration push.

use std::cell::Cell;

use proxy_wasm::hostcalls;

const SEQUENCE_KEY: &str = "parallel_run.vm_sequence";

thread_local! {
    static VM_NUMBER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A number no other VM of this plugin holds, from a counter in shared data.
fn vm_number() -> Option<u64> {
    if let Some(n) = VM_NUMBER.with(Cell::get) {
        return Some(n);
    }
    for _ in 0..64 {
        let (value, cas) = hostcalls::get_shared_data(SEQUENCE_KEY).ok()?;
        let current: u64 = value.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        let next = current + 1;
        // Without a CAS token a write is unconditional: the first writer of
        // a missing key could race. Envoy starts the main-thread VM, which
        // runs this first, before any worker VM exists.
        if hostcalls::set_shared_data(SEQUENCE_KEY, Some(next.to_string().as_bytes()), cas).is_ok() {
            VM_NUMBER.with(|n| n.set(Some(next)));
            return Some(next);
        }
    }
    None
}

/// Makes the current root the one this VM's streams wake.
pub fn listen() {
    let queue = vm_number().and_then(|n| hostcalls::register_shared_queue(&format!("parallel_run.wake.{n}")).ok());
    if queue.is_none() {
        log::warn!("parallel-run: no wake queue; shadow calls go out on the next tick instead");
    }
    crate::worker::with(|w| {
        w.wake_queue = queue;
        // A wake-up sent to the previous root may never be delivered.
        w.wake_sent = false;
    });
}

/// Takes this wake-up off the queue. Streams enqueue at most one until the
/// root has run, and every enqueue gets its own callback, so one dequeue per
/// callback keeps the queue empty.
pub fn take(queue: u32) {
    let _ = hostcalls::dequeue_shared_queue(queue);
}
