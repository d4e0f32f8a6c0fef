//! The seam to Envoy: every hostcall the filter makes, behind one small
//! trait. [`Proxy`] is the production host, on the ABI imports [`abi`]
//! declares (and the SDK's for the one call its dispatcher must see); the
//! glue's unit tests run against a fake.
//!
//! Calls act on the context Envoy is calling into (the SDK sets it before
//! each callback): the request and response calls on the current stream,
//! the callout reads on the reply being delivered.
//!
//! A failed hostcall is never fatal here: a panic kills the VM, and every
//! later request of its worker goes through without the filter, so each
//! method says what a failure comes to.

use std::time::{Duration, SystemTime};

use parallel_run_core::header_map::HeaderMap;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

mod abi;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A shared-data write with a compare-and-swap token that lost the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Another VM wrote the key since it was read: read it again.
    CasMismatch,
    Failed,
}

pub trait Host {
    // ---- the current stream

    /// Every request header, in one hostcall: each single lookup would be a
    /// round trip between the VM and Envoy. Empty when it cannot be read.
    fn request_headers(&self) -> HeaderMap;
    fn set_request_header(&self, name: &str, value: &str);
    fn remove_request_header(&self, name: &str);
    /// Makes Envoy pick the route again after the route header changed.
    fn clear_route_cache(&self);
    /// The current request body chunk (Continue mode: `size` is the
    /// chunk's). `None` when it cannot be read.
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;
    fn response_headers(&self) -> HeaderMap;
    fn response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// The cluster Envoy routed the current request to (`xds.cluster_name`),
    /// once it was routed. `None` when nothing was (a local reply).
    fn routed_cluster(&self) -> Option<Vec<u8>>;

    // ---- callouts

    /// Sends a call to `cluster`; its reply reaches the root context that
    /// made it, by token. `None` when Envoy refused it (unknown cluster).
    fn dispatch(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout: Duration) -> Option<u32>;
    fn call_response_headers(&self) -> HeaderMap;
    fn call_response_body(&self, size: usize) -> Option<Vec<u8>>;

    // ---- the plugin and its lifecycle

    fn plugin_configuration(&self) -> Vec<u8>;
    fn set_tick_period(&self, period: Duration);
    /// A root that answered `false` to `on_done` is finished now.
    fn done(&self);
    fn now(&self) -> Option<SystemTime>;

    /// [`Host::now`] in whole seconds since the Unix epoch.
    fn now_s(&self) -> Option<u64> {
        let now = self.now()?;
        Some(now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs())
    }
    fn log(&self, level: log::Level, message: &str);

    // ---- metrics (shared by every VM of the plugin)

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&self, id: u32);
    /// Sets a gauge, or records one sample of a histogram.
    fn record_metric(&self, id: u32, value: u64);
    /// A metric's value, summed over every VM (counters are shared).
    fn metric_value(&self, id: u32) -> Option<u64>;

    // ---- shared data and queues (shared by every VM of the plugin)

    /// The value and its compare-and-swap token; `(None, None)` for a key
    /// that does not exist. `None` when the read failed.
    fn shared_data(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)>;
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError>;
    fn register_queue(&self, name: &str) -> Option<u32>;
    fn enqueue(&self, queue: u32, message: &[u8]) -> bool;
    fn dequeue(&self, queue: u32);

    /// Reads `key`, lets `f` decide from its current value, and writes what
    /// `f` returns with the read's compare-and-swap token, again from a
    /// fresh read when another VM wrote in between. `f` returns the value to
    /// write (`None`: leave the key alone) and its answer. `None` after a
    /// few lost races or a failed hostcall: the caller loses one update.
    ///
    /// A key that does not exist yet has no token, and a write without one
    /// is unconditional: create keys where only one VM runs (configuration,
    /// which Envoy applies on the main thread first).
    fn update<R>(&self, key: &str, mut f: impl FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, R)) -> Option<R>
    where
        Self: Sized,
    {
        // Each lost race means another VM made progress; eight in a row is a
        // storm not worth spinning through on a client's thread.
        for _ in 0..8 {
            let (value, cas) = self.shared_data(key)?;
            let (write, answer) = f(value.as_deref());
            let Some(write) = write else {
                return Some(answer);
            };
            match self.set_shared_data(key, &write, cas) {
                Ok(()) => return Some(answer),
                Err(WriteError::CasMismatch) => continue,
                Err(WriteError::Failed) => return None,
            }
        }
        None
    }
}

/// Envoy, through the proxy-wasm ABI.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proxy;

