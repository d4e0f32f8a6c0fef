//! Host-independent logic of the parallel-run filter.
//!
//! Nothing here knows about proxy-wasm: the filter crate feeds it request and
//! response data and carries out its decisions, so every rule can be tested
//! on the host and compiled to wasm unchanged.

pub mod breaker;
pub mod compare;
pub mod config;
pub mod counters;
pub mod diff_path;
pub mod evidence;
pub mod exchange;
pub mod fnv;
pub mod header_map;
pub mod hosts;
pub mod http;
#[cfg(test)]
mod lcg;
pub mod limits;
pub mod log_limit;
pub mod matcher;
pub mod noise;
pub mod outcome;
pub mod plan;
pub mod readiness;
pub mod reply;
pub mod routing;
pub mod sampling;
pub mod shadow;
pub mod unknown;
pub mod window;

pub use config::ConfigError;
pub use plan::{Backend, Mode, Operation, Plan};
