//! A hand-written fake of the host, for the glue's unit tests: one proxy's
//! worth of metrics, shared data and queues (shared by every VM built on
//! it, like Envoy's), the current stream's headers and body chunk, the calls
//! made, the log, and a clock the test moves.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use parallel_run_core::header_map::HeaderMap;

use crate::host::{Host, MetricKind, WriteError};

/// Headers as a test writes them; the fake hands them over serialized, as
/// Envoy does, so every test reads them through [`HeaderMap`].
pub type Headers = Vec<(String, Vec<u8>)>;

fn serialized(headers: &Headers) -> HeaderMap {
    HeaderMap::from_pairs(headers.iter().map(|(name, value)| (name, value)))
}

/// A call the filter made.
#[derive(Debug, Clone)]
pub struct SentCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl SentCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Runs once, just before the next write to its key: another VM writing
/// first, so that the write's compare-and-swap token is stale.
type Interference = Box<dyn FnMut(&mut BTreeMap<String, (Vec<u8>, u32)>)>;

#[derive(Default)]
pub struct State {
    pub config: Vec<u8>,
    pub request_headers: Headers,
    /// The chunk the next body callback reads.
    pub request_chunk: Vec<u8>,
    pub response_headers: Headers,
    pub response_chunk: Vec<u8>,
    pub route_cache_clears: u32,
    /// Where the route sent the request; `None`: where the route header
    /// said, as a route that honours it does.
    pub routed_to: Option<String>,
    pub calls: Vec<SentCall>,
    /// Clusters the proxy knows; a call to another one is refused.
    pub clusters: Vec<String>,
    /// The reply the next `on_http_call_response` reads.
    pub call_reply: (Headers, Vec<u8>),
    pub now: Option<SystemTime>,
    pub done: bool,
    pub logs: Vec<(log::Level, String)>,
    /// By metric id: kind, name, value.
    pub metrics: Vec<(MetricKind, String, u64)>,
    /// Histogram samples, by metric id.
    pub samples: Vec<(u32, u64)>,
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    pub interference: BTreeMap<String, Interference>,
    /// By queue id: name and messages waiting.
    pub queues: Vec<(String, Vec<Vec<u8>>)>,
    /// Every hostcall made, by the name of its [`Host`] method, in order:
    /// what a request costs in crossings into Envoy.
    pub hostcalls: Vec<&'static str>,
    /// The id of every metric incremented, in order: what a reader of
    /// Envoy's stats could see between two of them.
    pub increments: Vec<u32>,
    next_token: u32,
}

/// Cheap to clone: every clone is the same proxy.
#[derive(Clone, Default)]
pub struct Fake(pub Rc<RefCell<State>>);

impl Fake {
    pub fn new(clusters: &[&str]) -> Fake {
        let fake = Fake::default();
        {
            let mut state = fake.0.borrow_mut();
            state.clusters = clusters.iter().map(|c| c.to_string()).collect();
            state.now = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        }
        fake
    }

    pub fn state(&self) -> std::cell::RefMut<'_, State> {
        self.0.borrow_mut()
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.0
            .borrow()
            .metrics
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(_, _, v)| *v)
            .sum()
    }

    /// The samples recorded into histogram `name`.
    pub fn samples(&self, name: &str) -> Vec<u64> {
        let state = self.0.borrow();
        let named = |id: &u32| state.metrics.get(*id as usize).is_some_and(|m| m.1 == name);
        state
            .samples
            .iter()
            .filter(|(id, _)| named(id))
            .map(|(_, v)| *v)
            .collect()
    }

    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.now = state.now.map(|now| now + by);
    }

    /// Messages waiting on every queue, taken: the wake-ups to deliver.
    pub fn take_wakeups(&self) -> Vec<u32> {
        let mut state = self.state();
        let mut wakeups = Vec::new();
        for (id, (_, messages)) in state.queues.iter_mut().enumerate() {
            for _ in messages.drain(..) {
                wakeups.extend(u32::try_from(id).ok());
            }
        }
        wakeups
    }

    /// The hostcalls made since the last call, taken.
    pub fn take_hostcalls(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.state().hostcalls)
    }

    fn hostcall(&self, name: &'static str) {
        self.state().hostcalls.push(name);
    }

    pub fn logs(&self) -> Vec<String> {
        self.0.borrow().logs.iter().map(|(_, line)| line.clone()).collect()
    }
}

impl Host for Fake {
    fn request_headers(&self) -> HeaderMap {
        self.hostcall("request_headers");
        serialized(&self.0.borrow().request_headers)
    }

    fn set_request_header(&self, name: &str, value: &str) {
        self.hostcall("set_request_header");
        let mut state = self.state();
        state.request_headers.retain(|(n, _)| n != name);
        state
            .request_headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }

    fn remove_request_header(&self, name: &str) {
        self.hostcall("remove_request_header");
        self.state().request_headers.retain(|(n, _)| n != name);
    }

    fn clear_route_cache(&self) {
        self.hostcall("clear_route_cache");
        self.state().route_cache_clears += 1;
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        self.hostcall("request_body");
        let state = self.0.borrow();
        Some(state.request_chunk.get(..size)?.to_vec())
    }

