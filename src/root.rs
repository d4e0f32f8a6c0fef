//! The root context, one per VM and configuration: it compiles the plan,
//! makes the calls the streams left in the VM and receives their replies,
//! so that a comparison completes however long after the client was
//! answered, and hands settled exchanges to `record`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use hashbrown::HashMap;
use parallel_run_core::breaker::Change;
use parallel_run_core::config::{self, Compiler};
use parallel_run_core::counters::{self, Counter, Histogram};
use parallel_run_core::exchange::{CallReply, ExchangeId, Leg};
use parallel_run_core::http;
use parallel_run_core::{reply, Plan};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::evidence::{self, Post};
use crate::host::Host;
use crate::metrics::{operation_ids, OperationMetrics};
use crate::noise::Noise;
use crate::readiness::Readiness;
use crate::record::record;
use crate::stream::Stream;
use crate::vm::{Plugin, Vm};

/// Drains the outbox when a wake-up was lost, merges the noise counts, and
/// bounds how long a retired root waits for its last replies.
const TICK: Duration = Duration::from_secs(1);

/// Operations compiled per slice when a configuration is applied between
/// requests, and the tick between slices. A worker's VM compiled 10,000
/// operations in 80 to 87 ms in one go under load (bench/push.py, Envoy
/// 1.40 on 2 cores, before the compile got twice as cheap), every request
/// on that worker waiting; a slice of 500 measured about 1 ms there.
const OPERATIONS_PER_SLICE: usize = 500;
const SLICE_TICK: Duration = Duration::from_millis(1);

/// Shared data: the fingerprint of the last configuration a VM of this
/// proxy compiled to the end and accepted. Envoy has a VM on its main
/// thread validate a push before the workers get it; a VM that finds its
/// configuration here knows it is valid, and may apply it in slices
/// (returning from `on_configure` first). Any other configuration is
/// compiled whole before `on_configure` answers, so a refusal is still a
/// refusal.
const VALIDATED_KEY: &str = "parallel_run.validated_configuration";

/// A call this root made and waits for.
struct OpenCall {
    exchange: ExchangeId,
    leg: Leg,
    /// When it went out, for the shadow's latency.
    sent: Option<SystemTime>,
    /// From here on a reply without headers is a timeout.
    deadline: Option<SystemTime>,
}

pub struct Root<H: Host> {
    host: H,
    vm: Rc<RefCell<Vm>>,
    plugin: Option<Rc<Plugin>>,
    /// By callout token.
    calls: HashMap<u32, OpenCall>,
    /// Evidence posts to the collector, by callout token.
    posts: HashMap<u32, Post>,
    /// Replaced by a newer configuration: finishing the calls already made,
    /// then done. Holds the ticks left before giving up on them.
    retiring: Option<u64>,
    /// A validated configuration being applied a slice per tick; until it
    /// is, this root's streams run the VM's previous one ([`Vm::serving`]).
    compiling: Option<Compiler>,
}

impl<H: Host + Clone> Root<H> {
    pub fn new(host: H, vm: Rc<RefCell<Vm>>) -> Root<H> {
        Root {
            host,
            vm,
            plugin: None,
            calls: HashMap::new(),
            posts: HashMap::new(),
            retiring: None,
            compiling: None,
        }
    }

    /// A stream for a new request: this root's configuration, or while it
    /// is still being applied, the one the VM ran before.
    pub fn stream(&self) -> Option<Stream<H>> {
        let plugin = match &self.plugin {
            Some(plugin) => Rc::clone(plugin),
            None => self.vm.borrow().serving.clone()?,
        };
        Some(Stream::new(self.host.clone(), Rc::clone(&self.vm), plugin))
    }

    /// Compiles the plugin configuration; a refusal keeps the previous one.
    /// A configuration another VM of this proxy already validated is
    /// applied in slices when this VM has one to serve with meanwhile.
    fn configure(&mut self) -> bool {
        let json = self.host.plugin_configuration();
        let fingerprint = config::fingerprint(&json).to_string();
        let mut compiler = match config::compiler(&json) {
            Ok(compiler) => compiler,
            Err(err) => return self.refuse(&err),
        };
        drop(json);
        let validated = self
            .host
            .shared_data(VALIDATED_KEY)
            .and_then(|(value, _)| value)
            .is_some_and(|value| value == fingerprint.as_bytes());
        if validated && self.vm.borrow().serving.is_some() {
            match compiler.step(OPERATIONS_PER_SLICE) {
                Ok(true) => {}
                Ok(false) => {
                    self.host.log(
                        log::Level::Info,
                        &format!(
                            "parallel-run: configuration validated; applying its other {} operations {OPERATIONS_PER_SLICE} per tick",
                            compiler.remaining()
                        ),
                    );
                    self.compiling = Some(compiler);
                    self.host.set_tick_period(SLICE_TICK);
                    return true;
                }
                Err(err) => return self.refuse(&err),
            }
        }
        match compiler.finish() {
            Ok(plan) => {
                if !validated {
                    let _ = self.host.set_shared_data(VALIDATED_KEY, fingerprint.as_bytes(), None);
                }
                self.install(plan);
                true
            }
            Err(err) => self.refuse(&err),
        }
    }

