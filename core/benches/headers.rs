//! Reading a request's headers, the first thing the filter does for every
//! request it sees: the stock SDK's way (`get_map_bytes`: a `String` and a
//! `Vec` per header) against [`HeaderMap`] (the host's buffer read in
//! place), natively and (the same source, built for wasm32-wasip1) in a
//! wasm VM: `make bench-headers`.
//!
//! Each case starts from the serialized map as the host hands it over (a
//! fresh buffer per call, as the host's `proxy_on_memory_allocate` makes),
//! reads it, and looks up the headers `on_http_request_headers` needs for a
//! pass-through request: `:authority`, `:method`, `:path`, the route
//! header and the shadow marker (absent: each a full scan).
//!
//! Output: one tab-separated line per header set, `headers  map_bytes
//! ns_sdk  ns_in_place  allocations_sdk  allocations_in_place`, after a
//! header line; allocations are counted by this binary's allocator, for
//! one read. `--quick` shortens the runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::measure;
use parallel_run_core::header_map::HeaderMap;

/// The system allocator, counting allocations while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What Envoy hands a filter for the benchmark's own request (bench/ab.py:
/// wrk's POST with a JSON body), and for a browser's request with cookies.
const WRK: &[(&str, &str)] = &[
    (":authority", "127.0.0.1:10000"),
    (":path", "/bench/2k"),
    (":method", "POST"),
    (":scheme", "http"),
    ("content-type", "application/json"),
    ("content-length", "2048"),
    ("x-forwarded-proto", "http"),
    ("x-request-id", "5b1c3f2e-8a7d-4c39-9f61-0d2e4b8a6c15"),
];

const BROWSER: &[(&str, &str)] = &[
    (":authority", "api.example.internal"),
    (":path", "/returns/4711?include=items&lang=en"),
    (":method", "GET"),
    (":scheme", "https"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    ),
    ("accept", "application/json, text/plain, */*"),
    ("accept-language", "en-GB,en;q=0.8,de;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("referer", "https://shop.example/account/returns"),
    ("origin", "https://shop.example"),
    (
        "authorization",
        "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
    ),
    ("cookie", "session=2f1e0d9c8b7a; consent=1; ab=returns-v2; theme=dark"),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "same-site"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("x-forwarded-for", "198.51.100.7"),
    ("x-forwarded-proto", "https"),
    ("x-envoy-external-address", "198.51.100.7"),
    ("x-request-id", "5b1c3f2e-8a7d-4c39-9f61-0d2e4b8a6c15"),
];

const LOOKUPS: [&str; 5] = [
    ":authority",
    ":method",
    ":path",
    "x-parallel-run-cluster",
    "x-parallel-run-shadow",
];

/// The SDK's decoding (proxy-wasm 0.2's `deserialize_map_bytes`, the same
/// steps, written without its panics) and a lookup by linear scan, as the
/// glue did before it read maps in place.
fn sdk(bytes: &[u8]) -> usize {
    let mut map: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some((count, _)) = bytes.split_first_chunk::<4>() {
        let count = u32::from_le_bytes(*count) as usize;
        map.reserve(count);
        let mut p = 4 + count * 8;
        for n in 0..count {
            let size = |at: usize| {
                bytes
                    .get(at..at + 4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, |b| u32::from_le_bytes(b) as usize)
            };
            let (name_len, value_len) = (size(4 + n * 8), size(8 + n * 8));
            let name = bytes.get(p..p + name_len).unwrap_or_default().to_vec();
            p += name_len + 1;
            let value = bytes.get(p..p + value_len).unwrap_or_default().to_vec();
            p += value_len + 1;
            map.push((String::from_utf8(name).unwrap_or_default(), value));
        }
    }
    let get = |name: &str| map.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    LOOKUPS.iter().filter_map(|name| get(name)).map(<[u8]>::len).sum()
}

fn in_place(bytes: Vec<u8>) -> usize {
    let map = HeaderMap::parse(bytes).unwrap_or_default();
    LOOKUPS.iter().filter_map(|name| map.get(name)).map(<[u8]>::len).sum()
}

fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let run_time = Duration::from_millis(if quick { 200 } else { 2000 });
    println!("headers\tmap_bytes\tns_sdk\tns_in_place\tallocations_sdk\tallocations_in_place");
    for set in [WRK, BROWSER] {
        let serialized = HeaderMap::from_pairs(set.iter().copied());
        let bytes: Vec<u8> = {
            // The buffer as the host hands it over, rebuilt from the map's
            // own pairs (HeaderMap keeps its bytes private).
            let mut out = (set.len() as u32).to_le_bytes().to_vec();
            for (name, value) in set {
                out.extend((name.len() as u32).to_le_bytes());
                out.extend((value.len() as u32).to_le_bytes());
            }
            for (name, value) in set {
                out.extend(name.as_bytes());
                out.push(0);
                out.extend(value.as_bytes());
                out.push(0);
            }
            out
        };
        assert_eq!(HeaderMap::parse(bytes.clone()).ok(), Some(serialized));
        assert_eq!(sdk(&bytes), in_place(bytes.clone()), "both read the same values");
        let ns_sdk = measure(run_time, || {
            let buffer = black_box(bytes.clone());
            black_box(sdk(&buffer));
        });
        let ns_in_place = measure(run_time, || {
            black_box(in_place(black_box(bytes.clone())));
        });
        let sdk_allocations = allocations(|| {
            let buffer = black_box(bytes.clone());
            black_box(sdk(&buffer));
        });
        let in_place_allocations = allocations(|| {
            black_box(in_place(black_box(bytes.clone())));
        });
        println!(
            "{}\t{}\t{ns_sdk:.1}\t{ns_in_place:.1}\t{sdk_allocations}\t{in_place_allocations}",
            set.len(),
            bytes.len()
        );
    }
}
