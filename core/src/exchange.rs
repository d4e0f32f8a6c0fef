//! One shadowed request, from the decision to shadow it to its outcome: the
//! one type that tracks it, and the book of all that are open in a VM.
//!
//! An exchange has three parts that finish in any order:
//! - the **request copy**, taken while the client's request streams
//!   ([`RequestCopy`]: copying, then complete and waiting for the root to
//!   dispatch it, then sent);
//! - the **serving side**, the response the client gets, copied while it
//!   streams ([`Serving`]);
//! - the **calls**: the shadow call to the other backend and, for a sample
//!   of safe requests, the noise repeat to the serving backend ([`Call`]).
//!
//! Each call settles on its own, once it and the serving side are done: it
//! leaves the book as a [`Settled`] call, exactly once, whichever side
//! answers last, however late; so a slow noise repeat never holds back the
//! shadow's outcome. The exchange is gone when its last call settled. Every
//! way out is here: settled, withdrawn before anything was sent (the client
//! left, the body outgrew the limit), or cancelled when its calls can no
//! longer be answered.
//!
//! Nothing here touches the host: the filter keeps one book per VM, and the
//! tests drive it directly.

use std::rc::Rc;

use hashbrown::HashMap;

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

/// What a call (the shadow call or the noise repeat) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallReply {
    Complete(Response),
    TooLarge,
    Timeout,
    /// Connection failure, reset, or a dispatch Envoy refused.
    Error,
    /// The call can no longer be answered: the configuration that made it
    /// was retired before the reply came.
    Cancelled,
}

/// Which of an exchange's calls a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// To the other backend: the parallel run itself.
    Shadow,
    /// The same request again to the serving backend, for noise learning.
    Repeat,
}

/// Where one call goes and with which headers; all calls of an exchange
/// carry the same body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    /// The operation's backend's, shared: no copy per call.
    pub cluster: std::sync::Arc<str>,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

/// The calls of an exchange, ready to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub shadow: CallSpec,
    pub repeat: Option<CallSpec>,
    pub body: Vec<u8>,
}

/// The client's request, as the calls will carry it.
#[derive(Debug)]
enum RequestCopy {
    /// The body is still streaming in.
    Copying(Outgoing),
    /// Complete; waiting for the root to dispatch it.
    Complete(Outgoing),
    /// Handed to the root; the copy is gone.
    Sent,
}

/// The response the client gets.
#[derive(Debug)]
enum Serving {
    Waiting,
    Copying(Response),
    /// Grew past the limit while streaming: the rest is not kept.
    Overflowed,
    /// Shared by the calls that settle against it.
    Done(Rc<ServingReply>),
}

#[derive(Debug)]
enum Call {
    Pending,
    Done(CallReply),
    /// Handed out as [`Settled`].
    Settled,
}

#[derive(Debug)]
struct Exchange<O> {
    operation: O,
    request_id: String,
    /// The request's path and query, kept only for an operation that
    /// records evidence ([`Exchanges::keep_request_path`]).
    request_path: Option<String>,
    max_body_bytes: usize,
    request: RequestCopy,
    serving: Serving,
    shadow: Call,
    repeat: Option<Call>,
}

/// A call with its reply and the serving side in, ready to be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled<O> {
    pub operation: O,
    pub request_id: String,
    /// See [`Exchanges::keep_request_path`]; `None` otherwise.
    pub request_path: Option<String>,
    pub leg: Leg,
    pub serving: Rc<ServingReply>,
    pub reply: CallReply,
}

/// The request body outgrew `max_body_bytes` before it was sent: the
/// exchange is withdrawn (never shadowed), and this is counted as a skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge;

/// The open exchanges of one VM. `O` is the filter's handle on the
/// operation (its counters and rules), kept for the outcome.
#[derive(Debug)]
pub struct Exchanges<O> {
    next_id: ExchangeId,
    open: HashMap<ExchangeId, Exchange<O>>,
}

impl<O> Default for Exchanges<O> {
    fn default() -> Self {
        Exchanges {
            next_id: 1,
            open: HashMap::new(),
        }
    }
}

