//! Every bound on what the filter reads: the configuration (refused with the
//! field path when a value is past its bound) and the requests it matches
//! (a request past a bound is simply not matched: an unknown operation,
//! served by legacy, with no walk over it).
//!
//! Each number says why it is what it is. They are generous for real APIs
//! (a 10,000-operation configuration is accepted) and small enough that no
//! accepted configuration and no request can exhaust the VM: its stack is
//! 1 MiB and every worker thread holds its own copy of the plan. The README's
//! configuration reference has the same table; `core/tests/limits.rs` tries
//! each bound and one past it.

// ------------------------------------------------------------ the document

/// Bytes of the whole configuration document. A rich operation (a shadowed
/// template with two parameters, a backend override, ignore lists and a
/// mask) is about 300 bytes of compact JSON, so 10,000 of them take 3 MB;
/// this leaves room for pretty-printing and long rule lists (10,000
/// operations with six ignored paths, three masks and two unordered arrays
/// each, indented: 8.2 MB, validated by the CLI in 0.4 s at a 99 MiB peak
/// RSS). Beyond, the cost is in the VMs: every worker parses and keeps its
/// own plan (a 50 MB configuration cost Envoy 366-506 MiB of RSS in the
/// issue that set this bound).
pub const MAX_CONFIG_BYTES: usize = 8 << 20;

/// Operations in one configuration. Each one defines about 21 stats per
/// worker: at 10,000 that is 210,000 stats, and the push measured 2.4-3.2 s
/// of stalled requests while they were defined (issue 13). More operations
/// belong in another filter configuration (another listener, or host
/// scoping with `hosts`), not in one plan.
pub const MAX_OPERATIONS: usize = 10_000;

/// JSON nesting, arrays and objects. Not ours to choose: serde_json counts
/// down from 128 and refuses the 128th level ("recursion limit exceeded"),
/// which keeps its recursive parser inside the wasm stack. The configuration
/// never gets near it (its schema is six levels deep, and a value of the
/// wrong type is refused where it starts); stated here because the parser
/// relies on it as a backstop, and the tests check that it holds.
pub const MAX_JSON_DEPTH: usize = 127;

// ------------------------------------------------------------ names

/// Bytes of an operation id, a `group` and a mask name. An id becomes part
/// of stats names and the `operation_id` label of every counter; OpenAPI
/// operationIds, even generated ones (`Resource_Action_BySubresource`), are
/// well under 100 bytes. A 70,000-byte id used to make the CLI panic while
/// padding its table.
pub const MAX_ID_BYTES: usize = 128;

/// Bytes of an HTTP method. The longest registered method (IANA's HTTP
/// Method Registry, `UPDATEREDIRECTREF`) has 17.
pub const MAX_METHOD_BYTES: usize = 32;

/// Bytes of a header name (`route_header`, `operation_header`,
/// `compare.ignore_headers`). Real header names are short (the longest
/// standard ones are about 40 bytes); each request looks these up.
pub const MAX_HEADER_NAME_BYTES: usize = 128;

/// Bytes of an Envoy cluster name. It travels in the route header of every
/// request. Istio's longest names are `outbound|PORT|SUBSET|FQDN`: with a
/// 253-byte DNS name and a 63-byte subset name, 332 bytes.
pub const MAX_CLUSTER_NAME_BYTES: usize = 512;

/// Bytes of an authority (`host[:port]`) set on requests to a backend: a DNS
/// name's 253 bytes (254 with the root dot), ':' and a five-digit port.
pub const MAX_AUTHORITY_BYTES: usize = 260;

/// Bytes of `revision`. Logged by every VM on every push (a 5 MiB revision
/// once was, in full); a date, a git commit id and a short note fit.
pub const MAX_REVISION_BYTES: usize = 256;

// ------------------------------------------------------------ hosts

/// Bytes of a `hosts` entry: a DNS name with its optional root dot (or
/// `*.` and a suffix). Also the longest request host that can match one;
/// a longer `:authority` is out of every scope without being compared.
pub const MAX_HOST_BYTES: usize = 254;

/// Entries of one `hosts` list (top level or per operation). A request is
/// compared with each entry of its operation's list, so it stays short; an
/// API answers on a handful of names, and `*.suffix` covers families.
pub const MAX_HOSTS: usize = 32;

// ------------------------------------------------------------ paths

/// Segments of a path template. Resource-oriented APIs nest deepest, and
/// their longest templates have about ten
/// (`/v1/projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{nodePool}`
/// has 9). Matching cost grows with the depth, never past this.
pub const MAX_TEMPLATE_SEGMENTS: usize = 64;

/// Bytes of a path template: the nine-segment template above has 83.
pub const MAX_TEMPLATE_BYTES: usize = 1024;

/// Bytes of a request path (before `?`) the matcher looks at. Longer paths
/// match no operation, and the matcher does not read past this many bytes:
/// common servers refuse longer request lines anyway (nginx's default
/// `large_client_header_buffers` is 8 KiB, past which it answers 414).
pub const MAX_REQUEST_PATH_BYTES: usize = 8 << 10;

// ------------------------------------------------------------ comparison rules

/// Entries of `compare.ignore_headers`: each response header is checked
/// against each, on both sides of every comparison.
pub const MAX_IGNORE_HEADERS: usize = 64;

/// Entries of `compare.ignore_json_paths`: each is a walk over both
/// documents of every comparison.
pub const MAX_IGNORE_JSON_PATHS: usize = 64;

/// Entries of `compare.unordered_arrays`: each array of both documents is
/// checked against each.
pub const MAX_UNORDERED_ARRAYS: usize = 64;

/// Entries of `compare.masks`: each mask is a pass over both bodies.
pub const MAX_MASKS: usize = 32;

/// Bytes of a JSON Pointer in the rules (`ignore_json_paths`,
/// `unordered_arrays` paths and keys): pointers into real documents are
/// tens of bytes; 1024 matches the limit on a mask pattern.
pub const MAX_POINTER_BYTES: usize = 1024;

// `status_equivalent` needs no bound of its own: a code (100-599) is in one
// group at most and twice in none, so the groups hold 500 codes in all.

// ------------------------------------------------------------ settings

/// The default of `max_body_bytes`: request and response bodies above it are
/// not compared, and a compressed body is decoded into no more than this.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;

/// The largest `max_body_bytes`: above this, one shadowed request could hold
/// tens of MiB per side in the VM.
pub const MAX_BODY_BYTES: u64 = 64 << 20;

/// The largest `shadow_timeout_ms`, ten minutes: a shadow call open longer
/// holds its exchange's memory for nothing anyone waits for.
pub const MAX_SHADOW_TIMEOUT_MS: u64 = 600_000;

/// The largest `max_inflight_shadows` per worker.
pub const MAX_INFLIGHT_SHADOWS: u32 = 100_000;

/// The largest `max_shadows_per_second` per worker: far above what one
/// worker can shadow (about 2,000 a second saturate a worker of the
/// benchmark machine, bench/SOAK.md), so any smaller figure is a real bound.
pub const MAX_SHADOWS_PER_SECOND: u32 = 1_000_000;

/// The largest `max_diff_paths`: each differing path is a stats counter.
pub const MAX_DIFF_PATHS: u64 = 500;
