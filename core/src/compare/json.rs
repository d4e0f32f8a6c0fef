//! Semantic JSON comparison and JSON Pointer patterns.

use std::cmp::Ordering;

use hashbrown::HashSet;
use serde_json::{Map, Number, Value};

use super::sort::sort_forms;
use super::{BodyDiff, CaseKeys, CompareRules, MAX_FIELD_BYTES, MAX_REPORTED};
use crate::diff_path;

/// How deep the comparison walks. serde_json refuses documents nested more
/// than 128 levels while parsing, so this is a second bound, for the
/// recursive walks here: they cannot exhaust the (1 MiB) wasm stack.
pub const MAX_DEPTH: usize = 160;

/// Whether a body should be compared as JSON: a JSON media type (its
/// parameters do not matter), or no media type and a body that opens like a
/// JSON document.
pub(super) fn looks_like_json(content_type: Option<&[u8]>, body: &[u8]) -> bool {
    match content_type {
        Some(media_type) => {
            let media_type = super::media_type::essence(media_type);
            media_type.eq_ignore_ascii_case(b"application/json")
                || media_type
                    .len()
                    .checked_sub(5)
                    .and_then(|start| media_type.get(start..))
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case(b"+json"))
        }
        None => matches!(body.trim_ascii_start().first(), Some(b'{' | b'[')),
    }
}

/// A JSON Pointer (RFC 6901) in which a `*` token stands for any array
/// index or object key, e.g. `/items/*/etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerPattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Any,
    Key(String),
}

impl PointerPattern {
    /// A location that may be the whole document: `""` is the root.
    pub fn parse_location(pointer: &str) -> Result<PointerPattern, String> {
        if pointer.is_empty() {
            return Ok(PointerPattern { tokens: Vec::new() });
        }
        if !pointer.starts_with('/') {
            return Err(format!(
                "\"{pointer}\" is not a JSON Pointer: it must start with '/' (or be \"\" for the whole document)"
            ));
        }
        PointerPattern::parse(pointer)
    }

    pub fn parse(pointer: &str) -> Result<PointerPattern, String> {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(format!(
                "\"{pointer}\" is not a JSON Pointer: it must start with '/' (ignoring the whole body would hide every difference)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(Token::Any);
                continue;
            }
            tokens.push(Token::Key(unescape(raw).ok_or_else(|| {
                format!("\"{pointer}\": '~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')")
            })?));
        }
        Ok(PointerPattern { tokens })
    }

