//! Noise learning: what differs between two answers of the same backend to
//! the same request is noise (timestamps, request ids, random order), and
//! should not count against the candidate.
//!
//! The filter sends a sample of safe requests a second time to the serving
//! backend and records, per operation, how often each field (a generalised
//! JSON path or `header:<name>`) differs between the two answers of the same
//! backend ("self rate"), and how often it differs between the serving
//! backend and the candidate ("candidate rate").
//!
//! A field is noise when the serving backend disagrees with itself on it
//! about as often as it disagrees with the candidate: the candidate rate is
//! at most the self rate plus a tolerance. A field that is noisy in legacy
//! but differs markedly more often against the candidate is a real
//! difference hiding behind noise, and stays counted. With no self
//! difference at all, a field is never noise, however often the candidate
//! differs on it.

use std::collections::BTreeMap;

use crate::compare::Diff;
use crate::diff_path;

/// Whether a diff is nothing but noise. Whole-body differences never are:
/// a body that always differs is a case for masks, not for silence.
pub fn only_noise(diff: &Diff, names: &diff_path::KeyNames, noise: &[String]) -> bool {
    let (paths, complete) = diff_path::of(diff, names);
    complete
        && !paths.is_empty()
        && paths
            .iter()
            .all(|path| path != diff_path::BODY && path != diff_path::ROOT && noise.iter().any(|n| n == path))
}

/// Fewer same-backend pairs than this decide nothing.
pub const MIN_SELF_SAMPLES: u64 = 10;
/// Fields tracked per operation: beyond it new fields are not learned.
pub const MAX_FIELDS: usize = 64;
/// How much more often than the self rate the candidate may differ on a
/// field that is still noise (absolute, as a fraction of comparisons). A
/// generous margin: sampling makes both rates approximate, and a false
/// "real difference" only costs a visible unmatched count, while a false
/// "noise" would hide a bug.
const TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FieldCounts {
    self_diffs: u64,
    candidate_diffs: u64,
}

/// Per operation: the counts behind the noise decision. Mergeable, so each
/// worker keeps its own and the filter sums them across workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseBook {
    self_samples: u64,
    candidate_samples: u64,
    fields: BTreeMap<String, FieldCounts>,
}

impl NoiseBook {
    pub fn is_empty(&self) -> bool {
        self.self_samples == 0 && self.candidate_samples == 0
    }

    pub fn self_samples(&self) -> u64 {
        self.self_samples
    }

