//! The compiled, immutable form of a configuration: what the filter consults
//! on every request. A new configuration produces a new plan, swapped in whole.

use serde::Deserialize;

use crate::compare::CompareRules;
use crate::matcher::Matcher;

/// The migration phase of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Legacy serves; nothing is shadowed.
    Legacy,
    /// Legacy serves; the candidate gets a shadow copy that is compared.
    Shadow,
    /// The candidate serves; legacy gets the shadow copy, to keep verifying.
    Cutover,
    /// The candidate serves; nothing is shadowed.
    Candidate,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Shadow => "shadow",
            Mode::Cutover => "cutover",
            Mode::Candidate => "candidate",
        }
    }

    /// The value of the `mode` gauge: the phases in migration order.
    pub fn code(self) -> u64 {
        match self {
            Mode::Legacy => 0,
            Mode::Shadow => 1,
            Mode::Cutover => 2,
            Mode::Candidate => 3,
        }
    }
}

/// Which implementation a backend is, for the `served_*` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Legacy,
    Candidate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The Envoy cluster that serves or receives the shadow copy.
    pub cluster: String,
    /// `:authority` for requests to it; `None` keeps the request's own.
    pub authority: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub path: String,
    pub mode: Mode,
    pub legacy: Backend,
    pub candidate: Backend,
    pub sample_per_million: u32,
    pub shadow_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub target_match_rate: f64,
    pub min_samples: u64,
    pub shadow_unsafe: bool,
    /// Share of safe shadowed requests also sent a second time to the
    /// serving backend, to learn what differs between two of its answers.
    pub noise_per_million: u32,
    /// Leave out of the comparison what was learned to be noise.
    pub learn_noise: bool,
    /// Distinct differing paths counted per operation; more go to overflow.
    pub max_diff_paths: usize,
    pub compare: CompareRules,
}

impl Operation {
    /// The backend that answers the client, and which side it is.
    pub fn serving(&self) -> (&Backend, Side) {
        match self.mode {
            Mode::Legacy | Mode::Shadow => (&self.legacy, Side::Legacy),
            Mode::Cutover | Mode::Candidate => (&self.candidate, Side::Candidate),
        }
    }

    /// The backend that receives the shadow copy, if this mode shadows.
    pub fn shadow(&self) -> Option<&Backend> {
        match self.mode {
            Mode::Shadow => Some(&self.candidate),
            Mode::Cutover => Some(&self.legacy),
            Mode::Legacy | Mode::Candidate => None,
        }
    }
}

#[derive(Debug)]
pub struct Plan {
    /// The operator's label for this configuration, for the audit trail.
    pub revision: String,
    pub route_header: String,
    pub operation_header: Option<String>,
    pub max_inflight_shadows: u32,
    /// Serves requests that match no operation.
    pub legacy: Backend,
    pub candidate: Backend,
    pub operations: Vec<Operation>,
    pub(crate) matcher: Matcher,
    pub(crate) by_id: hashbrown::HashMap<String, usize>,
}

impl Plan {
    pub fn parse(json: &[u8]) -> Result<Plan, crate::ConfigError> {
        crate::config::parse(json)
    }

    /// The index of the operation a request belongs to. A known id in the
    /// operation header wins over the path when the method agrees, for
    /// gateways that already name operations.
    pub fn classify(&self, method: &str, path: &str, operation_header: Option<&[u8]>) -> Option<usize> {
        if let Some(id) = operation_header.and_then(|v| std::str::from_utf8(v).ok()) {
            // The method must agree: a header naming a GET operation must not
            // turn a POST into it.
            if let Some(&index) = self.by_id.get(id) {
                if self.operations.get(index).is_some_and(|op| op.method == method) {
                    return Some(index);
                }
            }
        }
        self.matcher.find(method, path)
    }

    pub fn operation(&self, index: usize) -> Option<&Operation> {
        self.operations.get(index)
    }
}

#[cfg(test)]
mod tests;