    /// Whether the pattern names this location.
    fn matches(&self, location: &[Seg<'_>]) -> bool {
        self.tokens.len() == location.len()
            && self.tokens.iter().zip(location).all(|(token, seg)| match (token, seg) {
                (Token::Any, _) => true,
                (Token::Key(key), Seg::Key(name)) => key == name,
                (Token::Key(key), Seg::Index(index)) => key.parse::<usize>().ok() == Some(*index),
                (Token::Key(_), Seg::Element) => false,
            })
    }

    /// Whether the pattern names the concrete location `tokens` (object
    /// keys, array indices as decimal text), for [`crate::evidence`].
    pub fn matches_tokens(&self, tokens: &[&str]) -> bool {
        let location: Vec<Seg<'_>> = tokens
            .iter()
            .map(|token| match token.parse::<usize>() {
                Ok(index) if !token.starts_with('+') => Seg::Index(index),
                _ => Seg::Key(token),
            })
            .collect();
        self.matches(&location)
    }

    /// Whether the pattern names this location of a document.
    fn matches_places(&self, location: &[Place]) -> bool {
        self.tokens.len() == location.len()
            && self
                .tokens
                .iter()
                .zip(location)
                .all(|(token, place)| match (token, place) {
                    (Token::Any, _) => true,
                    (Token::Key(key), Place::Key(name)) => key == name,
                    (Token::Key(key), Place::Index(index)) => key.parse::<usize>().ok() == Some(*index),
                })
    }

    /// Removes every value the pattern points at. Array elements become
    /// `null` rather than disappear, so the indices after them still line up.
    pub fn remove_from(&self, value: &mut Value) {
        remove(value, &self.tokens);
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn remove(value: &mut Value, tokens: &[Token]) {
    let Some((token, rest)) = tokens.split_first() else {
        return;
    };
    match value {
        Value::Object(map) => match token {
            Token::Key(key) if rest.is_empty() => {
                map.remove(key);
            }
            Token::Key(key) => {
                if let Some(child) = map.get_mut(key) {
                    remove(child, rest);
                }
            }
            Token::Any if rest.is_empty() => map.clear(),
            Token::Any => map.values_mut().for_each(|child| remove(child, rest)),
        },
        Value::Array(items) => match token {
            Token::Key(key) => {
                if let Some(child) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    if rest.is_empty() {
                        *child = Value::Null;
                    } else {
                        remove(child, rest);
                    }
                }
            }
            Token::Any if rest.is_empty() => items.iter_mut().for_each(|child| *child = Value::Null),
            Token::Any => items.iter_mut().for_each(|child| remove(child, rest)),
        },
        _ => {}
    }
}

/// A location in a document, to match `unordered_arrays` patterns against.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
    /// An element of an array compared as a multiset: it has no position.
    Element,
}

/// Lower-cases the keys of the objects `rule` names, so that `Content-Type`
/// and `content-type` are one key. An object with two keys equal but for
/// case keeps its keys as they are: folding would drop one of two values,
/// and could hide a difference. Bounded by [`MAX_DEPTH`], like the walk.
pub(super) fn fold_keys(rule: &CaseKeys, value: &mut Value) {
    if *rule == CaseKeys::None {
        return;
    }
    let mut location = Vec::new();
    fold(rule, value, &mut location);
}

/// A location with owned keys: the walk mutates the document.
enum Place {
    Key(String),
    Index(usize),
}

fn fold(rule: &CaseKeys, value: &mut Value, location: &mut Vec<Place>) {
    if location.len() >= MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let here = match rule {
                CaseKeys::None => false,
                CaseKeys::All => true,
                CaseKeys::At(patterns) => patterns.iter().any(|p| p.matches_places(location)),
            };
            if here && map.keys().any(|k| k.chars().any(char::is_uppercase)) {
                let lower: HashSet<String> = map.keys().map(|k| k.to_lowercase()).collect();
                if lower.len() == map.len() {
                    let old = std::mem::take(map);
                    *map = old.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
                }
            }
            if deeper(rule, location.len()) {
                for (key, child) in map.iter_mut() {
                    location.push(Place::Key(key.clone()));
                    fold(rule, child, location);
                    location.pop();
                }
            }
        }
        Value::Array(items) if deeper(rule, location.len()) => {
            for (i, child) in items.iter_mut().enumerate() {
                location.push(Place::Index(i));
                fold(rule, child, location);
                location.pop();
            }
        }
        _ => {}
    }
}

/// Whether an object the rule names may lie below this depth.
fn deeper(rule: &CaseKeys, depth: usize) -> bool {
    match rule {
        CaseKeys::None => false,
        CaseKeys::All => true,
        CaseKeys::At(patterns) => patterns.iter().any(|p| p.tokens.len() > depth),
    }
}

/// An array compared as a multiset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnorderedArray {
    pub path: PointerPattern,
    /// A JSON Pointer inside each element (`/id`) whose value pairs the
    /// elements of the two sides; `None` pairs equal elements.
    pub key: Option<String>,
}

impl UnorderedArray {
    /// Validates `key`, a JSON Pointer into an element, without wildcards.
    pub fn parse_key(key: &str) -> Result<String, String> {
        if !key.starts_with('/') {
            return Err(format!(
                "\"{key}\" is not a JSON Pointer into the element: it must start with '/' (write \"/{key}\")"
            ));
        }
        let pattern = PointerPattern::parse(key)?;
        if pattern.tokens.contains(&Token::Any) {
            return Err(format!("\"{key}\": a key names one value, '*' is not allowed"));
        }
        Ok(key.to_string())
    }
}

/// Numbers closer than either bound are equal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NumberTolerance {
    pub absolute: Option<f64>,
    pub relative: Option<f64>,
}

