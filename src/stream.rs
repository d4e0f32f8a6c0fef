//! One client request, the start of the data path: route it, decide
//! whether it is shadowed, and copy what the comparison needs while the
//! request and the serving response stream, never holding either back.
//! The calls and the comparison happen in the root (`root.rs`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use parallel_run_core::breaker::Breaker;
use parallel_run_core::counters::{Counter, Histogram};
use parallel_run_core::exchange::ExchangeId;
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::{Response, SHADOW_MARKER_HEADER};
use parallel_run_core::plan::{Backend, Side};
use parallel_run_core::routing;
use parallel_run_core::shadow::{self, Budget, Decision, RequestFacts};
use parallel_run_core::{unknown, Plan};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::host::Host;
use crate::vm::{OperationRef, Plugin, Vm};

/// Lines about requests that matched no operation, per tick (a second) and
/// VM: a sample for `lint`, not a log of traffic the filter does not own.
const UNKNOWN_LINES_PER_TICK: u32 = 2;

pub struct Stream<H: Host> {
    host: H,
    vm: Rc<RefCell<Vm>>,
    plugin: Rc<Plugin>,
    /// The operation the request was classified as, once routed.
    operation: Option<usize>,
    /// Whether to read back where Envoy routed it ([`Stream::verify_route`]).
    verify: bool,
    /// This request's exchange, while it is shadowed and open.
    exchange: Option<ExchangeId>,
    /// When the shadowed request was complete: the serving latency starts.
    completed_at: Option<SystemTime>,
}

/// A header's value as text; empty when it is missing or not UTF-8.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    std::str::from_utf8(headers.get(name).unwrap_or_default()).unwrap_or_default()
}

impl<H: Host> Stream<H> {
    pub fn new(host: H, vm: Rc<RefCell<Vm>>, plugin: Rc<Plugin>) -> Stream<H> {
        Stream {
            host,
            vm,
            plugin,
            operation: None,
            verify: false,
            exchange: None,
            completed_at: None,
        }
    }

    /// Picks the serving backend. A request that must leave the fallback
    /// route (to legacy) gets the route header written, a client's copy
    /// overwritten and the route picked again, so that a client can never
    /// choose a backend itself.
    fn route(&self, headers: &HeaderMap, method: &str, path: &str) -> Option<usize> {
        let plan = &self.plugin.plan;
        let operation_id = plan.operation_header.as_deref().and_then(|name| headers.get(name));
        let authority = headers.get(":authority").unwrap_or_default();
        let index = plan.classify_request(method, path, authority, operation_id);
        let (backend, side) = match index.and_then(|i| plan.operation(i)) {
            Some(operation) => operation.serving(),
            None => (&plan.legacy, Side::Legacy),
        };
        // A client's route header reached the filter: the header guard is
        // not in place, and Envoy may have routed by the client's copy.
        let client_routed = headers.get(&plan.route_header).is_some();
        // Only the filter marks shadow copies: a client's marker could make
        // a service treat a real request as a shadow and skip its effects.
        if headers.get(SHADOW_MARKER_HEADER).is_some() {
            self.host.remove_request_header(SHADOW_MARKER_HEADER);
        }
        // A request the fallback route already sends where the filter
        // would is left as it is: writing the route header there changed
        // nothing but cost a hostcall, and Envoy picking the route again
        // (it does on every request-header write).
        if needs_new_route(plan, backend, client_routed) {
            self.host.set_request_header(&plan.route_header, &backend.cluster);
            if let Some(authority) = &backend.authority {
                self.host.set_request_header(":authority", authority);
            }
            self.host.clear_route_cache();
        }

        let counters = &self.plugin.counters;
        match index {
            Some(index) => {
                counters.count(&self.host, index, Counter::Requests);
                let served = match side {
                    Side::Legacy => Counter::ServedLegacy,
                    Side::Candidate => Counter::ServedCandidate,
                };
                counters.count(&self.host, index, served);
            }
            None => {
                self.plugin.count_unknown(&self.host);
                self.sample_unknown(method, path);
            }
        }
        index
    }

    /// Logs the shape of a path that matched no operation (core's
    /// [`parallel_run_core::unknown`]: known literals kept, the rest `*`),
    /// at most [`UNKNOWN_LINES_PER_TICK`] per tick and VM, for `lint`.
    fn sample_unknown(&self, method: &str, path: &str) {
        let suppressed = {
            let mut vm = self.vm.borrow_mut();
            if vm.unknown_lines >= UNKNOWN_LINES_PER_TICK {
                vm.unknown_suppressed += 1;
                return;
            }
            vm.unknown_lines += 1;
            std::mem::take(&mut vm.unknown_suppressed)
        };
        let shape = self.plugin.plan.unknown_shape(path);
        self.host
            .log(log::Level::Info, &unknown::line(method, &shape, suppressed));
    }

