//! The header comparison against a plain reference: the grouping by
//! lower-cased name in a `BTreeMap` it replaced (session 28), over many
//! generated pairs of header lists, with and without ignore rules, masks and
//! decoded bodies.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::*;
use crate::compare::headers::{differing, HeaderPattern, DEFAULT_IGNORED_HEADERS};
use crate::compare::mask::Mask;
use crate::compare::media_type;
use crate::lcg::Lcg;

type Headers = Vec<(String, Vec<u8>)>;

fn reference_compared<'a>(
    rules: &CompareRules,
    headers: &'a Headers,
    skip: bool,
) -> BTreeMap<String, Vec<Cow<'a, [u8]>>> {
    let ignored = |lower: &str| {
        DEFAULT_IGNORED_HEADERS.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => lower.starts_with(prefix),
            None => lower == *p,
        })
    };
    let mut by_name: BTreeMap<String, Vec<Cow<'a, [u8]>>> = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(':')
            || ignored(&lower)
            || (skip && lower == "content-encoding")
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
            Some((_, mask)) => mask.apply(&value).map_or(value, Cow::Owned),
            None => value,
        };
        by_name.entry(lower).or_default().push(value);
    }
    by_name
}

fn reference(rules: &CompareRules, serving: &Headers, shadow: &Headers, skip: bool) -> Vec<String> {
    let left = reference_compared(rules, serving, skip);
    let mut right = reference_compared(rules, shadow, skip);
    let mut names = Vec::new();
    for (name, values) in left {
        if right.remove(&name).is_none_or(|other| other != values) {
            names.push(name);
        }
    }
    names.extend(right.into_keys());
    names.sort_unstable();
    names
}

fn response(headers: &Headers) -> Response {
    Response {
        status: 200,
        headers: HeaderMap::from_pairs(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice()))),
        body: Vec::new(),
    }
}

const NAMES: &[&str] = &[
    "etag",
    "ETag",
    "x-a",
    "x-b",
    "X-B",
    "content-type",
    "Content-Type",
    "date",
    "x-envoy-upstream-service-time",
    "content-encoding",
    "vary",
    ":status",
    "x-request-id",
    "location",
    "x-ab",
];
const VALUES: &[&str] = &[
    "1",
    "2",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/json",
    "/r/17",
    "/r/18",
    "",
    "gzip",
];

/// Generated header lists, from the tests' generator.
struct Cases(Lcg);

impl Cases {
    fn below(&mut self, n: usize) -> usize {
        self.0.next(n as u64) as usize
    }

    fn headers(&mut self) -> Headers {
        (0..self.below(8))
            .map(|_| {
                (
                    NAMES[self.below(NAMES.len())].to_string(),
                    VALUES[self.below(VALUES.len())].as_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// `headers` changed a little, so that equal lists are common too.
    fn edited(&mut self, headers: &Headers) -> Headers {
        let mut out = headers.clone();
        match self.below(5) {
            0 => {}
            1 if out.len() > 1 => {
                let (i, j) = (self.below(out.len()), self.below(out.len()));
                out.swap(i, j);
            }
            2 if !out.is_empty() => {
                let i = self.below(out.len());
                out[i].1 = VALUES[self.below(VALUES.len())].as_bytes().to_vec();
            }
            3 if !out.is_empty() => {
                out.remove(self.below(out.len()));
            }
            _ => return self.headers(),
        }
        out
    }
}

#[test]
fn the_header_comparison_names_what_the_reference_names() {
    let masked = CompareRules {
        header_masks: vec![(
            HeaderPattern::parse("location").unwrap(),
            Mask::custom("id", r"\d+").unwrap(),
        )],
        ignore_headers: vec![
            HeaderPattern::parse("vary").unwrap(),
            HeaderPattern::parse("x-a*").unwrap(),
        ],
        ..CompareRules::default()
    };
    let rules = [CompareRules::default(), masked];
    let mut cases = Cases(Lcg(15));
    let (mut differing_cases, mut equal_cases) = (0, 0);
    for _ in 0..20_000 {
        let serving = cases.headers();
        let shadow = cases.edited(&serving);
        let skip = cases.below(2) == 0;
        for rules in &rules {
            let expected = reference(rules, &serving, &shadow, skip);
            assert_eq!(
                differing(rules, &response(&serving), &response(&shadow), skip),
                expected,
                "{serving:?} against {shadow:?}, skip content-encoding {skip}"
            );
            if expected.is_empty() {
                equal_cases += 1;
            } else {
                differing_cases += 1;
            }
        }
    }
    // Both kinds of case were generated in numbers.
    assert!(
        differing_cases > 5_000 && equal_cases > 5_000,
        "{differing_cases} {equal_cases}"
    );
}