/// A header map in one hostcall and one allocation (the host's), read in
/// place: the SDK's `get_map_bytes` copied every name and value into a
/// `String` and a `Vec`, two allocations per header on every request.
/// Empty when the map cannot be read or does not add up.
fn header_map(map: MapType) -> HeaderMap {
    match abi::header_map_pairs(map) {
        Ok(Some(bytes)) => HeaderMap::parse(bytes).unwrap_or_default(),
        Ok(None) | Err(_) => HeaderMap::default(),
    }
}

/// A buffer's first `size` bytes; empty for a buffer that does not exist
/// (Envoy's NotFound), `None` when the read failed.
fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    match abi::buffer(kind, 0, size) {
        Ok(bytes) => Some(bytes.unwrap_or_default()),
        Err(abi::NOT_FOUND) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// `xds.cluster_name` as the ABI spells a property path: parts joined by NUL.
const ROUTED_CLUSTER: &[u8] = b"xds\0cluster_name";

impl Host for Proxy {
    fn request_headers(&self) -> HeaderMap {
        header_map(MapType::HttpRequestHeaders)
    }

    fn set_request_header(&self, name: &str, value: &str) {
        // Cannot fail for a request still in its headers phase; if it ever
        // does, the route falls back to Envoy's own and the request still
        // goes out.
        let _ = abi::replace_header(MapType::HttpRequestHeaders, name, value);
    }

    fn remove_request_header(&self, name: &str) {
        let _ = abi::remove_header(MapType::HttpRequestHeaders, name);
    }

    fn clear_route_cache(&self) {
        // Envoy 1.40 clears the route cache on a header change from wasm by
        // itself, but that is proposed for removal upstream.
        let _ = abi::call_foreign_function("clear_route_cache", &[]);
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpRequestBody, size)
    }

    fn response_headers(&self) -> HeaderMap {
        header_map(MapType::HttpResponseHeaders)
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpResponseBody, size)
    }

    fn routed_cluster(&self) -> Option<Vec<u8>> {
        abi::property(ROUTED_CLUSTER).ok().flatten()
    }

    fn dispatch(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout: Duration) -> Option<u32> {
        // The SDK's wrapper: its dispatcher must know the token to deliver
        // the reply (abi.rs).
        match hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, Vec::new(), timeout) {
            Ok(token) => Some(token),
            Err(status) => {
                self.log(
                    log::Level::Warn,
                    &format!("parallel-run: shadow call to cluster {cluster} refused: {status:?}"),
                );
                None
            }
        }
    }

    fn call_response_headers(&self) -> HeaderMap {
        header_map(MapType::HttpCallResponseHeaders)
    }

    fn call_response_body(&self, size: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpCallResponseBody, size)
    }

    fn plugin_configuration(&self) -> Vec<u8> {
        buffer(BufferType::PluginConfiguration, usize::MAX).unwrap_or_default()
    }

    fn set_tick_period(&self, period: Duration) {
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        let _ = abi::set_tick_period_ms(ms);
    }

    fn done(&self) {
        // NotFound: Envoy was not waiting for this root; nothing to finish.
        let _ = abi::done();
    }

    fn now(&self) -> Option<SystemTime> {
        let ns = abi::current_time_ns().ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
    }

    fn log(&self, level: log::Level, message: &str) {
        let level = match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        };
        let _ = abi::log(level, message);
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        match abi::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(abi::Status(status)) => {
                self.log(
                    log::Level::Warn,
                    &format!("parallel-run: cannot define metric {name}: status {status}"),
                );
                None
            }
        }
    }

    fn increment_metric(&self, id: u32) {
        // A failed increment loses one count; failing the request for it
        // would be worse.
        let _ = abi::increment_metric(id, 1);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = abi::record_metric(id, value);
    }

    fn metric_value(&self, id: u32) -> Option<u64> {
        abi::metric(id).ok()
    }

    fn shared_data(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        match abi::shared_data(key) {
            Ok((value, cas)) => Some((value, (cas != 0).then_some(cas))),
            Err(abi::NOT_FOUND) => Some((None, None)),
            Err(_) => None,
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        abi::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|status| match status {
            abi::CAS_MISMATCH => WriteError::CasMismatch,
            _ => WriteError::Failed,
        })
    }

    fn register_queue(&self, name: &str) -> Option<u32> {
        abi::register_queue(name).ok()
    }

    fn enqueue(&self, queue: u32, message: &[u8]) -> bool {
        abi::enqueue(queue, message).is_ok()
    }

    fn dequeue(&self, queue: u32) {
        let _ = abi::dequeue(queue);
    }
}
