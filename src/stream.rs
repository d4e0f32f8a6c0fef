//! One client request: route it, and copy what a comparison needs while it
//! streams, never holding it back.

use std::rc::Rc;

use parallel_run_core::counters::Counter;
use parallel_run_core::http::{is_unsafe_method, Response, SHADOW_MARKER_HEADER};
use parallel_run_core::ledger::{ExchangeId, ServingReply};
use parallel_run_core::plan::Side;
use parallel_run_core::sampling::sampled;
use parallel_run_core::shadow::{self, Decision, RequestFacts};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use crate::worker::{self, Kind, Outgoing, Runtime, Tag};

pub struct Stream {
    runtime: Rc<Runtime>,
    exchange: Option<Exchange>,
}

/// A shadowed request, from the stream's side.
struct Exchange {
    id: ExchangeId,
    /// The same request sent again to the serving backend, for noise
    /// learning; it shares the request body and the serving response.
    noise: Option<ExchangeId>,
    max_body_bytes: usize,
    /// The shadow call, until the request body is complete.
    request: Option<Outgoing>,
    noise_request: Option<Outgoing>,
    /// The serving response, until it is complete.
    response: Option<Response>,
    response_too_large: bool,
}

impl Stream {
    pub fn new(runtime: Rc<Runtime>) -> Stream {
        Stream {
            runtime,
            exchange: None,
        }
    }

    /// Picks the serving backend and overwrites the route header with it, so
    /// that a client can never choose a backend itself.
    fn route(&mut self, head: &Head, method: &str, path: &str) -> Option<usize> {
        let plan = &self.runtime.plan;
        let operation_id = plan.operation_header.as_deref().and_then(|name| head.get(name));
        let index = plan.classify(method, path, operation_id);
        let operation = index.and_then(|i| plan.operation(i));
        let serving = match operation {
            Some(operation) => operation.serving(),
            None => (&plan.legacy, Side::Legacy),
        };
        let (backend, side) = serving;
        set_request_header(&plan.route_header, &backend.cluster);
        // Only the filter marks shadow copies: a client's marker could make
        // a service treat a real request as a shadow and skip its effects.
        if head.get(SHADOW_MARKER_HEADER).is_some() {
            remove_request_header(SHADOW_MARKER_HEADER);
        }
        if let Some(authority) = &backend.authority {
            set_request_header(":authority", authority);
        }
        clear_route_cache();

        let metrics = &self.runtime.metrics;
        match index {
            Some(index) => {
                metrics.count(index, Counter::Requests);
                metrics.count(
                    index,
                    match side {
                        Side::Legacy => Counter::ServedLegacy,
                        Side::Candidate => Counter::ServedCandidate,
                    },
                );
            }
            None => metrics.count_unknown(),
        }
        index
    }

    /// Decides whether this request is shadowed and, if so, opens its
    /// exchange and starts the shadow copy.
    fn start_shadow(&mut self, head: &Head, index: usize, method: &str, path: &str, end_of_stream: bool) {
        let runtime = &self.runtime;
        let Some(operation) = runtime.plan.operation(index) else {
            return;
        };
        let Some(target) = operation.shadow() else { return };
        let request_id = head.get("x-request-id");
        let content_length = head
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok().and_then(|v| v.trim().parse().ok()));
        let headers = &head.headers;
        let facts = RequestFacts {
            method,
            sample_key: request_id.unwrap_or(path.as_bytes()),
            content_length,
        };
        let open = worker::with(|w| w.ledger.open_count());
        let max_open = usize::try_from(runtime.plan.max_inflight_shadows).unwrap_or(usize::MAX);
        match shadow::decide(operation, facts, open, max_open) {
            Decision::Off => return,
            Decision::Skip(counter) => {
                runtime.metrics.count(index, counter);
                return;
            }
            Decision::Shadow => {}
        }

