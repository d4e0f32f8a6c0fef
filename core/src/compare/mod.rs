//! Comparison of the serving and the shadow response, after the tuning rules.
//!
//! Status codes compare exactly, by class, or by equivalence groups; headers
//! as ordered value lists per name, minus an ignore list (Content-Type
//! without parameter noise), values masked per header (`header_masks`);
//! bodies are decoded (gzip, deflate, brotli, zstd), then compared by
//! length or media type only (`body`), or in full: masked, byte for byte,
//! and semantically when both sides are JSON (key order and number spelling
//! do not matter, keys case-insensitive where asked, ignored JSON paths are
//! removed first, unordered arrays compare as multisets, numbers within a
//! tolerance).

mod bytes;
pub mod encoding;
mod headers;
pub mod json;
pub mod mask;
mod media_type;
mod sort;

use std::borrow::Cow;

use serde::Deserialize;

pub use headers::{HeaderPattern, DEFAULT_IGNORED_HEADERS};
pub use json::{NumberTolerance, UnorderedArray};
pub use mask::Mask;

use crate::diff_path::KeyNames;
use crate::http::Response;
use encoding::{DecodeError, Encoding};
pub use json::PointerPattern;

/// How many concrete JSON Pointers a diff keeps in [`BodyDiff::json_paths`]
/// (for the log line and evidence): a few examples to look at. Counting
/// does not depend on it: [`BodyDiff::fields`] holds every differing field.
pub const MAX_REPORTED: usize = 16;

/// A field (diff path) is cut to this many bytes: it becomes a stat name,
/// and only a document whose keys are all named (`name_keys: true`) and
/// nested deep with long keys comes near it.
pub const MAX_FIELD_BYTES: usize = 512;

/// An operation's tuning rules.
#[derive(Debug, Clone)]
pub struct CompareRules {
    /// Added to [`DEFAULT_IGNORED_HEADERS`].
    pub ignore_headers: Vec<HeaderPattern>,
    pub ignore_json_paths: Vec<PointerPattern>,
    /// Arrays compared as multisets; the first pattern naming an array wins.
    pub unordered_arrays: Vec<UnorderedArray>,
    pub number_tolerance: Option<NumberTolerance>,
    /// A member whose value is `null` equals an absent member.
    pub null_equals_missing: bool,
    pub status: StatusRules,
    /// Applied in order to both bodies, after decoding, before comparing.
    pub masks: Vec<Mask>,
    /// A body is decoded (gzip, deflate) into at most this many bytes;
    /// beyond, the comparison fails as too large. The operation's
    /// `max_body_bytes`.
    pub max_decoded_bytes: usize,
    /// Which JSON object keys a field ([`BodyDiff::fields`]) may name: the
    /// operation's `name_keys`.
    pub key_names: KeyNames,
    /// Masks applied to the values of matching response headers before
    /// they are compared (`header_masks`); the first pattern naming a
    /// header wins.
    pub header_masks: Vec<(HeaderPattern, Mask)>,
    /// Objects whose keys compare case-insensitively.
    pub case_insensitive_keys: CaseKeys,
    /// What of the bodies is compared.
    pub body: BodyMode,
}

/// Which JSON objects' keys compare case-insensitively
/// (`case_insensitive_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CaseKeys {
    #[default]
    None,
    /// Every object of the body (`true`).
    All,
    /// The objects at these locations (`["/headers", "/items/*"]`).
    At(Vec<PointerPattern>),
}

/// What of the bodies is compared (`body`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// Everything, by the other rules.
    #[default]
    Full,
    /// The decoded lengths only (for bodies that legitimately differ,
    /// such as rendered documents with the same layout).
    Length,
    /// The media type only (Content-Type without parameters): a body of
    /// the right kind is enough.
    MediaType,
}

impl Default for CompareRules {
    fn default() -> Self {
        CompareRules {
            ignore_headers: Vec::new(),
            ignore_json_paths: Vec::new(),
            unordered_arrays: Vec::new(),
            number_tolerance: None,
            null_equals_missing: false,
            status: StatusRules::default(),
            masks: Vec::new(),
            max_decoded_bytes: usize::try_from(crate::limits::DEFAULT_MAX_BODY_BYTES).unwrap_or(usize::MAX),
            key_names: KeyNames::default(),
            header_masks: Vec::new(),
            case_insensitive_keys: CaseKeys::None,
            body: BodyMode::Full,
        }
    }
}

/// How status codes compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusMatch {
    /// Equal codes.
    #[default]
    Exact,
    /// Codes of the same class (201 equals 200).
    Class,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusRules {
    pub matching: StatusMatch,
    /// Groups of codes that equal each other; a code is in one group at most.
    pub equivalent: Vec<Vec<u16>>,
}

impl StatusRules {
    /// Equal codes, codes of one class under `class`, or codes of one group.
    pub fn equal(&self, a: u16, b: u16) -> bool {
        a == b
            || (self.matching == StatusMatch::Class && a / 100 == b / 100)
            || self
                .equivalent
                .iter()
                .any(|group| group.contains(&a) && group.contains(&b))
    }
}

