//! Evidence in the glue: a judged comparison the rate limit samples is
//! built into a record (by the core, [`parallel_run_core::evidence`]) and
//! queued; the root posts the queue to the collector cluster in batches on
//! its tick, through a callout, never on a client's path. Everything is
//! bounded (records per minute, queued records and bytes, posts in flight)
//! and every record that is built is counted once: `evidence_sent` when
//! the collector took it, `evidence_dropped` when it was down, slow,
//! answered an error, or the queue was full.
//!
//! Off (no operation with `evidence.enabled`), this costs one branch per
//! judged outcome and one per tick.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use parallel_run_core::counters::{evidence_counter, EVIDENCE_COUNTERS, EVIDENCE_DROPPED, EVIDENCE_SENT};
use parallel_run_core::evidence::{self, Collector, Request};
use parallel_run_core::exchange::Settled;
use parallel_run_core::outcome::Outcome;
use parallel_run_core::Plan;

use crate::host::Host;
use crate::metrics::Metrics;
use crate::vm::OperationRef;

/// Records waiting for a post, per worker: a minute of the default global
/// rate, so a collector that is briefly slow loses nothing.
pub const MAX_QUEUED_RECORDS: usize = 64;
/// Bytes of records waiting: a record is at most about 40 KiB (32 fields
/// with 1 KiB raw values on both sides), usually 1-3 KiB.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Records in one POST, and its bytes: one tick's worth at most.
const MAX_BATCH_RECORDS: usize = 32;
const MAX_BATCH_BYTES: usize = 256 << 10;

/// Shared-data keys of the rate limits: one per operation, one for all.
const RATE_KEY: &str = "parallel_run.evidence.rate";

/// A record built and waiting for a post.
struct Queued {
    operation: OperationRef,
    json: String,
}

/// The evidence of one VM: its queue and how many posts it has in flight.
#[derive(Default)]
pub struct Evidence {
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    inflight: u32,
}

/// A post in flight: the records it carries, to count when it settles.
pub type Post = Vec<OperationRef>;

fn rate_key(operation_id: &str) -> String {
    format!("{RATE_KEY}.{operation_id}")
}

