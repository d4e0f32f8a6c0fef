//! Text masks: patterns whose matches are replaced by a placeholder in both
//! bodies before they are compared (UUIDs, timestamps, a PDF's dates).
//!
//! Purpose-built instead of a regex crate: `regex-lite` adds about 78 KB to
//! a filter module of about 390 KB, and has no prefilter, so it would scan
//! every byte of a body with its NFA. The patterns masks need are short runs
//! of character classes and literals; this matcher covers exactly that
//! subset of regex syntax, works on bytes (a PDF is not UTF-8), runs a
//! Thompson simulation (time linear in body length × pattern states, no
//! backtracking), and skips the bytes that cannot start a match.
//!
//! Syntax: literal characters; `.` (any byte but a newline); `\d \w \s`
//! and their negations `\D \W \S`; `\t \n \r`; a backslash before any other
//! ASCII punctuation makes it literal; classes `[a-f0-9_]`, `[^)]`; each
//! followed by at most one quantifier `? * + {n} {n,} {n,m}`. Groups,
//! alternation and anchors are refused. Matching is leftmost-longest.

/// One mask: its placeholder and its compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// The built-in's name or the custom mask's `name`.
    name: String,
    placeholder: Vec<u8>,
    pattern: Pattern,
}

/// Built-in masks: name, pattern.
pub const BUILTIN_MASKS: &[(&str, &str)] = &[
    (
        "uuid",
        r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
    ),
    // A date and a time, then whatever seconds, fraction and offset follow.
    (
        "iso8601",
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}[0-9:.,]*[Zz]?[+\-]?[0-9:]*",
    ),
    // RFC 9110 HTTP-date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    (
        "http_date",
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
    ),
    ("pdf_creation_date", r"/CreationDate\s*\(D:[^)]*\)"),
    ("pdf_mod_date", r"/ModDate\s*\(D:[^)]*\)"),
    // The trailer's file identifiers, random per document.
    ("pdf_id", r"/ID\s*\[\s*<[0-9A-Fa-f]*>\s*<[0-9A-Fa-f]*>\s*\]"),
];

/// Bounds on a compiled pattern: its cost is linear in its states.
const MAX_PATTERN_LEN: usize = 1024;
const MAX_STATES: usize = 256;

/// A body's masking may take this many state steps per body byte before it
/// gives up, leaving the rest unmasked: a pathological pattern then costs
/// bounded time, and at worst an unmatched body. Ordinary patterns stay far
/// below it, since bytes that cannot begin a match are skipped.
const SCAN_BUDGET_FACTOR: usize = 128;

impl Mask {
    pub fn builtin(name: &str) -> Result<Mask, String> {
        let Some((name, source)) = BUILTIN_MASKS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = BUILTIN_MASKS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "\"{name}\" is not a built-in mask (one of {}); a custom mask is an object {{\"pattern\": ..., \"name\": ...}}",
                names.join(", ")
            ));
        };
        Mask::custom(name, source)
    }

    /// `name` becomes the placeholder `<name>`; it must be `[A-Za-z0-9_-]+`
    /// so that the placeholder keeps a JSON string valid.
    pub fn custom(name: &str, source: &str) -> Result<Mask, String> {
        Mask::check_name(name)?;
        Ok(Mask {
            name: name.to_string(),
            placeholder: format!("<{name}>").into_bytes(),
            pattern: Pattern::parse(source)?,
        })
    }

    pub fn check_name(name: &str) -> Result<(), String> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "\"{name}\" must match [A-Za-z0-9_-]+ (it becomes the placeholder <{name}>)"
            ));
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `body` with every match replaced; `None` when nothing matched.
    pub fn apply(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        let mut budget = body.len().saturating_mul(SCAN_BUDGET_FACTOR).saturating_add(1 << 16);
        while let Some((start, end)) = self.pattern.find(body, at, &mut budget) {
            let buffer = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
            buffer.extend_from_slice(body.get(copied..start).unwrap_or_default());
            buffer.extend_from_slice(&self.placeholder);
            copied = end;
            at = end;
        }
        let mut buffer = out?;
        buffer.extend_from_slice(body.get(copied..).unwrap_or_default());
        Some(buffer)
    }
}

