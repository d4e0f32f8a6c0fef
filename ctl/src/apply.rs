//! `apply`: validate, report what changes, replace the ECDS file atomically.

use std::io::Write;
use std::path::Path;

use parallel_run_core::Plan;
use serde_json::Value;

use crate::{ecds, load_config, print_lines, report};

pub fn apply(config: &Path, ecds_path: &Path, dry_run: bool, out: &mut dyn Write) -> Result<(), String> {
    // Refuse an invalid configuration before the ECDS file is even read.
    let (bytes, plan) = load_config(config)?;
    let text = String::from_utf8(bytes).map_err(|err| format!("{}: not UTF-8: {err}", config.display()))?;
    let new_config = ecds::compact(&text).map_err(|err| format!("{}: {err}", config.display()))?;

    let at_ecds = |err: String| format!("{}: {err}", ecds_path.display());
    let original = std::fs::read_to_string(ecds_path).map_err(|err| at_ecds(format!("cannot read: {err}")))?;
    let mut document: Value = serde_json::from_str(&original).map_err(|err| at_ecds(format!("invalid JSON: {err}")))?;
    let old_config = ecds::replace_config(&mut document, &new_config).map_err(at_ecds)?;

    let lines = audit(config, ecds_path, old_config.as_deref(), &plan);
    print_lines(out, &lines)?;
    if dry_run {
        return print_lines(out, &[format!("dry run: {} not written", ecds_path.display())]);
    }
    let rendered = ecds::render(&original, old_config.as_deref(), &document).map_err(at_ecds)?;
    ecds::write_atomically(ecds_path, rendered.as_bytes())?;
    print_lines(out, &[format!("{}: written", ecds_path.display())])
}

