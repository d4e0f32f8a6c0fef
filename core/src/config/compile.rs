//! From the raw document to the [`Plan`]: the top level, then each
//! operation in order (its names, its settings over the defaults', its place
//! in the matcher), stopping at the first error.

use std::sync::Arc;

use super::error::Field;
use super::raw::{Object, RawBackend, RawConfig, RawIdentity, RawOperation, RawSettings};
use super::settings::Layer;
use super::{evidence, names};
use super::{ConfigError, DEFAULT_MAX_INFLIGHT_SHADOWS, DEFAULT_ROUTE_HEADER};
use crate::hosts::Hosts;
use crate::http::is_unsafe_method;
use crate::limits::{MAX_INFLIGHT_SHADOWS, MAX_OPERATIONS, MAX_SHADOWS_PER_SECOND};
use crate::matcher::{parse_template, Matcher};
use crate::plan::{Backend, Mode, Operation, Plan, Settings};

pub(super) fn compile(raw: RawConfig) -> Result<Plan, ConfigError> {
    Compiler::start(raw)?.finish()
}

/// A configuration being compiled, operation by operation: [`Compiler::step`]
/// compiles at most so many, so that a VM serving requests can apply a
/// large configuration between them instead of holding them all up (the
/// filter's root does, `src/root.rs`). Compiled to the end, it is the same
/// plan and the same first error as [`super::parse`]'s.
pub struct Compiler {
    plan: Plan,
    defaults: Layer,
    /// The settings of an operation that sets none of its own but its mode:
    /// resolved once, at the first such operation (so an error there is
    /// reported there), and shared by the others.
    inherited: Option<Arc<Settings>>,
    operations: std::iter::Enumerate<std::vec::IntoIter<Box<Object<RawOperation>>>>,
}

impl Compiler {
    /// Compiles everything but the operations.
    pub(super) fn start(raw: RawConfig) -> Result<Compiler, ConfigError> {
        let revision = raw.revision.as_deref().map(names::revision).transpose()?;
        let route_header = match raw.route_header {
            Some(name) => names::routing_header(&name, "route_header")?,
            None => DEFAULT_ROUTE_HEADER.to_string(),
        };
        let operation_header = raw
            .operation_header
            .map(|name| names::routing_header(&name, "operation_header"))
            .transpose()?;
        if operation_header.as_deref() == Some(route_header.as_str()) {
            // The filter overwrites the route header: the operation id would be lost.
            return Err(ConfigError::new(
                "operation_header",
                format!("\"{route_header}\" is also the route_header; they must differ"),
            ));
        }
        let max_inflight_shadows = raw.max_inflight_shadows.unwrap_or(DEFAULT_MAX_INFLIGHT_SHADOWS);
        if max_inflight_shadows == 0 || max_inflight_shadows > MAX_INFLIGHT_SHADOWS {
            return Err(ConfigError::new(
                "max_inflight_shadows",
                format!("must be between 1 and {MAX_INFLIGHT_SHADOWS}"),
            ));
        }
        let max_shadows_per_second = raw.max_shadows_per_second;
        if max_shadows_per_second.is_some_and(|n| n == 0 || n > MAX_SHADOWS_PER_SECOND) {
            return Err(ConfigError::new(
                "max_shadows_per_second",
                format!("must be between 1 and {MAX_SHADOWS_PER_SECOND} (leave it out for no bound; mode off stops shadowing)"),
            ));
        }
        let hosts = raw.hosts.as_deref().map(|list| hosts(list, "hosts")).transpose()?;
        let legacy = top_backend(&raw.legacy.0, "legacy")?;
        let candidate = top_backend(&raw.candidate.0, "candidate")?;
        // Compiled once, and reported at `defaults.*` even when no operation
        // inherits them.
        let defaults = Layer::compile(raw.defaults.0, "defaults")?;
        let evidence_collector = raw.evidence_collector.map(|c| evidence::collector(c.0)).transpose()?;
        if raw.operations.len() > MAX_OPERATIONS {
            return Err(ConfigError::new(
                "operations",
                format!("{} operations, at most {MAX_OPERATIONS}", raw.operations.len()),
            ));
        }
        let plan = Plan {
            revision: revision.unwrap_or_default(),
            route_header,
            operation_header,
            max_inflight_shadows,
            max_shadows_per_second,
            hosts,
            legacy,
            candidate,
            evidence_collector,
            operations: Vec::with_capacity(raw.operations.len()),
            matcher: Matcher::default(),
            by_id: hashbrown::HashMap::with_capacity(raw.operations.len()),
            literals: hashbrown::HashSet::new(),
        };
        Ok(Compiler {
            plan,
            defaults,
            inherited: None,
            operations: raw.operations.into_iter().enumerate(),
        })
    }

