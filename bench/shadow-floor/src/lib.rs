//! The shadow floor: the least a proxy-wasm module written with the stock
//! Rust SDK (proxy-wasm 0.2.x) must do to shadow a request and compare the
//! answers, measured beside Envoy's native mirror and parallel-run's shadow
//! mode by bench/run.py (setup `shadow-floor`, bench/README.md).
//!
//! Per request, and nothing more: read the request headers, read the request
//! body, and once the request is complete hand the copy to the root, which
//! sends it to the `candidate` cluster with `dispatch_http_call`; read the
//! serving response's body; read the call's reply body; compare the two byte
//! strings (memcmp) and increment one counter. It makes the same VM
//! crossings for shadowing as parallel-run does: the calls go out from the
//! root context, woken through a shared queue once per batch, because the
//! stock SDK delivers a reply to the context that made the call and drops it
//! when that context is gone, and a stream's context dies with the client's
//! request (parallel-run's src/wake.rs). No configuration is read, no route
//! header written (the bootstrap's fallback route serves legacy), no status
//! or header compared, no JSON parsed, no latency recorded: whatever
//! parallel-run costs above this module is its own work.
//!
//! Bench code: an error from a hostcall ends the shadowing of that request
//! quietly; it never touches the client's request or response.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

/// The cluster the copies go to: the candidate of parallel-run's bootstrap.
const CANDIDATE: &str = "candidate";
/// parallel-run's default in the benchmark's configuration (bench/setups.py).
const TIMEOUT: Duration = Duration::from_millis(3000);
/// A number per VM, so that each VM's root registers a queue of its own
/// (a queue name belongs to one root; the last to register it wins).
const SEQUENCE_KEY: &str = "shadow_floor.vm_sequence";
/// The comparison's outcomes; each shadowed request increments exactly one.
/// Envoy shows them as `wasmcustom.shadow_floor.<outcome>`.
const MATCHED: &str = "shadow_floor.matched";
const UNMATCHED: &str = "shadow_floor.unmatched";
const FAILED: &str = "shadow_floor.failed";

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

/// The shadowed requests of one VM, shared by its root and its streams.
#[derive(Default)]
struct Vm {
    /// Requests complete and not yet sent.
    outbox: Vec<Outgoing>,
    /// Open comparisons by stream id.
    pairs: HashMap<u32, Pair>,
    /// The queue this VM's root listens on.
    queue: Option<u32>,
    /// A wake-up is on its way: one per batch of work, not one per request
    /// (what parallel-run does too).
    woken: bool,
    counters: Counters,
}

/// A request to send to the candidate: its stream, headers and body.
struct Outgoing {
    id: u32,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The two answers of one request, whichever arrives first.
#[derive(Default)]
struct Pair {
    serving: Option<Vec<u8>>,
    shadow: Option<Option<Vec<u8>>>,
    /// The client's stream ended before its response did: nothing to
    /// compare, the reply is dropped when it comes.
    abandoned: bool,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    matched: Option<u32>,
    unmatched: Option<u32>,
    failed: Option<u32>,
}

impl Vm {
    /// Compares the pair of `id` if both answers are in, and forgets it.
    fn settle(&mut self, id: u32) {
        let Some(pair) = self.pairs.get(&id) else { return };
        let counter = match (&pair.serving, &pair.shadow) {
            _ if pair.abandoned => None,
            (Some(serving), Some(Some(shadow))) if serving == shadow => self.counters.matched,
            (Some(_), Some(Some(_))) => self.counters.unmatched,
            (Some(_), Some(None)) => self.counters.failed,
            _ => return,
        };
        self.pairs.remove(&id);
        if let Some(metric) = counter {
            let _ = hostcalls::increment_metric(metric, 1);
        }
    }
}

struct Root {
    vm: Rc<RefCell<Vm>>,
    /// Stream id by callout token.
    calls: HashMap<u32, u32>,
}

impl Root {
    fn new() -> Root {
        Root {
            vm: Rc::new(RefCell::new(Vm::default())),
            calls: HashMap::new(),
        }
    }