/// The audit record of one apply: the revisions, then one line per change.
fn audit(config: &Path, ecds_path: &Path, old_config: Option<&str>, new: &Plan) -> Vec<String> {
    let old = old_config.map(|text| Plan::parse(text.as_bytes()));
    let old_revision = match &old {
        Some(Ok(plan)) => report::revision(plan),
        _ => "unknown".to_string(),
    };
    let mut lines = vec![format!(
        "apply {} to {}: {old_revision} -> {}",
        config.display(),
        ecds_path.display(),
        report::revision(new)
    )];
    let changes = match old {
        Some(Ok(old)) => {
            let changes = report::changes(&old, new);
            if !changes.is_empty() && old.revision == new.revision {
                lines.push(format!(
                    "  warning: the configuration changes but its revision does not ({})",
                    report::revision(new)
                ));
            }
            changes
        }
        Some(Err(err)) => {
            lines.push(format!(
                "  note: the current configuration ({}) does not parse ({err}); replacing it",
                ecds::VALUE_PATH
            ));
            report::table(new)
        }
        None => {
            lines.push(format!(
                "  note: no current configuration string at {}",
                ecds::VALUE_PATH
            ));
            report::table(new)
        }
    };
    if changes.is_empty() {
        lines.push("  no changes".to_string());
    }
    lines.extend(changes.into_iter().map(|line| format!("  {line}")));
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    pub const CONFIG_V1: &str = r#"{
  "revision": "r1",
  "legacy": {"cluster": "legacy"},
  "candidate": {"cluster": "candidate"},
  "operations": [
    {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
    {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "shadow"}
  ]
}"#;

    const CONFIG_V2: &str = r#"{
  "revision": "r2",
  "legacy": {"cluster": "legacy"},
  "candidate": {"cluster": "candidate"},
  "operations": [
    {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "cutover"},
    {"id": "createReturn", "method": "POST", "path": "/returns", "mode": "legacy"}
  ]
}"#;

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir {
        pub path: PathBuf,
    }

    impl TempDir {
        pub fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "parallel-run-ctl-{label}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir { path }
        }

        pub fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.path.join(name);
            fs::write(&path, contents).unwrap();
            path
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<_> = fs::read_dir(&self.path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }

    /// An ECDS file shaped like envoy/ecds/parallel-run.json.
    fn ecds_file(plugin_config: &str) -> String {
        let document = serde_json::json!({"resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "parallel-run",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "parallel-run",
                    "root_id": "parallel_run",
                    "failure_policy": "FAIL_OPEN",
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin_config}
                }
            }
        }]});
        serde_json::to_string_pretty(&document).unwrap()
    }

    fn plugin_config(ecds_text: &str) -> String {
        let document: Value = serde_json::from_str(ecds_text).unwrap();
        document
            .pointer("/resources/0/typed_config/config/configuration/value")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    fn run(config: &Path, ecds_path: &Path, dry_run: bool) -> (Result<(), String>, String) {
        let mut out = Vec::new();
        let result = apply(config, ecds_path, dry_run, &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn apply_replaces_the_configuration_and_reports_the_changes() {
        let dir = TempDir::new("apply");
        let ecds_path = dir.write("parallel-run.json", &ecds_file(&ecds::compact(CONFIG_V1).unwrap()));
        let config = dir.write("v2.json", CONFIG_V2);

        let (result, out) = run(&config, &ecds_path, false);
        result.unwrap();
        assert_eq!(
            out,
            format!(
                "apply {} to {}: revision \"r1\" -> revision \"r2\"\n\
                 \x20 getReturn: shadow -> cutover\n\
                 \x20 createReturn: added (POST /returns, legacy)\n\
                 \x20 listReturns: removed (was GET /returns, shadow)\n\
                 {}: written\n",
                config.display(),
                ecds_path.display(),
                ecds_path.display()
            )
        );
        let written = fs::read_to_string(&ecds_path).unwrap();
        // Compact, in the operator's key order, and what the filter accepts.
        let value = plugin_config(&written);
        assert!(
            value.starts_with(r#"{"revision":"r2","legacy":{"cluster":"legacy"}"#),
            "{value}"
        );
        assert_eq!(Plan::parse(value.as_bytes()).unwrap().revision, "r2");
        // The rest of the resource is untouched, layout included.
        assert_eq!(written, ecds_file(&value));
        assert_eq!(
            dir.names(),
            ["parallel-run.json", "v2.json"],
            "no temp file left behind"
        );

        // Applying the same file again changes nothing.
        let (result, out) = run(&config, &ecds_path, false);
        result.unwrap();
        assert!(out.contains("\n  no changes\n"), "{out}");
        assert_eq!(fs::read_to_string(&ecds_path).unwrap(), written);
    }

    #[test]
    fn an_invalid_configuration_leaves_the_ecds_file_untouched() {
        let dir = TempDir::new("refuse");
        let before = ecds_file(&ecds::compact(CONFIG_V1).unwrap());
        let ecds_path = dir.write("parallel-run.json", &before);
        let config = dir.write("bad.json", &CONFIG_V2.replace("/returns/{id}", "/returns/{id"));

        let (result, out) = run(&config, &ecds_path, false);
        let err = result.unwrap_err();
        assert!(
            err.starts_with(&format!("{}: operations[0].path: unbalanced '{{'", config.display())),
            "{err}"
        );
        assert_eq!(out, "", "nothing is announced for a refused configuration");
        assert_eq!(fs::read_to_string(&ecds_path).unwrap(), before);
        assert_eq!(dir.names(), ["bad.json", "parallel-run.json"]);
    }

    #[test]
    fn dry_run_reports_without_writing() {
        let dir = TempDir::new("dry-run");
        let before = ecds_file(&ecds::compact(CONFIG_V1).unwrap());
        let ecds_path = dir.write("parallel-run.json", &before);
        let config = dir.write("v2.json", CONFIG_V2);

        let (result, out) = run(&config, &ecds_path, true);
        result.unwrap();
        assert!(out.contains("  getReturn: shadow -> cutover\n"), "{out}");
        assert!(
            out.ends_with(&format!("dry run: {} not written\n", ecds_path.display())),
            "{out}"
        );
        assert_eq!(fs::read_to_string(&ecds_path).unwrap(), before);
    }

    #[test]
    fn an_unparseable_current_configuration_is_replaced_with_a_note() {
        let dir = TempDir::new("unparseable");
        let ecds_path = dir.write("parallel-run.json", &ecds_file("not json"));
        let config = dir.write("v1.json", CONFIG_V1);

        let (result, out) = run(&config, &ecds_path, false);
        result.unwrap();
        assert!(out.contains(": unknown -> revision \"r1\"\n"), "{out}");
        assert!(out.contains("does not parse (invalid JSON: "), "{out}");
        assert!(
            out.contains("\n  getReturn    GET /returns/{id}  shadow  legacy   candidate\n"),
            "{out}"
        );
        let value = plugin_config(&fs::read_to_string(&ecds_path).unwrap());
        assert_eq!(Plan::parse(value.as_bytes()).unwrap().revision, "r1");
    }

    #[test]
    fn an_unchanged_revision_with_changes_is_flagged() {
        let dir = TempDir::new("revision");
        let ecds_path = dir.write("parallel-run.json", &ecds_file(&ecds::compact(CONFIG_V1).unwrap()));
        let config = dir.write("v1b.json", &CONFIG_V1.replace("\"shadow\"}\n  ]", "\"legacy\"}\n  ]"));

        let (result, out) = run(&config, &ecds_path, true);
        result.unwrap();
        assert!(
            out.contains("warning: the configuration changes but its revision does not"),
            "{out}"
        );
        assert!(out.contains("  listReturns: shadow -> legacy\n"), "{out}");
    }

    #[test]
    fn ecds_problems_name_the_file_and_the_field() {
        let dir = TempDir::new("ecds-errors");
        let config = dir.write("v1.json", CONFIG_V1);

        let missing = dir.path.join("missing.json");
        let err = run(&config, &missing, false).0.unwrap_err();
        assert!(
            err.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{err}"
        );

        let not_json = dir.write("not-json.json", "resources: []");
        let err = run(&config, &not_json, false).0.unwrap_err();
        assert!(
            err.starts_with(&format!("{}: invalid JSON: ", not_json.display())),
            "{err}"
        );

        let wrong_shape = dir.write("shape.json", r#"{"resources":[{"typed_config":{}}]}"#);
        let err = run(&config, &wrong_shape, false).0.unwrap_err();
        assert_eq!(
            err,
            format!("{}: resources[0].typed_config.config: missing", wrong_shape.display())
        );
        assert_eq!(
            fs::read_to_string(&wrong_shape).unwrap(),
            r#"{"resources":[{"typed_config":{}}]}"#
        );
    }

    #[test]
    fn the_shipped_ecds_file_is_understood() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/ecds/parallel-run.json");
        let Ok(text) = fs::read_to_string(&shipped) else {
            return; // not part of this checkout
        };
        let dir = TempDir::new("shipped");
        let ecds_path = dir.write("parallel-run.json", &text);
        let config = dir.write("v2.json", CONFIG_V2);
        let (result, out) = run(&config, &ecds_path, false);
        result.unwrap();
        assert!(out.contains("getReturn: shadow -> cutover"), "{out}");
        let written: Value = serde_json::from_str(&fs::read_to_string(&ecds_path).unwrap()).unwrap();
        let mut expected: Value = serde_json::from_str(&text).unwrap();
        expected["resources"][0]["typed_config"]["config"]["configuration"]["value"] =
            Value::String(ecds::compact(CONFIG_V2).unwrap());
        assert_eq!(written, expected);
    }
}
