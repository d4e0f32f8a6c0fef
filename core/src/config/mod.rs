//! The plugin configuration as operators write it, its validation, and its
//! compilation into the immutable [`Plan`] the filter consults.
//!
//! Parsing is strict: unknown fields are errors, because a typo in a
//! migration configuration must not pass silently. Every error names the
//! field path and the problem, e.g. `operations[2].path: unbalanced '{'`,
//! and every input has a bound ([`crate::limits`]).
//!
//! - `read`: bytes to the raw document (size, syntax, shape, nothing after it);
//! - `locate`: the field path of where a refused document went wrong;
//! - `raw`: the serde types, the document as written;
//! - `names`: ids, methods, header names, clusters, authorities, revision;
//! - `settings` and `rules`: the settings and comparison rules of `defaults`
//!   and of each operation, compiled once each, then laid over each other;
//! - `compile`: the raw document to the [`Plan`];
//! - `evidence`: `evidence` and `evidence_collector` ([`crate::evidence`]);
//! - `error`: [`ConfigError`].

mod compile;
mod error;
mod evidence;
mod guards;
mod locate;
mod names;
mod raw;
mod read;
mod rules;
mod settings;

/// Defined with the other bounds on bodies; named here too, with the other
/// defaults.
pub use crate::limits::DEFAULT_MAX_BODY_BYTES;
pub use compile::Compiler;
pub use error::ConfigError;

use crate::plan::Plan;

pub const DEFAULT_ROUTE_HEADER: &str = "x-parallel-run-cluster";
pub const DEFAULT_MAX_INFLIGHT_SHADOWS: u32 = 256;
pub const DEFAULT_SHADOW_TIMEOUT_MS: u64 = 3000;
pub const DEFAULT_TARGET_MATCH_RATE: f64 = 0.99;
pub const DEFAULT_MIN_SAMPLES: u64 = 100;
pub const DEFAULT_MAX_DIFF_PATHS: usize = 20;

/// Parses and validates a plugin configuration, compiling it into a [`Plan`].
pub fn parse(json: &[u8]) -> Result<Plan, ConfigError> {
    compile::compile(read::read(json)?)
}

/// Reads a plugin configuration and compiles everything but its
/// operations; [`Compiler::step`] compiles those, a slice at a time.
pub fn compiler(json: &[u8]) -> Result<Compiler, ConfigError> {
    Compiler::start(read::read(json)?)
}

/// Which configuration `json` is, for telling VMs of one proxy that it
/// was validated: FNV-1a over the bytes (the bytes come from the
/// operator's own control plane).
pub fn fingerprint(json: &[u8]) -> u64 {
    crate::fnv::fnv1a(json)
}

impl Plan {
    /// Parses and validates a plugin configuration (see [`parse`]).
    pub fn parse(json: &[u8]) -> Result<Plan, ConfigError> {
        parse(json)
    }
}

#[cfg(test)]
mod tests;