    fn response_headers(&self) -> HeaderMap {
        self.hostcall("response_headers");
        serialized(&self.0.borrow().response_headers)
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        self.hostcall("response_body");
        let state = self.0.borrow();
        Some(state.response_chunk.get(..size)?.to_vec())
    }

    fn routed_cluster(&self) -> Option<Vec<u8>> {
        self.hostcall("routed_cluster");
        let state = self.0.borrow();
        if let Some(cluster) = &state.routed_to {
            return Some(cluster.as_bytes().to_vec());
        }
        let header = state
            .request_headers
            .iter()
            .find(|(n, _)| n == "x-parallel-run-cluster");
        header.map(|(_, v)| v.clone())
    }

    fn dispatch(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout: Duration) -> Option<u32> {
        self.hostcall("dispatch");
        let mut state = self.state();
        if !state.clusters.iter().any(|c| c == cluster) {
            return None;
        }
        state.next_token += 1;
        let token = state.next_token;
        state.calls.push(SentCall {
            token,
            cluster: cluster.to_string(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.unwrap_or_default().to_vec(),
            timeout,
        });
        Some(token)
    }

    fn call_response_headers(&self) -> HeaderMap {
        self.hostcall("call_response_headers");
        serialized(&self.0.borrow().call_reply.0)
    }

    fn call_response_body(&self, size: usize) -> Option<Vec<u8>> {
        self.hostcall("call_response_body");
        Some(self.0.borrow().call_reply.1.get(..size)?.to_vec())
    }

    fn plugin_configuration(&self) -> Vec<u8> {
        self.hostcall("plugin_configuration");
        self.0.borrow().config.clone()
    }

    fn set_tick_period(&self, _period: Duration) {
        self.hostcall("set_tick_period");
    }

    fn done(&self) {
        self.hostcall("done");
        self.state().done = true;
    }

    fn now(&self) -> Option<SystemTime> {
        self.hostcall("now");
        self.0.borrow().now
    }

    fn log(&self, level: log::Level, message: &str) {
        self.hostcall("log");
        self.state().logs.push((level, message.to_string()));
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.hostcall("define_metric");
        let mut state = self.state();
        // Like Envoy: a new handle on every call (the glue must cache them),
        // the same metric behind them all.
        state.metrics.push((kind, name.to_string(), 0));
        u32::try_from(state.metrics.len() - 1).ok()
    }

    fn increment_metric(&self, id: u32) {
        self.hostcall("increment_metric");
        let mut state = self.state();
        state.increments.push(id);
        if let Some(metric) = state.metrics.get_mut(id as usize) {
            metric.2 += 1;
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        self.hostcall("record_metric");
        let mut state = self.state();
        if state
            .metrics
            .get(id as usize)
            .is_some_and(|m| m.0 == MetricKind::Histogram)
        {
            state.samples.push((id, value));
            return;
        }
        let Some(name) = state.metrics.get(id as usize).map(|m| m.1.clone()) else {
            return;
        };
        // A gauge has one value whichever handle set it.
        for metric in state.metrics.iter_mut().filter(|m| m.1 == name) {
            metric.2 = 0;
        }
        if let Some(metric) = state.metrics.get_mut(id as usize) {
            metric.2 = value;
        }
    }

    fn metric_value(&self, id: u32) -> Option<u64> {
        self.hostcall("metric_value");
        let state = self.0.borrow();
        let name = &state.metrics.get(id as usize)?.1;
        Some(state.metrics.iter().filter(|m| &m.1 == name).map(|m| m.2).sum())
    }

    fn shared_data(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        self.hostcall("shared_data");
        Some(match self.0.borrow().shared.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        self.hostcall("set_shared_data");
        let mut state = self.state();
        if let Some(mut interfere) = state.interference.remove(key) {
            interfere(&mut state.shared);
        }
        let current = state.shared.get(key).map(|(_, cas)| *cas);
        if cas.is_some() && cas != current {
            return Err(WriteError::CasMismatch);
        }
        let next = current.unwrap_or(0) + 1;
        state.shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    fn register_queue(&self, name: &str) -> Option<u32> {
        self.hostcall("register_queue");
        let mut state = self.state();
        if let Some(id) = state.queues.iter().position(|(n, _)| n == name) {
            return u32::try_from(id).ok();
        }
        state.queues.push((name.to_string(), Vec::new()));
        u32::try_from(state.queues.len() - 1).ok()
    }

    fn enqueue(&self, queue: u32, message: &[u8]) -> bool {
        self.hostcall("enqueue");
        match self.state().queues.get_mut(queue as usize) {
            Some((_, messages)) => {
                messages.push(message.to_vec());
                true
            }
            None => false,
        }
    }

    fn dequeue(&self, queue: u32) {
        self.hostcall("dequeue");
        if let Some((_, messages)) = self.state().queues.get_mut(queue as usize) {
            if !messages.is_empty() {
                messages.remove(0);
            }
        }
    }
}
