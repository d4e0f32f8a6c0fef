//! Media types (`Content-Type` values) as the comparator reads them: the
//! essence that decides how a body is compared, and the normalised form in
//! which the header itself is compared.

use super::sort::sort_forms;

/// A media type's `type/subtype`, without parameters or surrounding space.
pub(super) fn essence(value: &[u8]) -> &[u8] {
    value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii()
}

/// A Content-Type as compared: type, subtype and parameter names
/// lower-cased, parameters sorted, quotes removed, and the noise left out:
/// `charset=utf-8` (JSON's only encoding, and everyone's default) and
/// `boundary` (random per multipart response).
pub(super) fn normalized(value: &[u8]) -> Vec<u8> {
    let mut parts = value.split(|&b| b == b';');
    let mut out = parts.next().unwrap_or_default().trim_ascii().to_ascii_lowercase();
    let mut parameters: Vec<(Vec<u8>, usize)> = Vec::new();
    for parameter in parts {
        let (name, value) = match parameter.iter().position(|&b| b == b'=') {
            Some(eq) => (
                parameter.get(..eq).unwrap_or_default(),
                parameter.get(eq + 1..).unwrap_or_default(),
            ),
            None => (parameter, &b""[..]),
        };
        let name = name.trim_ascii().to_ascii_lowercase();
        let value = value.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        if name.is_empty() || name == b"boundary" {
            continue;
        }
        let value = if name == b"charset" {
            let charset = value.to_ascii_lowercase();
            if charset == b"utf-8" || charset == b"utf8" {
                continue;
            }
            charset
        } else {
            value.to_vec()
        };
        let mut parameter = name;
        parameter.push(b'=');
        parameter.extend_from_slice(&value);
        parameters.push((parameter, 0));
    }
    sort_forms(&mut parameters);
    for (parameter, _) in parameters {
        out.push(b';');
        out.extend_from_slice(&parameter);
    }
    out
}