/// The differing paths of two documents, or `None` when they are equal.
pub(super) fn diff(left: &Value, right: &Value, rules: &CompareRules) -> Option<BodyDiff> {
    let mut walker = Walker {
        rules,
        found: BodyDiff::default(),
        fields: Fields::default(),
        path: String::new(),
        field: String::new(),
        location: Vec::new(),
    };
    walker.walk(left, right);
    let mut found = walker.found;
    let mut fields: Vec<String> = walker.fields.seen.into_iter().collect();
    fields.sort_unstable();
    found.fields = fields;
    (!found.json_paths.is_empty() || found.more > 0).then_some(found)
}

/// The distinct fields met so far, and their size.
#[derive(Default)]
struct Fields {
    seen: HashSet<String>,
    bytes: usize,
}

struct Walker<'r, 'v> {
    rules: &'r CompareRules,
    found: BodyDiff,
    fields: Fields,
    /// The current location as reported: a JSON Pointer, `*` for an element
    /// of an unordered array.
    path: String,
    /// The current location as a field ([`diff_path`]): built along with
    /// `path`, so that recording a difference needs no second pass.
    field: String,
    location: Vec<Seg<'v>>,
}

impl<'v> Walker<'_, 'v> {
    fn enter(&mut self, seg: Seg<'v>) -> (usize, usize) {
        let mark = (self.path.len(), self.field.len());
        match seg {
            Seg::Key(key) => {
                push_token(&mut self.path, key);
                let token = self.path.get(mark.0 + 1..).unwrap_or_default();
                diff_path::push_token(&mut self.field, token, &self.rules.key_names);
            }
            Seg::Index(index) => {
                self.path.push('/');
                self.path.push_str(&index.to_string());
                self.field.push_str("/*");
            }
            Seg::Element => {
                self.path.push_str("/*");
                self.field.push_str("/*");
            }
        }
        self.location.push(seg);
        mark
    }

    fn leave(&mut self, (path, field): (usize, usize)) {
        self.path.truncate(path);
        self.field.truncate(field);
        self.location.pop();
    }

    /// Records a difference at the current location: in the examples (the
    /// first [`MAX_REPORTED`] pointers) and, once per comparison, its field.
    fn record(&mut self) {
        record(&self.path, &mut self.found);
        let field = if self.field.is_empty() {
            diff_path::ROOT
        } else {
            cut(&self.field, MAX_FIELD_BYTES)
        };
        if self.fields.seen.contains(field) {
            return;
        }
        // Every field is in one of the bodies, so their number is bounded
        // by the bodies' size; their names (paths) are not, for deep
        // documents with named keys: the list's bytes are held to the body
        // bound too.
        if self.fields.bytes + field.len() > self.rules.max_decoded_bytes.max(MAX_FIELD_BYTES) {
            self.found.fields_dropped += 1;
            return;
        }
        self.fields.bytes += field.len();
        self.fields.seen.insert(field.to_string());
    }

    fn record_at(&mut self, seg: Seg<'v>) {
        let mark = self.enter(seg);
        self.record();
        self.leave(mark);
    }

    fn record_length(&mut self) {
        let mark = (self.path.len(), self.field.len());
        self.path.push_str("/length");
        diff_path::push_token(&mut self.field, "length", &self.rules.key_names);
        self.record();
        self.path.truncate(mark.0);
        self.field.truncate(mark.1);
    }

    fn walk(&mut self, left: &'v Value, right: &'v Value) {
        if self.location.len() >= MAX_DEPTH {
            // Unreachable for parsed documents (serde_json stops at 128);
            // a bound on recursion all the same, reported as a difference.
            self.record();
            return;
        }
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => self.objects(l, r),
            (Value::Array(l), Value::Array(r)) => {
                let rules = self.rules;
                match rules.unordered_arrays.iter().find(|u| u.path.matches(&self.location)) {
                    Some(rule) => match &rule.key {
                        Some(key) => self.keyed(l, r, key),
                        None => self.multiset(l, r),
                    },
                    None => self.positional(l, r),
                }
            }
            (Value::Number(l), Value::Number(r)) => {
                if !numbers_equal(l, r, self.rules.number_tolerance.as_ref()) {
                    self.record();
                }
            }
            // Scalars, or values of different types (compared shallowly).
            (l, r) => {
                if l != r {
                    self.record();
                }
            }
        }
    }

    fn objects(&mut self, l: &'v Map<String, Value>, r: &'v Map<String, Value>) {
        let null_is_missing = self.rules.null_equals_missing;
        for (key, lv) in l {
            match r.get(key) {
                Some(rv) => {
                    let mark = self.enter(Seg::Key(key));
                    self.walk(lv, rv);
                    self.leave(mark);
                }
                None if null_is_missing && lv.is_null() => {}
                None => self.record_at(Seg::Key(key)),
            }
        }
        for (key, rv) in r {
            if !(l.contains_key(key) || null_is_missing && rv.is_null()) {
                self.record_at(Seg::Key(key));
            }
        }
    }

    fn positional(&mut self, l: &'v [Value], r: &'v [Value]) {
        for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
            let mark = self.enter(Seg::Index(i));
            self.walk(lv, rv);
            self.leave(mark);
        }
        if l.len() != r.len() {
            // One entry for the length, not one per missing element.
            self.record_length();
        }
    }

    /// Elements paired by equality: sort both sides by canonical form and
    /// merge, O(n log n). Elements left over on both sides are paired in
    /// that order (numbers in numeric order) and compared in depth, so that
    /// a number within tolerance still matches and a difference is reported
    /// below `/*`.
    ///
    /// Under a number tolerance, pairing equal elements first can take an
    /// element's only partner within the tolerance (`[1, 1.05]` against
    /// `[1.05, 1.1]`, within 0.06): when the sides have as many elements,
    /// pairing them all in sorted order is tried first, and is the answer
    /// if every pair matches. For plain numbers, it matches whenever some
    /// pairing does: the numbers within the tolerance of `x` form an
    /// interval whose ends grow with `x`.
    fn multiset(&mut self, l: &'v [Value], r: &'v [Value]) {
        let left = self.sorted(l, Some);
        let right = self.sorted(r, Some);
        if self.rules.number_tolerance.is_some()
            && l.len() == r.len()
            && self.all_pairs_match(left.iter().map(|(_, v)| *v).zip(right.iter().map(|(_, v)| *v)))
        {
            return;
        }
        let (mut only_left, mut only_right) = (Vec::new(), Vec::new());
        merge(&left, &right, |pair| match pair {
            Merged::Both(_, _) => {}
            Merged::Left(lv) => only_left.push(lv),
            Merged::Right(rv) => only_right.push(rv),
        });
        for (lv, rv) in only_left.iter().zip(&only_right) {
            let mark = self.enter(Seg::Element);
            self.walk(lv, rv);
            self.leave(mark);
        }
        if l.len() != r.len() {
            self.record_length();
        }
    }

    /// Whether every pair matches; stops at the first that does not, and
    /// records nothing.
    fn all_pairs_match(&mut self, pairs: impl Iterator<Item = (&'v Value, &'v Value)>) -> bool {
        let found = std::mem::take(&mut self.found);
        let fields = std::mem::take(&mut self.fields);
        let mut all = true;
        for (lv, rv) in pairs {
            let mark = self.enter(Seg::Element);
            self.walk(lv, rv);
            self.leave(mark);
            if !self.found.json_paths.is_empty() || self.found.more > 0 {
                all = false;
                break;
            }
        }
        self.found = found;
        self.fields = fields;
        all
    }

    /// Elements paired by the value at `key`; an element whose key is on
    /// one side only is reported as `/*`, a difference inside a pair below
    /// it (`/items/*/price`). Elements with equal keys pair in order.
    fn keyed(&mut self, l: &'v [Value], r: &'v [Value], key: &str) {
        let left = self.sorted(l, |v| v.pointer(key));
        let right = self.sorted(r, |v| v.pointer(key));
        let mut pairs = Vec::new();
        let mut unpaired = 0usize;
        merge(&left, &right, |pair| match pair {
            Merged::Both(lv, rv) => pairs.push((lv, rv)),
            Merged::Left(_) | Merged::Right(_) => unpaired += 1,
        });
        for _ in 0..unpaired {
            self.record_at(Seg::Element);
        }
        for (lv, rv) in pairs {
            let mark = self.enter(Seg::Element);
            self.walk(lv, rv);
            self.leave(mark);
        }
    }

    /// Elements with the canonical form of `part(element)`, sorted by it;
    /// equal forms keep their order. A missing part sorts first.
    fn sorted(
        &mut self,
        items: &'v [Value],
        part: impl Fn(&'v Value) -> Option<&'v Value>,
    ) -> Vec<(Vec<u8>, &'v Value)> {
        let mut forms: Vec<(Vec<u8>, usize)> = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let mut form = Vec::new();
                if let Some(value) = part(item) {
                    let mark = self.location.len();
                    self.location.push(Seg::Element);
                    canonical(self.rules, value, &mut self.location, &mut form);
                    self.location.truncate(mark);
                }
                (form, index)
            })
            .collect();
        sort_forms(&mut forms);
        forms
            .into_iter()
            .filter_map(|(form, index)| Some((form, items.get(index)?)))
            .collect()
    }
}

