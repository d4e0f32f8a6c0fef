//! The seam to Envoy: every hostcall the filter makes, behind one small
//! trait. [`Proxy`] is the production host and the only code that names
//! `proxy_wasm::hostcalls` or declares an ABI import of its own (the header
//! map read); the glue's unit tests run against a fake.
//!
//! Calls act on the context Envoy is calling into (the SDK sets it before
//! each callback): the request and response calls on the current stream,
//! the callout reads on the reply being delivered.
//!
//! A failed hostcall is never fatal here: a panic in the VM would turn into
//! client errors, so each method says what a failure comes to.

use std::time::{Duration, SystemTime};

use parallel_run_core::header_map::HeaderMap;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

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

#[link(wasm_import_module = "env")]
extern "C" {
    // The ABI's map read, declared as the SDK declares it: its own
    // `get_map_bytes` copies every name and value into a `String` and a
    // `Vec` (two allocations per header, on every request), and panics on
    // a status other than Ok or on a name that is not UTF-8.
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// A header map in one hostcall and one allocation (the host's, through
/// the SDK's `proxy_on_memory_allocate`), read in place. Empty when the
/// map cannot be read or does not add up.
fn header_map(map: MapType) -> HeaderMap {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a size into the two locals.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    if !matches!(status, Status::Ok) || data.is_null() {
        return HeaderMap::default();
    }
    // SAFETY: on Ok the host hands over `size` bytes it allocated through
    // the SDK's `proxy_on_memory_allocate`, which leaks a boxed slice of
    // exactly `size` bytes: ownership passes to this Vec (capacity `size`),
    // and it is freed once, when the map is dropped. This is what the SDK's
    // own `get_map_bytes` does with the same buffer.
    let bytes = unsafe { Vec::from_raw_parts(data, size, size) };
    HeaderMap::parse(bytes).unwrap_or_default()
}

fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    match hostcalls::get_buffer(kind, 0, size) {
        Ok(bytes) => Some(bytes.unwrap_or_default()),
        Err(_) => None,
    }
}

impl Host for Proxy {
    fn request_headers(&self) -> HeaderMap {
        header_map(MapType::HttpRequestHeaders)
    }

    fn set_request_header(&self, name: &str, value: &str) {
        // Cannot fail for a request still in its headers phase; if it ever
        // does, the route falls back to Envoy's own and the request still
        // goes out.
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }

    fn remove_request_header(&self, name: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }

    fn clear_route_cache(&self) {
        // Envoy 1.40 clears the route cache on a header change from wasm by
        // itself, but that is proposed for removal upstream.
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
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
        hostcalls::get_property(vec!["xds", "cluster_name"]).ok().flatten()
    }

    fn dispatch(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout: Duration) -> Option<u32> {
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
        let _ = hostcalls::set_tick_period(period);
    }

    fn done(&self) {
        let _ = hostcalls::done();
    }

    fn now(&self) -> Option<SystemTime> {
        hostcalls::get_current_time().ok()
    }

    fn log(&self, level: log::Level, message: &str) {
        let level = match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        };
        let _ = hostcalls::log(level, message);
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                self.log(
                    log::Level::Warn,
                    &format!("parallel-run: cannot define metric {name}: {status:?}"),
                );
                None
            }
        }
    }

    fn increment_metric(&self, id: u32) {
        // A failed increment loses one count; failing the request for it
        // would be worse.
        let _ = hostcalls::increment_metric(id, 1);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn metric_value(&self, id: u32) -> Option<u64> {
        hostcalls::get_metric(id).ok()
    }

    fn shared_data(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        hostcalls::get_shared_data(key).ok()
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => WriteError::CasMismatch,
            _ => WriteError::Failed,
        })
    }

    fn register_queue(&self, name: &str) -> Option<u32> {
        hostcalls::register_shared_queue(name).ok()
    }

    fn enqueue(&self, queue: u32, message: &[u8]) -> bool {
        hostcalls::enqueue_shared_queue(queue, Some(message)).is_ok()
    }

    fn dequeue(&self, queue: u32) {
        let _ = hostcalls::dequeue_shared_queue(queue);
    }
}