    fn refuse(&self, err: &config::ConfigError) -> bool {
        self.host.log(
            log::Level::Error,
            &format!("parallel-run: configuration refused: {err}"),
        );
        false
    }

    /// Compiles the next slice of the configuration being applied, and
    /// installs it once complete.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn compile_slice(&mut self) {
        let Some(compiler) = self.compiling.as_mut() else {
            return;
        };
        let done = match compiler.step(OPERATIONS_PER_SLICE) {
            Ok(false) => return,
            Ok(true) => self.compiling.take().map(Compiler::finish),
            Err(err) => {
                self.compiling = None;
                Some(Err(err))
            }
        };
        match done {
            Some(Ok(plan)) => self.install(plan),
            // Validated by another VM, refused here: nothing else can tell
            // Envoy, so the VM says so and keeps serving the previous one.
            Some(Err(err)) => {
                self.host.log(
                    log::Level::Error,
                    &format!("parallel-run: configuration refused after it was accepted; this VM keeps the previous one: {err}"),
                );
                self.host.set_tick_period(TICK);
            }
            None => {}
        }
    }

    /// Makes `plan` this root's and the VM's configuration.
    fn install(&mut self, plan: Plan) {
        self.host.log(
            log::Level::Info,
            &format!("parallel-run: configuration applied: {}", plan.summary()),
        );
        let mut vm = self.vm.borrow_mut();
        let host = &self.host;
        // Per-operation metrics are defined on first use (metrics.rs).
        let ids = operation_ids(&plan);
        let counters = OperationMetrics::new(&vm.metrics, &ids);
        let gauges = OperationMetrics::new(&vm.metrics, &ids);
        let histograms = OperationMetrics::new(&vm.metrics, &ids);
        let unknown_operation = vm.metrics.counter(host, counters::UNKNOWN_OPERATION_REQUESTS);
        // What Envoy runs, for `status` and alerts: set by every VM, the
        // same value, only for a configuration that was accepted. The
        // per-operation configuration gauges are set by the readiness
        // leader alone (readiness.rs).
        vm.metrics.set_gauge(
            host,
            counters::REVISION_GAUGE,
            counters::revision_fingerprint(&plan.revision),
        );
        Noise::prepare(host, &plan);
        let vm = &mut *vm;
        vm.diff_paths.prepare(host, &plan);
        Readiness::prepare(host);
        evidence::prepare(host, &mut vm.metrics, &plan);
        vm.wake.listen(host);
        let plugin = Rc::new(Plugin {
            plan,
            counters,
            gauges,
            histograms,
            unknown_operation,
        });
        // The leader publishes the new configuration's gauges at once, not
        // a tick later; at start nobody leads yet and its first tick does.
        if let Some(vm_number) = vm.wake.vm_number() {
            if vm.readiness.configured(host, &plugin, vm_number) {
                vm.diff_paths.sweep(host, &mut vm.metrics, &plugin.plan);
            }
        }
        vm.serving = Some(Rc::clone(&plugin));
        self.plugin = Some(plugin);
        host.set_tick_period(TICK);
    }

    /// Everything the streams left for the root since it last ran.
    fn run_pending_work(&mut self) {
        let (outbox, settled) = self.vm.borrow_mut().take_work();
        // The clock is read once per batch of calls.
        let now = (!outbox.is_empty()).then(|| self.host.now()).flatten();
        for exchange in outbox {
            self.dispatch(exchange, now);
        }
        let mut vm = self.vm.borrow_mut();
        for exchange in settled {
            record(&self.host, &mut vm, exchange);
        }
    }

    /// Makes an exchange's calls: the shadow call, and the noise repeat
    /// when it has one.
    fn dispatch(&mut self, exchange: ExchangeId, now: Option<SystemTime>) {
        let outgoing = {
            let mut vm = self.vm.borrow_mut();
            // None: withdrawn or cancelled while it waited in the outbox.
            let Some(outgoing) = vm.exchanges.take_outgoing(exchange) else {
                return;
            };
            let evidence = match vm.exchanges.operation(exchange) {
                Some(operation) => {
                    operation.count(&self.host, Counter::Shadowed);
                    operation.operation().is_some_and(|op| op.settings.evidence.is_some())
                }
                None => false,
            };
            if evidence {
                // The record names the request's path: kept only for an
                // operation that records evidence.
                let path = outgoing.shadow.headers.iter().find(|(name, _)| name == ":path");
                if let Some((_, path)) = path {
                    vm.exchanges.keep_request_path(exchange, path.clone());
                }
            }
            outgoing
        };
        let body = (!outgoing.body.is_empty()).then_some(outgoing.body.as_slice());
        let legs = [
            (Leg::Shadow, Some(&outgoing.shadow)),
            (Leg::Repeat, outgoing.repeat.as_ref()),
        ];
        for (leg, call) in legs {
            let Some(call) = call else { continue };
            let headers: Vec<(&str, &str)> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let timeout = Duration::from_millis(call.timeout_ms);
            // No VM borrow is held here: the host may answer a call at once.
            match self.host.dispatch(&call.cluster, &headers, body, timeout) {
                Some(token) => {
                    let deadline = now.and_then(|now| reply::deadline(now, timeout));
                    self.calls.insert(
                        token,
                        OpenCall {
                            exchange,
                            leg,
                            sent: now,
                            deadline,
                        },
                    );
                }
                // Envoy refuses a call to a cluster it does not know: a
                // configuration error the operator must see as failures.
                None => self.settle(exchange, leg, CallReply::Error),
            }
        }
    }

    fn settle(&mut self, exchange: ExchangeId, leg: Leg, reply: CallReply) {
        let mut vm = self.vm.borrow_mut();
        for settled in vm.exchanges.reply(exchange, leg, reply) {
            record(&self.host, &mut vm, settled);
        }
    }

    /// What a call's reply came to. The body is read only when it fits.
    fn read_reply(&self, call: &OpenCall, num_headers: usize, body_size: usize, max_body_bytes: usize) -> CallReply {
        let now = self.host.now();
        // A connection failure or reset calls back with no headers at all.
        if num_headers == 0 {
            return reply::without_headers(now, call.deadline);
        }
        if call.leg == Leg::Shadow {
            self.record_latency(call, now);
        }
        let headers = self.host.call_response_headers();
        let body = match body_size {
            0 => Some(Vec::new()),
            size if size > max_body_bytes => None,
            size => match self.host.call_response_body(size) {
                Some(body) => Some(body),
                None => return CallReply::Error,
            },
        };
        reply::classify(headers, body)
    }

    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn finish_retiring(&mut self) {
        if self.retiring.is_some() && self.calls.is_empty() && self.posts.is_empty() {
            self.retiring = None;
            self.host.done();
        }
    }
}

