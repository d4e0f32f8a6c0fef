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
//! Envoy's V8 compiles every function of the module with its optimising
//! compiler when the module loads; what that compiler takes for a function
//! grows faster than the function, and what it frees, Envoy's allocator
//! keeps: a proxy's resident memory depends on how large the module's
//! largest functions are, not only on how much code it has. The same
//! 120 KB of code appended to the empty module measured about +23 MiB as
//! one function, +8 MiB as four and +0.5 MiB as 120 (bench/MEMORY.md,
//! section 7). So the cold code that LLVM would inline into one body
//! (configuration parsing and compiling, the body decoders, the root's
//! tick, the evidence walk) is kept in functions of its own with
//! `#[inline(never)]`, and tests/e2e/test_module_size.py holds the built
//! module's largest function under a bound. The data path is left as the
//! optimiser builds it. For the same reason the module is built at
//! opt-level "s" with opt-level 2's inliner threshold (Cargo.toml,
//! .cargo/config.toml; bench/MEMORY.md, section 8): every function as small
//! as "s" makes it, the data path's small calls still inlined.

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
