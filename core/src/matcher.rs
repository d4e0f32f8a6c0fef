//! Operation matching: method plus an OpenAPI-style path template.
//!
//! Templates are compiled into a segment trie, so a lookup costs one hash
//! probe per path segment whatever the number of operations. Rules:
//! - `{name}` matches exactly one non-empty segment; a literal segment wins
//!   over a template at the same position, and matching falls back to the
//!   template when the literal branch leads nowhere.
//! - The query string (and fragment) is ignored.
//! - One trailing slash is ignored on both sides: `/returns/` is `/returns`.
//!   Empty segments elsewhere (`/a//b`) match nothing.
//! - Segments compare byte for byte, without percent-decoding.

use hashbrown::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// Parses a path template, or says what is wrong with it.
pub fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err(format!("\"{template}\" must start with '/'"));
    };
    if template.contains(['?', '#']) {
        return Err("a path template has no query string or fragment".to_string());
    }
    let rest = match rest.strip_suffix('/') {
        // "//": the one slash left is an empty segment, not the root.
        Some("") => return Err("empty segment ('//')".to_string()),
        Some(trimmed) => trimmed,
        None => rest,
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<&str> = Vec::new();
    let mut segments = Vec::new();
    for segment in rest.split('/') {
        let opens = segment.matches('{').count();
        let closes = segment.matches('}').count();
        if opens != closes {
            return Err(format!(
                "unbalanced '{}' in segment \"{segment}\"",
                if opens > closes { '{' } else { '}' }
            ));
        }
        if segment.is_empty() {
            return Err("empty segment ('//')".to_string());
        }
        if opens == 0 {
            segments.push(Segment::Literal(segment.to_string()));
            continue;
        }
        let name = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|name| !name.contains(['{', '}']))
            .ok_or_else(|| format!("\"{segment}\": a parameter must be a whole segment, like {{id}}"))?;
        if name.is_empty() {
            return Err("empty parameter name '{}'".to_string());
        }
        if names.contains(&name) {
            return Err(format!("parameter {{{name}}} appears twice"));
        }
        names.push(name);
        segments.push(Segment::Param(name.to_string()));
    }
    Ok(segments)
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// Operations ending here, by method. Few per node, so a list.
    methods: Vec<(Box<str>, usize)>,
}

#[derive(Debug, Default)]
pub struct Matcher {
    root: Node,
}

impl Matcher {
    /// Adds an operation; on a clash returns the operation already there.
    pub fn insert(&mut self, method: &str, segments: &[Segment], operation: usize) -> Result<(), usize> {
        let mut node = &mut self.root;
        for segment in segments {
            node = match segment {
                Segment::Literal(text) => node.literals.entry(text.as_str().into()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Box::default),
            };
        }
        if let Some((_, existing)) = node.methods.iter().find(|(m, _)| &**m == method) {
            return Err(*existing);
        }
        node.methods.push((method.into(), operation));
        Ok(())
    }

    /// The operation serving `method` on `path` (which may carry a query).
    pub fn find(&self, method: &str, path: &str) -> Option<usize> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let rest = path.strip_prefix('/')?;
        let rest = match rest.strip_suffix('/') {
            // "//" is an empty segment plus a trailing slash, not the root.
            Some("") => return None,
            Some(trimmed) => trimmed,
            None => rest,
        };
        walk(&self.root, rest, method)
    }
}

fn walk(node: &Node, rest: &str, method: &str) -> Option<usize> {
    if rest.is_empty() {
        return node.methods.iter().find(|(m, _)| &**m == method).map(|(_, op)| *op);
    }
    let (segment, tail) = match rest.split_once('/') {
        Some((segment, tail)) if !tail.is_empty() => (segment, tail),
        // "a/" is left only by "a//" (one trailing slash was trimmed): an
        // empty last segment, which matches nothing.
        Some(_) => return None,
        None => (rest, ""),
    };
    if segment.is_empty() {
        return None;
    }
    if let Some(next) = node.literals.get(segment) {
        if let Some(found) = walk(next, tail, method) {
            return Some(found);
        }
    }
    walk(node.param.as_deref()?, tail, method)
}

#[cfg(test)]
mod tests;