impl<H: Host + Clone> Context for Root<H> {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        if let Some(post) = self.posts.remove(&token) {
            // The collector's answer: only its status matters (a reply
            // without headers is a failure or a timeout).
            let accepted = num_headers > 0 && {
                let status = http::status(&self.host.call_response_headers());
                (200..300).contains(&status)
            };
            {
                let vm = &mut *self.vm.borrow_mut();
                vm.evidence.settled(&self.host, &mut vm.metrics, &post, accepted);
            }
            self.finish_retiring();
            return;
        }
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let max_body_bytes = self.vm.borrow().exchanges.max_body_bytes(call.exchange);
        // An exchange that is gone (cancelled) has nothing to read for.
        if let Some(max_body_bytes) = max_body_bytes {
            let reply = self.read_reply(&call, num_headers, body_size, max_body_bytes);
            self.settle(call.exchange, call.leg, reply);
        }
        self.finish_retiring();
    }

    /// A newer configuration replaced this root. Envoy keeps a root that is
    /// not done alive, with its callouts, so the comparisons in flight still
    /// complete; after the longest shadow timeout the rest are abandoned.
    fn on_done(&mut self) -> bool {
        // Replaced before it was applied: it never will be, and never
        // replaces what the VM serves. Its ticks count seconds again (the
        // retiring countdown below is in ticks).
        if self.compiling.take().is_some() {
            self.host.set_tick_period(TICK);
        }
        if self.calls.is_empty() && self.posts.is_empty() {
            return true;
        }
        // A root still applying its configuration made calls for streams
        // of the VM's previous one.
        let serving = self.vm.borrow().serving.clone();
        let longest_ms = self
            .plugin
            .as_ref()
            .or(serving.as_ref())
            .and_then(|p| p.plan.operations.iter().map(|op| op.settings.shadow_timeout_ms).max())
            .unwrap_or(0);
        self.retiring = Some(longest_ms / 1000 + 2);
        self.host.log(
            log::Level::Info,
            &format!(
                "parallel-run: configuration replaced; finishing {} shadow calls in flight",
                self.calls.len()
            ),
        );
        false
    }
}

