#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

/// A matcher over (method, template) pairs; operation i is the i-th pair.
fn matcher(routes: &[(&str, &str)]) -> Matcher {
    let mut matcher = Matcher::default();
    for (i, (method, template)) in routes.iter().enumerate() {
        let segments = parse_template(template).unwrap();
        matcher.insert(method, &segments, i, |_| true).unwrap();
    }
    matcher
}

fn lit(s: &str) -> Segment<'_> {
    Segment::Literal(s)
}

fn param(s: &str) -> Segment<'_> {
    Segment::Param(s)
}

#[test]
fn templates_parse_into_segments() {
    assert_eq!(parse_template("/").unwrap(), []);
    assert_eq!(parse_template("/returns").unwrap(), [lit("returns")]);
    assert_eq!(parse_template("/returns/").unwrap(), [lit("returns")]);
    assert_eq!(
        parse_template("/returns/{id}/items/{itemId}").unwrap(),
        [lit("returns"), param("id"), lit("items"), param("itemId")]
    );
}

#[test]
fn template_errors_say_what_is_wrong() {
    for (template, problem) in [
        ("", "must start with '/'"),
        ("returns/{id}", "must start with '/'"),
        ("/returns/{id", "unbalanced '{'"),
        ("/returns/id}", "unbalanced '}'"),
        ("/returns/{{id}", "unbalanced '{'"),
        ("/a{id}", "a parameter must be a whole segment"),
        ("/{id}.json", "a parameter must be a whole segment"),
        ("/{a}{b}", "a parameter must be a whole segment"),
        ("/{{id}}", "a parameter must be a whole segment"),
        ("/returns/{}", "empty parameter name"),
        ("/a/{id}/b/{id}", "{id} appears twice"),
        ("/returns?id=1", "no query string"),
        ("/returns#top", "no query string or fragment"),
        ("/a//b", "empty segment"),
        ("//", "empty segment"),
        ("/a//", "empty segment"),
    ] {
        match parse_template(template) {
            Ok(segments) => panic!("{template:?} accepted as {segments:?}"),
            Err(msg) => assert!(msg.contains(problem), "{template:?}: {msg}"),
        }
    }
}

#[test]
fn a_literal_beats_a_template_at_the_same_position() {
    // Inserted template first, so the order of insertion does not decide.
    let m = matcher(&[("GET", "/returns/{id}"), ("GET", "/returns/summary")]);
    assert_eq!(m.find("GET", "/returns/summary", |_| true), Some(1));
    assert_eq!(m.find("GET", "/returns/r-42", |_| true), Some(0));
    assert_eq!(m.find("GET", "/returns/summaryx", |_| true), Some(0));
}

#[test]
fn matching_backtracks_to_the_template_when_the_literal_branch_leads_nowhere() {
    let m = matcher(&[("GET", "/returns/summary"), ("GET", "/returns/{id}/items")]);
    assert_eq!(m.find("GET", "/returns/summary/items", |_| true), Some(1));
    assert_eq!(m.find("GET", "/returns/summary", |_| true), Some(0));
    assert_eq!(m.find("GET", "/returns/summary/other", |_| true), None);
}

#[test]
fn matching_backtracks_when_the_literal_branch_lacks_the_method() {
    let m = matcher(&[("GET", "/returns/summary"), ("DELETE", "/returns/{id}")]);
    assert_eq!(m.find("DELETE", "/returns/summary", |_| true), Some(1));
    assert_eq!(m.find("GET", "/returns/summary", |_| true), Some(0));
    assert_eq!(m.find("GET", "/returns/42", |_| true), None);
}

#[test]
fn deep_backtracking_tries_every_branch() {
    let m = matcher(&[
        ("GET", "/a/b/c"),
        ("GET", "/a/{x}/d"),
        ("GET", "/{y}/b/e"),
        ("GET", "/{y}/{z}/{w}"),
    ]);
    assert_eq!(m.find("GET", "/a/b/c", |_| true), Some(0));
    assert_eq!(m.find("GET", "/a/b/d", |_| true), Some(1));
    assert_eq!(m.find("GET", "/a/b/e", |_| true), Some(2));
    assert_eq!(m.find("GET", "/a/b/f", |_| true), Some(3));
    assert_eq!(m.find("GET", "/a/b", |_| true), None);
    assert_eq!(m.find("GET", "/a/b/c/d", |_| true), None);
}

#[test]
fn the_method_must_match() {
    let m = matcher(&[("GET", "/returns"), ("POST", "/returns")]);
    assert_eq!(m.find("GET", "/returns", |_| true), Some(0));
    assert_eq!(m.find("POST", "/returns", |_| true), Some(1));
    assert_eq!(m.find("PUT", "/returns", |_| true), None);
    // Methods are case-sensitive (RFC 9110).
    assert_eq!(m.find("get", "/returns", |_| true), None);
}

#[test]
fn the_query_string_and_fragment_are_ignored() {
    let m = matcher(&[("GET", "/returns/{id}"), ("GET", "/returns")]);
    assert_eq!(m.find("GET", "/returns/42?expand=items", |_| true), Some(0));
    assert_eq!(m.find("GET", "/returns?page=2&size=10", |_| true), Some(1));
    assert_eq!(m.find("GET", "/returns/?page=2", |_| true), Some(1));
    assert_eq!(m.find("GET", "/returns#x", |_| true), Some(1));
    // A '/' inside the query is not a segment.
    assert_eq!(m.find("GET", "/returns?next=/returns/42", |_| true), Some(1));
}

