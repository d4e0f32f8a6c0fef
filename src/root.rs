//! The root context: one per worker VM and configuration. It owns the plan,
//! makes the shadow calls and receives their responses, so that a comparison
//! completes however long after the client was answered.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use hashbrown::HashMap;
use parallel_run_core::counters::{self, Counter};
use parallel_run_core::http::Response;
use parallel_run_core::ledger::{ExchangeId, Settled, ShadowReply};
use parallel_run_core::Plan;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use crate::accounting;
use crate::metrics::Metrics;
use crate::stream::Stream;
use crate::wake;
use crate::worker::{self, Kind, Outgoing, Runtime, Tag};
use crate::{diff_paths, noise};

/// Drains the outbox when a wake-up was lost, and bounds how long a retired
/// root waits for its last shadow responses.
const TICK: Duration = Duration::from_secs(1);

/// Envoy's clock as the VM reads it lags its timers by a few milliseconds
/// (measured: a reset from the timeout arrived 2 ms "before" the deadline).
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

struct Call {
    exchange: ExchangeId,
    /// When Envoy gives up on the call. Past the response headers, Envoy
    /// cannot send its own 504 and resets the call instead: a reply without
    /// headers at this point is a timeout, not a connection failure.
    deadline: Option<SystemTime>,
}

#[derive(Default)]
pub struct Root {
    runtime: Option<Rc<Runtime>>,
    /// Shadow calls this root made, by callout token.
    calls: HashMap<u32, Call>,
    /// Replaced by a newer configuration: finishing the calls already made,
    /// then done. Holds the tick count left before giving up on them.
    retiring: Option<u64>,
}

