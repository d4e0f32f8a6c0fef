//! The configuration as operators write it: serde types, one per object of
//! the document, strict (an unknown field is an error, because a typo in a
//! migration configuration must not pass silently). Nothing here validates a
//! value beyond its JSON type; that is `compile`'s.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::compare::StatusMatch;
use crate::plan::Mode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub revision: Option<String>,
    pub route_header: Option<String>,
    pub legacy: Object<RawBackend>,
    pub candidate: Object<RawBackend>,
    pub operation_header: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_inflight_shadows: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_shadows_per_second: Option<u32>,
    pub hosts: Option<Vec<String>>,
    pub evidence_collector: Option<Object<RawCollector>>,
    #[serde(default)]
    pub defaults: Object<RawSettings>,
    /// Each operation in a box of its own, freed once it is compiled, so
    /// that the plan grows into what the raw operations leave: held inline
    /// (272 bytes each in a wasm VM, and the list's growth), 10,000
    /// operations' raw form stayed beside the whole plan, a parse peak of
    /// 1,058 bytes per operation (`make bench-config`).
    // Boxed on purpose: clippy's vec_box assumes the elements outlive the
    // list, and these are freed one by one.
    #[allow(clippy::vec_box)]
    #[serde(default)]
    pub operations: Vec<Box<Object<RawOperation>>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub cluster: Option<String>,
    pub authority: Option<String>,
}

/// Declares the settings once, for the two places they are written:
/// `defaults` ([`RawSettings`]) and each operation ([`RawOperation`], its
/// identity plus the same settings). serde's `flatten` would do it, but it
/// cannot be combined with `deny_unknown_fields`, and a separate nested
/// object would change the format. Both structs are derived, so an error
/// keeps its exact field path (`operations[3].shadow_percent`) and an
/// unknown field lists every known one.
macro_rules! settings {
    ($( $(#[$attr:meta])* $field:ident: $ty:ty, )*) => {
        /// What `defaults` may set, and every operation may override.
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawSettings {
            $( $(#[$attr])* pub $field: Option<$ty>, )*
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawOperation {
            id: String,
            method: String,
            path: String,
            group: Option<String>,
            hosts: Option<Vec<String>>,
            legacy: Option<Object<RawBackend>>,
            candidate: Option<Object<RawBackend>>,
            $( $(#[$attr])* $field: Option<$ty>, )*
        }

        impl RawOperation {
            /// What names and routes the operation, and its own settings.
            pub(super) fn split(self) -> (RawIdentity, RawSettings) {
                let identity = RawIdentity {
                    id: self.id,
                    method: self.method,
                    path: self.path,
                    group: self.group,
                    hosts: self.hosts,
                    legacy: self.legacy.map(|Object(backend)| backend),
                    candidate: self.candidate.map(|Object(backend)| backend),
                };
                (identity, RawSettings { $( $field: self.$field, )* })
            }
        }

        impl RawSettings {
            /// Whether this layer sets nothing: an operation that inherits
            /// every setting.
            pub(super) fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )*
            }
        }
    };
}

settings! {
    mode: Mode,
    shadow_percent: f64,
    #[serde(default, deserialize_with = "whole_number")]
    shadow_timeout_ms: u64,
    #[serde(default, deserialize_with = "whole_number")]
    max_body_bytes: u64,
    target_match_rate: f64,
    #[serde(default, deserialize_with = "whole_number")]
    min_samples: u64,
    shadow_unsafe: bool,
    noise_percent: f64,
    learn_noise: bool,
    #[serde(default, deserialize_with = "whole_number")]
    max_diff_paths: u64,
    // Boxed: most operations set none of these, and inline they made each
    // operation 896 bytes, copied as the list of 10,000 grew (a fifth of
    // reading it).
    compare: Box<Object<RawCompare>>,
    readiness: Box<Object<RawReadiness>>,
    circuit_breaker: Box<Object<RawBreaker>>,
    name_keys: RawNameKeys,
    shadow_headers: Box<Object<RawHeaderRules>>,
    evidence: Box<Object<RawEvidence>>,
    auto_promote: bool,
    rollback_below: f64,
}

/// `evidence` in `defaults` or an operation.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvidence {
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "whole_number")]
    pub records_per_minute: Option<u32>,
    pub failed: Option<bool>,
    pub raw_values: Option<RawRawValues>,
}

/// `evidence.raw_values`: `true`, `false`, or the fields (JSON Pointer
/// patterns, header names) whose raw values a record may carry.
pub(super) enum RawRawValues {
    All(bool),
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for RawRawValues {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match flag_or_list(
                deserializer,
                "true, false, or a list of JSON Pointer patterns and header names",
            )? {
                Ok(all) => RawRawValues::All(all),
                Err(only) => RawRawValues::Only(only),
            },
        )
    }
}

/// `evidence_collector` at the top level: where evidence records go.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollector {
    pub cluster: Option<String>,
    pub authority: Option<String>,
    pub path: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    pub timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_inflight: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub records_per_minute: Option<u32>,
    pub hash_key: Option<String>,
}

