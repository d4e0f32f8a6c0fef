//! OpenAPI 3.0 and 3.1 (JSON or YAML): `init --openapi SPEC` writes a
//! configuration with one operation per operationId, and `lint --openapi`
//! compares a configuration with a spec. Only `paths` is read: the methods
//! and path templates are the same in 3.0 and 3.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use parallel_run_core::http::is_unsafe_method;
use parallel_run_core::Plan;
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;

use crate::cli::InitArgs;
use crate::document;
use crate::error::{Error, Result};
use crate::{Printed, Run};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One operation of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecOperation {
    /// The operationId sanitised to `[A-Za-z0-9_-]+` (or made from the method and path).
    pub id: String,
    pub method: String,
    /// The path template with the base path in front.
    pub path: String,
    /// `paths./pets/{id}.get`, for messages.
    pub at: String,
}

/// A spec's operations, and what could not become one (with why).
#[derive(Debug, Default)]
pub struct Spec {
    pub title: String,
    pub version: String,
    pub operations: Vec<SpecOperation>,
    pub skipped: Vec<String>,
}

/// Parses `text` (JSON when it opens with `{`, YAML otherwise); errors name
/// the file and the line.
pub fn parse(text: &str, label: &str, base_path: &str) -> Result<Spec> {
    // serde_yaml_ng's Value keeps the file's order and any key type (YAML
    // response codes are integers); JSON is read by serde_json into it.
    let document: Yaml = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|err| Error::invalid(format!("{label}: not valid JSON: {err}")))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|err| Error::invalid(format!("{label}: not valid YAML: {err}")))?
    };
    let text_of = |value: Option<&Yaml>| match value {
        Some(Yaml::String(s)) => s.clone(),
        Some(Yaml::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let version = text_of(document.get("openapi"));
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        let found = match document.get("swagger") {
            Some(swagger) => format!("Swagger {}", text_of(Some(swagger))),
            None if version.is_empty() => "no `openapi` field".to_string(),
            None => format!("openapi {version:?}"),
        };
        return Err(Error::invalid(format!("{label}: {found}: OpenAPI 3.0 or 3.1 expected")));
    }
    let paths = document
        .get("paths")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| Error::invalid(format!("{label}: paths: missing or not a mapping")))?;
    let info = document.get("info");
    let mut spec = Spec {
        title: text_of(info.and_then(|i| i.get("title"))),
        version: text_of(info.and_then(|i| i.get("version"))),
        ..Spec::default()
    };
    let base = base_path.trim_end_matches('/');
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut sanitised: BTreeSet<String> = BTreeSet::new();
    let mut shapes: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in paths {
        let Some(path) = path.as_str() else {
            spec.skipped
                .push(format!("paths: a key that is not a string ({path:?})"));
            continue;
        };
        let Some(item) = item.as_mapping() else {
            spec.skipped.push(format!("paths.{path}: not an object"));
            continue;
        };
        // A path item may be a local reference (`#/components/pathItems/x`):
        // followed one level, no further.
        let item = match item.get("$ref") {
            None => item,
            Some(reference) => match reference
                .as_str()
                .and_then(|r| local_ref(&document, r))
                .and_then(Yaml::as_mapping)
            {
                Some(target) if !target.contains_key("$ref") => target,
                _ => {
                    spec.skipped
                        .push(format!("paths.{path}: $ref {reference:?} is not a local path item"));
                    continue;
                }
            },
        };
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let at = format!("paths.{path}.{method}");
            let upper = method.to_ascii_uppercase();
            let full = format!("{base}{path}");
            if let Err(err) = check_template(&full) {
                spec.skipped.push(format!("{at}: {err}"));
                continue;
            }
            let shape = format!("{upper} {}", shape(&full));
            if let Some(first) = shapes.get(&shape) {
                spec.skipped
                    .push(format!("{at}: routes like {first} (same method, same segments)"));
                continue;
            }
            let id = match operation.get("operationId").and_then(Yaml::as_str) {
                Some(raw) => {
                    if let Some(first) = ids.insert(raw.to_string(), at.clone()) {
                        return Err(Error::invalid(format!(
                            "{label}: {at}: duplicate operationId {raw:?} (also {first})"
                        )));
                    }
                    sanitise(raw)
                }
                None => sanitise(&format!("{method}{}", full.replace(['{', '}'], ""))),
            };
            let id = unique(id, &mut sanitised);
            shapes.insert(shape, at.clone());
            spec.operations.push(SpecOperation {
                id,
                method: upper,
                path: full,
                at,
            });
        }
    }
    Ok(spec)
}

/// The value at a local reference `#/a/b~1c` in `document`.
fn local_ref<'a>(document: &'a Yaml, reference: &str) -> Option<&'a Yaml> {
    let pointer = reference.strip_prefix("#/")?;
    pointer.split('/').try_fold(document, |node, token| {
        let key = token.replace("~1", "/").replace("~0", "~");
        node.get(key.as_str())
    })
}

/// `[A-Za-z0-9_-]+`: anything else becomes `_`, runs of `_` collapse.
pub fn sanitise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "operation".to_string()
    } else {
        trimmed.to_string()
    }
}

