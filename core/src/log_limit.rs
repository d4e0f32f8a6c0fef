//! A bound on log lines per second: a candidate that differs on every
//! request must not flood the proxy's log.

/// Admits at most `per_second` lines in each wall-clock second and counts
/// the ones it holds back, so the next line admitted can say so.
#[derive(Debug, Clone, Default)]
pub struct LogLimit {
    second: u64,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(suppressed)`: log now, mentioning the lines held back since the
    /// last one; `None`: hold this line back.
    pub fn admit(&mut self, now_s: u64, per_second: u32) -> Option<u64> {
        if now_s != self.second {
            self.second = now_s;
            self.lines = 0;
        }
        if self.lines >= per_second {
            self.suppressed += 1;
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_burst_is_cut_at_the_limit_and_the_next_second_reports_what_was_held_back() {
        let mut limit = LogLimit::default();
        let first_second: Vec<_> = (0..8).map(|_| limit.admit(100, 5)).collect();
        assert_eq!(
            first_second,
            [Some(0), Some(0), Some(0), Some(0), Some(0), None, None, None]
        );
        assert_eq!(limit.admit(101, 5), Some(3));
        assert_eq!(limit.admit(101, 5), Some(0));
    }
}