/// Every mask in turn; the body itself when none matched.
pub(super) fn apply_all<'a>(masks: &[Mask], body: std::borrow::Cow<'a, [u8]>) -> std::borrow::Cow<'a, [u8]> {
    let mut body = body;
    for mask in masks {
        if let Some(masked) = mask.apply(&body) {
            body = std::borrow::Cow::Owned(masked);
        }
    }
    body
}

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Class([u64; 4]);

impl std::fmt::Debug for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Class({:x?})", self.0)
    }
}

impl Class {
    const EMPTY: Class = Class([0; 4]);

    fn contains(&self, byte: u8) -> bool {
        self.0
            .get(usize::from(byte >> 6))
            .is_some_and(|word| word & (1 << (byte & 63)) != 0)
    }

    fn insert(&mut self, byte: u8) {
        if let Some(word) = self.0.get_mut(usize::from(byte >> 6)) {
            *word |= 1 << (byte & 63);
        }
    }

    fn insert_range(&mut self, from: u8, to: u8) {
        for byte in from..=to {
            self.insert(byte);
        }
    }

    fn single(byte: u8) -> Class {
        let mut class = Class::EMPTY;
        class.insert(byte);
        class
    }

    fn negated(self) -> Class {
        Class(self.0.map(|word| !word))
    }

    fn union(self, other: Class) -> Class {
        let mut out = self;
        for (word, other) in out.0.iter_mut().zip(other.0) {
            *word |= other;
        }
        out
    }

    fn digit() -> Class {
        let mut class = Class::EMPTY;
        class.insert_range(b'0', b'9');
        class
    }

    fn word() -> Class {
        let mut class = Class::digit();
        class.insert_range(b'a', b'z');
        class.insert_range(b'A', b'Z');
        class.insert(b'_');
        class
    }

    fn space() -> Class {
        let mut class = Class::EMPTY;
        for byte in [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c] {
            class.insert(byte);
        }
        class
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Exactly one byte of the class.
    One,
    /// One byte of the class, or nothing.
    Optional,
    /// Any number of bytes of the class.
    Star,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    class: Class,
    repeat: Repeat,
}

/// A compiled pattern: a chain of states, each consuming one byte of its
/// class; after the last one, the pattern has matched.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    states: Vec<State>,
    /// Bytes that can begin a match: anything else is skipped fast.
    first: Class,
}

impl Pattern {
    fn parse(source: &str) -> Result<Pattern, String> {
        if source.is_empty() {
            return Err("the pattern is empty".to_string());
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err(format!("the pattern is longer than {MAX_PATTERN_LEN} bytes"));
        }
        let bytes = source.as_bytes();
        let mut states: Vec<State> = Vec::new();
        let mut i = 0;
        while let Some(&byte) = bytes.get(i) {
            let (class, next, quantifiable) = match byte {
                b'\\' => {
                    let escaped = *bytes.get(i + 1).ok_or("a trailing '\\' escapes nothing")?;
                    let class = match escaped {
                        b'd' => Class::digit(),
                        b'D' => Class::digit().negated(),
                        b'w' => Class::word(),
                        b'W' => Class::word().negated(),
                        b's' => Class::space(),
                        b'S' => Class::space().negated(),
                        b't' => Class::single(b'\t'),
                        b'n' => Class::single(b'\n'),
                        b'r' => Class::single(b'\r'),
                        b if b.is_ascii_punctuation() => Class::single(b),
                        _ => {
                            return Err(format!(
                                "unsupported escape '\\{}' (supported: \\d \\w \\s \\D \\W \\S \\t \\n \\r, and a backslash before punctuation)",
                                char::from(escaped)
                            ))
                        }
                    };
                    (class, i + 2, true)
                }
                b'[' => {
                    let (class, next) = parse_class(bytes, i)?;
                    (class, next, true)
                }
                b'.' => (Class::single(b'\n').negated(), i + 1, true),
                b'(' | b')' | b'|' | b'^' | b'$' => {
                    return Err(format!(
                        "'{}' at byte {i}: groups, alternation and anchors are not supported (write '\\{}' for the character itself)",
                        char::from(byte),
                        char::from(byte)
                    ))
                }
                b'?' | b'*' | b'+' | b'{' => {
                    return Err(format!(
                        "'{}' at byte {i} has nothing to repeat (write '\\{}' for the character itself)",
                        char::from(byte),
                        char::from(byte)
                    ))
                }
                b']' | b'}' => {
                    return Err(format!(
                        "unbalanced '{}' at byte {i} (write '\\{}' for the character itself)",
                        char::from(byte),
                        char::from(byte)
                    ))
                }
                // A non-ASCII character: its UTF-8 bytes, literally.
                0x80.. => {
                    let len = source
                        .get(i..)
                        .and_then(|rest| rest.chars().next())
                        .map_or(1, char::len_utf8);
                    for &b in bytes.get(i..i + len).unwrap_or_default() {
                        states.push(State {
                            class: Class::single(b),
                            repeat: Repeat::One,
                        });
                    }
                    (Class::EMPTY, i + len, false)
                }
                b => (Class::single(b), i + 1, true),
            };
            i = next;
            if !quantifiable {
                if matches!(bytes.get(i), Some(b'?' | b'*' | b'+' | b'{')) {
                    return Err(format!(
                        "a quantifier at byte {i} follows a non-ASCII character; put it in a class or leave it out"
                    ));
                }
                continue;
            }
            let (min, max, next) = parse_quantifier(bytes, i)?;
            i = next;
            for _ in 0..min {
                states.push(State {
                    class,
                    repeat: Repeat::One,
                });
            }
            match max {
                None => states.push(State {
                    class,
                    repeat: Repeat::Star,
                }),
                Some(max) => {
                    for _ in min..max {
                        states.push(State {
                            class,
                            repeat: Repeat::Optional,
                        });
                    }
                }
            }
            if states.len() > MAX_STATES {
                return Err(format!(
                    "the pattern is too complex: more than {MAX_STATES} steps once repetitions are counted"
                ));
            }
        }
        if states.iter().all(|s| s.repeat != Repeat::One) {
            return Err("the pattern can match empty text; it must require at least one character".to_string());
        }
        let mut first = Class::EMPTY;
        for state in &states {
            first = first.union(state.class);
            if state.repeat == Repeat::One {
                break;
            }
        }
        Ok(Pattern { states, first })
    }

