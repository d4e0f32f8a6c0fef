//! Noise learning, the filter's side: each VM counts, per operation, the
//! diff paths in which two answers of the serving backend differed and in
//! which the serving backend and the candidate differed; once a second it
//! merges its counts into shared data, where the whole proxy's totals
//! decide what is noise ([`parallel_run_core::noise`]).
//!
//! The diff paths found to be noise are logged when they change and
//! exposed as gauges `parallel_run.operation.<id>.noise_path.<diff path>`
//! (1 while noise).

use hashbrown::HashMap;
use parallel_run_core::noise::NoiseBook;
use parallel_run_core::{counters, Plan};

use crate::host::Host;
use crate::metrics::Metrics;

fn shared_key(operation_id: &str) -> String {
    format!("parallel_run.noise.{operation_id}")
}

#[derive(Default)]
pub struct Noise {
    /// Per operation id: this VM's counts since the last sync.
    pending: HashMap<String, NoiseBook>,
    /// Per operation id: the diff paths that are noise, as of the last sync.
    learned: HashMap<String, Vec<String>>,
}

impl Noise {
    /// Creates the shared counts of every operation that learns.
    pub fn prepare(host: &impl Host, plan: &Plan) {
        for operation in plan.operations.iter().filter(|op| op.settings.noise_per_million > 0) {
            let key = shared_key(&operation.id);
            if let Some((None, None)) = host.shared_data(&key) {
                let _ = host.set_shared_data(&key, NoiseBook::default().encode().as_bytes(), None);
            }
        }
    }

    pub fn learned(&self, operation_id: &str) -> &[String] {
        self.learned.get(operation_id).map(Vec::as_slice).unwrap_or_default()
    }

    /// Two answers of the serving backend differed in these diff paths.
    pub fn record_repeat(&mut self, operation_id: &str, paths: &[String]) {
        self.book(operation_id).record_self(paths.iter().map(String::as_str));
    }

    /// The serving backend and the candidate differed in these diff paths.
    pub fn record_candidate(&mut self, operation_id: &str, paths: &[String]) {
        self.book(operation_id)
            .record_candidate(paths.iter().map(String::as_str));
    }

    fn book(&mut self, operation_id: &str) -> &mut NoiseBook {
        self.pending.entry_ref(operation_id).or_default()
    }

    /// Merges this VM's counts into the shared totals and reads back what is
    /// noise now, for every operation that learns.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub fn sync(&mut self, host: &impl Host, metrics: &mut Metrics, plan: &Plan) {
        let mut pending = std::mem::take(&mut self.pending);
        for operation in plan.operations.iter().filter(|op| op.settings.noise_per_million > 0) {
            let delta = pending.remove(&operation.id).unwrap_or_default();
            let merged = host.update(&shared_key(&operation.id), |value| {
                let mut book = value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(NoiseBook::decode)
                    .unwrap_or_default();
                let before = book.noise();
                if delta.is_empty() {
                    return (None, (before, None));
                }
                book.merge(&delta);
                let after = book.noise();
                let samples = book.self_samples();
                (Some(book.encode().into_bytes()), (before, Some((after, samples))))
            });
            let noise = match merged {
                Some((before, Some((after, samples)))) => {
                    if after != before {
                        announce(host, metrics, &operation.id, &before, &after, samples);
                    }
                    after
                }
                Some((current, None)) => current,
                None => continue,
            };
            self.learned.insert(operation.id.clone(), noise);
        }
    }
}

/// The VM whose counts changed the verdict tells the operator.
fn announce(
    host: &impl Host,
    metrics: &mut Metrics,
    operation_id: &str,
    before: &[String],
    after: &[String],
    samples: u64,
) {
    host.log(
        log::Level::Info,
        &format!(
            "parallel-run: noise operation={operation_id} fields=[{}] (learned from {samples} repeated requests)",
            after.join(",")
        ),
    );
    for path in before.iter().filter(|p| !after.contains(p)) {
        metrics.set_gauge(host, &counters::noise_path_gauge(operation_id, path), 0);
    }
    for path in after {
        metrics.set_gauge(host, &counters::noise_path_gauge(operation_id, path), 1);
    }
}
