//! A small deterministic generator for the tests (a 64-bit LCG, Knuth's
//! MMIX constants): the same cases on every run and on every target, with
//! no dependency for it.

pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next number below `below` (0 when `below` is 0).
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}
