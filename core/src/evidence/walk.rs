//! The walk over both bodies of a sampled comparison, to the concrete
//! locations where they differ. Iterative (an explicit stack, never
//! recursion over the input) and bounded: [`MAX_DEPTH`] levels, and every
//! differing field counted once while at most [`Fields`]' bound of them is
//! described. It applies the operation's comparison rules the way the
//! comparison did (decoding, masks, ignored paths, unordered arrays with or
//! without a key, number tolerance, null equals missing), so a record lists
//! what made the comparison unmatched, not what the rules excuse.

use hashbrown::HashMap;
use serde_json::{Map, Value};

use super::siphash::Key;
use super::value::{write_canonical, Observed};
use super::{Axis, Field, Hint, RawValues, MAX_DEPTH, ROUNDING};
use crate::compare::json::numbers_match;
use crate::compare::{prepared_body, CompareRules};
use crate::diff_path::{redact, KeyNames};
use crate::http::Response;
use crate::plan::Operation;

/// The differing fields of a record: every one counted, the first `max`
/// described (a description is built only for those).
pub(super) struct Fields {
    listed: Vec<super::Field>,
    max: usize,
    total: u64,
}

impl Fields {
    pub(super) fn new(max: usize) -> Fields {
        Fields {
            listed: Vec::new(),
            max,
            total: 0,
        }
    }

    pub(super) fn add(&mut self, field: impl FnOnce() -> super::Field) {
        self.total += 1;
        if self.listed.len() < self.max {
            self.listed.push(field());
        }
    }

    pub(super) fn omitted(&self) -> u64 {
        self.total - self.listed.len() as u64
    }

    pub(super) fn into_listed(self) -> Vec<super::Field> {
        self.listed
    }
}

/// The body fields of an unmatched comparison.
pub(super) fn bodies(
    operation: &Operation,
    raw: &RawValues,
    key: &Key,
    serving: &Response,
    shadow: &Response,
    fields: &mut Fields,
) {
    let rules = &operation.settings.compare;
    let (Some((left, left_json)), Some((right, right_json))) =
        (prepared_body(rules, serving), prepared_body(rules, shadow))
    else {
        // Not decodable: the bodies as they came.
        whole_bytes(raw, key, &serving.body, &shadow.body, fields);
        return;
    };
    if !(left_json && right_json) {
        whole_bytes(raw, key, &left, &right, fields);
        return;
    }
    let (Ok(mut left_doc), Ok(mut right_doc)) = (
        serde_json::from_slice::<Value>(&left),
        serde_json::from_slice::<Value>(&right),
    ) else {
        whole_bytes(raw, key, &left, &right, fields);
        return;
    };
    for pattern in &rules.ignore_json_paths {
        pattern.remove_from(&mut left_doc);
        pattern.remove_from(&mut right_doc);
    }
    let before = fields.total;
    Walk {
        rules,
        names: &operation.settings.key_names,
        raw,
        key,
        fields,
    }
    .run(&left_doc, &right_doc);
    if fields.total == before {
        // The comparison saw a difference the walk did not locate (a rule
        // it applies differently): the whole documents, so that a record
        // of a differing body never lists nothing.
        fields.add(|| Field {
            axis: Axis::Body,
            path: String::new(),
            serving: Observed::json(&left_doc, key, raw.json(&[])),
            shadow: Observed::json(&right_doc, key, raw.json(&[])),
            hint: None,
            relative_delta: None,
        });
    }
}

fn whole_bytes(raw: &RawValues, key: &Key, left: &[u8], right: &[u8], fields: &mut Fields) {
    fields.add(|| Field {
        axis: Axis::Body,
        path: String::new(),
        serving: Observed::bytes(left, key, raw.body()),
        shadow: Observed::bytes(right, key, raw.body()),
        hint: None,
        relative_delta: None,
    });
}

/// A pair of values at one location still to compare.
struct Frame<'v> {
    left: &'v Value,
    right: &'v Value,
    /// The location as a JSON Pointer, every key as it is (for the rules).
    pointer: String,
    /// The location as a record shows it (keys per `name_keys`).
    shown: String,
    depth: usize,
}

struct Walk<'a> {
    rules: &'a CompareRules,
    names: &'a KeyNames,
    raw: &'a RawValues,
    key: &'a Key,
    fields: &'a mut Fields,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The tokens of a pointer, unescaped.
fn tokens(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(unescape).collect()
}

fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out, 0);
    out
}

impl<'v> Frame<'v> {
    fn member(&self, name: &str, names: &KeyNames, left: &'v Value, right: &'v Value) -> Frame<'v> {
        let token = escape(name);
        Frame {
            left,
            right,
            pointer: format!("{}/{token}", self.pointer),
            shown: format!("{}{}", self.shown, redact(&format!("/{token}"), names)),
            depth: self.depth + 1,
        }
    }

    fn element(&self, index: usize, left: &'v Value, right: &'v Value) -> Frame<'v> {
        Frame {
            left,
            right,
            pointer: format!("{}/{index}", self.pointer),
            shown: format!("{}/{index}", self.shown),
            depth: self.depth + 1,
        }
    }
}

