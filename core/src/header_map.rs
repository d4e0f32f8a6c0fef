//! A header map as the host hands it over, read in place.
//!
//! proxy-wasm serializes a header map into one buffer: a little-endian
//! `u32` count, then a `u32` name length and a `u32` value length per
//! header, then every name and value, each followed by a NUL. The stock SDK
//! turns that buffer into a `String` and a `Vec` per header; every request
//! the filter sees is read this way, and a pass-through request needs five
//! lookups in it. [`HeaderMap`] keeps the buffer and finds headers in it, so
//! reading a request's headers is the host's one allocation, whatever the
//! number of headers.
//!
//! The buffer is checked whole once ([`HeaderMap::parse`]): a map that does
//! not add up is refused, never half read. Envoy bounds the map itself
//! (`max_request_headers_count`, `max_request_headers_kb`); nothing here
//! recurses or allocates per header.

/// A checked serialized header map. Names are as the host gives them
/// (Envoy: lower-case); repeated headers stay repeated, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    /// Empty, or a buffer [`HeaderMap::parse`] accepted.
    bytes: Vec<u8>,
}

/// What is wrong with a buffer that is not a serialized header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its count or its size table say.
    Truncated,
    /// A name or value not followed by its NUL.
    Unterminated,
    /// Bytes after the last header.
    TrailingBytes,
}

const COUNT: usize = 4;
const SIZES: usize = 8;

impl HeaderMap {
    /// Checks `bytes` and keeps them. An empty buffer is an empty map (the
    /// host hands over nothing for a map without headers); a map of no
    /// headers is kept as no bytes too, so that equal maps are equal bytes.
    pub fn parse(bytes: Vec<u8>) -> Result<HeaderMap, Malformed> {
        if bytes.is_empty() {
            return Ok(HeaderMap::default());
        }
        let (sizes, data) = split(&bytes).ok_or(Malformed::Truncated)?;
        let rest = walk(sizes, data)?;
        if !rest.is_empty() {
            return Err(Malformed::TrailingBytes);
        }
        if sizes.is_empty() {
            return Ok(HeaderMap::default());
        }
        Ok(HeaderMap { bytes })
    }

    /// The map a host would hand over for `pairs`: for the fake host, the
    /// benchmarks and the tests.
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (N, V)>) -> HeaderMap {
        let pairs: Vec<(N, V)> = pairs.into_iter().collect();
        if pairs.is_empty() {
            return HeaderMap::default();
        }
        let mut bytes = Vec::new();
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes();
        bytes.extend_from_slice(&u32::try_from(pairs.len()).unwrap_or(u32::MAX).to_le_bytes());
        for (name, value) in &pairs {
            bytes.extend_from_slice(&len(name.as_ref()));
            bytes.extend_from_slice(&len(value.as_ref()));
        }
        for (name, value) in &pairs {
            for part in [name.as_ref(), value.as_ref()] {
                bytes.extend_from_slice(part);
                bytes.push(0);
            }
        }
        HeaderMap { bytes }
    }

    /// This map with one more header at its end: for the tests and the
    /// benchmarks.
    pub fn with(&self, name: &str, value: &[u8]) -> HeaderMap {
        HeaderMap::from_pairs(self.iter().chain([(name.as_bytes(), value)]))
    }

    /// The first value of header `name` (compared byte for byte).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }

    /// Every header, in the host's order.
    pub fn iter(&self) -> Pairs<'_> {
        let (sizes, data) = split(&self.bytes).unwrap_or_default();
        Pairs { sizes, data }
    }

    pub fn len(&self) -> usize {
        self.iter().sizes.len() / SIZES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The headers of a [`HeaderMap`], as (name, value) bytes.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    /// The size table still to read, 8 bytes per header.
    sizes: &'a [u8],
    /// The names and values still to read.
    data: &'a [u8],
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (sizes, table) = self.sizes.split_first_chunk::<SIZES>()?;
        let entry = entry_at(sizes, self.data).ok()?;
        self.sizes = table;
        self.data = entry.rest;
        Some((entry.name, entry.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.sizes.len() / SIZES;
        (n, Some(n))
    }
}

/// The size table and the data of a non-empty buffer; `None` when the
/// buffer is shorter than its count says the table is.
fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (count, rest) = bytes.split_first_chunk::<COUNT>()?;
    let table = usize::try_from(u32::from_le_bytes(*count)).ok()?.checked_mul(SIZES)?;
    rest.split_at_checked(table)
}