    /// The leftmost-longest match starting at or after `from`.
    ///
    /// A Thompson simulation: `threads[s]` holds the earliest start
    /// position of a thread waiting in state `s`. Each body byte costs one
    /// pass over the states; `budget` bounds those passes × states over a
    /// whole body.
    fn find(&self, body: &[u8], from: usize, budget: &mut usize) -> Option<(usize, usize)> {
        let count = self.states.len();
        let mut current = vec![DEAD; count + 1];
        let mut next = vec![DEAD; count + 1];
        let mut best: Option<(usize, usize)> = None;
        let mut live = false;
        let mut at = from;
        loop {
            if !live {
                if best.is_some() {
                    return best;
                }
                // No thread alive: skip to the next byte that can begin one.
                let skipped = body.get(at..)?.iter().position(|&b| self.first.contains(b))?;
                at += skipped;
            }
            let Some(&byte) = body.get(at) else {
                return best;
            };
            let Some(left) = budget.checked_sub(count) else {
                return best;
            };
            *budget = left;
            if best.is_none() {
                if let Some(first) = current.first_mut() {
                    *first = (*first).min(at);
                }
                self.close(&mut current);
            }
            next.fill(DEAD);
            for (index, state) in self.states.iter().enumerate() {
                let Some(&start) = current.get(index) else { break };
                if start == DEAD || !state.class.contains(byte) {
                    continue;
                }
                let target = if state.repeat == Repeat::Star { index } else { index + 1 };
                if let Some(slot) = next.get_mut(target) {
                    *slot = (*slot).min(start);
                }
            }
            self.close(&mut next);
            std::mem::swap(&mut current, &mut next);
            at += 1;
            if let Some(&start) = current.get(count) {
                if start != DEAD && best.is_none_or(|(s, e)| start < s || (start == s && at > e)) {
                    best = Some((start, at));
                }
            }
            // Threads that started after the best match cannot beat it.
            let limit = best.map_or(DEAD, |(s, _)| s);
            live = false;
            for start in current.iter_mut().take(count) {
                if *start != DEAD && *start <= limit {
                    live = true;
                } else {
                    *start = DEAD;
                }
            }
        }
    }