    /// Compiles at most `budget` more operations; true once none is left.
    /// After an error the compiler is of no further use.
    pub fn step(&mut self, budget: usize) -> Result<bool, ConfigError> {
        for _ in 0..budget {
            let Some((index, op)) = self.operations.next() else {
                return Ok(true);
            };
            self.operation(index, op)?;
        }
        Ok(self.operations.len() == 0)
    }

    /// Operations not compiled yet.
    pub fn remaining(&self) -> usize {
        self.operations.len()
    }

    /// Compiles what is left and checks the configuration as a whole.
    pub fn finish(mut self) -> Result<Plan, ConfigError> {
        self.step(usize::MAX)?;
        let plan = self.plan;
        if !plan.operations.iter().any(|op| op.settings.evidence.is_some()) {
            if let Some(at) = self.defaults.evidence.unused() {
                return Err(ConfigError::new(
                    at,
                    "no operation has evidence.enabled: this has no effect",
                ));
            }
            if plan.evidence_collector.is_some() {
                return Err(ConfigError::new(
                    "evidence_collector",
                    "no operation has evidence.enabled: nothing would be sent to it",
                ));
            }
        }
        Ok(plan)
    }

    fn operation(&mut self, index: usize, op: Box<Object<RawOperation>>) -> Result<(), ConfigError> {
        let plan = &mut self.plan;
        // Not format!: its machinery cost more than the rest of the name.
        let mut at = String::with_capacity(24);
        at.push_str("operations[");
        at.push_str(&index.to_string());
        at.push(']');
        let Object(op) = *op;
        let (identity, own) = op.split();
        let operation = operation(plan, identity, own, &self.defaults, &mut self.inherited, &at)?;
        if operation.settings.evidence.is_some() && plan.evidence_collector.is_none() {
            return Err(ConfigError::new(
                format!("{at}.evidence.enabled"),
                "needs evidence_collector at the top level: where the records go",
            ));
        }
        for segment in operation.path.split('/') {
            // Looked up before it is copied: most literals repeat.
            if !segment.is_empty() && !segment.contains('{') && !plan.literals.contains(segment) {
                plan.literals.insert(segment.to_string());
            }
        }
        add(plan, operation, index, &at)
    }
}

#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn operation(
    plan: &Plan,
    identity: RawIdentity,
    mut own: RawSettings,
    defaults: &Layer,
    inherited: &mut Option<Arc<Settings>>,
    at: &str,
) -> Result<Operation, ConfigError> {
    let id = names::id(identity.id, Field(at, "id"))?;
    let method = names::method(identity.method, Field(at, "method"))?;
    let group = identity
        .group
        .map(|group| names::id(group, Field(at, "group")))
        .transpose()?;
    let hosts = identity
        .hosts
        .as_deref()
        .map(|list| hosts(list, &format!("{at}.hosts")))
        .transpose()?;
    if let (Some(outer), Some(own)) = (&plan.hosts, &hosts) {
        if let Some(i) = outer.first_uncovered(own) {
            return Err(ConfigError::new(
                format!("{at}.hosts[{i}]"),
                format!(
                    "\"{}\" is outside the top-level hosts: requests to it pass through, so this operation would never see them",
                    own.patterns().get(i).map(ToString::to_string).unwrap_or_default()
                ),
            ));
        }
    }
    // The mode is what a migration's operations set most, one by one:
    // set apart, it leaves the rest to share.
    let mode = own.mode.take().or(defaults.mode).unwrap_or(Mode::Legacy);
    let (settings, enables_evidence) = match inherited {
        Some(settings) if own.is_empty() => (Arc::clone(settings), false),
        _ => {
            let inherits_all = own.is_empty();
            let own = Layer::compile(own, at)?;
            no_effect(&own, &method, at)?;
            let enables_evidence = own.evidence.enabled() == Some(true);
            own.compare.check_over(&defaults.compare, at)?;
            let settings = Arc::new(own.resolve(defaults, at)?);
            if inherits_all {
                *inherited = Some(Arc::clone(&settings));
            }
            (settings, enables_evidence)
        }
    };
    // Evidence is of comparisons: an unsafe method that is never shadowed
    // has none.
    if enables_evidence && is_unsafe_method(&method) && !settings.shadow_unsafe {
        return Err(ConfigError::new(
            format!("{at}.evidence.enabled"),
            format!("{method} is not a safe method and shadow_unsafe is off: it is never shadowed, so there is no comparison to record"),
        ));
    }
    // Only checked where the two meet: an operation may switch learning on
    // under defaults that sample.
    if settings.learn_noise && settings.noise_per_million == 0 {
        return Err(ConfigError::new(
            format!("{at}.learn_noise"),
            "needs noise_percent above 0: noise is learned from the requests sent twice to the serving backend",
        ));
    }
    Ok(Operation {
        id,
        method,
        path: identity.path,
        hosts,
        group,
        mode,
        legacy: override_backend(&plan.legacy, identity.legacy.as_ref(), Field(at, "legacy"))?,
        candidate: override_backend(&plan.candidate, identity.candidate.as_ref(), Field(at, "candidate"))?,
        settings,
    })
}