impl Root {
    /// Makes one shadow call; `now` is read once per batch of calls.
    fn dispatch(&mut self, outgoing: Outgoing, now: Option<SystemTime>) {
        let Outgoing {
            exchange,
            cluster,
            headers,
            body,
            timeout_ms,
            ..
        } = outgoing;
        let counted = worker::with(|w| {
            let tag = w.ledger.tag(exchange)?;
            if tag.kind == Kind::Shadow {
                tag.runtime.metrics.count(tag.operation, Counter::Shadowed);
            }
            Some(())
        });
        if counted.is_none() {
            return; // abandoned while it waited in the outbox
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let body = (!body.is_empty()).then_some(body.as_slice());
        let timeout = Duration::from_millis(timeout_ms);
        let deadline = now.and_then(|now| now.checked_add(timeout.saturating_sub(DEADLINE_SLACK.min(timeout / 10))));
        match self.dispatch_http_call(&cluster, headers, body, Vec::new(), timeout) {
            Ok(token) => {
                self.calls.insert(token, Call { exchange, deadline });
                worker::with(|w| w.ledger.dispatched(exchange));
            }
            Err(status) => {
                // Envoy refuses a call to a cluster it does not know: a
                // configuration error the operator must see as failures.
                log::warn!("parallel-run: shadow call to cluster {cluster} refused: {status:?}");
                self.settle(exchange, ShadowReply::Error);
            }
        }
    }

    fn settle(&mut self, exchange: ExchangeId, reply: ShadowReply) {
        if let Some(settled) = worker::with(|w| w.ledger.shadow_reply(exchange, reply)) {
            accounting::record(settled);
        }
    }

    /// Everything the streams left for the root since it last ran.
    fn run_pending_work(&mut self) {
        let (outbox, settled): (Vec<Outgoing>, Vec<Settled<Tag>>) = worker::with(|w| w.take_work());
        let now = (!outbox.is_empty())
            .then(hostcalls::get_current_time)
            .and_then(Result::ok);
        for outgoing in outbox {
            self.dispatch(outgoing, now);
        }
        for exchange in settled {
            accounting::record(exchange);
        }
    }

    fn shadow_reply(call: &Call, num_headers: usize, body_size: usize, max_body_bytes: usize) -> ShadowReply {
        // A connection failure or reset calls back with no headers at all.
        if num_headers == 0 {
            let now = hostcalls::get_current_time().ok();
            return match (now, call.deadline) {
                (Some(now), Some(deadline)) if now >= deadline => ShadowReply::Timeout,
                _ => ShadowReply::Error,
            };
        }
        let headers = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status: u16 = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok())
            .unwrap_or(0);
        if body_size > max_body_bytes {
            return ShadowReply::TooLarge;
        }
        let body = match body_size {
            0 => Vec::new(),
            size => match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size) {
                Ok(body) => body.unwrap_or_default(),
                Err(_) => return ShadowReply::Error,
            },
        };
        // Envoy answers for the backend when it cannot reach it; those local
        // replies say nothing about the backend's behaviour.
        if status == 504 && body == b"upstream request timeout" {
            return ShadowReply::Timeout;
        }
        if status == 503 && (body.starts_with(b"upstream connect error") || body.starts_with(b"no healthy upstream")) {
            return ShadowReply::Error;
        }
        ShadowReply::Complete(Response {
            status,
            headers: headers.into_iter().filter(|(name, _)| !name.starts_with(':')).collect(),
            body,
        })
    }

    /// Every call this root still has open ends as abandoned: its responses
    /// will never arrive.
    fn abandon_calls(&mut self) {
        for (_, call) in self.calls.drain() {
            if let Some(tag) = worker::with(|w| w.ledger.abandon(call.exchange)) {
                if tag.kind == Kind::Shadow {
                    tag.runtime.metrics.count(tag.operation, Counter::Abandoned);
                }
            }
        }
    }

    fn finish_retiring(&mut self) {
        if self.retiring.is_some() && self.calls.is_empty() {
            self.retiring = None;
            let _ = hostcalls::done();
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let exchange = call.exchange;
        let max_body_bytes = worker::with(|w| {
            let tag = w.ledger.tag(exchange)?;
            Some(tag.runtime.plan.operation(tag.operation)?.max_body_bytes)
        });
        // The exchange may be gone (abandoned); the reply is then only read
        // to be dropped.
        let reply = Self::shadow_reply(&call, num_headers, body_size, max_body_bytes.unwrap_or(0));
        self.settle(exchange, reply);
        self.finish_retiring();
    }

    /// A newer configuration replaced this root. Envoy keeps a root that is
    /// not done alive, with its callouts, so the comparisons in flight still
    /// complete; after the longest shadow timeout the rest are abandoned.
    fn on_done(&mut self) -> bool {
        if self.calls.is_empty() {
            return true;
        }
        let longest_ms = self
            .runtime
            .as_ref()
            .and_then(|r| r.plan.operations.iter().map(|op| op.shadow_timeout_ms).max())
            .unwrap_or(0);
        self.retiring = Some(longest_ms / 1000 + 2);
        log::info!(
            "parallel-run: configuration replaced; finishing {} shadow calls in flight",
            self.calls.len()
        );
        false
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Whatever is still open can no longer be answered to this root.
        self.abandon_calls();
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(config)) => config,
            Ok(None) | Err(_) => Vec::new(),
        };
        let plan = match Plan::parse(&config) {
            Ok(plan) => plan,
            Err(err) => {
                // Refusing makes Envoy keep the previous configuration.
                log::error!("parallel-run: configuration refused: {err}");
                return false;
            }
        };
        log::info!(
            "parallel-run: configuration applied: revision={:?} operations=[{}]",
            plan.revision,
            plan.operations
                .iter()
                .map(|op| format!("{}={}", op.id, op.mode.as_str()))
                .collect::<Vec<_>>()
                .join(",")
        );
        let metrics = Metrics::define(&plan);
        // What Envoy runs, for `status` and alerts: set by every VM, the
        // same values, only for a configuration that was accepted.
        crate::metrics::set_gauge(counters::REVISION_GAUGE, counters::revision_fingerprint(&plan.revision));
        for operation in &plan.operations {
            crate::metrics::set_gauge(&counters::mode_gauge(&operation.id), operation.mode.code());
        }
        noise::prepare(&plan);
        diff_paths::prepare(&plan);
        self.runtime = Some(Rc::new(Runtime { plan, metrics }));
        wake::listen();
        let _ = hostcalls::set_tick_period(TICK);
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        wake::take(queue_id);
        self.run_pending_work();
    }

    fn on_tick(&mut self) {
        match self.retiring.as_mut() {
            Some(0) => {
                self.abandon_calls();
                self.finish_retiring();
            }
            Some(ticks) => *ticks -= 1,
            None => {
                self.run_pending_work();
                if let Some(runtime) = &self.runtime {
                    noise::sync(&runtime.plan);
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = self.runtime.as_ref()?;
        Some(Box::new(Stream::new(Rc::clone(runtime))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
