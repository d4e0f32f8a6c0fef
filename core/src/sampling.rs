//! Deterministic sampling: the same request id gives the same decision on
//! every replica and every rerun, so a sampled request is sampled everywhere.

// FNV-1a spreads request ids (UUIDs in practice) well enough for
// percentage sampling.
use crate::fnv::fnv1a;

/// Whether the request with this id falls inside `per_million` of traffic.
pub fn sampled(request_id: &[u8], per_million: u32) -> bool {
    if per_million >= 1_000_000 {
        return true;
    }
    fnv1a(request_id) % 1_000_000 < u64::from(per_million)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn all_and_nothing_are_exact() {
        assert!(sampled(b"anything", 1_000_000));
        assert!(!sampled(b"anything", 0));
    }

    #[test]
    fn same_id_same_decision() {
        for i in 0..100 {
            let id = format!("req-{i}");
            assert_eq!(sampled(id.as_bytes(), 300_000), sampled(id.as_bytes(), 300_000));
        }
    }

    #[test]
    fn fraction_is_close_to_the_rate() {
        let hits = (0..20_000)
            .filter(|i| sampled(format!("9b2c1f3e-{i:08x}-4d5e").as_bytes(), 250_000))
            .count();
        // 25% of 20,000 = 5,000; binomial sd is ~61, so ±400 is far outside chance.
        assert!((4_600..=5_400).contains(&hits), "{hits}");
    }

    #[test]
    fn a_larger_rate_keeps_every_request_a_smaller_one_took() {
        // Raising shadow_percent must not reshuffle which requests are sampled.
        for i in 0..2_000 {
            let id = format!("id-{i}");
            if sampled(id.as_bytes(), 100_000) {
                assert!(sampled(id.as_bytes(), 500_000));
            }
        }
    }
}