    /// Two answers of the serving backend, and the fields they differ in.
    pub fn record_self<'a>(&mut self, differing: impl IntoIterator<Item = &'a str>) {
        self.self_samples += 1;
        for field in differing {
            if let Some(counts) = self.field(field) {
                counts.self_diffs += 1;
            }
        }
    }

    /// A serving answer against the candidate's, before noise is excluded.
    pub fn record_candidate<'a>(&mut self, differing: impl IntoIterator<Item = &'a str>) {
        self.candidate_samples += 1;
        for field in differing {
            // Only fields already seen as self differences matter to the
            // decision; tracking every candidate difference would crowd them
            // out of the bound.
            if let Some(counts) = self.fields.get_mut(field) {
                counts.candidate_diffs += 1;
            }
        }
    }

    fn field(&mut self, field: &str) -> Option<&mut FieldCounts> {
        if !self.fields.contains_key(field) && self.fields.len() >= MAX_FIELDS {
            return None;
        }
        Some(self.fields.entry(field.to_string()).or_default())
    }

    pub fn merge(&mut self, other: &NoiseBook) {
        self.self_samples += other.self_samples;
        self.candidate_samples += other.candidate_samples;
        for (field, counts) in &other.fields {
            if let Some(mine) = self.field(field) {
                mine.self_diffs += counts.self_diffs;
                mine.candidate_diffs += counts.candidate_diffs;
            }
        }
    }

    /// The fields that are noise now, sorted.
    pub fn noise(&self) -> Vec<String> {
        if self.self_samples < MIN_SELF_SAMPLES {
            return Vec::new();
        }
        self.fields
            .iter()
            .filter(|(_, counts)| self.is_noise(counts))
            .map(|(field, _)| field.clone())
            .collect()
    }

    fn is_noise(&self, counts: &FieldCounts) -> bool {
        if counts.self_diffs == 0 {
            return false;
        }
        let self_rate = counts.self_diffs as f64 / self.self_samples as f64;
        if self.candidate_samples == 0 {
            return true;
        }
        let candidate_rate = counts.candidate_diffs as f64 / self.candidate_samples as f64;
        candidate_rate <= self_rate + TOLERANCE
    }

    /// A compact text form for shared data: a header line with the sample
    /// counts, then one line per field: `self<TAB>candidate<TAB>field`.
    pub fn encode(&self) -> String {
        let mut out = format!("{} {}\n", self.self_samples, self.candidate_samples);
        for (field, counts) in &self.fields {
            out.push_str(&format!(
                "{}\t{}\t{}\n",
                counts.self_diffs, counts.candidate_diffs, field
            ));
        }
        out
    }

    /// The inverse of [`NoiseBook::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<NoiseBook> {
        let mut lines = text.lines();
        let (self_samples, candidate_samples) = lines.next()?.split_once(' ')?;
        let mut book = NoiseBook {
            self_samples: self_samples.parse().ok()?,
            candidate_samples: candidate_samples.parse().ok()?,
            fields: BTreeMap::new(),
        };
        for line in lines {
            let mut parts = line.splitn(3, '\t');
            let self_diffs = parts.next()?.parse().ok()?;
            let candidate_diffs = parts.next()?.parse().ok()?;
            let field = parts.next()?;
            let counts = book.field(field)?;
            *counts = FieldCounts {
                self_diffs,
                candidate_diffs,
            };
        }
        Some(book)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    use crate::compare::BodyDiff;

    fn diff(status: bool, headers: &[&str], paths: &[&str], more: usize) -> Diff {
        Diff {
            status,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            body: (!paths.is_empty() || more > 0).then(|| BodyDiff {
                json_paths: paths.iter().map(|p| p.to_string()).collect(),
                more,
                ..BodyDiff::default()
            }),
        }
    }

    fn only_noise_all(diff: &Diff, noise: &[String]) -> bool {
        only_noise(diff, &diff_path::KeyNames::All, noise)
    }

    #[test]
    fn only_noise_needs_every_field_known_as_noise() {
        let noise = vec!["/items/*/at".to_string(), "header:date2".to_string()];
        assert!(only_noise_all(&diff(false, &["date2"], &["/items/0/at"], 0), &noise));
        assert!(!only_noise_all(
            &diff(false, &["date2"], &["/items/0/at", "/id"], 0),
            &noise
        ));
        assert!(
            !only_noise_all(&diff(false, &[], &["/items/0/at"], 1), &noise),
            "incomplete"
        );
        assert!(!only_noise_all(&diff(true, &[], &["/items/0/at"], 0), &noise));
        assert!(!only_noise_all(&Diff::default(), &noise), "a match is not noise");
        let whole = vec![diff_path::BODY.to_string(), diff_path::ROOT.to_string()];
        assert!(!only_noise_all(&diff(false, &[], &["(root)"], 0), &whole));
    }

    fn book(self_pairs: &[&[&str]], candidate_pairs: &[&[&str]]) -> NoiseBook {
        let mut book = NoiseBook::default();
        for differing in self_pairs {
            book.record_self(differing.iter().copied());
        }
        for differing in candidate_pairs {
            book.record_candidate(differing.iter().copied());
        }
        book
    }

    #[test]
    fn a_field_that_changes_on_every_call_is_noise() {
        let self_pairs = vec![&["/updated_at", "header:etag"][..]; 20];
        let candidate_pairs = vec![&["/updated_at", "header:etag"][..]; 50];
        assert_eq!(
            book(&self_pairs, &candidate_pairs).noise(),
            ["/updated_at", "header:etag"]
        );
    }

    #[test]
    fn nothing_is_decided_on_too_few_samples() {
        let self_pairs = vec![&["/updated_at"][..]; (MIN_SELF_SAMPLES - 1) as usize];
        assert!(book(&self_pairs, &[]).noise().is_empty());
    }

    #[test]
    fn a_field_without_self_differences_is_never_noise() {
        let self_pairs = vec![&[][..]; 30];
        let candidate_pairs = vec![&["/status"][..]; 30];
        assert!(book(&self_pairs, &candidate_pairs).noise().is_empty());
    }

    #[test]
    fn noisy_in_legacy_but_far_more_often_against_the_candidate_is_real() {
        // /total differs in 10% of legacy-vs-legacy pairs (a race in legacy),
        // but in 60% of legacy-vs-candidate comparisons: a real bug.
        let mut self_pairs = vec![&[][..]; 18];
        self_pairs.extend([&["/total"][..]; 2]);
        let mut candidate_pairs = vec![&[][..]; 40];
        candidate_pairs.extend(vec![&["/total"][..]; 60]);
        assert!(book(&self_pairs, &candidate_pairs).noise().is_empty());

        // The same self rate with a candidate rate within the tolerance is noise.
        let mut candidate_pairs = vec![&[][..]; 85];
        candidate_pairs.extend(vec![&["/total"][..]; 15]);
        assert_eq!(book(&self_pairs, &candidate_pairs).noise(), ["/total"]);
    }

    #[test]
    fn fields_are_bounded() {
        let names: Vec<String> = (0..MAX_FIELDS + 10).map(|i| format!("/f{i}")).collect();
        let mut book = NoiseBook::default();
        for _ in 0..MIN_SELF_SAMPLES {
            book.record_self(names.iter().map(String::as_str));
        }
        assert_eq!(book.noise().len(), MAX_FIELDS);
    }

    #[test]
    fn books_merge_and_round_trip() {
        let a = book(&[&["/a", "header:x-t"][..]; 6], &[&["/a"]]);
        let b = book(&[&["/a"][..]; 6], &[&["/b"], &["header:x-t"]]);
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.self_samples(), 12);
        assert_eq!(merged.noise(), ["/a", "header:x-t"]);
        let text = merged.encode();
        assert_eq!(NoiseBook::decode(&text), Some(merged));
        assert_eq!(NoiseBook::decode("garbage"), None);
        assert_eq!(NoiseBook::decode("1 2\nx\t1\t/a\n"), None);
        assert_eq!(NoiseBook::decode(""), None);
    }
}
