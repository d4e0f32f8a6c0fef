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
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: bounded(path.into()),
            message: bounded(message.into()),
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
