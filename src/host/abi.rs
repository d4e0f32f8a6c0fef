//! The proxy-wasm ABI imports the filter calls, declared here instead of
//! called through the SDK's `hostcalls` wrappers.
//!
//! Each SDK wrapper returns a `Result` for the statuses its author
//! expected and `panic!`s on any other, and its imports return the SDK's
//! `Status` enum, which a status it does not list would make undefined
//! behaviour. A panic kills the VM: every later request of that worker
//! goes through without the filter until Envoy reloads it. Here every
//! import returns the raw `u32`, and a status other than Ok is an `Err`
//! carrying it: [`super::Proxy`] says what each failure comes to.
//!
//! One call stays with the SDK: `proxy_http_call`, whose wrapper also
//! registers the callout's token with the SDK's dispatcher, which routes
//! the reply to the root that made it. Its wrapper handles every failure
//! Envoy's `httpCall` returns (BadArgument, InternalFailure).
//!
//! Buffers the host returns were allocated through the SDK's exported
//! `proxy_on_memory_allocate`, which leaks a boxed slice of exactly the
//! requested size: [`take`] turns one back into a `Vec` with that capacity,
//! as the SDK's own wrappers do.

use std::ptr::null_mut;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

/// A status other than Ok, as the host returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

pub const NOT_FOUND: Status = Status(1);
pub const CAS_MISMATCH: Status = Status(8);

fn check(status: u32) -> Result<(), Status> {
    match status {
        0 => Ok(()),
        other => Err(Status(other)),
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_done() -> u32;

    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        name: *const u8,
        name_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, name: *const u8, name_size: usize) -> u32;
    fn proxy_get_buffer_bytes(buffer: u32, start: usize, max_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;

    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_metric(id: u32, value: *mut u64) -> u32;

    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(key: *const u8, key_size: usize, value: *const u8, value_size: usize, cas: u32) -> u32;
    fn proxy_register_shared_queue(name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_enqueue_shared_queue(queue: u32, value: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(queue: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// Takes ownership of a buffer the host returned; `None` for none.
///
/// # Safety
/// `data` is null, or points to `size` bytes the host allocated through
/// `proxy_on_memory_allocate(size)` and handed over with an Ok status.
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: per this function's contract, a leaked boxed slice of `size`
    // bytes: its layout is a Vec's of capacity `size`, freed once, here on.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Calls an import that returns a host buffer through two out-parameters.
fn returning(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, Status> {
    let mut data = null_mut();
    let mut size = 0;
    check(call(&mut data, &mut size))?;
    // SAFETY: the import returned Ok, so the host wrote either nothing or a
    // buffer it allocated through `proxy_on_memory_allocate(size)`.
    Ok(unsafe { take(data, size) })
}

pub fn log(level: LogLevel, message: &str) -> Result<(), Status> {
    // SAFETY: the host reads `message` within its length.
    check(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

pub fn current_time_ns() -> Result<u64, Status> {
    let mut time = 0;
    // SAFETY: the host writes one u64 into the local.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut time) })?;
    Ok(time)
}

pub fn set_tick_period_ms(period: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(period) })
}

pub fn done() -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_done() })
}

/// A header map in the ABI's serialized form.
pub fn header_map_pairs(map: MapType) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host writes a pointer and a size into the locals.
    returning(|data, size| unsafe { proxy_get_header_map_pairs(map as u32, data, size) })
}

pub fn replace_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: the host reads both strings within their lengths.
    check(unsafe { proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: the host reads `name` within its length.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

pub fn buffer(buffer: BufferType, start: usize, max_size: usize) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host writes a pointer and a size into the locals.
    returning(|data, size| unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, data, size) })
}

/// A property by its path, the parts joined by NUL as the ABI wants them.
pub fn property(path: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host reads `path` within its length and writes a pointer
    // and a size into the locals.
    returning(|data, size| unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) })
}

pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host reads both inputs within their lengths and writes a
    // pointer and a size into the locals.
    returning(|data, size| unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            data,
            size,
        )
    })
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0;
    // SAFETY: the host reads `name` within its length and writes the id.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_record_metric(id, value) })
}

pub fn metric(id: u32) -> Result<u64, Status> {
    let mut value = 0;
    // SAFETY: the host writes one u64 into the local.
    check(unsafe { proxy_get_metric(id, &mut value) })?;
    Ok(value)
}

/// The value and its compare-and-swap token (0: none).
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let mut cas = 0;
    let value = returning(|data, size| {
        // SAFETY: the host reads `key` within its length and writes a
        // pointer, a size and a token into the locals.
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas) }
    })?;
    Ok((value, cas))
}

/// Writes `value` under `key`; `cas` 0 writes unconditionally.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: the host reads both inputs within their lengths.
    check(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

pub fn register_queue(name: &str) -> Result<u32, Status> {
    let mut id = 0;
    // SAFETY: the host reads `name` within its length and writes the id.
    check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn enqueue(queue: u32, message: &[u8]) -> Result<(), Status> {
    // SAFETY: the host reads `message` within its length.
    check(unsafe { proxy_enqueue_shared_queue(queue, message.as_ptr(), message.len()) })
}

/// The next message; Empty (status 7) when there is none.
pub fn dequeue(queue: u32) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host writes a pointer and a size into the locals.
    returning(|data, size| unsafe { proxy_dequeue_shared_queue(queue, data, size) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_is_ok_and_any_other_status_is_kept() {
        assert_eq!(check(0), Ok(()));
        for status in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, u32::MAX] {
            assert_eq!(check(status), Err(Status(status)));
        }
    }
}
