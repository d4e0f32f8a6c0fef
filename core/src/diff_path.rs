//! Diff paths: the names of what differed in a comparison, one vocabulary
//! for the per-path counters (`unmatched_path.<diff path>`, label
//! `diff_path`), noise learning (`noise_path.<diff path>`), the
//! `max_diff_paths` bound, the log line and the CLI.
//!
//! A diff path is `status`, `header:<name>`, a JSON Pointer with array
//! indices generalised to `*` (`/items/*/price`: one field however long the
//! list), or `(body)` for a body that is not JSON or could not be read.
//!
//! Object keys can be data: a map keyed by account numbers or e-mail
//! addresses would put them into stat names, Prometheus labels and log
//! lines. So a key is named only where the operator allowed it
//! (`name_keys`, [`KeyNames`]); any other key is written `{}`, and every
//! all-digit token `*` (it may be an index or a numeric key, which the
//! pointer cannot tell apart).

use hashbrown::HashSet;

use crate::compare::Diff;

/// Which JSON object keys may appear in a diff path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyNames {
    /// None: every key is `{}`. The default, since keys can be data.
    #[default]
    Hidden,
    /// Every key (`"name_keys": true`): for APIs whose keys are a schema.
    All,
    /// These keys, exactly (`"name_keys": ["status", "items", ...]`).
    Only(Vec<String>),
}

impl KeyNames {
    fn allows(&self, key: &str) -> bool {
        match self {
            KeyNames::Hidden => false,
            KeyNames::All => true,
            KeyNames::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// An object key the policy does not name.
pub const HIDDEN_KEY: &str = "{}";

/// A concrete JSON Pointer as it may be shown in a log line: allowed keys
/// and (with every key allowed) array indices kept, anything else hidden.
pub fn redact(pointer: &str, names: &KeyNames) -> String {
    if !pointer.starts_with('/') {
        return pointer.to_string();
    }
    let mut out = String::with_capacity(pointer.len());
    for token in pointer.split('/').skip(1) {
        out.push('/');
        let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
        if *names == KeyNames::All || (!digits && names.allows(token)) {
            out.push_str(token);
        } else if digits {
            out.push('*');
        } else {
            out.push_str(HIDDEN_KEY);
        }
    }
    out
}

/// A status difference.
pub const STATUS: &str = "status";
/// A body difference that is not JSON, or not readable.
pub const BODY: &str = "(body)";
/// A JSON difference at the document's root (the whole document differs).
pub const ROOT: &str = "(root)";

/// Appends one token of a diff path: `/` and the pointer token (escaped as
/// in a JSON Pointer) when `names` allows it, `/*` for an all-digit token
/// (an index, or a numeric key: the pointer cannot tell them apart), else
/// `/{}`. The one rule for the walk ([`crate::compare`]) and for
/// [`generalize`]`(`[`redact`]`(..))`.
pub fn push_token(out: &mut String, token: &str, names: &KeyNames) {
    out.push('/');
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if digits {
        out.push('*');
    } else if names.allows(token) {
        out.push_str(token);
    } else {
        out.push_str(HIDDEN_KEY);
    }
}

/// The diff paths of a comparison, keys named as `names` allows, each
/// once, and whether the list is complete. It is complete unless a body's
/// fields overflowed their byte budget (see
/// [`crate::compare::BodyDiff::fields`]): the number of distinct fields is
/// the only bound, never a constant or the order of the walk.
pub fn of(diff: &Diff, names: &KeyNames) -> (Vec<String>, bool) {
    let mut paths = Vec::new();
    let mut complete = true;
    if diff.status {
        paths.push(STATUS.to_string());
    }
    paths.extend(diff.headers.iter().map(|name| format!("header:{name}")));
    if let Some(body) = &diff.body {
        if (body.fields.is_empty() && body.json_paths.is_empty()) || body.problem.is_some() {
            paths.push(BODY.to_string());
        }
        if body.fields.is_empty() {
            // A diff built without its fields (by hand, or an older
            // producer): the listed pointers are all there is.
            let mut seen = HashSet::new();
            for pointer in &body.json_paths {
                let path = generalize(&redact(pointer, names));
                if seen.insert(path.clone()) {
                    paths.push(path);
                }
            }
            complete &= body.more == 0;
        } else {
            paths.extend(body.fields.iter().cloned());
            complete &= body.fields_dropped == 0;
        }
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
                ..BodyDiff::default()
            }),
        }
    }

    #[test]
    fn a_diff_names_its_paths_generalised() {
        let (paths, complete) = of(
            &diff(true, &["etag"], &["/items/3/at", "/items/4/at", "/id"], 0),
            &KeyNames::All,
        );
        assert_eq!(paths, ["status", "header:etag", "/items/*/at", "/id"]);
        assert!(complete);
        assert!(!of(&diff(false, &[], &["/a"], 2), &KeyNames::All).1);
        let text = Diff {
            body: Some(BodyDiff::default()),
            ..Diff::default()
        };
        assert_eq!(of(&text, &KeyNames::Hidden).0, [BODY]);
    }

    #[test]
    fn keys_are_named_only_where_the_operator_allowed_it() {
        // A map keyed by account numbers and e-mail addresses.
        let accounts = diff(
            false,
            &[],
            &[
                "/accounts/DE89370400440532013000/balance",
                "/owners/ann@example.com",
                "/42/x",
            ],
            0,
        );
        let (hidden, _) = of(&accounts, &KeyNames::Hidden);
        assert_eq!(hidden, ["/{}/{}/{}", "/{}/{}", "/*/{}"]);
        let only = KeyNames::Only(vec!["accounts".into(), "balance".into(), "owners".into()]);
        let (named, _) = of(&accounts, &only);
        assert_eq!(named, ["/accounts/{}/balance", "/owners/{}", "/*/{}"]);
        assert_eq!(
            redact("/accounts/DE89370400440532013000/balance", &only),
            "/accounts/{}/balance"
        );
        assert_eq!(
            redact("/items/3/etag", &KeyNames::All),
            "/items/3/etag",
            "all: the pointer as it is"
        );
        assert_eq!(redact("/items/3/etag", &KeyNames::Hidden), "/{}/*/{}");
        assert_eq!(redact("(root)", &KeyNames::Hidden), "(root)");
        assert_eq!(redact("", &KeyNames::Hidden), "", "the whole document");
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
