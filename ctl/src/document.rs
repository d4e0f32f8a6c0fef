//! A configuration file as the operator keeps it: the ECDS resource file
//! Envoy watches, a plain plugin configuration (JSON), an Istio WasmPlugin
//! manifest (YAML), or standard input (`-`, read only). Reading gives the
//! plugin configuration text; writing puts a new one in and keeps the rest.

use std::io::Read;
use std::path::{Path, PathBuf};

use parallel_run_core::Plan;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::{ecds, wasmplugin};

/// Configuration files above this are refused: thousands of operations fit
/// in a few MiB.
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"resources": [...]}`: the plugin JSON is the string at [`ecds::VALUE_PATH`].
    Ecds,
    /// The plugin configuration itself.
    Plain,
    /// An Istio WasmPlugin manifest: the plugin JSON is `spec.pluginConfig`.
    WasmPlugin,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Ecds => "ecds",
            Format::Plain => "json",
            Format::WasmPlugin => "wasmplugin",
        }
    }
}

/// One configuration file, read.
#[derive(Debug, Clone)]
pub struct Document {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
    pub format: Format,
    /// The file as read, for the compare-and-swap before a write.
    pub bytes: Vec<u8>,
    /// The plugin configuration JSON inside it.
    pub config: String,
    /// The name Envoy's ECDS stats use for this filter, when the file says.
    pub ecds_name: Option<String>,
}

impl Document {
    /// Reads `path` (`-` is standard input) and finds the plugin configuration.
    pub fn read(path: &Path) -> Result<Document> {
        if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(|err| Error::io(format!("standard input: cannot read: {err}")))?;
            return Document::from_bytes(None, bytes);
        }
        let bytes = read_file(path)?;
        Document::from_bytes(Some(path.to_path_buf()), bytes)
    }

    pub fn from_bytes(path: Option<PathBuf>, bytes: Vec<u8>) -> Result<Document> {
        let label = path
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string());
        let at = |err: String| Error::io(format!("{label}: {err}"));
        if bytes.len() as u64 > MAX_FILE {
            return Err(at(format!("larger than {MAX_FILE} bytes")));
        }
        let text = std::str::from_utf8(&bytes).map_err(|err| at(format!("not UTF-8: {err}")))?;
        let yaml_name = path
            .as_ref()
            .and_then(|p| p.extension())
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        let looks_json = text.trim_start().starts_with('{');
        if yaml_name || (!looks_json && wasmplugin::is_wasmplugin(text)) {
            let (config, ecds_name) = wasmplugin::read(text).map_err(at)?;
            return Ok(Document {
                path,
                format: Format::WasmPlugin,
                config,
                ecds_name,
                bytes,
            });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| Error::invalid(format!("{label}: invalid JSON: {err}")))?;
        if value.get("resources").is_some() {
            let config = ecds::read_config(&value).map_err(at)?.to_string();
            let ecds_name = value
                .pointer("/resources/0/name")
                .and_then(Value::as_str)
                .map(String::from);
            return Ok(Document {
                path,
                format: Format::Ecds,
                config,
                ecds_name,
                bytes,
            });
        }
        Ok(Document {
            path,
            format: Format::Plain,
            config: text.to_string(),
            ecds_name: None,
            bytes,
        })
    }

    /// `envoy/ecds/parallel-run.json`, or `-`.
    pub fn label(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string())
    }

    /// The plan the filter would build, or why it would refuse the file.
    pub fn plan(&self) -> Result<Plan> {
        validate(&self.config).map_err(|err| {
            let inside = match self.format {
                Format::Ecds => format!("{}: {}", self.label(), ecds::VALUE_PATH),
                Format::WasmPlugin => format!("{}: spec.pluginConfig", self.label()),
                Format::Plain => self.label(),
            };
            err.context(inside)
        })
    }

    pub fn sha256(&self) -> String {
        sha256(&self.bytes)
    }

    /// The new file text with `config` in place of the current plugin
    /// configuration, everything else kept.
    pub fn render(&self, config: &str) -> Result<Vec<u8>> {
        let at = |err: String| Error::io(format!("{}: {err}", self.label()));
        match self.format {
            Format::Plain => Ok(config.as_bytes().to_vec()),
            Format::WasmPlugin => {
                let text = std::str::from_utf8(&self.bytes).map_err(|err| at(err.to_string()))?;
                Ok(wasmplugin::replace(text, config).map_err(at)?.into_bytes())
            }
            Format::Ecds => {
                let text = std::str::from_utf8(&self.bytes).map_err(|err| at(err.to_string()))?;
                let mut document: Value =
                    serde_json::from_str(text).map_err(|err| at(format!("invalid JSON: {err}")))?;
                let old = ecds::replace_config(&mut document, config).map_err(at)?;
                Ok(ecds::render(text, old.as_deref(), &document).map_err(at)?.into_bytes())
            }
        }
    }
}

/// The file's bytes, bounded.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|err| Error::io(format!("{}: cannot read: {err}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(format!("{}: cannot read: {err}", path.display())))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::io(format!("{}: larger than {MAX_FILE} bytes", path.display())));
    }
    Ok(bytes)
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates a plugin configuration with the filter's own code.
pub fn validate(config: &str) -> Result<Plan> {
    Plan::parse(config.as_bytes()).map_err(|err| Error::invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TempDir, CONFIG_V1};

    #[test]
    fn the_format_is_found_from_the_content() {
        let plain = Document::from_bytes(Some("c.json".into()), CONFIG_V1.as_bytes().to_vec()).unwrap();
        assert_eq!(plain.format, Format::Plain);
        assert_eq!(plain.plan().unwrap().revision, "r1");

        let resource = serde_json::json!({"resources": [{"name": "pr", "typed_config": {"config": {"configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue", "value": CONFIG_V1}}}}]});
        let ecds = Document::from_bytes(Some("e.json".into()), resource.to_string().into_bytes()).unwrap();
        assert_eq!(ecds.format, Format::Ecds);
        assert_eq!(ecds.config, CONFIG_V1);
        assert_eq!(ecds.ecds_name.as_deref(), Some("pr"));

        let yaml = "kind: WasmPlugin\nmetadata: {name: p, namespace: n}\nspec:\n  pluginConfig:\n    revision: y\n    legacy: {cluster: l}\n    candidate: {cluster: c}\n";
        let plugin = Document::from_bytes(None, yaml.as_bytes().to_vec()).unwrap();
        assert_eq!(plugin.format, Format::WasmPlugin);
        assert_eq!(plugin.plan().unwrap().revision, "y");
        assert_eq!(plugin.ecds_name.as_deref(), Some("n.p"));
        assert_eq!(plugin.label(), "-");
    }

    #[test]
    fn errors_name_the_file_and_where_in_it() {
        let bad = CONFIG_V1.replace("\"shadow\"", "\"shadw\"");
        let plain = Document::from_bytes(Some("c.json".into()), bad.clone().into_bytes()).unwrap();
        let err = plain.plan().unwrap_err();
        assert!(
            err.message.starts_with("c.json: operations[0].mode: unknown variant"),
            "{err}"
        );
        let resource =
            serde_json::json!({"resources": [{"typed_config": {"config": {"configuration": {"value": bad}}}}]});
        let ecds = Document::from_bytes(Some("e.json".into()), resource.to_string().into_bytes()).unwrap();
        let err = ecds.plan().unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("e.json: {}: operations[0].mode", ecds::VALUE_PATH)),
            "{err}"
        );
        let err = Document::from_bytes(Some("x.json".into()), b"{".to_vec()).unwrap_err();
        assert!(err.message.starts_with("x.json: invalid JSON"), "{err}");
        let dir = TempDir::new("document");
        let missing = dir.path.join("missing.json");
        let err = Document::read(&missing).unwrap_err();
        assert!(err.message.contains("cannot read"), "{err}");
    }

    #[test]
    fn render_keeps_the_rest_of_each_format() {
        let resource = serde_json::json!({"resources": [{"name": "pr", "typed_config": {"config": {"configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue", "value": "{\"revision\":\"a\"}"}}}}]});
        let text = serde_json::to_string_pretty(&resource).unwrap();
        let ecds = Document::from_bytes(Some("e.json".into()), text.clone().into_bytes()).unwrap();
        let out = String::from_utf8(ecds.render("{\"revision\":\"b\"}").unwrap()).unwrap();
        assert_eq!(
            out,
            text.replace("{\\\"revision\\\":\\\"a\\\"}", "{\\\"revision\\\":\\\"b\\\"}")
        );
        let plain = Document::from_bytes(Some("c.json".into()), b"{}".to_vec()).unwrap();
        assert_eq!(plain.render("{\"x\":1}").unwrap(), b"{\"x\":1}");
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
