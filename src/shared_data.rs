//! Shared data (one key-value store for all VMs of the plugin) that is
//! updated with compare-and-swap.
//!
//! A write without a CAS token is unconditional, and a key that does not
//! exist yet has none: two workers creating it at once would lose one
//! write. So keys are created when a configuration is applied, which Envoy
//! does on the main thread before the workers, and every later write
//! carries a token.

use proxy_wasm::hostcalls;

/// Creates `key` with `initial` unless it exists.
pub fn create(key: &str, initial: &[u8]) {
    if let Ok((None, None)) = hostcalls::get_shared_data(key) {
        let _ = hostcalls::set_shared_data(key, Some(initial), None);
    }
}
