//! Diff paths: the names of what differed in a comparison, one vocabulary
//! for the per-path counters (`unmatched_path.<diff path>`, label
//! `diff_path`), noise learning (`noise_path.<diff path>`), the
//! `max_diff_paths` bound, the log line and the CLI.
//!
//! A diff path is `status`, `header:<name>`, a JSON Pointer with array
//! indices generalised to `*` (`/items/*/price`: one field however long the
//! list), or `(body)` for a body that is not JSON or could not be read.

use crate::compare::{Diff, MAX_REPORTED};

/// A status difference.
pub const STATUS: &str = "status";
/// A body difference that is not JSON, or not readable.
pub const BODY: &str = "(body)";
/// A JSON difference at the document's root (the whole document differs).
pub const ROOT: &str = "(root)";

/// The diff paths of a comparison, and whether the list is complete: a
/// diff keeps at most [`MAX_REPORTED`] names per axis.
pub fn of(diff: &Diff) -> (Vec<String>, bool) {
    let mut paths = Vec::new();
    let mut complete = diff.headers.len() < MAX_REPORTED;
    if diff.status {
        paths.push(STATUS.to_string());
    }
    paths.extend(diff.headers.iter().map(|name| format!("header:{name}")));
    if let Some(body) = &diff.body {
        if body.json_paths.is_empty() || body.problem.is_some() {
            paths.push(BODY.to_string());
        }
        for pointer in &body.json_paths {
            let path = generalize(pointer);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        complete &= body.more == 0;
    }
    (paths, complete)
}

/// Turns a concrete JSON Pointer into its diff path: array indices become
/// `*`, so `/items/3/price` and `/items/7/price` are one field.
pub fn generalize(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for token in pointer.split('/').skip(1) {
        out.push('/');
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push('*');
        } else {
            out.push_str(token);
        }
    }
    if out.is_empty() {
        pointer.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::compare::BodyDiff;

    pub(crate) fn diff(status: bool, headers: &[&str], pointers: &[&str], more: usize) -> Diff {
        Diff {
            status,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            body: (!pointers.is_empty() || more > 0).then(|| BodyDiff {
                json_paths: pointers.iter().map(|p| p.to_string()).collect(),
                more,
                problem: None,
            }),
        }
    }

    #[test]
    fn a_diff_names_its_paths_generalised() {
        let (paths, complete) = of(&diff(true, &["etag"], &["/items/3/at", "/items/4/at", "/id"], 0));
        assert_eq!(paths, ["status", "header:etag", "/items/*/at", "/id"]);
        assert!(complete);
        assert!(!of(&diff(false, &[], &["/a"], 2)).1);
        let text = Diff {
            body: Some(BodyDiff::default()),
            ..Diff::default()
        };
        assert_eq!(of(&text).0, [BODY]);
    }

    #[test]
    fn array_indices_generalise() {
        assert_eq!(generalize("/items/3/price"), "/items/*/price");
        assert_eq!(generalize("/items/12"), "/items/*");
        assert_eq!(generalize("/a1/b"), "/a1/b");
        assert_eq!(generalize("header:date"), "header:date");
        assert_eq!(generalize("(root)"), "(root)");
    }
}
