//! Host scoping: the request authorities a configuration, or one of its
//! operations, applies to.
//!
//! A `hosts` entry is an exact host name (`api.example.com`) or a suffix
//! wildcard (`*.example.com`: any name ending in `.example.com`, with at
//! least one label before it, as in Envoy's virtual host domains; not
//! `example.com` itself). Names compare case-insensitively; the request's
//! `:port` and one trailing dot (`api.example.com.`, the same DNS name) are
//! ignored, and so is nothing else.

use crate::limits::{MAX_AUTHORITY_BYTES, MAX_HOSTS, MAX_HOST_BYTES};

/// One entry of a `hosts` list, lower-case, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// This name only.
    Exact(String),
    /// Any name ending in this suffix, which starts with its dot
    /// (`.example.com` for `*.example.com`).
    Suffix(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        if text.len() > MAX_HOST_BYTES {
            return Err(format!(
                "{} bytes; a host name has at most {MAX_HOST_BYTES}",
                text.len()
            ));
        }
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if let Some(stem) = name.strip_prefix("*.") {
            check_name(stem, text)?;
            return Ok(HostPattern::Suffix(format!(".{stem}")));
        }
        if name.starts_with('[') {
            check_ip_literal(name, text)?;
        } else {
            check_name(name, text)?;
        }
        Ok(HostPattern::Exact(name.to_string()))
    }

    /// Whether `host` (lower-case or not, without port) is this pattern's.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
            }
        }
    }

    /// Whether some host matches both patterns.
    fn overlaps(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(name), suffix @ HostPattern::Suffix(_))
            | (suffix @ HostPattern::Suffix(_), HostPattern::Exact(name)) => suffix.matches(name.as_bytes()),
            // Both start with a dot, so `ends_with` is a whole-label suffix.
            (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a.ends_with(b.as_str()) || b.ends_with(a.as_str()),
        }
    }

    /// Whether every host `other` matches, this pattern matches too.
    fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (_, HostPattern::Exact(name)) => self.matches(name.as_bytes()),
            (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
            (HostPattern::Suffix(outer), HostPattern::Suffix(inner)) => inner.ends_with(outer.as_str()),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// DNS-style labels: letters, digits, `-` and `_` (seen in internal names),
/// separated by single dots.
fn check_name(name: &str, text: &str) -> Result<(), String> {
    if name.contains(':') && !name.contains('/') {
        return Err(format!(
            "\"{text}\": the port of a request's authority is ignored, write the host alone"
        ));
    }
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "\"{text}\" is not a host name or \"*.\" and a domain (a '*' stands only for the leading labels)"
        ));
    }
    Ok(())
}

/// `[` an IPv6 address `]`, as it appears in an authority.
fn check_ip_literal(name: &str, text: &str) -> Result<(), String> {
    let inner = name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'));
    match inner {
        Some(inner) if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') => {
            Ok(())
        }
        _ => Err(format!(
            "\"{text}\" is not an IPv6 literal such as [2001:db8::1] (the port is ignored, write the host alone)"
        )),
    }
}

/// A `hosts` list: a request is in scope when one entry matches its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    patterns: Vec<HostPattern>,
}

impl Hosts {
    /// The list, or the index of the first bad entry and what is wrong.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Hosts, (Option<usize>, String)> {
        if list.is_empty() {
            return Err((
                None,
                "an empty list matches no host; leave \"hosts\" out to match every host".to_string(),
            ));
        }
        if list.len() > MAX_HOSTS {
            return Err((None, format!("{} entries, at most {MAX_HOSTS}", list.len())));
        }
        let mut patterns: Vec<HostPattern> = Vec::with_capacity(list.len());
        for (index, text) in list.iter().enumerate() {
            let pattern = HostPattern::parse(text.as_ref()).map_err(|msg| (Some(index), msg))?;
            if let Some(other) = patterns.iter().position(|p| p.covers(&pattern) || pattern.covers(p)) {
                return Err((
                    Some(index),
                    format!(
                        "\"{}\" and hosts[{other}] (\"{}\") overlap: one already matches every host of the other",
                        text.as_ref(),
                        patterns.get(other).map(ToString::to_string).unwrap_or_default()
                    ),
                ));
            }
            patterns.push(pattern);
        }
        Ok(Hosts { patterns })
    }

    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Whether a request with this `:authority` (or `host`) is in scope.
    pub fn matches_authority(&self, authority: &[u8]) -> bool {
        host_of(authority).is_some_and(|host| self.matches_host(host))
    }

    /// Whether a host (see [`host_of`]) is in scope.
    pub fn matches_host(&self, host: &[u8]) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(host))
    }

    /// Whether some host is in both lists.
    pub fn overlaps(&self, other: &Hosts) -> bool {
        self.patterns
            .iter()
            .any(|a| other.patterns.iter().any(|b| a.overlaps(b)))
    }

    /// The index of the first entry of `inner` that matches a host this list
    /// does not, if any.
    pub fn first_uncovered(&self, inner: &Hosts) -> Option<usize> {
        inner
            .patterns
            .iter()
            .position(|pattern| !self.patterns.iter().any(|outer| outer.covers(pattern)))
    }
}

/// The host of an authority (`host[:port]`, `[v6]:port`), without the port
/// and one trailing dot; `None` when it is longer than any authority can be,
/// which then matches no list (looked at no further than that).
pub fn host_of(authority: &[u8]) -> Option<&[u8]> {
    if authority.len() > MAX_AUTHORITY_BYTES {
        return None;
    }
    let end = if authority.first() == Some(&b'[') {
        authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |close| close + 1)
    } else {
        authority.iter().position(|&b| b == b':').unwrap_or(authority.len())
    };
    let host = authority.get(..end)?;
    Some(host.strip_suffix(b".").unwrap_or(host))
}

#[cfg(test)]
mod tests;