enum Merged<'v> {
    Both(&'v Value, &'v Value),
    Left(&'v Value),
    Right(&'v Value),
}

/// Walks two lists sorted by form, pairing equal forms.
fn merge<'v>(left: &[(Vec<u8>, &'v Value)], right: &[(Vec<u8>, &'v Value)], mut emit: impl FnMut(Merged<'v>)) {
    let (mut i, mut j) = (0, 0);
    loop {
        match (left.get(i), right.get(j)) {
            (Some((lf, lv)), Some((rf, rv))) => match lf.cmp(rf) {
                Ordering::Equal => {
                    emit(Merged::Both(lv, rv));
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    emit(Merged::Left(lv));
                    i += 1;
                }
                Ordering::Greater => {
                    emit(Merged::Right(rv));
                    j += 1;
                }
            },
            (Some((_, lv)), None) => {
                emit(Merged::Left(lv));
                i += 1;
            }
            (None, Some((_, rv))) => {
                emit(Merged::Right(rv));
                j += 1;
            }
            (None, None) => return,
        }
    }
}

/// A byte string equal for two values exactly when they are equal under
/// the rules (without number tolerance): object keys sorted, numbers as
/// their exact value (in a form that sorts in numeric order, see
/// [`push_number`]), unordered arrays' elements sorted, null members left
/// out under `null_equals_missing`. `location` is the value's location,
/// `*` inside unordered arrays.
fn canonical<'v>(rules: &CompareRules, value: &'v Value, location: &mut Vec<Seg<'v>>, out: &mut Vec<u8>) {
    if location.len() >= MAX_DEPTH {
        out.push(b'~');
        return;
    }
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(true) => out.push(b't'),
        Value::Bool(false) => out.push(b'f'),
        Value::Number(n) => {
            out.push(b'#');
            push_number(exact(n), out);
        }
        Value::String(s) => push_quoted(s, out),
        Value::Array(items) => {
            out.push(b'[');
            if rules.unordered_arrays.iter().any(|u| u.path.matches(location)) {
                let mut forms: Vec<(Vec<u8>, usize)> = items
                    .iter()
                    .map(|item| {
                        let mut form = Vec::new();
                        location.push(Seg::Element);
                        canonical(rules, item, location, &mut form);
                        location.pop();
                        (form, 0)
                    })
                    .collect();
                sort_forms(&mut forms);
                for (form, _) in forms {
                    out.extend_from_slice(&form);
                    out.push(b',');
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    location.push(Seg::Index(i));
                    canonical(rules, item, location, out);
                    location.pop();
                    out.push(b',');
                }
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let members: Vec<(&'v String, &'v Value)> = map
                .iter()
                .filter(|(_, v)| !(rules.null_equals_missing && v.is_null()))
                .collect();
            let mut keys: Vec<(Vec<u8>, usize)> = members
                .iter()
                .enumerate()
                .map(|(index, (key, _))| {
                    let mut quoted = Vec::with_capacity(key.len() + 2);
                    push_quoted(key, &mut quoted);
                    (quoted, index)
                })
                .collect();
            // serde_json's map iterates in key order already, unless a
            // dependency turns on `preserve_order`: sort all the same.
            sort_forms(&mut keys);
            out.push(b'{');
            for (quoted, index) in keys {
                let Some(&(key, member)) = members.get(index) else {
                    continue;
                };
                out.extend_from_slice(&quoted);
                out.push(b':');
                location.push(Seg::Key(key));
                canonical(rules, member, location, out);
                location.pop();
                out.push(b',');
            }
            out.push(b'}');
        }
    }
}

