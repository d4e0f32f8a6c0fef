//! Bytes as the host would hand over a header map, to `HeaderMap::parse`.
//! Besides "no panic, no hang", checks what the filter relies on when it
//! reads every request's headers in place:
//! - an accepted map is canonical: serializing its own pairs again gives
//!   the same bytes, so nothing was skipped or read twice;
//! - its length, its iteration and `get` agree (`get` finds a name's first
//!   value);
//! - a refused map is refused whole: no cut of an accepted map but the
//!   empty one is accepted (a truncated buffer is never half read);
//! - any list of pairs (cut from the input at NUL bytes, so names and
//!   values may hold any other byte) serializes to a map that parses back
//!   to exactly those pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallel_run_core::header_map::HeaderMap;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = HeaderMap::parse(data.to_vec()) {
        let pairs: Vec<(&[u8], &[u8])> = map.iter().collect();
        assert_eq!(pairs.len(), map.len());
        assert_eq!(HeaderMap::from_pairs(pairs.iter().copied()), map);
        if let Some((name, value)) = pairs.first() {
            if let Ok(name) = std::str::from_utf8(name) {
                assert_eq!(map.get(name), Some(*value));
            }
        }
        if !data.is_empty() {
            let cut = data.len() - 1 - usize::from(data[0]) % data.len();
            assert!(HeaderMap::parse(data[..cut].to_vec()).is_err() || cut == 0);
        }
    }

    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let pairs: Vec<(&[u8], &[u8])> = parts.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let map = HeaderMap::from_pairs(pairs.iter().copied());
    let read: Vec<(&[u8], &[u8])> = map.iter().collect();
    assert_eq!(read, pairs);
    let bytes = HeaderMap::parse(serialize(&pairs)).expect("a serialized map parses");
    assert_eq!(bytes, map);
});

/// The ABI's serialization, written out independently of `from_pairs`.
fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (name, value) in pairs {
        out.extend((name.len() as u32).to_le_bytes());
        out.extend((value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend(*name);
        out.push(0);
        out.extend(*value);
        out.push(0);
    }
    out
}
