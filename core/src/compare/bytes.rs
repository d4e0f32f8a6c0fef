//! Equality of whole bodies, fast in wasm too.
//!
//! `a == b` on byte slices compiles to a call to `memcmp`; in wasm32 that is
//! the plain C loop of wasi-libc or compiler-builtins, one byte at a time,
//! which made comparing two equal 1 MiB bodies 30–45× slower in the filter
//! than natively (bench/COMPARE.md). In wasm, [`equal`] compares 32 bytes
//! per step instead, as four 64-bit words XORed and ORed together (wasm32
//! has 64-bit integers: one load per word), then the remainder. Natively,
//! the C library's `memcmp` is vectorised and faster still: `==` stays.

/// Bytes compared per step: four words, one branch.
const BLOCK: usize = 32;

/// Whether `a` and `b` hold the same bytes: `a == b`, faster in wasm.
#[inline]
pub(super) fn equal(a: &[u8], b: &[u8]) -> bool {
    if cfg!(target_arch = "wasm32") {
        words_equal(a, b)
    } else {
        a == b
    }
}

/// Whether `a` and `b` hold the same bytes, compared a block of words at a
/// time.
fn words_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (blocks_a, rest_a) = a.as_chunks::<BLOCK>();
    let (blocks_b, rest_b) = b.as_chunks::<BLOCK>();
    if !blocks_a.iter().zip(blocks_b).all(|(x, y)| differing_bits(x, y) == 0) {
        return false;
    }
    // At most 31 bytes left: whole words, then single bytes.
    let (words_a, bytes_a) = rest_a.as_chunks::<8>();
    let (words_b, bytes_b) = rest_b.as_chunks::<8>();
    words_a
        .iter()
        .zip(words_b)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && bytes_a == bytes_b
}

/// The bits that differ between two blocks, ORed into one word.
#[inline(always)]
fn differing_bits(x: &[u8; BLOCK], y: &[u8; BLOCK]) -> u64 {
    let (words_x, _) = x.as_chunks::<8>();
    let (words_y, _) = y.as_chunks::<8>();
    words_x
        .iter()
        .zip(words_y)
        .fold(0, |acc, (p, q)| acc | (u64::from_ne_bytes(*p) ^ u64::from_ne_bytes(*q)))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{equal as either, words_equal};

    /// Both the function used and the word-wise one, whatever the target.
    fn equal(a: &[u8], b: &[u8]) -> bool {
        let words = words_equal(a, b);
        assert_eq!(words, either(a, b), "{a:?} / {b:?}");
        words
    }

    #[test]
    fn equal_slices_of_every_length_up_to_forty() {
        for len in 0..=40usize {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert!(equal(&a, &a.clone()), "len {len}");
        }
    }

    #[test]
    fn a_difference_at_every_position_is_found() {
        for len in 1..=40usize {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for at in 0..len {
                // A one-bit change, the high bit, and a changed byte.
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut b = a.clone();
                    b[at] ^= flip;
                    assert!(!equal(&a, &b), "len {len}, byte {at}, flip {flip:#x}");
                    assert!(!equal(&b, &a), "len {len}, byte {at}, flip {flip:#x}");
                }
            }
        }
    }

    #[test]
    fn different_lengths_differ() {
        let a = [0u8; 40];
        for len in 0..40 {
            assert!(!equal(&a[..len], &a), "len {len}");
            assert!(!equal(&a, &a[..len]), "len {len}");
        }
        assert!(equal(&[], &[]));
    }

    #[test]
    fn unaligned_slices_and_long_inputs() {
        // Sub-slices starting at every offset: no alignment is assumed.
        let a: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let b = a.clone();
        for start in 0..16 {
            assert!(equal(&a[start..], &b[start..]));
            let mut c = b[start..].to_vec();
            let last = c.len() - 1;
            c[last] ^= 1;
            assert!(!equal(&a[start..], &c));
            c[last] ^= 1;
            c[2048] ^= 0x40;
            assert!(!equal(&a[start..], &c));
        }
    }
}
