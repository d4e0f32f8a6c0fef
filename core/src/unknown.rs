//! Requests that match no operation: the shape of their path, for the
//! operator looking for an endpoint the configuration forgot
//! (`parallel-run-ctl lint --envoy-log`).
//!
//! A shape, not the path: a segment that is a literal of some configured
//! template is kept, every other segment becomes `*`, and the query is
//! dropped. No id, e-mail address or token a client put in a path reaches
//! the log, while `/returns/*/labels` beside a configured
//! `/returns/{id}` and `/labels` still says where the gap is; a wholly
//! unknown API shows as `/*/*`, which says how deep.

use crate::outcome::escaped;

/// Segments a shape names; a deeper path ends in `/…`.
pub const MAX_SHAPE_SEGMENTS: usize = 16;

/// The shape of a request path (origin-form; anything else is `?`).
/// `known` says whether a segment is a literal of some template.
pub fn shape(path: &str, known: impl Fn(&str) -> bool) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return "?".to_string();
    };
    let mut out = String::with_capacity(rest.len().min(256));
    for (n, segment) in rest.split('/').enumerate() {
        if n == MAX_SHAPE_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        if segment.is_empty() {
            continue;
        }
        if known(segment) {
            out.push_str(segment);
        } else {
            out.push('*');
        }
    }
    out
}

/// The log line of a request that matched no operation; the method is the
/// client's, escaped and cut like every client-controlled text.
pub fn line(method: &str, shape: &str, suppressed: u64) -> String {
    let mut line = format!(
        "parallel-run: unknown operation method={} path={shape}",
        escaped(method, crate::limits::MAX_METHOD_BYTES)
    );
    if suppressed > 0 {
        line.push_str(&format!(
            " ({suppressed} unknown-operation lines suppressed before this one)"
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn known(segment: &str) -> bool {
        ["returns", "labels"].contains(&segment)
    }

    #[test]
    fn known_literals_stay_and_everything_else_is_a_star() {
        assert_eq!(shape("/returns/42/labels?token=secret", known), "/returns/*/labels");
        assert_eq!(shape("/users/alice@example.com", known), "/*/*");
        assert_eq!(shape("/", known), "/");
        assert_eq!(shape("/returns/", known), "/returns/");
        assert_eq!(shape("//returns", known), "//returns");
        assert_eq!(shape("http://evil/returns", known), "?");
    }

    #[test]
    fn a_deep_path_is_cut() {
        let deep = "/returns".repeat(1_000);
        let shape = shape(&deep, known);
        assert_eq!(shape.matches("returns").count(), MAX_SHAPE_SEGMENTS);
        assert!(shape.ends_with("/…"));
    }

    #[test]
    fn the_line_escapes_the_method() {
        assert_eq!(
            line("GET\nX", "/*", 0),
            "parallel-run: unknown operation method=GET\\x0aX path=/*"
        );
        assert!(line("GET", "/*", 3).ends_with("(3 unknown-operation lines suppressed before this one)"));
    }
}
