//! parallel-run: the proxy-wasm glue.
//!
//! The decisions live in `parallel_run_core`; this crate only moves data
//! between Envoy and the core. Every hostcall result is handled: a panic in
//! the VM would turn into client errors.
//!
//! Who does what:
//! - [`stream::Stream`] (one per request) routes the request, copies the
//!   request and the serving response while they stream, and hands them on.
//! - [`root::Root`] (one per worker and configuration) owns the plan, makes
//!   the shadow calls and receives their responses, so a comparison
//!   completes even when the client was answered long before.
//! - [`worker::Worker`] (thread-local, one per VM) connects the two: the
//!   ledger of open exchanges and the outbox of shadow calls to make.

mod accounting;
mod diff_paths;
mod metrics;
mod noise;
mod root;
mod shared_data;
mod stream;
mod wake;
mod worker;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::default())
    });
}}