impl<'v> Walk<'_> {
    fn raw_at(&self, pointer: &str) -> bool {
        match self.raw {
            RawValues::None => false,
            RawValues::All => true,
            RawValues::Only { .. } => {
                let owned = tokens(pointer);
                let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
                self.raw.json(&borrowed)
            }
        }
    }

    fn observe(&self, value: Option<&Value>, raw: bool) -> Observed {
        match value {
            Some(value) => Observed::json(value, self.key, raw),
            None => Observed::missing(),
        }
    }

    /// A field at `pointer` / `shown` with these two sides.
    fn emit(&mut self, pointer: &str, shown: &str, left: Option<&Value>, right: Option<&Value>, hint: Option<Hint>) {
        let relative_delta = match (left, right) {
            (Some(Value::Number(a)), Some(Value::Number(b))) => {
                let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
                let scale = a.abs().max(b.abs());
                Some(if scale == 0.0 { 0.0 } else { (a - b).abs() / scale })
            }
            _ => None,
        };
        let hint = hint.or_else(|| relative_delta.filter(|d| *d <= ROUNDING).map(|_| Hint::Rounding));
        let raw = self.raw_at(pointer);
        let field = Field {
            axis: Axis::Body,
            path: shown.to_string(),
            serving: self.observe(left, raw),
            shadow: self.observe(right, raw),
            hint,
            relative_delta,
        };
        self.fields.add(|| field);
    }

    /// A field counted, described only while the record has room.
    fn found(&mut self, pointer: &str, shown: &str, left: Option<&Value>, right: Option<&Value>, hint: Option<Hint>) {
        if self.fields.listed.len() < self.fields.max {
            self.emit(pointer, shown, left, right, hint);
        } else {
            self.fields.total += 1;
        }
    }