/// The minute and the records admitted in it, as shared data holds them.
fn decode_rate(value: Option<&[u8]>) -> (u64, u64) {
    let word = |range: std::ops::Range<usize>| {
        value
            .and_then(|v| v.get(range))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    (word(0..8), word(8..16))
}

fn encode_rate(minute: u64, count: u64) -> Vec<u8> {
    let mut out = minute.to_le_bytes().to_vec();
    out.extend_from_slice(&count.to_le_bytes());
    out
}

/// Admits one record under `limit` per minute for `key`, across the
/// proxy's workers (shared data, compare-and-swap). A lost race or a failed
/// hostcall admits nothing: evidence is a sample.
fn admit(host: &impl Host, key: &str, minute: u64, limit: u32) -> bool {
    host.update(key, |value| {
        let (at, count) = decode_rate(value);
        let count = if at == minute { count } else { 0 };
        if count >= u64::from(limit) {
            return (None, false);
        }
        (Some(encode_rate(minute, count + 1)), true)
    })
    .unwrap_or(false)
}

/// Prepares a configuration's evidence: the counters of every operation
/// with evidence on (defined now, so they read 0 before the first record),
/// and the rate keys, created where only one VM runs (see
/// [`Host::update`]).
pub fn prepare(host: &impl Host, metrics: &mut Metrics, plan: &Plan) {
    if plan.evidence_collector.is_none() {
        return;
    }
    let mut keys = vec![RATE_KEY.to_string()];
    for operation in plan.operations.iter().filter(|op| op.settings.evidence.is_some()) {
        for name in EVIDENCE_COUNTERS {
            let _ = metrics.counter(host, &evidence_counter(&operation.id, name));
        }
        keys.push(rate_key(&operation.id));
    }
    for key in keys {
        if let Some((None, None)) = host.shared_data(&key) {
            let _ = host.set_shared_data(&key, &encode_rate(0, 0), None);
        }
    }
}

fn count(host: &impl Host, metrics: &mut Metrics, operation: &OperationRef, name: &str) {
    if let Some(op) = operation.operation() {
        metrics.increment(host, &evidence_counter(&op.id, name));
    }
}

impl Evidence {
    /// A judged comparison: recorded when its operation records evidence,
    /// the outcome is one it wants, and both rate limits admit it.
    pub fn consider(
        &mut self,
        host: &impl Host,
        metrics: &mut Metrics,
        settled: &Settled<OperationRef>,
        outcome: &Outcome,
    ) {
        let operation = &settled.operation;
        let Some(op) = operation.operation() else { return };
        let Some(policy) = &op.settings.evidence else { return };
        let Some(collector) = &operation.plugin.plan.evidence_collector else {
            return;
        };
        if !evidence::wanted(policy, outcome) {
            return;
        }
        let now = host.now().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
        let Some(now) = now else { return };
        let minute = now.as_secs() / 60;
        if !admit(host, &rate_key(&op.id), minute, policy.records_per_minute)
            || !admit(host, RATE_KEY, minute, collector.records_per_minute)
        {
            return;
        }
        if self.queue.len() >= MAX_QUEUED_RECORDS {
            count(host, metrics, operation, EVIDENCE_DROPPED);
            return;
        }
        let request = Request {
            request_id: &settled.request_id,
            path: settled.request_path.as_deref().unwrap_or_default(),
            time_unix_nano: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
        };
        let Some(record) = evidence::record(
            op,
            &operation.plugin.plan.revision,
            &collector.hash_key,
            &request,
            &settled.serving,
            &settled.reply,
            outcome,
        ) else {
            return;
        };
        let json = evidence::log_record(&record);
        if self.queued_bytes.saturating_add(json.len()) > MAX_QUEUED_BYTES {
            count(host, metrics, operation, EVIDENCE_DROPPED);
            return;
        }
        self.queued_bytes += json.len();
        self.queue.push_back(Queued {
            operation: operation.clone(),
            json,
        });
    }

    /// Posts what is queued, in batches, while fewer than the collector's
    /// `max_inflight` posts are open; each post that went out with its
    /// token. Without a collector (a configuration without evidence
    /// replaced the one that queued), the queue is dropped and counted.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub fn post(&mut self, host: &impl Host, metrics: &mut Metrics, collector: Option<&Collector>) -> Vec<(u32, Post)> {
        let mut posts = Vec::new();
        if self.queue.is_empty() {
            return posts;
        }
        let Some(collector) = collector else {
            for queued in std::mem::take(&mut self.queue) {
                count(host, metrics, &queued.operation, EVIDENCE_DROPPED);
            }
            self.queued_bytes = 0;
            return posts;
        };
        let authority = collector.authority.as_deref().unwrap_or(&collector.cluster);
        let headers = [
            (":method", "POST"),
            (":path", collector.path.as_str()),
            (":authority", authority),
            ("content-type", "application/json"),
        ];
        while self.inflight < collector.max_inflight && !self.queue.is_empty() {
            let mut records = Vec::new();
            let mut bytes = 0usize;
            while let Some(next) = self.queue.front() {
                let fits = records.is_empty()
                    || (records.len() < MAX_BATCH_RECORDS && bytes.saturating_add(next.json.len()) <= MAX_BATCH_BYTES);
                if !fits {
                    break;
                }
                let Some(queued) = self.queue.pop_front() else { break };
                bytes += queued.json.len();
                self.queued_bytes = self.queued_bytes.saturating_sub(queued.json.len());
                records.push(queued);
            }
            let body = evidence::batch(
                &records.iter().map(|q| q.json.as_str()).collect::<Vec<_>>(),
                env!("CARGO_PKG_VERSION"),
            );
            let post: Post = records.into_iter().map(|q| q.operation).collect();
            let timeout = Duration::from_millis(collector.timeout_ms);
            match host.dispatch(&collector.cluster, &headers, Some(body.as_bytes()), timeout) {
                Some(token) => {
                    self.inflight += 1;
                    posts.push((token, post));
                }
                // An unknown collector cluster: every record of the batch is lost.
                None => {
                    for operation in &post {
                        count(host, metrics, operation, EVIDENCE_DROPPED);
                    }
                }
            }
        }
        posts
    }

    /// A post settled: sent when the collector answered 2xx, dropped
    /// otherwise (no reply, a timeout, an error status).
    pub fn settled(&mut self, host: &impl Host, metrics: &mut Metrics, post: &Post, accepted: bool) {
        self.inflight = self.inflight.saturating_sub(1);
        let name = if accepted { EVIDENCE_SENT } else { EVIDENCE_DROPPED };
        for operation in post {
            count(host, metrics, operation, name);
        }
    }

    /// Records waiting for a post.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}