    /// Follows the states that may match nothing: a thread waiting in one
    /// also waits in the next. One forward pass, since these edges only
    /// lead forward.
    fn close(&self, threads: &mut [usize]) {
        let mut carried = DEAD;
        for (index, slot) in threads.iter_mut().enumerate() {
            *slot = (*slot).min(carried);
            carried = match self.states.get(index) {
                Some(state) if state.repeat != Repeat::One => *slot,
                _ => DEAD,
            };
        }
    }
}

const DEAD: usize = usize::MAX;

/// `[...]` at `open`: the class and the index after `]`.
fn parse_class(bytes: &[u8], open: usize) -> Result<(Class, usize), String> {
    let mut i = open + 1;
    let negate = bytes.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut class = Class::EMPTY;
    let mut first = true;
    loop {
        let Some(&byte) = bytes.get(i) else {
            return Err(format!("unbalanced '[' at byte {open}"));
        };
        if byte == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (low, next) = match byte {
            b'\\' => {
                let escaped = *bytes.get(i + 1).ok_or("a trailing '\\' escapes nothing")?;
                let shorthand = match escaped {
                    b'd' => Some(Class::digit()),
                    b'w' => Some(Class::word()),
                    b's' => Some(Class::space()),
                    _ => None,
                };
                if let Some(shorthand) = shorthand {
                    class = class.union(shorthand);
                    i += 2;
                    continue;
                }
                let literal = match escaped {
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b if b.is_ascii_punctuation() => b,
                    _ => return Err(format!("unsupported escape '\\{}' in a class", char::from(escaped))),
                };
                (literal, i + 2)
            }
            0x80.. => return Err(format!("a class holds ASCII characters only (byte {i})")),
            b => (b, i + 1),
        };
        i = next;
        if bytes.get(i) == Some(&b'-') && bytes.get(i + 1).is_some_and(|&b| b != b']') {
            let high = *bytes.get(i + 1).unwrap_or(&0);
            let (high, after) = if high == b'\\' {
                let escaped = *bytes.get(i + 2).ok_or("a trailing '\\' escapes nothing")?;
                (escaped, i + 3)
            } else {
                (high, i + 2)
            };
            if high >= 0x80 || high < low {
                return Err(format!(
                    "invalid range '{}-{}' in a class",
                    char::from(low),
                    char::from(high)
                ));
            }
            class.insert_range(low, high);
            i = after;
        } else {
            class.insert(low);
        }
    }
    Ok((if negate { class.negated() } else { class }, i))
}

/// The quantifier at `i`, if any: (min, max or unbounded, index after it).
fn parse_quantifier(bytes: &[u8], i: usize) -> Result<(u32, Option<u32>, usize), String> {
    let (min, max, next) = match bytes.get(i) {
        Some(b'?') => (0, Some(1), i + 1),
        Some(b'*') => (0, None, i + 1),
        Some(b'+') => (1, None, i + 1),
        Some(b'{') => {
            let close = bytes
                .get(i..)
                .and_then(|rest| rest.iter().position(|&b| b == b'}'))
                .map(|offset| i + offset)
                .ok_or_else(|| format!("unbalanced '{{' at byte {i}"))?;
            let inner = std::str::from_utf8(bytes.get(i + 1..close).unwrap_or_default()).unwrap_or_default();
            let number = |text: &str| -> Result<u32, String> {
                text.parse::<u32>()
                    .map_err(|_| format!("'{{{inner}}}' at byte {i} is not a repetition {{n}}, {{n,}} or {{n,m}}"))
            };
            let (min, max) = match inner.split_once(',') {
                None => {
                    let n = number(inner)?;
                    (n, Some(n))
                }
                Some((low, "")) => (number(low)?, None),
                Some((low, high)) => (number(low)?, Some(number(high)?)),
            };
            if max.is_some_and(|max| max < min) {
                return Err(format!("'{{{inner}}}' at byte {i}: the maximum is below the minimum"));
            }
            (min, max, close + 1)
        }
        _ => (1, Some(1), i),
    };
    if min as usize > MAX_STATES || max.is_some_and(|m| m as usize > MAX_STATES) {
        return Err(format!(
            "the pattern is too complex: more than {MAX_STATES} steps once repetitions are counted"
        ));
    }
    if matches!(bytes.get(next), Some(b'?' | b'*' | b'+' | b'{')) {
        return Err(format!(
            "a second quantifier at byte {next} (lazy and possessive quantifiers are not supported)"
        ));
    }
    Ok((min, max, next))
}
