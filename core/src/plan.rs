//! The compiled, immutable form of a configuration: what the filter consults
//! on every request. A new configuration produces a new plan, swapped in whole.

use std::sync::Arc;

use serde::Deserialize;

use crate::compare::CompareRules;
use crate::hosts::{self, Hosts};
use crate::limits::MAX_ID_BYTES;
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

/// Shared, not copied, by every operation that does not override it: the
/// names were two allocations per operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The Envoy cluster that serves or receives the shadow copy.
    pub cluster: Arc<str>,
    /// `:authority` for requests to it; `None` keeps the request's own.
    pub authority: Option<Arc<str>>,
}

/// One operation: what names and routes it, its mode, and its settings.
#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub path: String,
    /// The authorities this operation answers on; `None`: every one in the
    /// plan's scope. A request to another host is not this operation.
    pub hosts: Option<Hosts>,
    /// Operations of one group change mode together (the CLI enforces it):
    /// endpoints that must flip at once, such as a pair sharing a contract.
    pub group: Option<String>,
    pub mode: Mode,
    pub legacy: Backend,
    pub candidate: Backend,
    /// Shared by every operation that sets nothing of its own but its mode
    /// (a migration's usual operation): inline, they made each operation
    /// 336 bytes in a wasm VM, more than half of the 607 a plan held per
    /// operation (`make bench-config`).
    pub settings: Arc<Settings>,
}

/// Every setting of an operation but its mode, resolved: its own over the
/// configuration's `defaults`, over the built-in defaults.
#[derive(Debug, Clone)]
pub struct Settings {
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
    /// The readiness rule ([`crate::window`]).
    pub readiness: crate::window::Rule,
    /// `None` when the circuit breaker is switched off.
    pub circuit_breaker: Option<crate::breaker::Settings>,
    /// Which JSON object keys diff paths and log lines may name.
    pub key_names: crate::diff_path::KeyNames,
    /// How the shadow copy's and the noise repeat's headers differ from the
    /// client's request.
    pub shadow_headers: crate::shadow::HeaderRules,
    /// `None` unless the operation records evidence ([`crate::evidence`]).
    pub evidence: Option<crate::evidence::Policy>,
    /// For `parallel-run-ctl watch` (the filter does not read it): `Some(true)`
    /// cuts the operation over once it holds READY, `Some(false)` never;
    /// `None` leaves it to the watch's flags.
    pub auto_promote: Option<bool>,
    /// For `parallel-run-ctl watch`: in cutover, roll back when the reverse
    /// shadow's match rate falls below this; `None`: its `target_match_rate`.
    pub rollback_below: Option<f64>,
}

impl Operation {
    /// Whether this operation answers on `host` (see [`hosts::host_of`];
    /// `None` is an authority too long to be any host).
    pub fn serves_host(&self, host: Option<&[u8]>) -> bool {
        match &self.hosts {
            None => true,
            Some(hosts) => host.is_some_and(|host| hosts.matches_host(host)),
        }
    }

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
    /// Per worker: shadows opened in one second (the root's tick) at most;
    /// `None`: no bound.
    pub max_shadows_per_second: Option<u32>,
    /// The authorities the filter acts on at all; `None`: every one. A
    /// request to another host passes through untouched.
    pub hosts: Option<Hosts>,
    /// Serves requests that match no operation.
    pub legacy: Backend,
    pub candidate: Backend,
    /// Where evidence records go; `Some` exactly when an operation has
    /// evidence on.
    pub evidence_collector: Option<crate::evidence::Collector>,
    pub operations: Vec<Operation>,
    pub(crate) matcher: Matcher,
    pub(crate) by_id: hashbrown::HashMap<String, usize>,
    /// Every literal segment of every template, for [`Plan::unknown_shape`].
    pub(crate) literals: hashbrown::HashSet<String>,
}

/// How many operations the "configuration applied" line names one by one:
/// every VM logs it on every push, and a 10,000-operation configuration
/// named in full made one line of 139 KB per VM with ids like `op1234`,
/// and up to 1.4 MB with ids of the longest allowed (128 bytes): the sum of
/// `<id>=<mode>,` over the operations.
pub const SUMMARY_OPERATIONS: usize = 32;

