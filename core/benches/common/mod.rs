//! What the plain timing benchmarks (`compare`, `evidence`) share: a
//! calibrated loop, natively and under wasm32-wasip1 alike (no criterion:
//! it does not build for wasm).

use std::time::{Duration, Instant};

/// Runs per measurement; the median is reported.
pub const RUNS: usize = 7;

/// Nanoseconds per call: the median of `RUNS` runs of a calibrated loop.
pub fn measure(run_time: Duration, mut f: impl FnMut()) -> f64 {
    let mut iterations: u32 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        if start.elapsed() >= run_time / 4 || iterations >= 1 << 30 {
            break;
        }
        iterations = iterations.saturating_mul(2);
    }
    // Scale to about `run_time` per run.
    let probe = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per_call = probe.elapsed().as_secs_f64() / f64::from(iterations);
    let iterations = ((run_time.as_secs_f64() / per_call.max(1e-9)).ceil() as u32).max(1);
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(iterations)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples.get(RUNS / 2).copied().unwrap_or(f64::NAN)
}
