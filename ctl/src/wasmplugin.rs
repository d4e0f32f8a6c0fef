//! An Istio `WasmPlugin` manifest (YAML, possibly several documents): the
//! plugin configuration in `spec.pluginConfig`, read as JSON, and written
//! back with the rest of the file kept as it is, so that the change goes
//! through git and `kubectl apply`.
//!
//! The `pluginConfig:` block is replaced as text (its lines, up to the next
//! key of its parent); every other line, comments included, is kept byte
//! for byte. Comments inside `pluginConfig` are not kept. The new file is
//! re-parsed and must equal the old one with only `spec.pluginConfig`
//! replaced.

use serde_yaml_ng::Value as Yaml;

const KIND: &str = "WasmPlugin";

/// The manifest's `spec.pluginConfig` as JSON text (keys in the file's
/// order), and the ECDS name Istio gives it (`<namespace>.<name>`).
pub fn read(text: &str) -> Result<(String, Option<String>), String> {
    let documents = parse_all(text)?;
    let (index, plugin) = find_plugin(&documents)?;
    let config = plugin
        .get("spec")
        .and_then(|spec| spec.get("pluginConfig"))
        .ok_or_else(|| format!("{}spec.pluginConfig: missing", doc_label(index, documents.len())))?;
    if !config.is_mapping() {
        return Err(format!(
            "{}spec.pluginConfig: not a mapping",
            doc_label(index, documents.len())
        ));
    }
    let json = serde_json::to_string(config)
        .map_err(|err| format!("{}spec.pluginConfig: {err}", doc_label(index, documents.len())))?;
    let metadata = plugin.get("metadata");
    let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Yaml::as_str);
    let ecds_name = match (field("namespace"), field("name")) {
        (Some(namespace), Some(name)) => Some(format!("{namespace}.{name}")),
        _ => None,
    };
    Ok((json, ecds_name))
}

/// Whether `text` looks like a WasmPlugin manifest (without judging the rest).
pub fn is_wasmplugin(text: &str) -> bool {
    parse_all(text).is_ok_and(|docs| find_plugin(&docs).is_ok())
}

/// `text` with `spec.pluginConfig` of its WasmPlugin replaced by `config` (JSON).
pub fn replace(text: &str, config: &str) -> Result<String, String> {
    let documents = parse_all(text)?;
    let (index, _) = find_plugin(&documents)?;
    let new_config: Yaml = serde_json::from_str(config).map_err(|err| format!("invalid JSON: {err}"))?;
    let rendered = serde_yaml_ng::to_string(&new_config).map_err(|err| format!("cannot render YAML: {err}"))?;

    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (first, last) = document_lines(&lines, index);
    let block = plugin_config_block(&lines, first, last)?;
    let mut out = String::with_capacity(text.len() + rendered.len());
    for line in lines.get(..block.start).unwrap_or_default() {
        out.push_str(line);
    }
    if block.start > 0 && !out.ends_with('\n') {
        out.push('\n');
    }
    let pad = " ".repeat(block.indent);
    out.push_str(&format!("{pad}pluginConfig:\n"));
    for line in rendered.lines() {
        out.push_str(&format!("{pad}  {line}\n"));
    }
    for line in lines.get(block.end..).unwrap_or_default() {
        out.push_str(line);
    }

    // Only spec.pluginConfig changed, and to the new value.
    let mut expected = documents;
    if let Some(spec) = expected
        .get_mut(index)
        .and_then(|doc| doc.get_mut("spec"))
        .and_then(Yaml::as_mapping_mut)
    {
        spec.insert(Yaml::String("pluginConfig".to_string()), new_config);
    }
    match parse_all(&out) {
        Ok(written) if written == expected => Ok(out),
        Ok(_) => Err("cannot rewrite spec.pluginConfig in place (the re-read file differs elsewhere)".to_string()),
        Err(err) => Err(format!("cannot rewrite spec.pluginConfig in place: {err}")),
    }
}

/// Where the `pluginConfig:` block is: lines `start..end`, and its key's indentation.
struct Block {
    start: usize,
    end: usize,
    indent: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// The lines of document `index` (separated by `---` lines).
fn document_lines(lines: &[&str], index: usize) -> (usize, usize) {
    let mut starts = vec![0];
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            starts.push(i + 1);
        }
    }
    // A leading `---` opens the first document rather than ending an empty one.
    if lines.first().is_some_and(|l| l.trim_end() == "---") {
        starts.remove(0);
    }
    let first = starts.get(index).copied().unwrap_or(0);
    let last = starts.get(index + 1).map_or(lines.len(), |next| next.saturating_sub(1));
    (first, last)
}

fn plugin_config_block(lines: &[&str], first: usize, last: usize) -> Result<Block, String> {
    let within = |i: usize| lines.get(i).copied().unwrap_or_default();
    let spec = (first..last)
        .find(|&i| within(i).starts_with("spec:"))
        .ok_or("no top-level `spec:` line")?;
    if !within(spec).trim_end().eq("spec:") {
        return Err("`spec:` must be a block mapping (not written inline)".to_string());
    }
    // The end of spec: the next line at indentation 0 that is content.
    let spec_end = (spec + 1..last)
        .find(|&i| !is_blank_or_comment(within(i)) && indent_of(within(i)) == 0)
        .unwrap_or(last);
    let child_indent = (spec + 1..spec_end)
        .map(within)
        .find(|line| !is_blank_or_comment(line))
        .map(indent_of)
        .ok_or("`spec:` is empty")?;
    let key = (spec + 1..spec_end).find(|&i| {
        let line = within(i);
        indent_of(line) == child_indent && line.trim_start().starts_with("pluginConfig:")
    });
    let Some(start) = key else {
        // No pluginConfig yet: add it at the end of spec, before trailing blanks.
        let mut end = spec_end;
        while end > spec + 1 && is_blank_or_comment(within(end - 1)) {
            end -= 1;
        }
        return Ok(Block {
            start: end,
            end,
            indent: child_indent,
        });
    };
    // The block ends at the next content line no deeper than the key; trailing
    // blank and comment lines belong to what follows.
    let mut end = (start + 1..spec_end)
        .find(|&i| !is_blank_or_comment(within(i)) && indent_of(within(i)) <= child_indent)
        .unwrap_or(spec_end);
    while end > start + 1 && is_blank_or_comment(within(end - 1)) {
        end -= 1;
    }
    Ok(Block {
        start,
        end,
        indent: child_indent,
    })
}

