//! Header comparison with an ignore list.

use std::borrow::Cow;

use super::{media_type, CompareRules};
use crate::http::Response;

/// Headers that differ between any two implementations, or any two answers
/// of one: compared never. `*` at the end matches a prefix.
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-request-id",
    "transfer-encoding",
    "content-length",
    "connection",
    "keep-alive",
    "via",
    "age",
    "x-envoy-*",
    "x-parallel-run-*",
];

/// A header name to ignore, exact or (ending in `*`) a prefix; lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPattern {
    name: String,
    prefix: bool,
}

impl HeaderPattern {
    pub fn parse(pattern: &str) -> Result<HeaderPattern, String> {
        let (name, prefix) = match pattern.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (pattern, false),
        };
        if (name.is_empty() && !prefix) || !name.bytes().all(crate::http::is_token_byte) || name.contains('*') {
            return Err(format!(
                "\"{pattern}\" is not a header name (a trailing '*' matches a prefix)"
            ));
        }
        Ok(HeaderPattern {
            name: name.to_ascii_lowercase(),
            prefix,
        })
    }

    pub(super) fn matches(&self, lower_name: &str) -> bool {
        if self.prefix {
            lower_name.starts_with(&self.name)
        } else {
            lower_name == self.name
        }
    }
}

fn is_default_ignored(lower_name: &str) -> bool {
    DEFAULT_IGNORED_HEADERS
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => lower_name.starts_with(prefix),
            None => lower_name == *pattern,
        })
}

/// The compared headers, sorted by name; a name's values stay in arrival
/// order (the sort is stable). Borrowed from the response where nothing is
/// changed: a comparison allocates two lists, not a lower-cased name and a
/// list of values per header (a `BTreeMap` until session 28, 4,600
/// instructions a shadowed request more, 1.0%: bench/OPTIMISATIONS.md).
fn compared<'a>(
    rules: &CompareRules,
    response: &'a Response,
    skip_content_encoding: bool,
) -> Vec<(Cow<'a, str>, Cow<'a, [u8]>)> {
    let mut kept = Vec::with_capacity(response.headers.len());
    for (name, value) in response.fields() {
        // Envoy hands names over lower-case (and as tokens, so UTF-8); a
        // test's or a fuzzer's may be neither.
        let name = String::from_utf8_lossy(name);
        let lower = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            name
        };
        // `fields` leaves the pseudo-headers out: `:status` is compared on
        // its own axis.
        if is_default_ignored(&lower)
            || (skip_content_encoding && lower == "content-encoding")
            || rules.ignore_headers.iter().any(|p| p.matches(&lower))
        {
            continue;
        }
        let value = if lower == "content-type" {
            Cow::Owned(media_type::normalized(value))
        } else {
            Cow::Borrowed(value)
        };
        let value = match rules.header_masks.iter().find(|(p, _)| p.matches(&lower)) {
            Some((_, mask)) => match mask.apply(&value) {
                Some(masked) => Cow::Owned(masked),
                None => value,
            },
            None => value,
        };
        kept.push((lower, value));
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept
}

/// The leading headers of `sorted` named `name`, taken off it.
fn take<'s, 'a>(sorted: &mut &'s [(Cow<'a, str>, Cow<'a, [u8]>)], name: &str) -> &'s [(Cow<'a, str>, Cow<'a, [u8]>)] {
    let n = sorted.iter().take_while(|(other, _)| other == name).count();
    let (group, rest) = sorted.split_at(n);
    *sorted = rest;
    group
}

/// Every name whose value lists differ, sorted: no more than the two
/// responses have headers (Envoy's `max_headers_count`, 100 by default).
/// `content-encoding` is left out when both bodies were decoded.
pub(super) fn differing(
    rules: &CompareRules,
    serving: &Response,
    shadow: &Response,
    skip_content_encoding: bool,
) -> Vec<String> {
    let left = compared(rules, serving, skip_content_encoding);
    let right = compared(rules, shadow, skip_content_encoding);
    let (mut left, mut right) = (left.as_slice(), right.as_slice());
    let mut names = Vec::new();
    // A merge of the two sorted lists, a name at a time.
    loop {
        let name: &str = match (left.first(), right.first()) {
            (None, None) => break,
            (Some((l, _)), None) => l,
            (None, Some((r, _))) => r,
            (Some((l, _)), Some((r, _))) => l.min(r),
        };
        let (l, r) = (take(&mut left, name), take(&mut right, name));
        if l.len() != r.len() || l.iter().zip(r).any(|((_, a), (_, b))| a != b) {
            names.push(name.to_owned());
        }
    }
    names
}
