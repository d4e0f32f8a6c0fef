//! What an operator reads: a plan as a table, and what a new plan changes.

use parallel_run_core::{Backend, Operation, Plan};

/// `revision "2026-11-22.1", 3 operations`.
pub fn headline(plan: &Plan) -> String {
    let count = plan.operations.len();
    let plural = if count == 1 { "" } else { "s" };
    format!("{}, {count} operation{plural}", revision(plan))
}

pub fn revision(plan: &Plan) -> String {
    if plan.revision.is_empty() {
        "no revision".to_string()
    } else {
        format!("revision {:?}", plan.revision)
    }
}

/// One line per operation: id, method and path, mode, serving cluster,
/// shadow cluster (with the sampled share when not all) or `-`.
pub fn table(plan: &Plan) -> Vec<String> {
    if plan.operations.is_empty() {
        return vec![format!(
            "no operations: every request is served by {}",
            plan.legacy.cluster
        )];
    }
    let header = ["ID", "OPERATION", "MODE", "SERVING", "SHADOW"].map(String::from);
    let rows: Vec<[String; 5]> = std::iter::once(header).chain(plan.operations.iter().map(row)).collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

fn row(op: &Operation) -> [String; 5] {
    let shadow = match op.shadow() {
        None => "-".to_string(),
        Some(backend) if op.settings.sample_per_million >= 1_000_000 => backend.cluster.to_string(),
        Some(backend) => format!("{} ({}%)", backend.cluster, percent(op.settings.sample_per_million)),
    };
    [
        op.id.clone(),
        format!("{} {}", op.method, op.path),
        op.mode.as_str().to_string(),
        op.serving().0.cluster.to_string(),
        shadow,
    ]
}

fn percent(per_million: u32) -> String {
    format!("{}", f64::from(per_million) / 10_000.0)
}

fn backend(backend: &Backend) -> String {
    match &backend.authority {
        Some(authority) => format!("{} (authority {authority})", backend.cluster),
        None => backend.cluster.to_string(),
    }
}

/// What `new` changes relative to `old`, one line each: top-level settings,
/// then operations in `new`'s order (changed or added), then removed ones.
/// Settings are compared as effective values, so a change in `defaults`
/// shows on every operation it reaches.
pub fn changes(old: &Plan, new: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    let mut setting = |name: &str, before: String, after: String| {
        if before != after {
            lines.push(format!("{name}: {before} -> {after}"));
        }
    };
    setting("route_header", old.route_header.clone(), new.route_header.clone());
    let header = |plan: &Plan| plan.operation_header.clone().unwrap_or_else(|| "(none)".to_string());
    setting("operation_header", header(old), header(new));
    setting(
        "max_inflight_shadows",
        old.max_inflight_shadows.to_string(),
        new.max_inflight_shadows.to_string(),
    );
    let per_second = |plan: &Plan| {
        plan.max_shadows_per_second
            .map_or_else(|| "(no bound)".to_string(), |n| n.to_string())
    };
    setting("max_shadows_per_second", per_second(old), per_second(new));
    setting("legacy", backend(&old.legacy), backend(&new.legacy));
    setting("candidate", backend(&old.candidate), backend(&new.candidate));

    for op in &new.operations {
        match old.operations.iter().find(|o| o.id == op.id) {
            Some(before) => lines.extend(operation_changes(before, op)),
            None => lines.push(format!(
                "{}: added ({} {}, {})",
                op.id,
                op.method,
                op.path,
                op.mode.as_str()
            )),
        }
    }
    for op in &old.operations {
        if !new.operations.iter().any(|o| o.id == op.id) {
            lines.push(format!(
                "{}: removed (was {} {}, {})",
                op.id,
                op.method,
                op.path,
                op.mode.as_str()
            ));
        }
    }
    lines
}

fn operation_changes(old: &Operation, new: &Operation) -> Vec<String> {
    let id = &new.id;
    let mut lines = Vec::new();
    if old.mode != new.mode {
        lines.push(format!("{id}: {} -> {}", old.mode.as_str(), new.mode.as_str()));
    }
    let mut field = |name: &str, before: String, after: String| {
        if before != after {
            lines.push(format!("{id}: {name} {before} -> {after}"));
        }
    };
    field(
        "route",
        format!("{} {}", old.method, old.path),
        format!("{} {}", new.method, new.path),
    );
    field("legacy", backend(&old.legacy), backend(&new.legacy));
    field("candidate", backend(&old.candidate), backend(&new.candidate));
    field(
        "shadow_percent",
        percent(old.settings.sample_per_million),
        percent(new.settings.sample_per_million),
    );
    field(
        "shadow_timeout_ms",
        old.settings.shadow_timeout_ms.to_string(),
        new.settings.shadow_timeout_ms.to_string(),
    );
    field(
        "max_body_bytes",
        old.settings.max_body_bytes.to_string(),
        new.settings.max_body_bytes.to_string(),
    );
    field(
        "target_match_rate",
        old.settings.target_match_rate.to_string(),
        new.settings.target_match_rate.to_string(),
    );
    field(
        "min_samples",
        old.settings.min_samples.to_string(),
        new.settings.min_samples.to_string(),
    );
    field(
        "shadow_unsafe",
        old.settings.shadow_unsafe.to_string(),
        new.settings.shadow_unsafe.to_string(),
    );
    // CompareRules has no PartialEq; its Debug form lists every pattern.
    if format!("{:?}", old.settings.compare) != format!("{:?}", new.settings.compare) {
        lines.push(format!("{id}: compare rules changed"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(operations: &str) -> Plan {
        plan_with("", operations)
    }

    fn plan_with(top: &str, operations: &str) -> Plan {
        let json = format!(
            r#"{{"revision":"r","legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}},{top}"operations":[{operations}]}}"#
        );
        Plan::parse(json.as_bytes()).unwrap()
    }

    const GET: &str = r#"{"id":"getReturn","method":"GET","path":"/returns/{id}","mode":"shadow"}"#;
    const POST: &str = r#"{"id":"createReturn","method":"POST","path":"/returns","mode":"legacy"}"#;

    #[test]
    fn the_table_has_one_aligned_line_per_operation() {
        let plan = plan(&format!(
            r#"{GET},{POST},{{"id":"refund","method":"POST","path":"/r/{{id}}/refund","mode":"cutover","shadow_percent":12.5,"candidate":{{"cluster":"returns-v2"}}}}"#
        ));
        assert_eq!(
            table(&plan),
            [
                "ID            OPERATION            MODE     SERVING     SHADOW",
                "getReturn     GET /returns/{id}    shadow   legacy      candidate",
                "createReturn  POST /returns        legacy   legacy      -",
                "refund        POST /r/{id}/refund  cutover  returns-v2  legacy (12.5%)",
            ]
        );
        assert_eq!(headline(&plan), "revision \"r\", 3 operations");
    }

    #[test]
    fn an_empty_plan_says_where_requests_go() {
        let plan = plan("");
        assert_eq!(table(&plan), ["no operations: every request is served by legacy"]);
        assert_eq!(headline(&plan), "revision \"r\", 0 operations");
    }

    #[test]
    fn identical_plans_have_no_changes() {
        assert!(changes(&plan(&format!("{GET},{POST}")), &plan(&format!("{POST},{GET}"))).is_empty());
    }

    #[test]
    fn mode_changes_additions_and_removals() {
        let old = plan(&format!("{GET},{POST}"));
        let new = plan(&format!(
            r#"{},{{"id":"listReturns","method":"GET","path":"/returns","mode":"shadow"}}"#,
            GET.replace("shadow", "cutover")
        ));
        assert_eq!(
            changes(&old, &new),
            [
                "getReturn: shadow -> cutover",
                "listReturns: added (GET /returns, shadow)",
                "createReturn: removed (was POST /returns, legacy)",
            ]
        );
    }

    #[test]
    fn effective_settings_changes_are_listed_per_operation() {
        let old = plan(GET);
        let new = plan_with(
            r#""defaults":{"shadow_percent":5,"min_samples":10},"#,
            r#"{"id":"getReturn","method":"GET","path":"/returns/{returnId}/","mode":"shadow",
                "candidate":{"cluster":"returns-v2","authority":"returns.internal"},
                "target_match_rate":0.95,"shadow_timeout_ms":500,"max_body_bytes":1024,
                "shadow_unsafe":true,"compare":{"ignore_headers":["etag"]}}"#,
        );
        assert_eq!(
            changes(&old, &new),
            [
                "getReturn: route GET /returns/{id} -> GET /returns/{returnId}/",
                "getReturn: candidate candidate -> returns-v2 (authority returns.internal)",
                "getReturn: shadow_percent 100 -> 5",
                "getReturn: shadow_timeout_ms 3000 -> 500",
                "getReturn: max_body_bytes 1048576 -> 1024",
                "getReturn: target_match_rate 0.99 -> 0.95",
                "getReturn: min_samples 100 -> 10",
                "getReturn: shadow_unsafe false -> true",
                "getReturn: compare rules changed",
            ]
        );
    }

    #[test]
    fn top_level_changes_are_listed_first() {
        let old = plan(GET);
        let new = Plan::parse(
            br#"{"legacy":{"cluster":"legacy-eu"},"candidate":{"cluster":"candidate"},
                 "route_header":"x-route","operation_header":"x-op","max_inflight_shadows":8,
                 "max_shadows_per_second":500,
                 "operations":[{"id":"getReturn","method":"GET","path":"/returns/{id}","mode":"shadow"}]}"#,
        )
        .unwrap();
        assert_eq!(
            changes(&old, &new),
            [
                "route_header: x-parallel-run-cluster -> x-route",
                "operation_header: (none) -> x-op",
                "max_inflight_shadows: 256 -> 8",
                "max_shadows_per_second: (no bound) -> 500",
                "legacy: legacy -> legacy-eu",
                "getReturn: legacy legacy -> legacy-eu",
            ]
        );
    }
}
