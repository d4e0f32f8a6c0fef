//! Helpers for the unit tests: temporary directories and example files.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const CONFIG_V1: &str = r#"{
  "revision": "r1",
  "legacy": {"cluster": "legacy"},
  "candidate": {"cluster": "candidate"},
  "operations": [
    {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
    {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "shadow"}
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

    pub fn names(&self) -> Vec<String> {
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
pub fn ecds_file(plugin_config: &str) -> String {
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

/// The plugin configuration string of an ECDS file's text.
pub fn plugin_config(ecds_text: &str) -> String {
    let document: serde_json::Value = serde_json::from_str(ecds_text).unwrap();
    document
        .pointer("/resources/0/typed_config/config/configuration/value")
        .and_then(serde_json::Value::as_str)
        .unwrap()
        .to_string()
}