        let request_id = String::from_utf8_lossy(request_id.unwrap_or_default()).into_owned();
        let open_exchange = |kind, backend: &parallel_run_core::Backend| {
            let tag = Tag {
                runtime: Rc::clone(runtime),
                operation: index,
                request_id: request_id.clone(),
                kind,
            };
            let exchange = worker::with(|w| w.ledger.open(tag));
            Outgoing {
                exchange,
                cluster: backend.cluster.clone(),
                headers: shadow::shadow_headers(headers, &runtime.plan.route_header, backend, &operation.id),
                body: Vec::new(),
                timeout_ms: operation.shadow_timeout_ms,
            }
        };
        let outgoing = open_exchange(Kind::Shadow, target);
        let id = outgoing.exchange;
        // Asking the serving backend twice is only harmless for safe methods.
        let noise = (operation.noise_per_million > 0
            && !is_unsafe_method(method)
            && sampled(&[facts.sample_key, b"#noise"].concat(), operation.noise_per_million))
        .then(|| open_exchange(Kind::Noise, operation.serving().0));
        self.exchange = Some(Exchange {
            id,
            noise: noise.as_ref().map(|n| n.exchange),
            noise_request: noise,
            max_body_bytes: operation.max_body_bytes,
            request: Some(outgoing),
            response: None,
            response_too_large: false,
        });
        if end_of_stream {
            self.send_shadow();
        }
    }

    /// The request is complete: hand the shadow call to the root.
    fn send_shadow(&mut self) {
        let Some(exchange) = self.exchange.as_mut() else { return };
        let Some(outgoing) = exchange.request.take() else {
            return;
        };
        let noise = exchange.noise_request.take().map(|mut noise| {
            noise.body.clone_from(&outgoing.body);
            noise
        });
        worker::with(|w| {
            w.outbox.push(outgoing);
            w.outbox.extend(noise);
            w.wake_root();
        });
    }

    /// The request body outgrew the limit: the exchange is dropped before
    /// any shadow call was made, and counted as skipped.
    fn skip_too_large(&mut self) {
        let Some(exchange) = self.exchange.take() else { return };
        if let Some(tag) = withdraw(&exchange) {
            tag.runtime.metrics.count(tag.operation, Counter::SkippedBodyTooLarge);
        }
    }

    /// Hands the serving side to the ledger; a settled exchange goes to the
    /// root to be judged, off the client's path.
    fn serving_done(&mut self, reply: ServingReply) {
        let Some(exchange) = self.exchange.take() else { return };
        worker::with(|w| {
            if let Some(noise) = exchange.noise {
                if let Some(settled) = w.ledger.serving_reply(noise, reply.clone()) {
                    w.settled.push(settled);
                }
            }
            if let Some(settled) = w.ledger.serving_reply(exchange.id, reply) {
                w.settled.push(settled);
            }
            if !w.settled.is_empty() {
                w.wake_root();
            }
        });
    }

    fn finish_response(&mut self) {
        let Some(exchange) = self.exchange.as_mut() else { return };
        let reply = match exchange.response.take() {
            Some(response) if !exchange.response_too_large => ServingReply::Complete(response),
            _ => ServingReply::TooLarge,
        };
        self.serving_done(reply);
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // One hostcall for every header: each single lookup is a round trip
        // between the VM and Envoy, and routing, sampling and the shadow copy
        // together need several of them.
        let head = Head {
            headers: hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default(),
        };
        let method = std::str::from_utf8(head.get(":method").unwrap_or_default()).unwrap_or_default();
        let path = std::str::from_utf8(head.get(":path").unwrap_or_default()).unwrap_or_default();
        if let Some(index) = self.route(&head, method, path) {
            self.start_shadow(&head, index, method, path, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let Some(request) = exchange.request.as_mut() else {
            return Action::Continue;
        };
        // In Continue mode body_size is this chunk's size.
        if request.body.len().saturating_add(body_size) > exchange.max_body_bytes {
            self.skip_too_large();
            return Action::Continue;
        }
        if body_size > 0 {
            match hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, body_size) {
                Ok(Some(chunk)) => request.body.extend_from_slice(&chunk),
                Ok(None) => {}
                Err(_) => {
                    // A copy we cannot read would compare against the wrong request.
                    self.skip_too_large();
                    return Action::Continue;
                }
            }
        }
        if end_of_stream {
            self.send_shadow();
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // With trailers the body callback never sees end_of_stream.
        self.send_shadow();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let headers = hostcalls::get_map_bytes(MapType::HttpResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok())
            .unwrap_or(0);
        exchange.response = Some(Response {
            status,
            headers: headers.into_iter().filter(|(name, _)| !name.starts_with(':')).collect(),
            body: Vec::new(),
        });
        if end_of_stream {
            self.finish_response();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        if let Some(response) = exchange.response.as_mut() {
            if response.body.len().saturating_add(body_size) > exchange.max_body_bytes {
                exchange.response_too_large = true;
                response.body = Vec::new();
            } else if body_size > 0 && !exchange.response_too_large {
                match hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpResponseBody, 0, body_size) {
                    Ok(Some(chunk)) => response.body.extend_from_slice(&chunk),
                    Ok(None) => {}
                    Err(_) => exchange.response_too_large = true,
                }
            }
        }
        if end_of_stream {
            self.finish_response();
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.finish_response();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.abandon_unfinished();
    }
}

impl Stream {
    /// The stream ended before the exchange had both its halves from this
    /// side: a request never sent is withdrawn (it was never shadowed), a
    /// response never finished makes the exchange abandoned.
    fn abandon_unfinished(&mut self) {
        let Some(exchange) = self.exchange.as_ref() else { return };
        if exchange.request.is_some() {
            if let Some(exchange) = self.exchange.take() {
                withdraw(&exchange);
            }
            return;
        }
        self.serving_done(ServingReply::Incomplete);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // on_log normally got here first; this covers a stream deleted
        // without one, so no exchange is left open forever.
        self.abandon_unfinished();
    }
}

/// Drops an exchange whose request never went out; returns the shadow tag.
fn withdraw(exchange: &Exchange) -> Option<Tag> {
    worker::with(|w| {
        if let Some(noise) = exchange.noise {
            w.ledger.withdraw(noise);
        }
        w.ledger.withdraw(exchange.id)
    })
}

/// The request headers as they arrived (names lower-case).
struct Head {
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

fn remove_request_header(name: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
}

fn set_request_header(name: &str, value: &str) {
    // Cannot fail for a request still in its headers phase; if it ever does,
    // the route falls back to Envoy's own and the request still goes out.
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
}

/// Envoy 1.40 clears the route cache on a header change from wasm by itself,
/// but that is proposed for removal upstream: clear it explicitly.
fn clear_route_cache() {
    let _ = hostcalls::call_foreign_function("clear_route_cache", None);
}
