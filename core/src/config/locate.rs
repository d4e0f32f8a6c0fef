//! Where in a refused document serde_json stopped, as a field path
//! (`operations[0].compare.ignore_headers.replace[1]`).
//!
//! `read` parses the document once, with serde_json alone. A refusal
//! carries the line and column serde_json stopped at; this walks the
//! document up to there and names the value it was reading, the way the
//! rest of the configuration writes paths.
//!
//! Why not a deserializer that keeps the path as it goes (serde_path_to_error,
//! used until session 22, for a second read of a refused document): it
//! wraps serde_json's, so every derived deserializer of the configuration
//! was compiled twice, once per deserializer type, and V8 compiles all of
//! them in every proxy: 127 KB of the 1,235 KB module (bench/MEMORY.md,
//! section 4). Its paths stay the reference (tests/locate.rs):
//! - a refused value (wrong type, out of range, unknown or missing field):
//!   the same path for 4,100 of the 4,136 refusals the tests make of a
//!   document that sets every field. The other 36 are located one level
//!   into the refused value: a unit enum given an object with members
//!   (`mode.a` for `mode`), a string-or-object given an array that starts
//!   with an array (`masks[0][0]` for `masks[0]`);
//! - a syntax error: the same path for every one of the 7,906 prefixes of
//!   that document (the message keeps serde_json's line and column too).
//!
//! That works because serde_json gives an error the position of the value
//! it is reading, provided the error is raised inside a visitor, and because
//! it takes a refused scalar whole but refuses an array or object of the
//! wrong type before its bracket. The deserializers in `raw` keep to that:
//! one that refuses a value after reading it whole (as `#[serde(untagged)]`
//! does) would be located at its parent.
//!
//! The walk is one loop over the bytes with an explicit stack, so no
//! document can make it recurse; past [`MAX_DEPTH`] frames it stops naming.

/// Frames named at most. The schema is six levels deep and serde_json stops
/// at 128, so a path only ever needs a handful; a deeper document is still
/// walked to its error, naming only its first levels.
const MAX_DEPTH: usize = 32;

/// One open object or array on the way to the error, with the member
/// being read: named once its key is read whole (an object) or its value
/// has begun (an array); `colon` once the `:` after its key is read, `done`
/// once its value is read whole.
enum Frame {
    Object {
        key: Option<String>,
        colon: bool,
        done: bool,
    },
    Array {
        index: usize,
        started: bool,
        done: bool,
    },
}

/// The field path of the value serde_json was reading when it refused
/// `json` with `err`; empty at the top level.
pub(super) fn field_path(json: &[u8], err: &serde_json::Error) -> String {
    let Some(end) = stop_offset(json, err.line(), err.column()) else {
        return String::new();
    };
    // A syntax error stops at the byte serde_json peeked and did not take:
    // that byte is not part of what it was reading. At the end of the
    // document there is no such byte.
    let syntax = err.is_syntax() || err.is_eof();
    let end = if err.is_syntax() { end.saturating_sub(1) } else { end };
    let mut walk = Walk::default();
    walk.run(json.get(..end).unwrap_or(json));
    // serde_json takes a refused scalar whole, but refuses an array or an
    // object of the wrong type before taking its `[` or `{`: in an array,
    // that element is the one being read.
    if !syntax && matches!(json.get(end), Some(b'[' | b'{')) {
        walk.value_starts();
    }
    // A value refused for what it is has been read whole when the refusal
    // comes; a syntax error after a member read whole is the container's.
    walk.path(!syntax)
}

/// The byte offset serde_json's (1-based line, column) stands for: its
/// column counts the bytes of the line it read or peeked. `None` for an
/// error without a position.
fn stop_offset(json: &[u8], line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let line_start = if line == 1 {
        0
    } else {
        json.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(line - 2)
            .map(|(at, _)| at + 1)?
    };
    Some(line_start.saturating_add(column).min(json.len()))
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    /// Frames past [`MAX_DEPTH`], counted but not kept.
    beyond: usize,
}