impl<H: Host> Root<H> {
    /// The shadow backend's latency, for a reply it sent.
    fn record_latency(&self, call: &OpenCall, now: Option<SystemTime>) {
        let Some(elapsed) = now.zip(call.sent).and_then(|(now, sent)| now.duration_since(sent).ok()) else {
            return;
        };
        let vm = self.vm.borrow();
        if let Some(operation) = vm.exchanges.operation(call.exchange) {
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            operation.record(&self.host, Histogram::ShadowLatencyMs, ms);
        }
    }

    /// Every call this root still has open ends its exchange as abandoned:
    /// the replies will never arrive.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn cancel_calls(&mut self) {
        let Ok(mut vm) = self.vm.try_borrow_mut() else { return };
        let vm = &mut *vm;
        // Posts that will never be answered: their records are lost.
        for (_, post) in self.posts.drain() {
            vm.evidence.settled(&self.host, &mut vm.metrics, &post, false);
        }
        for (_, call) in self.calls.drain() {
            for settled in vm.exchanges.cancel(call.exchange) {
                record(&self.host, vm, settled);
            }
        }
    }
}

impl<H: Host> Drop for Root<H> {
    fn drop(&mut self) {
        // Whatever is still open can no longer be answered to this root.
        self.cancel_calls();
    }
}

impl<H: Host + Clone + 'static> RootContext for Root<H> {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.configure()
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        self.vm.borrow_mut().wake.taken(&self.host, queue_id);
        self.run_pending_work();
    }

    fn on_tick(&mut self) {
        if self.retiring.is_none() && self.compiling.is_some() {
            // Its streams' work is the VM's, whichever configuration they run.
            self.run_pending_work();
            self.compile_slice();
            return;
        }
        match self.retiring.as_mut() {
            Some(0) => {
                self.cancel_calls();
                self.finish_retiring();
            }
            Some(ticks) => *ticks -= 1,
            None => {
                self.run_pending_work();
                if let Some(plugin) = &self.plugin {
                    let vm = &mut *self.vm.borrow_mut();
                    vm.unknown_lines = 0;
                    vm.opened_this_tick = 0;
                    vm.noise.sync(&self.host, &mut vm.metrics, &plugin.plan);
                    tick_breakers(&self.host, vm);
                    let collector = plugin.plan.evidence_collector.as_ref();
                    for (token, post) in vm.evidence.post(&self.host, &mut vm.metrics, collector) {
                        self.posts.insert(token, post);
                    }
                    let leads = vm
                        .wake
                        .vm_number()
                        .is_some_and(|vm_number| vm.readiness.tick(&self.host, plugin, vm_number));
                    if leads {
                        vm.diff_paths.sweep(&self.host, &mut vm.metrics, &plugin.plan);
                    }
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // `None` would panic in the SDK, and it cannot happen in Envoy: a
        // root gets streams only once its `on_configure` answered true, by
        // which time it has a plan or the VM serves one. A context for that
        // case alone measured 96 functions and 9.2 KB of code more: every
        // default method of the SDK's traits, instantiated for it.
        Some(Box::new(self.stream()?))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Moves every circuit breaker of the VM on, and tells the operator when
/// shadowing of an operation pauses or resumes.
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn tick_breakers(host: &impl Host, vm: &mut Vm) {
    if vm.breakers.is_empty() {
        return;
    }
    let Some(now_s) = host.now_s() else {
        return;
    };
    for (operation, breaker) in vm.breakers.iter_mut() {
        let cooldown = breaker.settings().cooldown_s;
        let message = match breaker.tick(now_s) {
            None => continue,
            Some(Change::Opened { failures, outcomes }) => format!(
                "parallel-run: circuit open operation={operation}: {failures} of {outcomes} shadow calls failed; \
                 shadowing paused for {cooldown} s, then probed"
            ),
            Some(Change::Reopened) => {
                format!(
                    "parallel-run: circuit open operation={operation}: probes failed; paused for another {cooldown} s"
                )
            }
            Some(Change::Closed) => {
                format!("parallel-run: circuit closed operation={operation}: probes succeeded; shadowing resumes")
            }
        };
        host.log(log::Level::Warn, &message);
    }
}