impl Described for RawEvidence {
    const OBJECT: &'static str = "an object of evidence settings (enabled, records_per_minute, failed, raw_values)";
}

impl Described for RawCollector {
    const OBJECT: &'static str =
        "an object of evidence collector settings (cluster, authority, path, timeout_ms, max_inflight, records_per_minute, hash_key)";
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderRules {
    pub remove: Option<Vec<String>>,
    pub set: Option<std::collections::BTreeMap<String, String>>,
}

/// `name_keys`: `true`, `false`, or the keys that may be named.
pub(super) enum RawNameKeys {
    All(bool),
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for RawNameKeys {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match flag_or_list(deserializer, "true, false, or a list of JSON object keys")? {
                Ok(all) => RawNameKeys::All(all),
                Err(only) => RawNameKeys::Only(only),
            },
        )
    }
}

/// `true` or `false` (`Ok`), or a list of strings (`Err`). A visitor rather
/// than `#[serde(untagged)]`: an untagged enum buffers the whole value and
/// refuses it after serde_json has moved past it, where the error can no
/// longer name its field (`locate`); it is also more code.
fn flag_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
    expecting: &'static str,
) -> Result<Result<bool, Vec<String>>, D::Error> {
    struct FlagOrList(&'static str);
    impl<'de> Visitor<'de> for FlagOrList {
        type Value = Result<bool, Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_bool<E: serde::de::Error>(self, all: bool) -> Result<Self::Value, E> {
            Ok(Ok(all))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Err)
        }
    }
    deserializer.deserialize_any(FlagOrList(expecting))
}