impl Plan {
    /// The "configuration applied" log line's text: the revision, how many
    /// operations are in each mode, and the first [`SUMMARY_OPERATIONS`]
    /// by id and mode (`…` when there are more). Bounded by the limits on
    /// ids and revisions, whatever the configuration's size.
    pub fn summary(&self) -> String {
        let counts = [Mode::Legacy, Mode::Shadow, Mode::Cutover, Mode::Candidate]
            .iter()
            .filter_map(|mode| {
                let count = self.operations.iter().filter(|op| op.mode == *mode).count();
                (count > 0).then(|| format!("{}={count}", mode.as_str()))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut named: Vec<String> = self
            .operations
            .iter()
            .take(SUMMARY_OPERATIONS)
            .map(|op| format!("{}={}", op.id, op.mode.as_str()))
            .collect();
        if self.operations.len() > SUMMARY_OPERATIONS {
            named.push("…".to_string());
        }
        format!(
            "revision={:?} operations={} ({counts}) [{}]",
            self.revision,
            self.operations.len(),
            named.join(",")
        )
    }

    /// The shape of a path that matched no operation ([`crate::unknown`]).
    pub fn unknown_shape(&self, path: &str) -> String {
        crate::unknown::shape(path, |segment| self.literals.contains(segment))
    }

    /// Whether the filter acts on a request to this `:authority` at all: the
    /// top-level `hosts`, every host when there is none. Out of scope, a
    /// request is not classified, routed, counted or shadowed.
    pub fn in_scope(&self, authority: &[u8]) -> bool {
        match &self.hosts {
            None => true,
            Some(hosts) => hosts.matches_authority(authority),
        }
    }

    /// The index of the operation a request belongs to, honouring every
    /// `hosts` list: `None` out of the plan's scope, or when no operation of
    /// this method, path and host exists. A known id in the operation header
    /// (the value of the header the plan names as `operation_header`; ignored
    /// when it names none) wins over the path when the method and host
    /// agree, for gateways that already name operations.
    pub fn classify_request(
        &self,
        method: &str,
        path: &str,
        authority: &[u8],
        operation_header: Option<&[u8]>,
    ) -> Option<usize> {
        if !self.in_scope(authority) {
            return None;
        }
        let host = hosts::host_of(authority);
        self.classify_where(method, path, operation_header, |op| op.serves_host(host))
    }

    /// [`Plan::classify_request`] without hosts: the authority is not looked
    /// at, and an operation limited to some hosts matches on every host. The
    /// same as `classify_request` for a configuration without `hosts`.
    pub fn classify(&self, method: &str, path: &str, operation_header: Option<&[u8]>) -> Option<usize> {
        self.classify_where(method, path, operation_header, |_| true)
    }

    fn classify_where(
        &self,
        method: &str,
        path: &str,
        operation_header: Option<&[u8]>,
        serves: impl Fn(&Operation) -> bool,
    ) -> Option<usize> {
        // The method must agree: a header naming a GET operation must not
        // turn a POST into it; nor may it name an operation of another host.
        let accepts = |index: usize| {
            self.operations
                .get(index)
                .is_some_and(|op| op.method == method && serves(op))
        };
        // Only where the configuration names an operation header (a caller
        // cannot make a client's header count by mistake), and no id longer
        // than any configured one is looked at further.
        let id = operation_header.filter(|v| self.operation_header.is_some() && v.len() <= MAX_ID_BYTES);
        if let Some(id) = id.and_then(|v| std::str::from_utf8(v).ok()) {
            if let Some(&index) = self.by_id.get(id) {
                if accepts(index) {
                    return Some(index);
                }
            }
        }
        self.matcher
            .find(method, path, |index| self.operations.get(index).is_some_and(&serves))
    }

    pub fn operation(&self, index: usize) -> Option<&Operation> {
        self.operations.get(index)
    }
}

#[cfg(test)]
mod tests;
