//! Header comparison with an ignore list.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{CompareRules, MAX_REPORTED};

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

    fn matches(&self, lower_name: &str) -> bool {
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

/// A media type's `type/subtype`, without parameters or surrounding space.
pub(super) fn media_type_essence(value: &[u8]) -> &[u8] {
    value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii()
}

/// A Content-Type as compared: type, subtype and parameter names
/// lower-cased, parameters sorted, quotes removed, and the noise left out:
/// `charset=utf-8` (JSON's only encoding, and everyone's default) and
/// `boundary` (random per multipart response).
fn normalized_media_type(value: &[u8]) -> Vec<u8> {
    let mut parts = value.split(|&b| b == b';');
    let mut out = parts.next().unwrap_or_default().trim_ascii().to_ascii_lowercase();
    let mut parameters: Vec<(Vec<u8>, usize)> = Vec::new();
    for parameter in parts {
        let (name, value) = match parameter.iter().position(|&b| b == b'=') {
            Some(eq) => (
                parameter.get(..eq).unwrap_or_default(),
                parameter.get(eq + 1..).unwrap_or_default(),
            ),
            None => (parameter, &b""[..]),
        };
        let name = name.trim_ascii().to_ascii_lowercase();
        let value = value.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        if name.is_empty() || name == b"boundary" {
            continue;
        }
        let value = if name == b"charset" {
            let charset = value.to_ascii_lowercase();
            if charset == b"utf-8" || charset == b"utf8" {
                continue;
            }
            charset
        } else {
            value.to_vec()
        };
        let mut parameter = name;
        parameter.push(b'=');
        parameter.extend_from_slice(&value);
        parameters.push((parameter, 0));
    }
    super::json::sort_forms(&mut parameters);
    for (parameter, _) in parameters {
        out.push(b';');
        out.extend_from_slice(&parameter);
    }
    out
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
            Cow::Owned(normalized_media_type(value))
        } else {
            Cow::Borrowed(value.as_slice())
        };
        by_name.entry(lower).or_default().push(value);
    }
    by_name
}

/// Names whose value lists differ, sorted, at most [`MAX_REPORTED`].
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
    names.truncate(MAX_REPORTED);
    names
}