fn unique(id: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = id.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{id}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// What the filter's matcher accepts: a parameter is a whole segment.
fn check_template(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} does not start with '/'"));
    }
    for segment in path.trim_matches('/').split('/').filter(|s| !s.is_empty()) {
        let opens = segment.matches('{').count();
        if opens > 0 && !(opens == 1 && segment.starts_with('{') && segment.ends_with('}')) {
            return Err(format!(
                "segment {segment:?}: the filter matches a parameter as a whole segment only, like {{id}}"
            ));
        }
    }
    if path.contains("//") {
        return Err("an empty segment ('//')".to_string());
    }
    Ok(())
}

/// The route without parameter names or a trailing slash: two templates of
/// one shape and method clash in the filter's matcher.
fn shape(path: &str) -> String {
    path.trim_end_matches('/')
        .split('/')
        .map(|segment| if segment.starts_with('{') { "{}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// A configuration for the spec's operations: safe methods in `safe_mode`,
/// unsafe ones in legacy. Operations the filter still refuses are dropped
/// (with why) until the whole validates.
pub fn configuration(
    spec: &mut Spec,
    legacy: &str,
    candidate: &str,
    safe_mode: &str,
    revision: &str,
) -> Result<(String, Plan)> {
    let operation = |op: &SpecOperation| {
        let mode = if is_unsafe_method(&op.method) {
            "legacy"
        } else {
            safe_mode
        };
        json!({"id": op.id, "method": op.method, "path": op.path, "mode": mode})
    };
    // Bounded: each round drops one operation.
    for _ in 0..=spec.operations.len() {
        let config = json!({
            "revision": revision,
            "legacy": {"cluster": legacy},
            "candidate": {"cluster": candidate},
            "defaults": {"mode": "legacy"},
            "operations": spec.operations.iter().map(operation).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&config).map_err(|err| Error::invalid(err.to_string()))?;
        match document::validate(&text) {
            Ok(plan) => return Ok((text, plan)),
            Err(err) => {
                let index = err
                    .message
                    .strip_prefix("operations[")
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|&i| i < spec.operations.len());
                let Some(index) = index else { return Err(err) };
                let dropped = spec.operations.remove(index);
                spec.skipped.push(format!("{}: {}", dropped.at, err.message));
            }
        }
    }
    Err(Error::invalid("no configuration validates"))
}

pub fn run(args: &InitArgs) -> Run {
    let text = read(&args.openapi)?;
    let label = args.openapi.display().to_string();
    let mut spec = parse(&text, &label, &args.base_path)?;
    let revision = if spec.version.is_empty() {
        format!("openapi-{}", crate::revision::new_revision(&[]))
    } else {
        format!("openapi-{}", sanitise(&spec.version))
    };
    let mode = args.mode.mode().as_str();
    let (config, plan) = configuration(
        &mut spec,
        &args.legacy_cluster,
        &args.candidate_cluster,
        mode,
        &revision,
    )?;
    let mut lines = Vec::new();
    let summary = format!(
        "{label}: {} operations from {:?} {} ({} skipped)",
        plan.operations.len(),
        spec.title,
        spec.version,
        spec.skipped.len()
    );
    match &args.out {
        Some(out) => {
            if out.exists() && !args.overwrite {
                return Err(Error::io(format!(
                    "{}: exists (--overwrite replaces it)",
                    out.display()
                )));
            }
            crate::ecds::write_atomically(out, format!("{config}\n").as_bytes()).map_err(Error::io)?;
            lines.push(format!("{summary}: written to {}", out.display()));
            lines.extend(spec.skipped.iter().map(|s| format!("  skipped {s}")));
        }
        None => {
            // The configuration is the output; what was skipped goes to stderr.
            lines.push(config.clone());
            eprintln!("{summary}");
            for skipped in &spec.skipped {
                eprintln!("  skipped {skipped}");
            }
        }
    }
    Ok((
        Printed {
            lines,
            json: json!({
                "spec": label,
                "title": spec.title,
                "version": spec.version,
                "operations": plan.operations.len(),
                "skipped": spec.skipped,
                "out": args.out.as_ref().map(|p| p.display().to_string()),
                "config": serde_json::from_str::<Value>(&config).unwrap_or(Value::Null),
            }),
        },
        None,
    ))
}

pub fn read(path: &Path) -> Result<String> {
    let bytes = document::read_file(path)?;
    String::from_utf8(bytes).map_err(|err| Error::invalid(format!("{}: not UTF-8: {err}", path.display())))
}

/// `lint --openapi`: the spec's routes missing from the configuration, and
/// the configuration's missing from the spec (by method and route shape).
pub fn compare<'a>(spec: &'a Spec, plan: &Plan) -> (Vec<&'a SpecOperation>, Vec<String>) {
    let configured: BTreeSet<String> = plan
        .operations
        .iter()
        .map(|op| format!("{} {}", op.method, shape(&op.path)))
        .collect();
    let specified: BTreeSet<String> = spec
        .operations
        .iter()
        .map(|op| format!("{} {}", op.method, shape(&op.path)))
        .collect();
    let missing = spec
        .operations
        .iter()
        .filter(|op| !configured.contains(&format!("{} {}", op.method, shape(&op.path))))
        .collect();
    let extra = plan
        .operations
        .iter()
        .filter(|op| !specified.contains(&format!("{} {}", op.method, shape(&op.path))))
        .map(|op| op.id.clone())
        .collect();
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r##"openapi: 3.1.0
info: {title: Returns, version: "2.1"}
paths:
  /returns/{id}:
    parameters: [{name: id, in: path}]
    get: {operationId: getReturn}
    delete: {operationId: "returns.delete"}
  /returns:
    get: {operationId: listReturns, responses: {200: {description: ok}}}
    post: {}
  /files/{name}.pdf:
    get: {operationId: getFile}
  /returns/{returnId}/:
    get: {operationId: getReturnAgain}
  /labels:
    $ref: "#/components/pathItems/labels"
  /elsewhere:
    $ref: "other.yaml#/x"
components:
  pathItems:
    labels:
      get: {operationId: listLabels}
"##;

    #[test]
    fn one_operation_per_operation_id_unsafe_ones_in_legacy() {
        let mut spec = parse(YAML, "spec.yaml", "/api").unwrap();
        assert_eq!((spec.title.as_str(), spec.version.as_str()), ("Returns", "2.1"));
        let ids: Vec<(&str, &str, &str)> = spec
            .operations
            .iter()
            .map(|op| (op.id.as_str(), op.method.as_str(), op.path.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("getReturn", "GET", "/api/returns/{id}"),
                ("returns_delete", "DELETE", "/api/returns/{id}"),
                ("listReturns", "GET", "/api/returns"),
                ("post_api_returns", "POST", "/api/returns"),
                ("listLabels", "GET", "/api/labels"),
            ]
        );
        assert_eq!(spec.skipped.len(), 3, "{:?}", spec.skipped);
        assert!(
            spec.skipped[2].starts_with("paths./elsewhere: $ref"),
            "{:?}",
            spec.skipped
        );
        assert!(spec.skipped[0].starts_with("paths./files/{name}.pdf.get: segment \"{name}.pdf\""));
        assert!(spec.skipped[1].contains("routes like paths./returns/{id}.get"));
        let (config, plan) = configuration(&mut spec, "legacy", "candidate", "shadow", "openapi-2.1").unwrap();
        let modes: Vec<&str> = plan.operations.iter().map(|op| op.mode.as_str()).collect();
        assert_eq!(modes, ["shadow", "legacy", "shadow", "legacy", "shadow"]);
        assert_eq!(plan.classify("GET", "/api/returns/7", None), Some(0));
        assert!(config.contains("\"revision\": \"openapi-2.1\""));
    }

    #[test]
    fn bad_specs_are_refused_with_where() {
        let err = parse("openapi: 3.0.0\npaths:\n  /a: [\n", "s.yaml", "").unwrap_err();
        assert!(err.message.starts_with("s.yaml: not valid YAML: "), "{err}");
        assert!(err.message.contains("line"), "{err}");
        let err = parse("{\"openapi\": \"3.0.0\",\n \"paths\": {,}}", "s.json", "").unwrap_err();
        assert!(err.message.contains("line 2"), "{err}");
        let err = parse(r#"{"swagger": "2.0", "paths": {}}"#, "s.json", "").unwrap_err();
        assert_eq!(err.message, "s.json: Swagger 2.0: OpenAPI 3.0 or 3.1 expected");
        let dup = "openapi: 3.0.3\npaths:\n  /a: {get: {operationId: x}}\n  /b: {get: {operationId: x}}\n";
        let err = parse(dup, "d.yaml", "").unwrap_err();
        assert_eq!(
            err.message,
            "d.yaml: paths./b.get: duplicate operationId \"x\" (also paths./a.get)"
        );
    }

    #[test]
    fn ids_are_sanitised_and_unique() {
        assert_eq!(sanitise("repos/get-content"), "repos_get-content");
        assert_eq!(sanitise("  weird  id!! "), "weird_id");
        assert_eq!(sanitise("///"), "operation");
        let spec = parse(
            "openapi: 3.0.0\npaths:\n  /a: {get: {operationId: a.b}}\n  /b: {get: {operationId: a/b}}\n",
            "s",
            "",
        )
        .unwrap();
        let ids: Vec<&str> = spec.operations.iter().map(|op| op.id.as_str()).collect();
        assert_eq!(ids, ["a_b", "a_b_2"]);
    }

    #[test]
    fn the_spec_and_a_configuration_are_compared_by_route() {
        let spec = parse(YAML, "s", "").unwrap();
        let plan = Plan::parse(
            br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[
                {"id":"mine","method":"GET","path":"/returns/{rid}"},
                {"id":"old","method":"GET","path":"/legacy-only"}]}"#,
        )
        .unwrap();
        let (missing, extra) = compare(&spec, &plan);
        let missing: Vec<&str> = missing.iter().map(|op| op.id.as_str()).collect();
        assert_eq!(missing, ["returns_delete", "listReturns", "post_returns", "listLabels"]);
        assert_eq!(extra, ["old"]);
    }
}