/// What differs between two responses; empty when they match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub status: bool,
    /// Every differing header name, sorted (bounded by the number of
    /// headers the two responses carry).
    pub headers: Vec<String>,
    pub body: Option<BodyDiff>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyDiff {
    /// Differing JSON Pointers, at most [`MAX_REPORTED`]; empty when the
    /// bodies are not both JSON. `*` stands for an element of an unordered
    /// array (`/items/*/price`).
    pub json_paths: Vec<String>,
    /// Differences beyond those listed in `json_paths`.
    pub more: usize,
    /// Every distinct differing field of the bodies, once, sorted: its diff
    /// path ([`crate::diff_path`]: indices generalised to `*`, keys named
    /// only as `name_keys` allows), each at most [`MAX_FIELD_BYTES`]. Empty
    /// when the bodies are not both JSON. Bounded by the number of distinct
    /// fields, and in bytes by the body bound (`max_decoded_bytes`), never
    /// by the order of the walk.
    pub fields: Vec<String>,
    /// Differing fields that did not fit in `fields`' byte budget (one per
    /// difference met): only a pathological document gets here.
    pub fields_dropped: usize,
    /// Why the bodies could not be compared, when they could not.
    pub problem: Option<BodyProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// A body decodes (gzip, deflate) to more than `max_decoded_bytes`: the
    /// comparison carries no information (`failed_body_too_large`).
    DecodedTooLarge,
    /// A body is not valid for its Content-Encoding: the bodies differ.
    Undecodable,
}

impl Diff {
    pub fn is_match(&self) -> bool {
        !self.status && self.headers.is_empty() && self.body.is_none()
    }

    /// A body decoded beyond the limit: nothing was compared.
    pub fn too_large(&self) -> bool {
        self.body
            .as_ref()
            .is_some_and(|b| b.problem == Some(BodyProblem::DecodedTooLarge))
    }
}

pub fn compare(rules: &CompareRules, serving: &Response, shadow: &Response) -> Diff {
    let (body, decoded) = compare_bodies(rules, serving, shadow);
    Diff {
        status: !rules.status.equal(serving.status, shadow.status),
        headers: headers::differing(rules, serving, shadow, decoded),
        body,
    }
}

fn problem(problem: BodyProblem) -> Option<BodyDiff> {
    Some(BodyDiff {
        problem: Some(problem),
        ..BodyDiff::default()
    })
}

/// The body difference, and whether both bodies' encodings were undone
/// (then `content-encoding` itself is not compared).
fn compare_bodies(rules: &CompareRules, serving: &Response, shadow: &Response) -> (Option<BodyDiff>, bool) {
    let left_encoding = Encoding::of(serving.header("content-encoding"));
    let right_encoding = Encoding::of(shadow.header("content-encoding"));
    let decodable = matches!(
        (&left_encoding, &right_encoding),
        (Encoding::Known(_), Encoding::Known(_))
    );
    if left_encoding == right_encoding && bytes::equal(&serving.body, &shadow.body) {
        return (None, decodable);
    }
    if rules.body == BodyMode::MediaType {
        let essence =
            |r: &Response| media_type::essence(r.header("content-type").unwrap_or_default()).to_ascii_lowercase();
        let differ = essence(serving) != essence(shadow);
        return (differ.then(BodyDiff::default), decodable);
    }
    let (left, right) = match (&left_encoding, &right_encoding) {
        (Encoding::Known(l), Encoding::Known(r)) => {
            match (
                encoding::decode(l, &serving.body, rules.max_decoded_bytes),
                encoding::decode(r, &shadow.body, rules.max_decoded_bytes),
            ) {
                (Ok(left), Ok(right)) => (left, right),
                (Err(DecodeError::TooLarge), _) | (_, Err(DecodeError::TooLarge)) => {
                    return (problem(BodyProblem::DecodedTooLarge), true)
                }
                _ => return (problem(BodyProblem::Undecodable), true),
            }
        }
        // A coding this filter cannot undo: compare the bytes as they are.
        _ => (
            Cow::Borrowed(serving.body.as_slice()),
            Cow::Borrowed(shadow.body.as_slice()),
        ),
    };
    if rules.body == BodyMode::Length {
        return ((left.len() != right.len()).then(BodyDiff::default), decodable);
    }
    let left = mask::apply_all(&rules.masks, left);
    let right = mask::apply_all(&rules.masks, right);
    if bytes::equal(&left, &right) {
        return (None, decodable);
    }
    let json = json::looks_like_json(serving.header("content-type"), &left)
        && json::looks_like_json(shadow.header("content-type"), &right);
    if !json {
        return (Some(BodyDiff::default()), decodable);
    }
    let diff = match (
        serde_json::from_slice::<serde_json::Value>(&left),
        serde_json::from_slice::<serde_json::Value>(&right),
    ) {
        (Ok(mut left), Ok(mut right)) => {
            json::fold_keys(&rules.case_insensitive_keys, &mut left);
            json::fold_keys(&rules.case_insensitive_keys, &mut right);
            for pattern in &rules.ignore_json_paths {
                pattern.remove_from(&mut left);
                pattern.remove_from(&mut right);
            }
            json::diff(&left, &right, rules)
        }
        // One side is not valid JSON (or nested beyond serde_json's limit of
        // 128): the bodies differ, nothing crashes.
        _ => Some(BodyDiff::default()),
    };
    (diff, decodable)
}

/// A body as the comparison sees it: decoded (gzip, deflate) and masked,
/// for the evidence record ([`crate::evidence`]), which re-reads a sampled
/// comparison's bodies the way the comparison did. `None` when it cannot be
/// decoded within `max_decoded_bytes`. `json` is whether both sides of the
/// comparison would be compared as JSON.
pub fn prepared_body<'a>(rules: &CompareRules, response: &'a Response) -> Option<(Cow<'a, [u8]>, bool)> {
    let body = match Encoding::of(response.header("content-encoding")) {
        Encoding::Known(codings) => encoding::decode(&codings, &response.body, rules.max_decoded_bytes).ok()?,
        Encoding::Unsupported => Cow::Borrowed(response.body.as_slice()),
    };
    let body = mask::apply_all(&rules.masks, body);
    let json = json::looks_like_json(response.header("content-type"), &body);
    Some((body, json))
}

#[cfg(test)]
mod tests;