/// Reads every entry of `sizes` from `data`; returns the bytes after the
/// last one.
fn walk<'a>(mut sizes: &[u8], mut data: &'a [u8]) -> Result<&'a [u8], Malformed> {
    while let Some((entry, rest)) = sizes.split_first_chunk::<SIZES>() {
        data = entry_at(entry, data)?.rest;
        sizes = rest;
    }
    Ok(data)
}

/// One header read from the front of the data.
struct Entry<'a> {
    name: &'a [u8],
    value: &'a [u8],
    /// The data after it.
    rest: &'a [u8],
}

/// The header `sizes` (its size table entry) describes, from the front of
/// `data`.
fn entry_at<'a>(sizes: &[u8; SIZES], data: &'a [u8]) -> Result<Entry<'a>, Malformed> {
    let [n0, n1, n2, n3, v0, v1, v2, v3] = *sizes;
    let (name, data) = terminated(data, u32::from_le_bytes([n0, n1, n2, n3]))?;
    let (value, rest) = terminated(data, u32::from_le_bytes([v0, v1, v2, v3]))?;
    Ok(Entry { name, value, rest })
}

/// `len` bytes and their NUL from the front of `data`.
fn terminated(data: &[u8], len: u32) -> Result<(&[u8], &[u8]), Malformed> {
    let len = usize::try_from(len).map_err(|_| Malformed::Truncated)?;
    let (part, rest) = data.split_at_checked(len).ok_or(Malformed::Truncated)?;
    match rest.split_first() {
        Some((0, rest)) => Ok((part, rest)),
        Some(_) => Err(Malformed::Unterminated),
        None => Err(Malformed::Truncated),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The bytes Envoy hands over for these two headers, written out.
    const TWO: &[u8] = b"\x02\0\0\0\x07\0\0\0\x04\0\0\0\x05\0\0\0\0\0\0\0:method\0POST\0:path\0\0";

    #[test]
    fn reads_the_hosts_serialization() {
        let map = HeaderMap::parse(TWO.to_vec()).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(":method"), Some(&b"POST"[..]));
        assert_eq!(map.get(":path"), Some(&b""[..]));
        assert_eq!(map.get("host"), None);
        assert_eq!(map, HeaderMap::from_pairs([(":method", "POST"), (":path", "")]));
    }

    #[test]
    fn an_empty_buffer_is_an_empty_map() {
        let map = HeaderMap::parse(Vec::new()).unwrap();
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
        assert_eq!(HeaderMap::from_pairs(Vec::<(&str, &str)>::new()), map);
        assert_eq!(HeaderMap::parse(vec![0, 0, 0, 0]).unwrap(), map);
    }

    #[test]
    fn repeated_headers_stay_in_order_and_get_finds_the_first() {
        let map = HeaderMap::from_pairs([("a", &b"1"[..]), ("b", b"\xff\0x"), ("a", b"2")]);
        let pairs: Vec<_> = map.iter().collect();
        assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (b"b", b"\xff\0x"), (b"a", b"2")]);
        assert_eq!(map.get("a"), Some(&b"1"[..]));
        assert_eq!(map.iter().size_hint(), (3, Some(3)));
    }

    #[test]
    fn a_map_that_does_not_add_up_is_refused() {
        // Every cut of a valid map is refused, none is read in part.
        for cut in 1..TWO.len() {
            let refused = HeaderMap::parse(TWO[..cut].to_vec());
            assert!(refused.is_err(), "cut at {cut}: {refused:?}");
        }
        let mut trailing = TWO.to_vec();
        trailing.push(0);
        assert_eq!(HeaderMap::parse(trailing), Err(Malformed::TrailingBytes));
        let mut unterminated = TWO.to_vec();
        unterminated[27] = b'x'; // the NUL after ":method"
        assert_eq!(HeaderMap::parse(unterminated), Err(Malformed::Unterminated));
        // A count far beyond the buffer, and lengths near u32::MAX.
        assert_eq!(HeaderMap::parse(vec![0xff; 4]), Err(Malformed::Truncated));
        let huge = [
            &1u32.to_le_bytes()[..],
            &u32::MAX.to_le_bytes(),
            &0u32.to_le_bytes(),
            b"\0\0",
        ]
        .concat();
        assert_eq!(HeaderMap::parse(huge), Err(Malformed::Truncated));
    }
}
