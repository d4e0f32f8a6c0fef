//! Header comparison with an ignore list.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{media_type, CompareRules};

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

/// Values per compared name, in arrival order.
fn compared<'a>(
    rules: &CompareRules,
    headers: &'a [(String, Vec<u8>)],
    skip_content_encoding: bool,
) -> BTreeMap<String, Vec<Cow<'a, [u8]>>> {
    let mut by_name: BTreeMap<String, Vec<Cow<'a, [u8]>>> = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        // Pseudo-headers: `:status` is compared on its own axis.
        if lower.starts_with(':')
            || is_default_ignored(&lower)
            || (skip_content_encoding && lower == "content-encoding")
            || rules.ignore_headers.iter().any(|p| p.matches(&lower))
        {
            continue;
        }
        let value = if lower == "content-type" {
            Cow::Owned(media_type::normalized(value))
        } else {
            Cow::Borrowed(value.as_slice())
        };
        let value = match rules.header_masks.iter().find(|(p, _)| p.matches(&lower)) {
            Some((_, mask)) => match mask.apply(&value) {
                Some(masked) => Cow::Owned(masked),
                None => value,
            },
            None => value,
        };
        by_name.entry(lower).or_default().push(value);
    }
    by_name
}

/// Every name whose value lists differ, sorted: no more than the two
/// responses have headers (Envoy's `max_headers_count`, 100 by default).
/// `content-encoding` is left out when both bodies were decoded.
pub(super) fn differing(
    rules: &CompareRules,
    serving: &[(String, Vec<u8>)],
    shadow: &[(String, Vec<u8>)],
    skip_content_encoding: bool,
) -> Vec<String> {
    let left = compared(rules, serving, skip_content_encoding);
    let mut right = compared(rules, shadow, skip_content_encoding);
    let mut names = Vec::new();
    for (name, values) in left {
        let same = right.remove(&name).is_some_and(|other| other == values);
        if !same {
            names.push(name);
        }
    }
    names.extend(right.into_keys());
    names.sort_unstable();
    names
}
