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
//!
//! Nothing here recurses: inserting, finding and dropping walk the trie
//! with a loop (a template of thousands of segments once overflowed the
//! VM's stack in a recursive lookup, and in the drop of the old trie). A
//! request path longer than [`MAX_REQUEST_PATH_BYTES`], or with more
//! segments than the deepest template, matches nothing without a walk.

use hashbrown::HashMap;

use crate::limits::{MAX_REQUEST_PATH_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_SEGMENTS};

/// One segment of a path template, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'t> {
    Literal(&'t str),
    Param(&'t str),
}

/// Parses a path template, or says what is wrong with it.
pub fn parse_template(template: &str) -> Result<Vec<Segment<'_>>, String> {
    // Before anything that echoes the template.
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "{} bytes, a path template has at most {MAX_TEMPLATE_BYTES}",
            template.len()
        ));
    }
    let Some(rest) = template.strip_prefix('/') else {
        return Err(format!("\"{template}\" must start with '/'"));
    };
    // Byte loops throughout: the char-pattern searches they replace made
    // this a seventh of compiling 10,000 operations.
    if template.bytes().any(|b| b == b'?' || b == b'#') {
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
    let count = rest.bytes().filter(|&b| b == b'/').count() + 1;
    if count > MAX_TEMPLATE_SEGMENTS {
        return Err(format!(
            "{count} segments, a path template has at most {MAX_TEMPLATE_SEGMENTS}"
        ));
    }
    let mut segments = Vec::with_capacity(count);
    for segment in rest.split('/') {
        let (opens, closes) = segment.bytes().fold((0usize, 0usize), |(opens, closes), b| match b {
            b'{' => (opens + 1, closes),
            b'}' => (opens, closes + 1),
            _ => (opens, closes),
        });
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
            segments.push(Segment::Literal(segment));
            continue;
        }
        let name = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|name| !name.bytes().any(|b| b == b'{' || b == b'}'))
            .ok_or_else(|| format!("\"{segment}\": a parameter must be a whole segment, like {{id}}"))?;
        if name.is_empty() {
            return Err("empty parameter name '{}'".to_string());
        }
        if segments.contains(&Segment::Param(name)) {
            return Err(format!("parameter {{{name}}} appears twice"));
        }
        segments.push(Segment::Param(name));
    }
    Ok(segments)
}

#[derive(Default)]
struct Node {
    literals: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// Operations ending here: few per node, so a list. One method may
    /// appear more than once when the operations' hosts differ.
    methods: Vec<(Box<str>, usize)>,
}

impl Node {
    fn is_leaf(&self) -> bool {
        self.literals.is_empty() && self.param.is_none()
    }

    /// Moves the children out, so that dropping this node recurses no more.
    fn detach_children(&mut self, into: &mut Vec<Node>) {
        into.extend(self.literals.drain().map(|(_, child)| child));
        if let Some(param) = self.param.take() {
            into.push(*param);
        }
    }
}

impl Drop for Node {
    /// Iterative: the children are detached onto a list and dropped from
    /// there childless, so a deep trie costs heap, not stack.
    fn drop(&mut self) {
        if self.is_leaf() {
            return;
        }
        let mut pending = Vec::new();
        self.detach_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.detach_children(&mut pending);
        }
    }
}

#[derive(Default)]
pub struct Matcher {
    root: Node,
    /// Segments of the deepest template: a longer request matches nothing.
    depth: usize,
    nodes: usize,
}

impl std::fmt::Debug for Matcher {
    /// A summary: the derived form would recurse through the whole trie.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("nodes", &self.nodes)
            .field("depth", &self.depth)
            .finish()
    }
}

impl Matcher {
    /// Adds an operation. It clashes with an operation already there for the
    /// same method and template when `clashes` says so (their hosts
    /// overlap); then nothing changes and the other one is returned.
    pub fn insert(
        &mut self,
        method: &str,
        segments: &[Segment],
        operation: usize,
        clashes: impl Fn(usize) -> bool,
    ) -> Result<(), usize> {
        let mut node = &mut self.root;
        let mut created = 0;
        for segment in segments {
            node = match segment {
                Segment::Literal(text) => node.literals.entry((*text).into()).or_insert_with(|| {
                    created += 1;
                    Node::default()
                }),
                Segment::Param(_) => node.param.get_or_insert_with(|| {
                    created += 1;
                    Box::default()
                }),
            };
        }
        if let Some((_, existing)) = node
            .methods
            .iter()
            .find(|(m, existing)| &**m == method && clashes(*existing))
        {
            // The nodes created on the way stay, empty: harmless, and the
            // configuration is refused anyway.
            return Err(*existing);
        }
        node.methods.push((method.into(), operation));
        self.nodes += created;
        self.depth = self.depth.max(segments.len());
        Ok(())
    }

    /// The first operation, literal branches first, serving `method` on
    /// `path` (which may carry a query) that `accepts`.
    pub fn find(&self, method: &str, path: &str, accepts: impl Fn(usize) -> bool) -> Option<usize> {
        let rest = self.segments_of(path)?;
        // The branch being followed, and the parameter branches passed on
        // the way (a node and the path left below it). Following the literal
        // branch first and coming back to the parameter branches, last one
        // first, keeps "a literal wins, else the template" without recursion,
        // and allocates only where both branches exist. Each trie node is
        // visited at most once (its depth fixes the segment it meets), so a
        // lookup costs at most the trie's size.
        let mut pending: Vec<(&Node, &str)> = Vec::new();
        let mut next = Some((&self.root, rest));
        while let Some((node, rest)) = next.take().or_else(|| pending.pop()) {
            if rest.is_empty() {
                let found = node
                    .methods
                    .iter()
                    .find(|(m, operation)| &**m == method && accepts(*operation));
                if let Some((_, operation)) = found {
                    return Some(*operation);
                }
                continue;
            }
            let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let param = node.param.as_deref();
            next = match node.literals.get(segment) {
                Some(literal) => {
                    if let Some(param) = param {
                        pending.push((param, tail));
                    }
                    Some((literal, tail))
                }
                None => param.map(|param| (param, tail)),
            };
        }
        None
    }

    /// The segments part of a request path (no leading slash, no trailing
    /// slash, no query), or `None` when it cannot match any template: not
    /// origin-form, too long, deeper than every template, or with an empty
    /// segment. Reads at most [`MAX_REQUEST_PATH_BYTES`] + 1 bytes before the
    /// length decides, and the rest of the path only to count its segments.
    fn segments_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        let head = path
            .as_bytes()
            .get(..=MAX_REQUEST_PATH_BYTES)
            .unwrap_or(path.as_bytes());
        let path = match head.iter().position(|&b| b == b'?' || b == b'#') {
            Some(end) => path.get(..end)?,
            None if path.len() > MAX_REQUEST_PATH_BYTES => return None,
            None => path,
        };
        let rest = path.strip_prefix('/')?;
        let rest = match rest.strip_suffix('/') {
            // "//" is an empty segment plus a trailing slash, not the root.
            Some("") => return None,
            Some(trimmed) => trimmed,
            None => rest,
        };
        if rest.is_empty() {
            return Some(rest);
        }
        let mut segments = 0;
        for segment in rest.split('/') {
            segments += 1;
            if segment.is_empty() || segments > self.depth {
                return None;
            }
        }
        Some(rest)
    }
}

#[cfg(test)]
mod tests;