#[test]
fn one_trailing_slash_is_ignored_on_both_sides() {
    let m = matcher(&[("GET", "/returns/"), ("GET", "/items")]);
    assert_eq!(m.find("GET", "/returns", |_| true), Some(0));
    assert_eq!(m.find("GET", "/returns/", |_| true), Some(0));
    assert_eq!(m.find("GET", "/items/", |_| true), Some(1));
    assert_eq!(m.find("GET", "/items", |_| true), Some(1));
    assert_eq!(m.find("GET", "/items//", |_| true), None);
}

#[test]
fn empty_segments_match_nothing() {
    let m = matcher(&[("GET", "/"), ("GET", "/{a}/{b}"), ("GET", "/{a}")]);
    for path in ["//", "///", "/x//y", "//x", "/x//", "//?q=1"] {
        assert_eq!(m.find("GET", path, |_| true), None, "{path}");
    }
    assert_eq!(m.find("GET", "/x/y", |_| true), Some(1));
    assert_eq!(m.find("GET", "/x", |_| true), Some(2));
}

#[test]
fn a_parameter_needs_a_segment() {
    let m = matcher(&[("GET", "/returns/{id}")]);
    assert_eq!(m.find("GET", "/returns", |_| true), None);
    assert_eq!(m.find("GET", "/returns/", |_| true), None);
    assert_eq!(m.find("GET", "/returns/1/2", |_| true), None);
}

#[test]
fn the_root_path() {
    let m = matcher(&[("GET", "/"), ("GET", "/{id}")]);
    assert_eq!(m.find("GET", "/", |_| true), Some(0));
    assert_eq!(m.find("GET", "/?x=1", |_| true), Some(0));
    assert_eq!(m.find("GET", "/x", |_| true), Some(1));
    // Not origin-form: no match rather than a guess.
    assert_eq!(m.find("GET", "", |_| true), None);
    assert_eq!(m.find("OPTIONS", "*", |_| true), None);
    assert_eq!(m.find("GET", "http://example.com/", |_| true), None);

    let without_root = matcher(&[("GET", "/{id}")]);
    assert_eq!(without_root.find("GET", "/", |_| true), None);
}

#[test]
fn segments_compare_byte_for_byte() {
    let m = matcher(&[("GET", "/returns/summary")]);
    assert_eq!(m.find("GET", "/Returns/summary", |_| true), None);
    assert_eq!(m.find("GET", "/returns/%73ummary", |_| true), None);
}

#[test]
fn a_clash_reports_the_operation_already_there() {
    let mut m = matcher(&[("GET", "/returns/{id}"), ("POST", "/returns/{id}")]);
    // Parameter names do not make templates different.
    let same = parse_template("/returns/{returnId}/").unwrap();
    assert_eq!(m.insert("GET", &same, 7, |_| true), Err(0));
    assert_eq!(m.insert("POST", &same, 7, |_| true), Err(1));
    assert_eq!(m.insert("PUT", &same, 7, |_| true), Ok(()));
    assert_eq!(m.find("PUT", "/returns/9", |_| true), Some(7));
    // The failed inserts changed nothing.
    assert_eq!(m.find("GET", "/returns/9", |_| true), Some(0));
}

#[test]
fn a_trie_deeper_than_the_stack_allows_is_matched_and_dropped_without_recursion() {
    // Far past the configuration's bound on segments: the matcher itself
    // must not depend on it. 4,000 segments fit the request path bound.
    let depth = 4000;
    let segments: Vec<Segment> = (0..depth)
        .map(|i| if i % 2 == 0 { lit("a") } else { param("p") })
        .collect();
    let mut m = Matcher::default();
    m.insert("GET", &segments, 0, |_| true).unwrap();
    m.insert("GET", &segments[..depth - 1], 1, |_| true).unwrap();
    let path = "/a/x".repeat(depth / 2);
    assert_eq!(m.find("GET", &path, |_| true), Some(0));
    assert_eq!(m.find("GET", &path[..path.len() - 2], |_| true), Some(1));
    assert_eq!(m.find("GET", &format!("{path}/a"), |_| true), None);
    assert_eq!(format!("{m:?}"), "Matcher { nodes: 4000, depth: 4000 }");
    drop(m);

    // A derived Drop would recurse once per level here.
    let deep: Vec<Segment> = (0..200_000)
        .map(|i| if i % 3 == 0 { param("p") } else { lit("l") })
        .collect();
    let mut m = Matcher::default();
    m.insert("GET", &deep, 0, |_| true).unwrap();
    drop(m);
}

#[test]
fn accepts_chooses_among_operations_of_one_route() {
    let mut m = Matcher::default();
    let route = parse_template("/orders/{id}").unwrap();
    let literal = parse_template("/orders/summary").unwrap();
    // Operations 0 and 1 share the route: they do not clash.
    m.insert("GET", &route, 0, |_| false).unwrap();
    m.insert("GET", &route, 1, |_| false).unwrap();
    m.insert("GET", &literal, 2, |_| false).unwrap();
    assert_eq!(m.find("GET", "/orders/9", |_| true), Some(0));
    assert_eq!(m.find("GET", "/orders/9", |op| op == 1), Some(1));
    assert_eq!(m.find("GET", "/orders/9", |op| op == 2), None);
    // The literal's operation is refused: the template's is found.
    assert_eq!(m.find("GET", "/orders/summary", |op| op != 2), Some(0));
    // A clash names the operation it clashes with.
    assert_eq!(m.insert("GET", &route, 3, |op| op == 1), Err(1));
}