/// A number's exact value in 24 bytes whose byte order is numeric order, so
/// that elements of unordered arrays left over after pairing by equality
/// meet their nearest counterpart (`2` next to `2.01`, not `10` next to it):
/// the value as an f64, its bits made to sort as unsigned big-endian bytes;
/// then, for the integers one f64 stands for (beyond 2^53), the integer
/// itself, sign bit flipped, big-endian. An integral f64 below 2^127 is an
/// [`Exact::Int`] and an integer is never a non-integral f64, so an
/// [`Exact::Float`] shares its f64 with no integer: its second part is
/// zeros. Fixed length: no form is a prefix of another.
fn push_number(value: Exact, out: &mut Vec<u8>) {
    let (float, tie) = match value {
        Exact::Int(i) => (i as f64, (i as u128) ^ (1 << 127)),
        Exact::Float(f) => (f, 0),
    };
    let bits = float.to_bits();
    let sortable = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    out.extend_from_slice(&sortable.to_be_bytes());
    out.extend_from_slice(&tie.to_be_bytes());
}

/// [`canonical`] at the root, for the tests.
#[cfg(test)]
pub(super) fn canonical_for_tests(rules: &CompareRules, value: &Value, out: &mut Vec<u8>) {
    canonical(rules, value, &mut Vec::new(), out);
}