/// The fields of an operation that are not settings.
pub(super) struct RawIdentity {
    pub id: String,
    pub method: String,
    pub path: String,
    pub group: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub legacy: Option<RawBackend>,
    pub candidate: Option<RawBackend>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompare {
    pub ignore_headers: Option<ListOr<String>>,
    pub ignore_json_paths: Option<ListOr<String>>,
    pub unordered_arrays: Option<ListOr<StringOr<RawUnordered>>>,
    pub number_tolerance: Option<Object<RawTolerance>>,
    pub null_equals_missing: Option<bool>,
    pub status: Option<StatusMatch>,
    pub status_equivalent: Option<ListOr<Vec<RawNumber>>>,
    pub masks: Option<ListOr<StringOr<RawMask>>>,
    /// Header name (or `prefix*`) → mask; `null` drops an inherited one.
    pub header_masks: Option<std::collections::BTreeMap<String, Option<StringOr<RawMask>>>>,
    pub case_insensitive_keys: Option<BoolOrList<String>>,
    pub body: Option<crate::compare::BodyMode>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadiness {
    #[serde(default, deserialize_with = "whole_number")]
    pub window_s: Option<u64>,
    pub confidence: Option<f64>,
    pub max_failure_rate: Option<f64>,
    pub max_latency_ratio: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub ready_after_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    pub enabled: Option<bool>,
    pub failure_rate: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub min_calls: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub window_s: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub cooldown_s: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub probes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnordered {
    pub path: String,
    pub key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTolerance {
    pub absolute: Option<f64>,
    pub relative: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMask {
    pub pattern: String,
    pub name: Option<String>,
}

/// A JSON object, and only an object. serde's derived structs also accept
/// an array of their fields in declaration order (`["legacy", null]` as a
/// backend), which nobody means to write and a strict parser refuses.
pub(super) struct Object<T>(pub T);

impl<T: Default> Default for Object<T> {
    fn default() -> Self {
        Object(T::default())
    }
}

/// What an object of this type is, for "invalid type: ..., expected ...".
pub(super) trait Described {
    const OBJECT: &'static str;
}

impl Described for RawConfig {
    const OBJECT: &'static str = "a parallel-run configuration object";
}

impl Described for RawBackend {
    const OBJECT: &'static str = "an object with \"cluster\" and optionally \"authority\"";
}

impl Described for RawSettings {
    const OBJECT: &'static str = "an object of operation settings";
}

impl Described for RawOperation {
    const OBJECT: &'static str = "an operation object with \"id\", \"method\" and \"path\"";
}

impl Described for RawCompare {
    const OBJECT: &'static str = "an object of comparison rules (ignore_headers, ignore_json_paths, unordered_arrays, number_tolerance, null_equals_missing, status, status_equivalent, masks, header_masks, case_insensitive_keys, body)";
}

impl Described for RawReadiness {
    const OBJECT: &'static str =
        "an object of readiness settings (window_s, confidence, max_failure_rate, max_latency_ratio, ready_after_s)";
}

impl Described for RawBreaker {
    const OBJECT: &'static str =
        "an object of circuit breaker settings (enabled, failure_rate, min_calls, window_s, cooldown_s, probes)";
}

impl Described for RawHeaderRules {
    const OBJECT: &'static str = "an object with \"remove\" (header names) and/or \"set\" (header: value)";
}

impl Described for RawUnordered {
    const OBJECT: &'static str = "an object with \"path\" and optionally \"key\"";
}

impl Described for RawTolerance {
    const OBJECT: &'static str = "an object with \"absolute\" and/or \"relative\"";
}

impl Described for RawMask {
    const OBJECT: &'static str = "an object with \"pattern\" and optionally \"name\"";
}

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for Object<T> {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Described> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::OBJECT)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A list under `compare`: an array adds its entries to the defaults'
/// list; `{"replace": [...]}` replaces the defaults' list with its own.
pub(super) enum ListOr<T> {
    Add(Vec<T>),
    Replace(Vec<T>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplace<T> {
    replace: Vec<T>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListOr<T> {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = ListOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list (added to the defaults' list) or {\"replace\": [...]} (replacing it)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(ListOr::Add)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawReplace::<T>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|r| ListOr::Replace(r.replace))
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

/// `true`, `false`, or a list (which merges like [`ListOr`]).
pub(super) enum BoolOrList<T> {
    Bool(bool),
    List(ListOr<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for BoolOrList<T> {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for BoolVisitor<T> {
            type Value = BoolOrList<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "true, false, a list of JSON Pointers (added to the defaults' list) or {\"replace\": [...]}",
                )
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Ok(BoolOrList::Bool(value))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(|list| BoolOrList::List(ListOr::Add(list)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawReplace::<T>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|r| BoolOrList::List(ListOr::Replace(r.replace)))
            }
        }
        deserializer.deserialize_any(BoolVisitor(PhantomData))
    }
}

/// A list entry written either as a string or as an object.
pub(super) enum StringOr<T> {
    Str(String),
    Obj(T),
}

trait Expecting {
    const EXPECTING: &'static str;
}

impl Expecting for RawUnordered {
    const EXPECTING: &'static str = "a JSON Pointer string or an object {\"path\": ..., \"key\": ...}";
}

impl Expecting for RawMask {
    const EXPECTING: &'static str = "a built-in mask name or an object {\"pattern\": ..., \"name\": ...}";
}

impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for StringOr<T> {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for EntryVisitor<T> {
            type Value = StringOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(StringOr::Str(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StringOr::Obj)
            }
        }
        deserializer.deserialize_any(EntryVisitor(PhantomData))
    }
}

/// A number as written (`status_equivalent`'s codes, judged in `rules`).
/// Read with serde_json's number hint, which refuses an array or an object
/// before taking its first byte, as `locate` expects; `serde_json::Number`'s
/// own deserializer takes the `[` first.
pub(super) struct RawNumber(pub serde_json::Number);

impl<'de> Deserialize<'de> for RawNumber {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = RawNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON number")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(RawNumber(n.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(RawNumber(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
                serde_json::Number::from_f64(n)
                    .map(RawNumber)
                    .ok_or_else(|| E::custom(format!("{n} is not a JSON number")))
            }
        }
        deserializer.deserialize_f64(NumberVisitor)
    }
}

/// Istio hands `pluginConfig` over as a protobuf Struct, whose numbers are
/// doubles: accept `3000.0` where a whole number is expected, not `3000.5`.
///
/// Refused from inside the visitor, not after it returned: serde_json
/// gives an error the position of the value it is reading only there, and
/// that position is what names the field (`locate`).
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct WholeVisitor<T>(PhantomData<T>);
    impl<T: TryFrom<u64>> WholeVisitor<T> {
        fn whole<E: serde::de::Error>(whole: Option<u64>, number: impl fmt::Display) -> Result<Option<T>, E> {
            whole
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| E::custom(format!("expected a whole number in range, got {number}")))
        }
    }
    impl<'de, T: TryFrom<u64>> Visitor<'de> for WholeVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            // serde_json reads any number for this hint, and refuses
            // anything else before taking its first byte.
            deserializer.deserialize_u64(self)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Self::whole(Some(n), n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Self::whole(u64::try_from(n).ok(), n)
        }
        fn visit_f64<E: serde::de::Error>(self, float: f64) -> Result<Self::Value, E> {
            // 2^64 as f64 is exact; at or above it the cast would saturate.
            let whole =
                (float >= 0.0 && float.fract() == 0.0 && float < 18_446_744_073_709_551_616.0).then_some(float as u64);
            // Printed the way serde_json prints the number it read.
            match serde_json::Number::from_f64(float) {
                Some(number) => Self::whole(whole, number),
                None => Self::whole(whole, float),
            }
        }
    }
    deserializer.deserialize_option(WholeVisitor(PhantomData))
}
