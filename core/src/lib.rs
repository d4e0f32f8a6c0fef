//! Host-independent logic of the parallel-run filter.
//!
//! Nothing here knows about proxy-wasm: the filter crate feeds it request and
//! response data and carries out its decisions, so every rule can be tested
//! on the host and compiled to wasm unchanged.
//!
//! # Function size
//!
//! Envoy's V8 compiles every function of the module with its optimising
//! compiler when the module loads; what that compiler takes for a function
//! grows faster than the function, and what it frees, Envoy's allocator
//! keeps: a proxy's resident memory depends on how large the module's
//! largest functions are, not only on how much code it has. The same
//! 120 KB of code appended to the empty module measured about +23 MiB as
//! one function, +8 MiB as four and +0.5 MiB as 120 (bench/MEMORY.md,
//! section 7). So the cold code that LLVM would inline into one body
//! (configuration parsing and compiling, the body decoders, the root's
//! tick, the evidence walk) is kept in functions of its own with
//! `#[inline(never)]`, and tests/e2e/test_module_size.py holds the built
//! module's largest function under a bound. The data path is left as the
//! optimiser builds it. For the same reason the module is built at
//! opt-level "s" with opt-level 2's inliner threshold (Cargo.toml,
//! .cargo/config.toml; bench/MEMORY.md, section 8): every function as small
//! as "s" makes it, the data path's small calls still inlined.

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