    fn run(&mut self, left: &'v Value, right: &'v Value) {
        let mut stack = vec![Frame {
            left,
            right,
            pointer: String::new(),
            shown: String::new(),
            depth: 0,
        }];
        while let Some(frame) = stack.pop() {
            if frame.depth >= MAX_DEPTH {
                if canonical(frame.left) != canonical(frame.right) {
                    self.found(&frame.pointer, &frame.shown, Some(frame.left), Some(frame.right), None);
                }
                continue;
            }
            match (frame.left, frame.right) {
                (Value::Object(l), Value::Object(r)) => self.objects(&frame, l, r, &mut stack),
                (Value::Array(l), Value::Array(r)) => self.arrays(&frame, l, r, &mut stack),
                (Value::Number(a), Value::Number(b)) => {
                    if !numbers_match(a, b, self.rules.number_tolerance.as_ref()) {
                        self.found(&frame.pointer, &frame.shown, Some(frame.left), Some(frame.right), None);
                    }
                }
                (l, r) => {
                    if l != r {
                        self.found(&frame.pointer, &frame.shown, Some(l), Some(r), None);
                    }
                }
            }
        }
    }

    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn objects(
        &mut self,
        frame: &Frame<'v>,
        l: &'v Map<String, Value>,
        r: &'v Map<String, Value>,
        stack: &mut Vec<Frame<'v>>,
    ) {
        let null_is_missing = self.rules.null_equals_missing;
        let mut children = Vec::new();
        let mut left_only = Vec::new();
        for (name, lv) in l {
            match r.get(name) {
                Some(rv) => children.push(frame.member(name, self.names, lv, rv)),
                None if null_is_missing && lv.is_null() => {}
                None => left_only.push((name, lv)),
            }
        }
        let mut right_only: Vec<(&String, &Value)> = r
            .iter()
            .filter(|(name, rv)| !(l.contains_key(*name) || null_is_missing && rv.is_null()))
            .collect();
        for (name, lv) in left_only {
            let child = frame.member(name, self.names, lv, lv);
            let same_but_case = right_only
                .iter()
                .position(|(other, _)| other.eq_ignore_ascii_case(name));
            match same_but_case.map(|i| right_only.remove(i)) {
                Some((_, rv)) => self.found(&child.pointer, &child.shown, Some(lv), Some(rv), Some(Hint::CaseOnly)),
                None => self.found(&child.pointer, &child.shown, Some(lv), None, None),
            }
        }
        for (name, rv) in right_only {
            let child = frame.member(name, self.names, rv, rv);
            self.found(&child.pointer, &child.shown, None, Some(rv), None);
        }
        // Popped in document order.
        stack.extend(children.into_iter().rev());
    }

    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn arrays(&mut self, frame: &Frame<'v>, l: &'v [Value], r: &'v [Value], stack: &mut Vec<Frame<'v>>) {
        let owned = tokens(&frame.pointer);
        let location: Vec<&str> = owned.iter().map(String::as_str).collect();
        let rules = self.rules;
        if let Some(rule) = rules.unordered_arrays.iter().find(|u| u.path.matches_tokens(&location)) {
            let pair_by = |v: &Value| match &rule.key {
                Some(key) => v.pointer(key).map(canonical).unwrap_or_default(),
                None => canonical(v),
            };
            self.unordered(frame, l, r, pair_by, stack);
            return;
        }
        let left: Vec<Vec<u8>> = l.iter().map(canonical).collect();
        let right: Vec<Vec<u8>> = r.iter().map(canonical).collect();
        if left == right {
            return;
        }
        if l.len() == r.len() {
            let (mut sorted_left, mut sorted_right) = (left.clone(), right.clone());
            sorted_left.sort_unstable();
            sorted_right.sort_unstable();
            if sorted_left == sorted_right {
                let array_key = array_key(l, r).map(|name| redact(&format!("/{}", escape(name)), self.names));
                self.found(
                    &frame.pointer,
                    &frame.shown,
                    Some(frame.left),
                    Some(frame.right),
                    Some(Hint::Permutation { array_key }),
                );
                return;
            }
        }
        let mut children = Vec::new();
        for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
            if left.get(i) != right.get(i) {
                children.push(frame.element(i, lv, rv));
            }
        }
        for i in r.len()..l.len() {
            let child = frame.element(i, frame.left, frame.left);
            self.found(&child.pointer, &child.shown, l.get(i), None, None);
        }
        for i in l.len()..r.len() {
            let child = frame.element(i, frame.right, frame.right);
            self.found(&child.pointer, &child.shown, None, r.get(i), None);
        }
        stack.extend(children.into_iter().rev());
    }

    /// Elements paired by `pair_by` (the key's value, or the whole element):
    /// pairs with equal elements are equal; other pairs are compared in
    /// depth (at the serving element's index); the rest is on one side only.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn unordered(
        &mut self,
        frame: &Frame<'v>,
        l: &'v [Value],
        r: &'v [Value],
        pair_by: impl Fn(&Value) -> Vec<u8>,
        stack: &mut Vec<Frame<'v>>,
    ) {
        let mut by_form: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (j, rv) in r.iter().enumerate().rev() {
            by_form.entry(pair_by(rv)).or_default().push(j);
        }
        let mut paired = vec![false; r.len()];
        let mut left_over = Vec::new();
        let mut children = Vec::new();
        for (i, lv) in l.iter().enumerate() {
            match by_form.get_mut(&pair_by(lv)).and_then(Vec::pop) {
                Some(j) => {
                    if let (Some(slot), Some(rv)) = (paired.get_mut(j), r.get(j)) {
                        *slot = true;
                        if canonical(lv) != canonical(rv) {
                            children.push(frame.element(i, lv, rv));
                        }
                    }
                }
                None => left_over.push(i),
            }
        }
        let right_over: Vec<usize> = (0..r.len())
            .filter(|j| !paired.get(*j).copied().unwrap_or(true))
            .collect();
        // Without a key, leftovers pair in order, as the comparison pairs them.
        let mut right_over = right_over.into_iter();
        let mut left_over = left_over.into_iter();
        loop {
            match (left_over.next(), right_over.next()) {
                (Some(i), Some(j)) => {
                    if let (Some(lv), Some(rv)) = (l.get(i), r.get(j)) {
                        children.push(frame.element(i, lv, rv));
                    }
                }
                (Some(i), None) => {
                    let child = frame.element(i, frame.left, frame.left);
                    self.found(&child.pointer, &child.shown, l.get(i), None, None);
                }
                (None, Some(j)) => {
                    let child = frame.element(j, frame.right, frame.right);
                    self.found(&child.pointer, &child.shown, None, r.get(j), None);
                }
                (None, None) => break,
            }
        }
        stack.extend(children.into_iter().rev());
    }
}

/// A member every element of both arrays (objects all) has, with a scalar
/// value unique within each array: what would pair them under
/// `unordered_arrays`. An `id`-like name first, else the first in order.
fn array_key<'v>(l: &'v [Value], r: &'v [Value]) -> Option<&'v str> {
    let first = l.first()?.as_object()?;
    let mut names: Vec<&String> = first.keys().collect();
    let rank = |name: &str| {
        let lower = name.to_ascii_lowercase();
        if lower == "id" {
            0
        } else if lower.ends_with("id") || lower.ends_with("key") {
            1
        } else {
            2
        }
    };
    names.sort_by_key(|name| rank(name));
    names.into_iter().map(String::as_str).find(|name| {
        [l, r].iter().all(|side| {
            let mut seen = hashbrown::HashSet::with_capacity(side.len());
            side.iter().all(|element| {
                let Some(value) = element.as_object().and_then(|o| o.get(*name)) else {
                    return false;
                };
                if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return false;
                }
                seen.insert(canonical(value))
            })
        })
    })
}