    /// Decides whether this request is shadowed and, if so, opens its
    /// exchange.
    fn decide(&mut self, headers: &HeaderMap, index: usize, method: &str, path: &str, end_of_stream: bool) {
        let plan = &self.plugin.plan;
        // A mode that does not shadow (legacy, candidate) stops here, before
        // the headers the decision reads and the operation's breaker, a
        // hash lookup by its id: pass-through pays for none of it.
        let Some(operation) = plan.operation(index).filter(|op| op.shadow().is_some()) else {
            return;
        };
        let request_id = headers.get("x-request-id");
        let facts = RequestFacts {
            method,
            sample_key: request_id.unwrap_or(path.as_bytes()),
            content_length: std::str::from_utf8(headers.get("content-length").unwrap_or_default())
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        };
        let mut guard = self.vm.borrow_mut();
        let vm = &mut *guard;
        let budget = Budget {
            open: vm.exchanges.open_count(),
            max_open: usize::try_from(plan.max_inflight_shadows).unwrap_or(usize::MAX),
            opened_this_second: vm.opened_this_tick,
            per_second: plan.max_shadows_per_second,
        };
        let breaker = operation.settings.circuit_breaker.map(|settings| {
            let breaker = vm
                .breakers
                .entry_ref(operation.id.as_str())
                .or_insert_with(|| Breaker::new(settings));
            if *breaker.settings() != settings {
                *breaker = Breaker::new(settings);
            }
            breaker
        });
        let repeat = match shadow::decide(operation, facts, budget, breaker) {
            Decision::Off => return,
            Decision::Skip(counter) => {
                self.plugin.counters.count(&self.host, index, counter);
                return;
            }
            Decision::Shadow { repeat } => repeat,
        };
        let outgoing = match shadow::outgoing(operation, headers, &plan.route_header, repeat) {
            Some(Ok(outgoing)) => outgoing,
            Some(Err(counter)) => {
                self.plugin.counters.count(&self.host, index, counter);
                return;
            }
            None => return,
        };
        let request_id = String::from_utf8_lossy(request_id.unwrap_or_default()).into_owned();
        let operation_ref = OperationRef {
            plugin: Rc::clone(&self.plugin),
            index,
        };
        let id = vm
            .exchanges
            .open(operation_ref, request_id, operation.settings.max_body_bytes, outgoing);
        vm.opened_this_tick = vm.opened_this_tick.saturating_add(1);
        self.exchange = Some(id);
        drop(guard);
        if end_of_stream {
            self.request_complete();
        }
    }

    fn record_serving_latency(&self, started: SystemTime) {
        let (Some(index), Some(now)) = (self.operation, self.host.now()) else {
            return;
        };
        if let Ok(elapsed) = now.duration_since(started) {
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            self.plugin
                .histograms
                .record(&self.host, index, Histogram::ServingLatencyMs, ms);
        }
    }

    /// Counts a request Envoy routed elsewhere than the filter chose. Every
    /// request the candidate should serve is checked (a route that ignores
    /// the header makes a cutover a silent no-op); of those legacy serves,
    /// one in [`crate::vm::ROUTE_CHECK_EVERY`], since a route that ignores
    /// the header sends them to legacy anyway, and the check is a hostcall.
    fn verify_route(&self) {
        if !self.verify {
            return;
        }
        let Some(index) = self.operation else { return };
        let Some(operation) = self.plugin.plan.operation(index) else {
            return;
        };
        let chosen = &operation.serving().0.cluster;
        if routing::misrouted(chosen, self.host.routed_cluster().as_deref()) {
            self.plugin.counters.count(&self.host, index, Counter::RoutingMismatch);
        }
    }

    /// The request is complete: hand its calls to the root.
    fn request_complete(&mut self) {
        let Some(id) = self.exchange else { return };
        let mut vm = self.vm.borrow_mut();
        if vm.exchanges.request_complete(id) {
            vm.outbox.push(id);
            vm.wake.root(&self.host);
            self.completed_at = self.host.now();
        }
    }