    /// This VM's number, from a counter in shared data (compare-and-swap).
    fn vm_number(&self) -> Option<u64> {
        (0..8).find_map(|_| {
            let (value, cas) = self.get_shared_data(SEQUENCE_KEY);
            let current: u64 = value
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
                .unwrap_or(0);
            let next = current.saturating_add(1);
            match self.set_shared_data(SEQUENCE_KEY, Some(next.to_string().as_bytes()), cas) {
                Ok(()) => Some(next),
                Err(_) => None,
            }
        })
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(id) = self.calls.remove(&token) else { return };
        // No headers: the call failed (reset, refused, timed out).
        let reply = (num_headers > 0).then(|| self.get_http_call_response_body(0, body_size).unwrap_or_default());
        let mut vm = self.vm.borrow_mut();
        if let Some(pair) = vm.pairs.get_mut(&id) {
            pair.shadow = Some(reply);
            vm.settle(id);
        }
    }
}

impl RootContext for Root {
    /// Accepts any configuration without reading it; defines the counters
    /// and registers this VM's wake-up queue.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let number = self.vm_number().unwrap_or(0);
        let mut vm = self.vm.borrow_mut();
        vm.queue = hostcalls::register_shared_queue(&format!("shadow_floor.wake.{number}")).ok();
        vm.counters = Counters {
            matched: hostcalls::define_metric(MetricType::Counter, MATCHED).ok(),
            unmatched: hostcalls::define_metric(MetricType::Counter, UNMATCHED).ok(),
            failed: hostcalls::define_metric(MetricType::Counter, FAILED).ok(),
        };
        true
    }

    /// A stream woke the root: send every copy waiting in the outbox.
    fn on_queue_ready(&mut self, queue_id: u32) {
        // One wake-up per callback, so one dequeue keeps the queue empty.
        let _ = self.dequeue_shared_queue(queue_id);
        let outbox = {
            let mut vm = self.vm.borrow_mut();
            vm.woken = false;
            std::mem::take(&mut vm.outbox)
        };
        for Outgoing { id, headers, body } in outbox {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body = (!body.is_empty()).then_some(body.as_slice());
            match self.dispatch_http_call(CANDIDATE, headers, body, vec![], TIMEOUT) {
                Ok(token) => {
                    self.calls.insert(token, id);
                }
                Err(_) => {
                    let mut vm = self.vm.borrow_mut();
                    if let Some(pair) = vm.pairs.get_mut(&id) {
                        pair.shadow = Some(None);
                        vm.settle(id);
                    }
                }
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            id: context_id,
            vm: Rc::clone(&self.vm),
            headers: Vec::new(),
            body: Vec::new(),
            serving: Vec::new(),
            open: false,
        }))
    }
}

/// One client request: copies the request and the serving body.
struct Stream {
    /// Envoy's context id: unique among this VM's live streams.
    id: u32,
    vm: Rc<RefCell<Vm>>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    serving: Vec<u8>,
    /// Its pair is open in the VM (the request was handed to the root).
    open: bool,
}

impl Stream {
    /// The request is complete: leave the copy for the root and wake it.
    fn request_complete(&mut self) {
        let mut vm = self.vm.borrow_mut();
        let headers = std::mem::take(&mut self.headers);
        let body = std::mem::take(&mut self.body);
        vm.outbox.push(Outgoing {
            id: self.id,
            headers,
            body,
        });
        vm.pairs.insert(self.id, Pair::default());
        self.open = true;
        if !vm.woken {
            if let Some(queue) = vm.queue {
                vm.woken = hostcalls::enqueue_shared_queue(queue, Some(b"w")).is_ok();
            }
        }
    }

    /// The serving response is complete: compare, if the reply is in.
    fn response_complete(&mut self) {
        if !self.open {
            return;
        }
        let mut vm = self.vm.borrow_mut();
        if let Some(pair) = vm.pairs.get_mut(&self.id) {
            pair.serving = Some(std::mem::take(&mut self.serving));
            vm.settle(self.id);
        }
        self.open = false;
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Envoy re-frames the copy: the client's framing headers stay out.
        self.headers = self.get_http_request_headers();
        self.headers
            .retain(|(name, _)| name != "content-length" && name != "transfer-encoding");
        if end_of_stream {
            self.request_complete();
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // In Continue mode body_size is this chunk's size.
        if body_size > 0 {
            if let Some(chunk) = self.get_http_request_body(0, body_size) {
                self.body.extend_from_slice(&chunk);
            }
        }
        if end_of_stream {
            self.request_complete();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.response_complete();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.open {
            return Action::Continue;
        }
        if body_size > 0 {
            if let Some(chunk) = self.get_http_response_body(0, body_size) {
                self.serving.extend_from_slice(&chunk);
            }
        }
        if end_of_stream {
            self.response_complete();
        }
        Action::Continue
    }

    /// The stream is over without a complete response: the pair is
    /// abandoned, forgotten now if its reply is in, or when it comes.
    fn on_log(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let Ok(mut vm) = self.vm.try_borrow_mut() else { return };
        if let Some(pair) = vm.pairs.get_mut(&self.id) {
            pair.abandoned = true;
            if pair.shadow.is_some() {
                vm.pairs.remove(&self.id);
            }
        }
    }
}