fn push_quoted(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A number's exact value: an integer (from any spelling, `1.0` too), or a
/// float that is not one (or too large for i128).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exact {
    Int(i128),
    Float(f64),
}

fn exact(n: &Number) -> Exact {
    if let Some(i) = n.as_i64() {
        return Exact::Int(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Exact::Int(u.into());
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Below 2^127 in magnitude an integral f64 converts to i128 exactly.
    if f.fract() == 0.0 && f.abs() < 1.7e38 {
        Exact::Int(f as i128)
    } else {
        Exact::Float(f)
    }
}

/// `1` equals `1.0`; integers compare exactly (no rounding through f64),
/// then the tolerance, if any, decides.
/// Whether two numbers are equal as the comparison judges them (for
/// [`crate::evidence`]).
pub fn numbers_match(l: &Number, r: &Number, tolerance: Option<&NumberTolerance>) -> bool {
    numbers_equal(l, r, tolerance)
}

fn numbers_equal(l: &Number, r: &Number, tolerance: Option<&NumberTolerance>) -> bool {
    let (a, b) = (exact(l), exact(r));
    if a == b {
        return true;
    }
    let Some(tolerance) = tolerance else { return false };
    let as_f64 = |x: Exact| match x {
        Exact::Int(i) => i as f64,
        Exact::Float(f) => f,
    };
    let distance = match (a, b) {
        (Exact::Int(x), Exact::Int(y)) => x.checked_sub(y).map_or(f64::INFINITY, |d| d.unsigned_abs() as f64),
        _ => (as_f64(a) - as_f64(b)).abs(),
    };
    let scale = as_f64(a).abs().max(as_f64(b).abs());
    tolerance.absolute.is_some_and(|abs| distance <= abs)
        || tolerance.relative.is_some_and(|rel| distance <= rel * scale)
}

fn push_token(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Lists a differing path once (a path through unordered arrays, `*`, may
/// differ many times), up to [`MAX_REPORTED`]; counts the rest.
fn record(path: &str, found: &mut BodyDiff) {
    let path = if path.is_empty() { "(root)" } else { path };
    if found.json_paths.len() < MAX_REPORTED && !found.json_paths.iter().any(|p| p == path) {
        found.json_paths.push(path.to_string());
    } else {
        found.more += 1;
    }
}