impl Walk {
    fn run(&mut self, json: &[u8]) {
        let mut at = 0;
        while let Some(&byte) = json.get(at) {
            at += 1;
            match byte {
                b'{' | b'[' => {
                    self.value_starts();
                    if self.stack.len() < MAX_DEPTH && self.beyond == 0 {
                        self.stack.push(if byte == b'{' {
                            Frame::Object {
                                key: None,
                                colon: false,
                                done: false,
                            }
                        } else {
                            Frame::Array {
                                index: 0,
                                started: false,
                                done: false,
                            }
                        });
                    } else {
                        self.beyond += 1;
                    }
                }
                b'}' | b']' => {
                    if self.beyond > 0 {
                        self.beyond -= 1;
                    } else {
                        self.stack.pop();
                    }
                    self.value_ends();
                }
                b',' if self.beyond == 0 => match self.stack.last_mut() {
                    Some(Frame::Object { key, colon, done }) => (*key, *colon, *done) = (None, false, false),
                    Some(Frame::Array { index, started, done }) => {
                        *index += 1;
                        (*started, *done) = (false, false);
                    }
                    None => {}
                },
                b'"' => {
                    let close = string_end(json, at);
                    let expects_key =
                        self.beyond == 0 && matches!(self.stack.last(), Some(Frame::Object { key: None, .. }));
                    match close {
                        // A key names its member once it is read whole.
                        Some(close) if expects_key => {
                            let text = key_text(json.get(at - 1..=close).unwrap_or_default());
                            if let Some(Frame::Object { key, .. }) = self.stack.last_mut() {
                                *key = Some(text);
                            }
                        }
                        _ if expects_key => {}
                        Some(_) => {
                            self.value_starts();
                            self.value_ends();
                        }
                        None => self.value_starts(),
                    }
                    at = close.map_or(json.len(), |close| close + 1);
                }
                b':' if self.beyond == 0 => {
                    if let Some(Frame::Object { colon, .. }) = self.stack.last_mut() {
                        *colon = true;
                    }
                }
                b' ' | b'\t' | b'\n' | b'\r' | b':' | b',' => {}
                // A number or a literal: read whole if something follows
                // it, or if it is complete where the text ends.
                _ => {
                    self.value_starts();
                    let from = at - 1;
                    while json.get(at).is_some_and(|b| !b",}] \t\n\r:\"".contains(b)) {
                        at += 1;
                    }
                    let token = json.get(from..at).unwrap_or_default();
                    if at < json.len() || complete_scalar(token) {
                        self.value_ends();
                    }
                }
            }
        }
    }

    /// A value begins: in an array, its element is now being read.
    fn value_starts(&mut self) {
        if self.beyond > 0 {
            return;
        }
        if let Some(Frame::Array { started, .. }) = self.stack.last_mut() {
            *started = true;
        }
    }

    /// The value of the member being read is read whole.
    fn value_ends(&mut self) {
        if self.beyond > 0 {
            return;
        }
        match self.stack.last_mut() {
            Some(Frame::Object { done, .. } | Frame::Array { done, .. }) => *done = true,
            None => {}
        }
    }

    /// The path. For a refused value (`refused`), every member being read
    /// is named; for a syntax error, only one whose value has begun and is
    /// not read whole, as serde reads it.
    fn path(&self, refused: bool) -> String {
        let mut out = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Object {
                    key: Some(key),
                    colon,
                    done,
                } if refused || (*colon && !done) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Frame::Array {
                    index,
                    started: true,
                    done,
                } if refused || !done => out.push_str(&format!("[{index}]")),
                Frame::Object { .. } | Frame::Array { .. } => {}
            }
        }
        out
    }
}

/// Whether a number or literal cut at the end of the text is one serde_json
/// reads as complete.
fn complete_scalar(token: &[u8]) -> bool {
    match token.first() {
        Some(b'-' | b'0'..=b'9') => token.last().is_some_and(u8::is_ascii_digit),
        _ => matches!(token, b"true" | b"false" | b"null"),
    }
}

/// The offset of the `"` closing the string whose body starts at `from`.
fn string_end(json: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(&byte) = json.get(at) {
        match byte {
            b'\\' => at += 2,
            b'"' => return Some(at),
            _ => at += 1,
        }
    }
    None
}

/// A key as written, quotes included, as its text: escapes decoded the way
/// serde_json read them.
fn key_text(quoted: &[u8]) -> String {
    match quoted.get(1..quoted.len().saturating_sub(1)) {
        Some(body) if !body.contains(&b'\\') => String::from_utf8_lossy(body).into_owned(),
        _ => serde_json::from_slice(quoted).unwrap_or_else(|_| String::from_utf8_lossy(quoted).into_owned()),
    }
}