impl<O: Clone> Exchanges<O> {
    /// A stream decided to shadow its request: the exchange exists before
    /// any call, because the serving side may finish first. `outgoing`
    /// carries the calls' headers; its body fills as the request streams.
    pub fn open(&mut self, operation: O, request_id: String, max_body_bytes: usize, outgoing: Outgoing) -> ExchangeId {
        let id = self.next_id;
        self.next_id += 1;
        let repeat = outgoing.repeat.as_ref().map(|_| Call::Pending);
        self.open.insert(
            id,
            Exchange {
                operation,
                request_id,
                request_path: None,
                max_body_bytes,
                request: RequestCopy::Copying(outgoing),
                serving: Serving::Waiting,
                shadow: Call::Pending,
                repeat,
            },
        );
        id
    }

    /// Exchanges not settled yet. Each may hold a request and two response
    /// bodies: this is what `max_inflight_shadows` bounds.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn operation(&self, id: ExchangeId) -> Option<&O> {
        self.open.get(&id).map(|e| &e.operation)
    }

    pub fn max_body_bytes(&self, id: ExchangeId) -> Option<usize> {
        self.open.get(&id).map(|e| e.max_body_bytes)
    }

    /// Appends the next `size` bytes of the client's request body, which
    /// `read` fetches (only when they fit: a chunk past the limit is never
    /// read). Past the limit, or when the chunk cannot be read (a partial
    /// copy would compare against the wrong request), the exchange is
    /// withdrawn and its operation handed back to count the skip.
    pub fn copy_request_body(
        &mut self,
        id: ExchangeId,
        size: usize,
        read: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<(), (BodyTooLarge, O)> {
        let Some(exchange) = self.open.get_mut(&id) else {
            return Ok(());
        };
        let RequestCopy::Copying(outgoing) = &mut exchange.request else {
            return Ok(());
        };
        let copied = outgoing.body.len().saturating_add(size) <= exchange.max_body_bytes
            && match read() {
                Some(chunk) => {
                    append(&mut outgoing.body, chunk);
                    true
                }
                None => false,
            };
        if copied {
            return Ok(());
        }
        match self.open.remove(&id) {
            Some(exchange) => Err((BodyTooLarge, exchange.operation)),
            None => Ok(()),
        }
    }

    /// The client's request is complete. True when the exchange now waits
    /// for the root to dispatch it (once; later calls return false).
    pub fn request_complete(&mut self, id: ExchangeId) -> bool {
        let Some(exchange) = self.open.get_mut(&id) else {
            return false;
        };
        match std::mem::replace(&mut exchange.request, RequestCopy::Sent) {
            RequestCopy::Copying(outgoing) => {
                exchange.request = RequestCopy::Complete(outgoing);
                true
            }
            other => {
                exchange.request = other;
                false
            }
        }
    }

    /// The root takes the calls to make. `None` when the exchange is gone
    /// or not ready.
    pub fn take_outgoing(&mut self, id: ExchangeId) -> Option<Outgoing> {
        let exchange = self.open.get_mut(&id)?;
        match std::mem::replace(&mut exchange.request, RequestCopy::Sent) {
            RequestCopy::Complete(outgoing) => Some(outgoing),
            other => {
                exchange.request = other;
                None
            }
        }
    }

    /// Keeps the request's path (with its query) for the settled calls:
    /// an evidence record names it. Only for operations that record
    /// evidence, so that no other exchange pays for a copy.
    pub fn keep_request_path(&mut self, id: ExchangeId, path: String) {
        if let Some(exchange) = self.open.get_mut(&id) {
            exchange.request_path = Some(path);
        }
    }

    /// The serving response's status and headers arrived.
    pub fn serving_headers(&mut self, id: ExchangeId, response: Response) {
        if let Some(exchange) = self.open.get_mut(&id) {
            if matches!(exchange.serving, Serving::Waiting) {
                exchange.serving = Serving::Copying(response);
            }
        }
    }

    /// Appends the next `size` bytes of the serving response, which `read`
    /// fetches. Past the limit, or when a chunk cannot be read, the copy is
    /// dropped (and nothing more is read): the serving side will be
    /// [`ServingReply::TooLarge`].
    pub fn copy_serving_body(&mut self, id: ExchangeId, size: usize, read: impl FnOnce() -> Option<Vec<u8>>) {
        let Some(exchange) = self.open.get_mut(&id) else { return };
        let Serving::Copying(response) = &mut exchange.serving else {
            return;
        };
        let copied = response.body.len().saturating_add(size) <= exchange.max_body_bytes
            && match read() {
                Some(chunk) => {
                    append(&mut response.body, chunk);
                    true
                }
                None => false,
            };
        if !copied {
            exchange.serving = Serving::Overflowed;
        }
    }

    /// The serving response is complete.
    pub fn serving_done(&mut self, id: ExchangeId) -> Vec<Settled<O>> {
        let Some(exchange) = self.open.get_mut(&id) else {
            return Vec::new();
        };
        let reply = match std::mem::replace(&mut exchange.serving, Serving::Waiting) {
            Serving::Copying(response) => ServingReply::Complete(response),
            Serving::Done(reply) => {
                exchange.serving = Serving::Done(reply);
                return Vec::new();
            }
            Serving::Waiting | Serving::Overflowed => ServingReply::TooLarge,
        };
        exchange.serving = Serving::Done(Rc::new(reply));
        self.settle(id)
    }

    /// The client's stream ended. Before the request was complete nothing
    /// was shadowed: the exchange is withdrawn without an outcome. After,
    /// a serving side that did not finish makes the comparison abandoned.
    pub fn stream_ended(&mut self, id: ExchangeId) -> Vec<Settled<O>> {
        let Some(exchange) = self.open.get_mut(&id) else {
            return Vec::new();
        };
        if let RequestCopy::Copying(_) = exchange.request {
            self.open.remove(&id);
            return Vec::new();
        }
        if !matches!(exchange.serving, Serving::Done(_)) {
            exchange.serving = Serving::Done(Rc::new(ServingReply::Incomplete));
        }
        self.settle(id)
    }

    /// A call's reply (the first one counts; a late duplicate is ignored).
    pub fn reply(&mut self, id: ExchangeId, leg: Leg, reply: CallReply) -> Vec<Settled<O>> {
        let Some(exchange) = self.open.get_mut(&id) else {
            return Vec::new();
        };
        let call = match leg {
            Leg::Shadow => Some(&mut exchange.shadow),
            Leg::Repeat => exchange.repeat.as_mut(),
        };
        if let Some(call @ Call::Pending) = call {
            *call = Call::Done(reply);
        }
        self.settle(id)
    }

    /// The exchange's pending calls will never be answered (their root was
    /// retired): it settles now, and its outcome is abandoned.
    pub fn cancel(&mut self, id: ExchangeId) -> Vec<Settled<O>> {
        let Some(exchange) = self.open.get_mut(&id) else {
            return Vec::new();
        };
        for call in std::iter::once(&mut exchange.shadow).chain(exchange.repeat.as_mut()) {
            if let Call::Pending = call {
                *call = Call::Done(CallReply::Cancelled);
            }
        }
        if !matches!(exchange.serving, Serving::Done(_)) {
            exchange.serving = Serving::Done(Rc::new(ServingReply::Incomplete));
        }
        self.settle(id)
    }

    /// Hands out every call that has its reply, once the serving side is
    /// in; removes the exchange when none is left.
    fn settle(&mut self, id: ExchangeId) -> Vec<Settled<O>> {
        let mut settled = Vec::new();
        let Some(exchange) = self.open.get_mut(&id) else {
            return settled;
        };
        let Serving::Done(serving) = &exchange.serving else {
            return settled;
        };
        let legs = [
            (Leg::Shadow, Some(&mut exchange.shadow)),
            (Leg::Repeat, exchange.repeat.as_mut()),
        ];
        for (leg, call) in legs {
            let Some(call) = call else { continue };
            if let Call::Done(_) = call {
                if let Call::Done(reply) = std::mem::replace(call, Call::Settled) {
                    settled.push(Settled {
                        operation: exchange.operation.clone(),
                        request_id: exchange.request_id.clone(),
                        request_path: exchange.request_path.clone(),
                        leg,
                        serving: Rc::clone(serving),
                        reply,
                    });
                }
            }
        }
        let finished = matches!(exchange.shadow, Call::Settled)
            && exchange.repeat.as_ref().is_none_or(|c| matches!(c, Call::Settled));
        if finished {
            self.open.remove(&id);
        }
        settled
    }
}

/// Appends a chunk the host handed over to a body copy. The first chunk
/// (for most bodies the only one) becomes the copy itself: no second
/// allocation and no copy of its bytes.
fn append(body: &mut Vec<u8>, chunk: Vec<u8>) {
    if body.is_empty() {
        *body = chunk;
    } else {
        body.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests;
