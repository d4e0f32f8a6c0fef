//! Comparison of the serving and the shadow response, after the tuning rules.
//!
//! Status codes compare exactly; headers as ordered value lists per name,
//! minus an ignore list; bodies byte for byte, and semantically when both
//! sides are JSON (key order and number spelling do not matter, ignored JSON
//! paths are removed first).

mod headers;
pub mod json;

pub use headers::{HeaderPattern, DEFAULT_IGNORED_HEADERS};

use crate::http::Response;
use json::PointerPattern;

/// How many differing header names or JSON paths a diff keeps for the log:
/// enough to act on, bounded so a wholly different body stays cheap.
pub const MAX_REPORTED: usize = 5;

/// An operation's tuning rules.
#[derive(Debug, Clone, Default)]
pub struct CompareRules {
    /// Added to [`DEFAULT_IGNORED_HEADERS`].
    pub ignore_headers: Vec<HeaderPattern>,
    pub ignore_json_paths: Vec<PointerPattern>,
}

/// What differs between two responses; empty when they match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub status: bool,
    /// Differing header names, sorted, at most [`MAX_REPORTED`].
    pub headers: Vec<String>,
    pub body: Option<BodyDiff>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyDiff {
    /// Differing JSON Pointers, at most [`MAX_REPORTED`]; empty when the
    /// bodies are not both JSON.
    pub json_paths: Vec<String>,
    /// Differences beyond those listed.
    pub more: usize,
}

impl Diff {
    pub fn is_match(&self) -> bool {
        !self.status && self.headers.is_empty() && self.body.is_none()
    }
}

pub fn compare(rules: &CompareRules, serving: &Response, shadow: &Response) -> Diff {
    Diff {
        status: serving.status != shadow.status,
        headers: headers::differing(rules, &serving.headers, &shadow.headers),
        body: compare_bodies(rules, serving, shadow),
    }
}

fn compare_bodies(rules: &CompareRules, serving: &Response, shadow: &Response) -> Option<BodyDiff> {
    if serving.body == shadow.body {
        return None;
    }
    if !(json::looks_like_json(serving) && json::looks_like_json(shadow)) {
        return Some(BodyDiff::default());
    }
    match (
        serde_json::from_slice::<serde_json::Value>(&serving.body),
        serde_json::from_slice::<serde_json::Value>(&shadow.body),
    ) {
        (Ok(mut left), Ok(mut right)) => {
            for pattern in &rules.ignore_json_paths {
                pattern.remove_from(&mut left);
                pattern.remove_from(&mut right);
            }
            json::diff(&left, &right)
        }
        // One side is not valid JSON: the bodies differ, nothing crashes.
        _ => Some(BodyDiff::default()),
    }
}

#[cfg(test)]
mod tests;
