//! brotli and zstd bodies: decoded within the same cap as gzip, compared
//! with identity, and refused when they would decode beyond it.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

const BODY: &[u8] = include_bytes!("vectors/body.json");
const BROTLI: &[u8] = include_bytes!("vectors/body.json.br");
const ZSTD: &[u8] = include_bytes!("vectors/body.json.zst");
const ZSTD_STREAM: &[u8] = include_bytes!("vectors/body.stream.zst");
/// 64 MiB of zeros each.
const BROTLI_BOMB: &[u8] = include_bytes!("vectors/bomb.br");
const ZSTD_BOMB: &[u8] = include_bytes!("vectors/bomb.zst");

fn identity() -> Response {
    let mut r = json("");
    r.body = BODY.to_vec();
    r
}

#[test]
fn brotli_and_zstd_match_identity_when_the_decoded_bodies_do() {
    for (coding, body) in [("br", BROTLI), ("zstd", ZSTD), ("ZSTD", ZSTD_STREAM)] {
        let coded = encoded(coding, "application/json", body.to_vec());
        let diff = compare(&no_rules(), &coded, &identity());
        assert!(diff.is_match(), "{coding}: {diff:?}");
        let diff = compare(&no_rules(), &identity(), &coded);
        assert!(diff.is_match(), "{coding}: {diff:?}");
    }
    let br = encoded("br", "application/json", BROTLI.to_vec());
    let zstd = encoded("zstd", "application/json", ZSTD.to_vec());
    assert!(compare(&no_rules(), &br, &zstd).is_match());
    // A difference inside is found, by field.
    let mut other = identity();
    other.body = String::from_utf8(BODY.to_vec())
        .unwrap()
        .replace(r#""qty":2"#, r#""qty":3"#)
        .into_bytes();
    let diff = compare(&no_rules(), &br, &other);
    assert!(diff.headers.is_empty(), "{diff:?}");
    assert_eq!(diff.body.unwrap().json_paths, ["/items/0/qty"]);
}

#[test]
fn brotli_and_zstd_bombs_stop_at_the_limit() {
    let rules = CompareRules {
        max_decoded_bytes: 1 << 20,
        ..CompareRules::default()
    };
    for (coding, bomb) in [("br", BROTLI_BOMB), ("zstd", ZSTD_BOMB)] {
        assert!(bomb.len() < 4096, "{coding}: a small body");
        let diff = compare(&rules, &encoded(coding, "text/plain", bomb.to_vec()), &text("a"));
        assert!(diff.too_large(), "{coding}: {diff:?}");
    }
}

#[test]
fn corrupt_truncated_or_oversized_windows_are_refused_without_a_crash() {
    for (coding, body) in [("br", BROTLI), ("zstd", ZSTD), ("zstd", ZSTD_STREAM)] {
        for cut in [0, 1, 4, 6, body.len() / 2, body.len() - 1] {
            let truncated = encoded(coding, "application/json", body.get(..cut).unwrap().to_vec());
            let diff = compare(&no_rules(), &truncated, &identity());
            assert!(!diff.is_match(), "{coding} cut at {cut}");
        }
        let mut trailing = body.to_vec();
        trailing.extend_from_slice(b"junk");
        let diff = compare(&no_rules(), &encoded(coding, "application/json", trailing), &identity());
        assert!(!diff.is_match(), "{coding} with trailing data");
    }
    // A zstd header declaring a 1 GiB window (exponent 20): refused before
    // anything is allocated.
    let mut huge = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3];
    huge.extend_from_slice(&[0; 16]);
    let diff = compare(&no_rules(), &encoded("zstd", "text/plain", huge), &text("a"));
    assert!(diff.too_large(), "{diff:?}");
    // A skippable frame before the data frame is skipped.
    let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    skippable.extend_from_slice(ZSTD);
    assert!(compare(
        &no_rules(),
        &encoded("zstd", "application/json", skippable),
        &identity()
    )
    .is_match());
}

#[test]
fn a_cap_below_64_bytes_decodes_or_refuses_without_a_panic() {
    // Found by fuzz/fuzz_targets/decode.rs: a deflate body under a cap of
    // 0 panicked in the buffer sizing (a `max_body_bytes` below 64).
    for cap in [0, 1, 10, 63, 64] {
        let rules = CompareRules {
            max_decoded_bytes: cap,
            ..CompareRules::default()
        };
        let body = b"0123456789".repeat(3);
        let zipped = encoded(
            "deflate",
            "text/plain",
            miniz_oxide::deflate::compress_to_vec_zlib(&body, 6),
        );
        let diff = compare(&rules, &zipped, &text(std::str::from_utf8(&body).unwrap()));
        assert_eq!(diff.is_match(), cap >= 30, "cap {cap}: {diff:?}");
        assert_eq!(diff.too_large(), cap < 30, "cap {cap}: {diff:?}");
        for (coding, body) in [("br", BROTLI), ("zstd", ZSTD), ("gzip", &gzip(BODY)[..])] {
            let diff = compare(&rules, &encoded(coding, "application/json", body.to_vec()), &identity());
            assert!(diff.too_large() || cap >= BODY.len(), "{coding} cap {cap}: {diff:?}");
        }
    }
}
