//! parallel-run: the proxy-wasm glue.
//!
//! The decisions live in `parallel_run_core`; this crate reads from Envoy,
//! asks the core, and writes back. Every hostcall goes through [`host`], so
//! the glue is unit-tested against a fake host, and none of them may panic:
//! a panic in the VM would turn into client errors.
//!
//! The data path, in the order a request walks it:
//! - [`stream::Stream`] (one per request) routes the request, decides
//!   whether it is shadowed, and copies the request and the serving
//!   response into the request's exchange while they stream;
//! - [`root::Root`] (one per VM and configuration) makes the exchange's
//!   calls and receives their replies, so that a comparison completes even
//!   when the client was answered long before;
//! - [`record`] judges the settled exchange (in the core) and counts it;
//!   [`evidence`] records a sample of what differed, and the root posts
//!   the records to a collector.
//!
//! [`vm::Vm`] is what the streams and roots of one VM share: the open
//! exchanges, the work waiting for the root, metric handles, noise counts,
//! admitted diff paths.
//!
//! # Function size
//!
//! The core's rule ([`parallel_run_core`]'s crate doc, "Function size")
//! holds here too: Envoy's V8 compiles every function when the module
//! loads, and what that costs grows faster than the function, so the glue's
//! cold code (each part of the root's tick: a configuration's compile
//! slice, a retired root's last calls, the breakers, the diff-path sweep,
//! the evidence post, the noise sync, the readiness tick) is kept in functions
//! of its own with `#[inline(never)]`. The per-request callbacks are left as
//! the optimiser builds them.

mod diff_paths;
mod evidence;
mod host;
mod metrics;
mod noise;
mod readiness;
mod record;
mod root;
mod stream;
mod vm;
mod wake;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    /// The one piece of per-VM state: a VM is one thread, and every root
    /// context it creates shares it.
    static VM: Rc<RefCell<vm::Vm>> = Rc::default();
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::new(host::Proxy, VM.with(Rc::clone)))
    });
}}