fn parse_all(text: &str) -> Result<Vec<Yaml>, String> {
    use serde::Deserialize;
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Yaml::deserialize(document).map_err(|err| format!("invalid YAML: {err}"))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn find_plugin(documents: &[Yaml]) -> Result<(usize, &Yaml), String> {
    let mut found = documents
        .iter()
        .enumerate()
        .filter(|(_, doc)| doc.get("kind").and_then(Yaml::as_str) == Some(KIND));
    let first = found.next().ok_or("no document of kind WasmPlugin")?;
    if found.next().is_some() {
        return Err("more than one WasmPlugin document: keep one per file".to_string());
    }
    Ok(first)
}

fn doc_label(index: usize, count: usize) -> String {
    if count > 1 {
        format!("document {}: ", index + 1)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"# a comment that must stay
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: parallel-run
  namespace: istio-system
spec:
  url: oci://example/parallel-run:0.1.0   # trailing comment
  pluginConfig:
    revision: "r1"
    legacy:
      cluster: outbound|8080||legacy
    candidate: {cluster: cand}
    operations:
      - {id: getReturn, method: GET, path: "/returns/{id}", mode: shadow, target_match_rate: 0.95}

  # the phase stays after the block
  failStrategy: FAIL_OPEN
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: x}
"#;

    #[test]
    fn the_plugin_config_is_read_in_the_files_key_order() {
        let (json, name) = read(MANIFEST).unwrap();
        assert_eq!(
            json,
            r#"{"revision":"r1","legacy":{"cluster":"outbound|8080||legacy"},"candidate":{"cluster":"cand"},"operations":[{"id":"getReturn","method":"GET","path":"/returns/{id}","mode":"shadow","target_match_rate":0.95}]}"#
        );
        assert_eq!(name.as_deref(), Some("istio-system.parallel-run"));
        assert!(is_wasmplugin(MANIFEST));
        assert!(!is_wasmplugin("{\"resources\": []}"));
    }

    #[test]
    fn writing_replaces_the_block_and_keeps_every_other_line() {
        let (json, _) = read(MANIFEST).unwrap();
        let new = json.replace("\"shadow\"", "\"cutover\"").replace("\"r1\"", "\"r2\"");
        let out = replace(MANIFEST, &new).unwrap();
        assert_eq!(read(&out).unwrap().0, new);
        // Everything outside the block is unchanged, comments included.
        let head = "# a comment that must stay\n";
        assert!(out.starts_with(head));
        assert!(out.contains(
            "  url: oci://example/parallel-run:0.1.0   # trailing comment\n  pluginConfig:\n    revision: r2\n"
        ));
        assert!(
            out.contains("\n\n  # the phase stays after the block\n  failStrategy: FAIL_OPEN\n---\n"),
            "{out}"
        );
        assert!(out.ends_with("kind: EnvoyFilter\nmetadata: {name: x}\n"));
    }

    #[test]
    fn a_missing_plugin_config_is_added_to_spec() {
        let manifest = "kind: WasmPlugin\nspec:\n  url: file:///x.wasm\n\nother: 1\n";
        assert!(read(manifest).unwrap_err().contains("spec.pluginConfig: missing"));
        let out = replace(manifest, r#"{"revision":"a"}"#).unwrap();
        assert_eq!(
            out,
            "kind: WasmPlugin\nspec:\n  url: file:///x.wasm\n  pluginConfig:\n    revision: a\n\nother: 1\n"
        );
    }

    #[test]
    fn problems_are_named() {
        assert!(read("kind: Service\n")
            .unwrap_err()
            .contains("no document of kind WasmPlugin"));
        assert!(read("kind: WasmPlugin\n---\nkind: WasmPlugin\n")
            .unwrap_err()
            .contains("more than one"));
        assert!(read("kind: [\n").unwrap_err().starts_with("invalid YAML"));
        assert!(read("kind: WasmPlugin\nspec:\n  pluginConfig: [1]\n")
            .unwrap_err()
            .contains("spec.pluginConfig: not a mapping"));
        let inline = "kind: WasmPlugin\nspec: {pluginConfig: {a: 1}}\n";
        assert!(replace(inline, "{}").unwrap_err().contains("block mapping"));
    }

    #[test]
    fn the_shipped_manifest_round_trips() {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/istio/wasmplugin.yaml");
        let text = std::fs::read_to_string(shipped).unwrap();
        let (json, name) = read(&text).unwrap();
        assert_eq!(name.as_deref(), Some("istio-system.parallel-run"));
        parallel_run_core::Plan::parse(json.as_bytes()).unwrap();
        let new = json.replace("\"mode\":\"shadow\"", "\"mode\":\"cutover\"");
        let out = replace(&text, &new).unwrap();
        assert_eq!(read(&out).unwrap().0, new);
        let before_block = text.split("  pluginConfig:").next().unwrap();
        assert!(
            out.starts_with(before_block),
            "the comments and keys before the block are kept"
        );
    }
}
