//! Counting: every differing field of a comparison once, however many
//! there are and in whatever order the walk meets them.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::diff_path::{self, KeyNames};

fn named() -> CompareRules {
    CompareRules {
        key_names: KeyNames::All,
        ..CompareRules::default()
    }
}

fn fields(rules: &CompareRules, left: &str, right: &str) -> BodyDiff {
    compare(rules, &json(left), &json(right))
        .body
        .expect("the bodies differ")
}

/// A document with `n` members `k000`..: each `v`, in the given key order.
fn doc(keys: &[String], v: u32) -> String {
    let members: Vec<String> = keys.iter().map(|k| format!(r#""{k}":{v}"#)).collect();
    format!("{{{}}}", members.join(","))
}

#[test]
fn every_differing_field_is_listed_far_beyond_any_constant() {
    let n = MAX_REPORTED * 40;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
    let body = fields(&named(), &doc(&keys, 1), &doc(&keys, 2));
    assert_eq!(body.fields.len(), n);
    assert_eq!(body.fields_dropped, 0);
    let expected: Vec<String> = keys.iter().map(|k| format!("/{k}")).collect();
    assert_eq!(body.fields, expected, "sorted, each once");
    // The examples stay a few; the diff path list is whole.
    assert_eq!(body.json_paths.len(), MAX_REPORTED);
    let (paths, complete) = diff_path::of(
        &compare(&named(), &json(&doc(&keys, 1)), &json(&doc(&keys, 2))),
        &KeyNames::All,
    );
    assert_eq!(paths.len(), n);
    assert!(complete);
}

#[test]
fn the_order_of_the_walk_does_not_choose_the_fields() {
    // The field that legacy lists last, after 30 others, and the same
    // documents with the keys in reverse order: the same fields.
    let mut keys: Vec<String> = (0..30).map(|i| format!("a{i:02}")).collect();
    keys.push("zz_last".into());
    let forward = fields(&named(), &doc(&keys, 1), &doc(&keys, 2));
    keys.reverse();
    let backward = fields(&named(), &doc(&keys, 2), &doc(&keys, 1));
    assert_eq!(forward.fields, backward.fields);
    assert!(forward.fields.contains(&"/zz_last".to_string()));
    // Keys only the shadow has are fields too, however many legacy has first.
    let only_left: Vec<String> = (0..40).map(|i| format!("l{i:02}")).collect();
    let left = doc(&only_left, 1);
    let right = r#"{"shadow_only":1}"#;
    let body = fields(&named(), &left, right);
    assert_eq!(body.fields.len(), 41);
    assert!(body.fields.contains(&"/shadow_only".to_string()));
}

#[test]
fn a_field_that_differs_in_many_elements_is_one_field() {
    let items = |v: u32| {
        let list: Vec<String> = (0..500).map(|i| format!(r#"{{"id":{i},"price":{v}}}"#)).collect();
        format!(r#"{{"items":[{}]}}"#, list.join(","))
    };
    let body = fields(&named(), &items(1), &items(2));
    assert_eq!(body.fields, ["/items/*/price"]);
    assert_eq!(
        body.more,
        500 - MAX_REPORTED,
        "examples: the first ones, the rest counted"
    );
    // Hidden keys (the default): the same, unnamed.
    let body = fields(&no_rules(), &items(1), &items(2));
    assert_eq!(body.fields, ["/{}/*/{}"]);
}

#[test]
fn fields_are_named_as_name_keys_allows() {
    let only = CompareRules {
        key_names: KeyNames::Only(vec!["balance".into()]),
        ..CompareRules::default()
    };
    let left = r#"{"DE89370400440532013000":{"balance":1},"ann@example.com":{"balance":1}}"#;
    let right = r#"{"DE89370400440532013000":{"balance":2},"ann@example.com":{"balance":3}}"#;
    assert_eq!(
        fields(&only, left, right).fields,
        ["/{}/balance"],
        "one field, no account number"
    );
    assert_eq!(fields(&no_rules(), r#"{"12":1}"#, r#"{"12":2}"#).fields, ["/*"]);
    assert_eq!(fields(&named(), r#"{"a/b":1}"#, r#"{"a/b":2}"#).fields, ["/a~1b"]);
    assert_eq!(fields(&named(), "[1]", "[1,2]").fields, ["/length"]);
    assert_eq!(fields(&named(), r#"{"a":1}"#, "[1]").fields, [diff_path::ROOT]);
}

#[test]
fn a_field_path_and_the_whole_list_are_bounded() {
    // One very long key: the field is cut, at a character boundary.
    let key = "é".repeat(MAX_FIELD_BYTES);
    let body = fields(&named(), &format!(r#"{{"{key}":1}}"#), &format!(r#"{{"{key}":2}}"#));
    assert_eq!(body.fields.len(), 1);
    assert!(body.fields[0].len() <= MAX_FIELD_BYTES);
    // A small body bound: names beyond it are dropped, and counted.
    let rules = CompareRules {
        max_decoded_bytes: MAX_FIELD_BYTES,
        ..named()
    };
    let keys: Vec<String> = (0..200).map(|i| format!("k{i:04}")).collect();
    let body = fields(&rules, &doc(&keys, 1), &doc(&keys, 2));
    let bytes: usize = body.fields.iter().map(String::len).sum();
    assert!(bytes <= MAX_FIELD_BYTES, "{bytes}");
    assert_eq!(body.fields.len() + body.fields_dropped, 200);
    let (_, complete) = diff_path::of(
        &Diff {
            body: Some(body),
            ..Diff::default()
        },
        &KeyNames::All,
    );
    assert!(!complete);
}

#[test]
fn a_trial_pairing_leaves_no_fields_behind() {
    // Under a tolerance, sorted pairing is tried first and succeeds: no
    // field recorded during the trial may remain.
    let rules = CompareRules {
        unordered_arrays: vec![UnorderedArray {
            path: PointerPattern::parse("/a").unwrap(),
            key: None,
        }],
        number_tolerance: Some(NumberTolerance {
            absolute: Some(0.06),
            relative: None,
        }),
        ..named()
    };
    let diff = compare(
        &rules,
        &json(r#"{"a":[1,1.05],"b":1}"#),
        &json(r#"{"a":[1.05,1.1],"b":2}"#),
    );
    assert_eq!(diff.body.unwrap().fields, ["/b"]);
}
