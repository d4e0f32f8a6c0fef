//! The body decoders (gzip, deflate, brotli, zstd, and stacks of them) on
//! arbitrary bytes, under a small or a larger cap. Besides "no panic, no
//! hang, no allocation beyond the cap's order": a decoded body is never
//! longer than the cap; decoding is deterministic; a body that decodes
//! within a cap decodes to the same bytes under a larger one, and one too
//! large under a cap is too large under any smaller one; and a decoded body
//! compares equal to its identity-coded copy.
//!
//! Input layout: byte 0 the Content-Encoding (index into CODINGS, modulo),
//! byte 1 the cap (CAPS, modulo), the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallel_run_core::compare::encoding::{decode_body, DecodeError};
use parallel_run_core::compare::{compare, CompareRules};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;

const CODINGS: &[&str] = &["br", "zstd", "gzip", "deflate", "br, zstd", "zstd, gzip", "gzip, br"];
const CAPS: &[usize] = &[0, 1, 64, 4096, 1 << 20];

fn response(encoding: Option<&str>, body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::from_pairs([("content-type", "application/octet-stream")]);
    if let Some(encoding) = encoding {
        headers = headers.with("content-encoding", encoding.as_bytes());
    }
    Response { status: 200, headers, body }
}

fuzz_target!(|data: &[u8]| {
    let (Some(&which), Some(&cap), Some(body)) = (data.first(), data.get(1), data.get(2..)) else {
        return;
    };
    let coding = CODINGS[usize::from(which) % CODINGS.len()];
    let cap = CAPS[usize::from(cap) % CAPS.len()];
    let once = decode_body(Some(coding.as_bytes()), body, cap).expect("a decoded coding");
    let again = decode_body(Some(coding.as_bytes()), body, cap).expect("a decoded coding");
    assert_eq!(once, again, "deterministic");
    match once {
        Ok(decoded) => {
            assert!(decoded.len() <= cap, "{} bytes beyond the cap of {cap}", decoded.len());
            let larger = decode_body(Some(coding.as_bytes()), body, cap.saturating_mul(4).max(64));
            assert_eq!(larger, Some(Ok(decoded.clone())), "a larger cap decodes the same bytes");
            let rules = CompareRules {
                max_decoded_bytes: cap,
                ..CompareRules::default()
            };
            let diff = compare(&rules, &response(Some(coding), body.to_vec()), &response(None, decoded));
            assert!(diff.is_match(), "decoded equals identity: {diff:?}");
        }
        Err(DecodeError::TooLarge) => {
            if cap > 0 {
                let smaller = decode_body(Some(coding.as_bytes()), body, cap / 2);
                assert_eq!(smaller, Some(Err(DecodeError::TooLarge)), "too large under a smaller cap");
            }
        }
        Err(DecodeError::Invalid) => {}
    }
});
