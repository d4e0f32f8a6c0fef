//! A refused configuration: where, and what is wrong there.

use std::fmt;

/// Longest path or message kept. serde's messages quote what they refuse
/// (an unknown field's name, a string of the wrong type), and the filter
/// logs a refusal in every VM: a megabyte-long key must not become a
/// megabyte-long log line. Our own messages quote values only after their
/// length was checked, and stay far below this.
const MAX_ERROR_BYTES: usize = 1024;

/// Where (`operations[2].path`, empty for the document as a whole) and
/// what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl fmt::Display, message: impl Into<String>) -> Self {
        ConfigError {
            path: bounded(path.to_string()),
            message: bounded(message.into()),
        }
    }
}

/// The field `name` of the object at `parent` (`operations[3]` and `id`:
/// `operations[3].id`), written out only when an error names it. A
/// configuration of 10,000 operations formatted each operation's field
/// paths up front, one allocation per field, whether anything was wrong or
/// not: a fifth of its compile time.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a>(pub &'a str, pub &'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field("", name) => f.write_str(name),
            Field(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

/// `text` cut to [`MAX_ERROR_BYTES`] on a character boundary, saying so.
fn bounded(mut text: String) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text;
    }
    let total = text.len();
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("... ({total} bytes in all)"));
    text
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
