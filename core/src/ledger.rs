//! The books of shadowed requests: every exchange that was dispatched ends
//! in exactly one outcome, whichever side answers first, however late.
//!
//! An exchange has two sides. The serving side is captured by the client's
//! stream; the shadow side arrives at the root context, possibly long after
//! the stream is gone. The ledger pairs them and hands back a [`Settled`]
//! exchange once both are in. It holds no host state, so the filter keeps
//! one per VM and tests can drive it directly.

use hashbrown::HashMap;

use crate::compare::{self, CompareRules, Diff};
use crate::http::Response;

pub type ExchangeId = u64;

/// What the serving backend's response came to, as seen by the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServingReply {
    Complete(Response),
    /// Larger than `max_body_bytes`: the copy was dropped.
    TooLarge,
    /// The stream ended before the response did (client gone, reset).
    Incomplete,
}

/// What the shadow callout came to, as seen by the root context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowReply {
    Complete(Response),
    TooLarge,
    Timeout,
    /// Connection failure, reset, or a dispatch Envoy refused.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Error,
    Status5xx,
    BodyTooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    Unmatched(Diff),
    Failed(Failure),
    /// The comparison lost a side: the stream ended early, or a
    /// configuration push cancelled the callout.
    Abandoned,
}

/// Judges a settled exchange. Failures come first: a comparison involving
/// a timeout, an error or a 5xx carries no information about equivalence.
pub fn judge(rules: &CompareRules, serving: &ServingReply, shadow: &ShadowReply) -> Outcome {
    let serving = match serving {
        ServingReply::Incomplete => return Outcome::Abandoned,
        ServingReply::TooLarge => None,
        ServingReply::Complete(response) => Some(response),
    };
    let shadow = match shadow {
        ShadowReply::Timeout => return Outcome::Failed(Failure::Timeout),
        ShadowReply::Error => return Outcome::Failed(Failure::Error),
        ShadowReply::TooLarge => None,
        ShadowReply::Complete(response) => Some(response),
    };
    if serving.is_some_and(|r| r.status >= 500) || shadow.is_some_and(|r| r.status >= 500) {
        return Outcome::Failed(Failure::Status5xx);
    }
    let (Some(serving), Some(shadow)) = (serving, shadow) else {
        return Outcome::Failed(Failure::BodyTooLarge);
    };
    let diff = compare::compare(rules, serving, shadow);
    if diff.too_large() {
        // A body decoded (gzip, deflate) beyond `max_body_bytes`.
        return Outcome::Failed(Failure::BodyTooLarge);
    }
    if diff.is_match() {
        Outcome::Matched
    } else {
        Outcome::Unmatched(diff)
    }
}

/// An exchange with both sides in, ready to be judged.
#[derive(Debug)]
pub struct Settled<T> {
    pub tag: T,
    pub serving: ServingReply,
    pub shadow: ShadowReply,
}

#[derive(Debug)]
struct Entry<T> {
    tag: T,
    dispatched: bool,
    serving: Option<ServingReply>,
    shadow: Option<ShadowReply>,
}

/// `T` is the filter's handle on the operation (its counters and rules).
#[derive(Debug)]
pub struct Ledger<T> {
    next_id: ExchangeId,
    entries: HashMap<ExchangeId, Entry<T>>,
    in_flight: usize,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Ledger {
            next_id: 1,
            entries: HashMap::new(),
            in_flight: 0,
        }
    }
}

impl<T> Ledger<T> {
    /// A stream decided to shadow its request: reserve the exchange before
    /// the shadow call exists, because the serving side may finish first.
    pub fn open(&mut self, tag: T) -> ExchangeId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                tag,
                dispatched: false,
                serving: None,
                shadow: None,
            },
        );
        id
    }

    /// Exchanges not settled yet: each may hold a request and two response
    /// bodies, so this is what a memory bound limits.
    pub fn open_count(&self) -> usize {
        self.entries.len()
    }

    /// Shadow calls dispatched and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn tag(&self, id: ExchangeId) -> Option<&T> {
        self.entries.get(&id).map(|e| &e.tag)
    }

    /// The root context dispatched the shadow call.
    pub fn dispatched(&mut self, id: ExchangeId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if !entry.dispatched && entry.shadow.is_none() {
                entry.dispatched = true;
                self.in_flight += 1;
            }
        }
    }

    /// The shadow call was never dispatched (overload): the exchange is
    /// dropped without an outcome, and its tag returned to count the skip.
    pub fn withdraw(&mut self, id: ExchangeId) -> Option<T> {
        let entry = self.entries.remove(&id)?;
        if entry.dispatched && entry.shadow.is_none() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Some(entry.tag)
    }

    pub fn serving_reply(&mut self, id: ExchangeId, reply: ServingReply) -> Option<Settled<T>> {
        let entry = self.entries.get_mut(&id)?;
        if entry.serving.is_none() {
            entry.serving = Some(reply);
        }
        self.settle(id)
    }

    pub fn shadow_reply(&mut self, id: ExchangeId, reply: ShadowReply) -> Option<Settled<T>> {
        let entry = self.entries.get_mut(&id)?;
        if entry.shadow.is_none() {
            if entry.dispatched {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            entry.shadow = Some(reply);
        }
        self.settle(id)
    }

    /// The callout was cancelled with its root context: the exchange ends
    /// now as abandoned, whatever the serving side does later.
    pub fn abandon(&mut self, id: ExchangeId) -> Option<T> {
        self.withdraw(id)
    }

    fn settle(&mut self, id: ExchangeId) -> Option<Settled<T>> {
        let entry = self.entries.get(&id)?;
        if entry.serving.is_none() || entry.shadow.is_none() {
            return None;
        }
        let entry = self.entries.remove(&id)?;
        Some(Settled {
            tag: entry.tag,
            serving: entry.serving?,
            shadow: entry.shadow?,
        })
    }
}

#[cfg(test)]
mod tests;