/// Refuses an operation's own setting that cannot change anything, so that
/// nobody believes it does. Inherited settings are not checked: `defaults`
/// speak for many operations, and apply where they can.
fn no_effect(own: &Layer, method: &str, at: &str) -> Result<(), ConfigError> {
    if !is_unsafe_method(method) {
        return Ok(());
    }
    // A noise repeat sends the request to the serving backend a second time:
    // for an unsafe method that would be a second real request, so the
    // filter never repeats one.
    let why =
        format!("{method} is not a safe method, and noise repeats are sent for safe methods only: this has no effect");
    if own.noise_per_million.is_some_and(|n| n > 0) {
        return Err(ConfigError::new(format!("{at}.noise_percent"), why));
    }
    if own.learn_noise == Some(true) {
        return Err(ConfigError::new(format!("{at}.learn_noise"), why));
    }

    Ok(())
}

/// Enters the operation into the plan: a unique id, and a method and path
/// template no other operation serves on the same hosts.
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn add(plan: &mut Plan, operation: Operation, index: usize, at: &str) -> Result<(), ConfigError> {
    if let Some(first) = plan.by_id.get(&operation.id) {
        return Err(ConfigError::new(
            format!("{at}.id"),
            format!("duplicate id \"{}\" (also operations[{first}])", operation.id),
        ));
    }
    let segments = parse_template(&operation.path).map_err(|msg| ConfigError::new(format!("{at}.path"), msg))?;
    let operations = &plan.operations;
    let overlaps = |other: usize| {
        operations
            .get(other)
            .is_some_and(|other| hosts_overlap(other.hosts.as_ref(), operation.hosts.as_ref()))
    };
    if let Err(other) = plan.matcher.insert(&operation.method, &segments, index, overlaps) {
        let other_op = plan.operations.get(other);
        let on_hosts = if other_op.is_some_and(|o| o.hosts.is_some()) || operation.hosts.is_some() {
            " on the same hosts"
        } else {
            ""
        };
        return Err(ConfigError::new(
            format!("{at}.path"),
            format!(
                "{} {} is already matched by operations[{other}] (\"{}\"){on_hosts}",
                operation.method,
                operation.path,
                other_op.map(|o| o.id.as_str()).unwrap_or_default()
            ),
        ));
    }
    plan.by_id.insert(operation.id.clone(), index);
    plan.operations.push(operation);
    Ok(())
}

/// Whether some request host is served by both (`None`: every host).
fn hosts_overlap(a: Option<&Hosts>, b: Option<&Hosts>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.overlaps(b),
        _ => true,
    }
}

fn hosts(list: &[String], at: &str) -> Result<Hosts, ConfigError> {
    Hosts::parse(list).map_err(|(index, message)| match index {
        Some(i) => ConfigError::new(format!("{at}[{i}]"), message),
        None => ConfigError::new(at, message),
    })
}

fn top_backend(raw: &RawBackend, at: &str) -> Result<Backend, ConfigError> {
    let cluster = match &raw.cluster {
        Some(cluster) => names::cluster_name(cluster, &format!("{at}.cluster"))?.into(),
        None => return Err(ConfigError::new(format!("{at}.cluster"), "missing field")),
    };
    Ok(Backend {
        cluster,
        authority: raw
            .authority
            .as_deref()
            .map(|a| names::authority(a, &format!("{at}.authority")).map(Arc::from))
            .transpose()?,
    })
}

fn override_backend(base: &Backend, own: Option<&RawBackend>, at: Field) -> Result<Backend, ConfigError> {
    let Some(own) = own else { return Ok(base.clone()) };
    let at = at.to_string();
    let at = at.as_str();
    Ok(Backend {
        cluster: match &own.cluster {
            Some(cluster) => names::cluster_name(cluster, &format!("{at}.cluster"))?.into(),
            None => Arc::clone(&base.cluster),
        },
        authority: match &own.authority {
            Some(a) => Some(names::authority(a, &format!("{at}.authority"))?.into()),
            None => base.authority.clone(),
        },
    })
}