    /// The serving response is complete; a settled exchange goes to the
    /// root to be judged, off the client's path. The id stays: a request
    /// that is still streaming (a backend may answer early) goes on being
    /// copied, and the end of the stream closes what is left.
    fn response_complete(&mut self) {
        let Some(id) = self.exchange else { return };
        if let Some(started) = self.completed_at.take() {
            self.record_serving_latency(started);
        }
        let mut vm = self.vm.borrow_mut();
        let settled = vm.exchanges.serving_done(id);
        if !settled.is_empty() {
            vm.settled.extend(settled);
            vm.wake.root(&self.host);
        }
    }

    /// The stream is over: an exchange still open here either never went
    /// out (withdrawn) or lost its serving side (abandoned).
    fn end(&mut self) {
        let Some(id) = self.exchange.take() else { return };
        let Ok(mut vm) = self.vm.try_borrow_mut() else { return };
        let settled = vm.exchanges.stream_ended(id);
        if !settled.is_empty() {
            vm.settled.extend(settled);
            vm.wake.root(&self.host);
        }
    }
}

/// Whether the filter must write the route header and have Envoy pick the
/// route again. The route Envoy chose before the filter ran was chosen from a
/// request without a route header (the header guard removes a client's):
/// the bootstrap's fallback route, which serves the default legacy cluster
/// (FAIL_OPEN relies on it too). A request the filter sends there needs no
/// new route; Envoy 1.40 clears the cache on a header write by itself
/// anyway, and the sampled route check ([`Stream::verify_route`]) counts a
/// `routing_mismatch` if that ever stops holding. Measured: the explicit
/// clear cost pass-through about 4% CPU per request (bench/OPTIMISATIONS.md).
fn needs_new_route(plan: &Plan, backend: &Backend, client_routed: bool) -> bool {
    client_routed || backend.authority.is_some() || backend.cluster != plan.legacy.cluster
}

impl<H: Host> Context for Stream<H> {}

impl<H: Host> HttpContext for Stream<H> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = self.host.request_headers();
        let authority = headers.get(":authority").unwrap_or_default();
        // A host the configuration does not cover (a shared gateway) passes
        // through untouched: no header written, no route-cache clear.
        if !self.plugin.plan.in_scope(authority) {
            return Action::Continue;
        }
        let (method, path) = (text(&headers, ":method"), text(&headers, ":path"));
        self.operation = self.route(&headers, method, path);
        self.verify = self.operation.is_some_and(|index| {
            let served_by_candidate = self
                .plugin
                .plan
                .operation(index)
                .is_some_and(|op| op.serving().1 == Side::Candidate);
            served_by_candidate || self.vm.borrow_mut().route_checks.sample()
        });
        if let Some(index) = self.operation {
            self.decide(&headers, index, method, path, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(id) = self.exchange else {
            return Action::Continue;
        };
        // In Continue mode body_size is this chunk's size.
        let copied = match body_size {
            0 => Ok(()),
            size => self
                .vm
                .borrow_mut()
                .exchanges
                .copy_request_body(id, size, || self.host.request_body(size)),
        };
        if let Err((_, operation)) = copied {
            self.exchange = None;
            operation.count(&self.host, Counter::SkippedBodyTooLarge);
        } else if end_of_stream {
            self.request_complete();
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // With trailers the body callback never sees end_of_stream.
        self.request_complete();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.verify_route();
        let Some(id) = self.exchange else {
            return Action::Continue;
        };
        let response = Response::from_headers(self.host.response_headers(), Vec::new());
        self.vm.borrow_mut().exchanges.serving_headers(id, response);
        if end_of_stream {
            self.response_complete();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(id) = self.exchange else {
            return Action::Continue;
        };
        if body_size > 0 {
            self.vm
                .borrow_mut()
                .exchanges
                .copy_serving_body(id, body_size, || self.host.response_body(body_size));
        }
        if end_of_stream {
            self.response_complete();
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.response_complete();
        Action::Continue
    }

    /// Not called by Envoy for the module `make build` ships: its
    /// `proxy_on_log` export is taken out (envoy/exports.py, one crossing
    /// a request less) and the stream ends in [`Drop`]. A module built by
    /// cargo alone keeps the export, and ending twice is ending once.
    fn on_log(&mut self) {
        self.end();
    }
}

impl<H: Host> Drop for Stream<H> {
    /// Envoy deletes the context (`proxy_on_delete`) right after its
    /// access-log phase, for every stream: no exchange stays open.
    fn drop(&mut self) {
        self.end();
    }
}
