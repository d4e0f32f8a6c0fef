//! Comparison rules (`compare`), compiled once where they are written:
//! `defaults.compare` once for the whole configuration, an operation's own
//! `compare` once for it. An operation's list adds its entries to the
//! defaults' list (its own first, so where order matters its own entry
//! wins), unless written `{"replace": [...]}`; a single value or an object
//! (`status`, `number_tolerance`) replaces the defaults' as a whole.
//!
//! Why `{"replace": [...]}` rather than a `!`-prefixed key or a flag on
//! `compare`: it stays valid JSON any tool can write, it sits on the list
//! it changes (a reader sees at the entry itself that the defaults' are
//! dropped), and it leaves every other list of the same `compare` merging.

use super::names;
use super::raw::{BoolOrList, ListOr, RawCompare, RawMask, RawNumber, RawUnordered, StringOr};
use super::ConfigError;
use crate::compare::json::PointerPattern;
use crate::compare::{
    BodyMode, CaseKeys, CompareRules, HeaderPattern, Mask, NumberTolerance, StatusMatch, StatusRules, UnorderedArray,
};
use crate::diff_path::KeyNames;
use crate::limits::{MAX_IGNORE_HEADERS, MAX_IGNORE_JSON_PATHS, MAX_MASKS, MAX_POINTER_BYTES, MAX_UNORDERED_ARRAYS};

/// One place's comparison rules, compiled; `None` where it sets nothing.
#[derive(Default)]
pub(super) struct RulesLayer {
    ignore_headers: Option<Listed<HeaderPattern>>,
    ignore_json_paths: Option<Listed<PointerPattern>>,
    unordered_arrays: Option<Listed<UnorderedArray>>,
    number_tolerance: Option<NumberTolerance>,
    null_equals_missing: Option<bool>,
    status: Option<StatusMatch>,
    status_equivalent: Option<Listed<Vec<u16>>>,
    masks: Option<Listed<Mask>>,
    /// Per header pattern as written, its mask; `None` drops an inherited one.
    header_masks: Option<Vec<(String, HeaderPattern, Option<Mask>)>>,
    /// `Some(None)`: `false`; `Some(Some(list))`: `true` is an empty
    /// replacing list marked `all`.
    case_insensitive_keys: Option<CaseLayer>,
    body: Option<BodyMode>,
}

#[derive(Clone)]
enum CaseLayer {
    Off,
    All,
    At(Listed<PointerPattern>),
}

/// One layer's list, and whether it replaces the one beneath.
#[derive(Clone)]
struct Listed<T> {
    items: Vec<T>,
    replace: bool,
}

impl<T: Clone> Listed<T> {
    /// `own` over `base`: its entries first, then the base's, unless it
    /// replaces them.
    fn over(own: Option<Listed<T>>, base: &Option<Listed<T>>) -> Option<Listed<T>> {
        match (own, base) {
            (None, base) => base.clone(),
            (Some(own), _) if own.replace => Some(own),
            (Some(mut own), Some(base)) => {
                own.items.extend(base.items.iter().cloned());
                Some(own)
            }
            (Some(own), None) => Some(own),
        }
    }

    fn items(listed: Option<Listed<T>>) -> Vec<T> {
        listed.map(|l| l.items).unwrap_or_default()
    }
}

/// Compiles a list written at `at` (`defaults.compare.masks`) with
/// `compile(entries, at of the entries)`. In `defaults` there is nothing
/// to replace; in an operation, `[]` adds nothing: both would have no
/// effect, and are refused.
#[inline(never)] // compiled alone by V8: crate doc, "Function size"
fn listed<R, T>(
    raw: Option<ListOr<R>>,
    at: &str,
    in_defaults: bool,
    compile: impl FnOnce(&[R], &str) -> Result<Vec<T>, ConfigError>,
) -> Result<Option<Listed<T>>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let (entries, replace) = match raw {
        ListOr::Add(entries) => (entries, false),
        ListOr::Replace(entries) => (entries, true),
    };
    if replace && in_defaults {
        return Err(ConfigError::new(
            format!("{at}.replace"),
            "the defaults have no list to replace: write the list itself",
        ));
    }
    if !replace && !in_defaults && entries.is_empty() {
        return Err(ConfigError::new(
            at,
            "[] adds nothing to the defaults' list; to clear it, write {\"replace\": []}",
        ));
    }
    let entries_at = if replace {
        format!("{at}.replace")
    } else {
        at.to_string()
    };
    Ok(Some(Listed {
        items: compile(&entries, &entries_at)?,
        replace,
    }))
}

impl RulesLayer {
    /// Compiles `raw`, written at `at` (`defaults`, `operations[3]`).
    pub(super) fn compile(raw: Option<RawCompare>, at: &str) -> Result<RulesLayer, ConfigError> {
        let Some(raw) = raw else {
            return Ok(RulesLayer::default());
        };
        let in_defaults = at == "defaults";
        let at = format!("{at}.compare");
        Ok(RulesLayer {
            ignore_headers: listed(
                raw.ignore_headers,
                &format!("{at}.ignore_headers"),
                in_defaults,
                ignore_headers,
            )?,
            ignore_json_paths: listed(
                raw.ignore_json_paths,
                &format!("{at}.ignore_json_paths"),
                in_defaults,
                ignore_json_paths,
            )?,
            unordered_arrays: listed(
                raw.unordered_arrays,
                &format!("{at}.unordered_arrays"),
                in_defaults,
                unordered_arrays,
            )?,
            number_tolerance: raw
                .number_tolerance
                .map(|t| number_tolerance(t.0.absolute, t.0.relative, &format!("{at}.number_tolerance")))
                .transpose()?,
            null_equals_missing: raw.null_equals_missing,
            status: raw.status,
            status_equivalent: listed(
                raw.status_equivalent,
                &format!("{at}.status_equivalent"),
                in_defaults,
                status_equivalent,
            )?,
            masks: listed(raw.masks, &format!("{at}.masks"), in_defaults, masks)?,
            header_masks: raw
                .header_masks
                .map(|map| header_masks(&map, &format!("{at}.header_masks"), in_defaults))
                .transpose()?,
            case_insensitive_keys: match raw.case_insensitive_keys {
                None => None,
                Some(BoolOrList::Bool(false)) => Some(CaseLayer::Off),
                Some(BoolOrList::Bool(true)) => Some(CaseLayer::All),
                Some(BoolOrList::List(list)) => listed(
                    Some(list),
                    &format!("{at}.case_insensitive_keys"),
                    in_defaults,
                    locations,
                )?
                .map(CaseLayer::At),
            },
            body: raw.body,
        })
    }

    /// Refuses an operation's `status_equivalent` group that shares a code
    /// with an inherited one: merged, a code would be in two groups.
    pub(super) fn check_over(&self, base: &RulesLayer, at: &str) -> Result<(), ConfigError> {
        let (Some(own), Some(base)) = (&self.status_equivalent, &base.status_equivalent) else {
            return Ok(());
        };
        if own.replace {
            return Ok(());
        }
        for (i, group) in own.items.iter().enumerate() {
            for (j, code) in group.iter().enumerate() {
                if let Some(k) = base.items.iter().position(|g| g.contains(code)) {
                    return Err(ConfigError::new(
                        format!("{at}.compare.status_equivalent[{i}][{j}]"),
                        format!(
                            "{code} is already in defaults.compare.status_equivalent[{k}], which this list adds to; \
                             merge the groups there, or write {{\"replace\": [...]}}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each field from this layer, else from `base`.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn over(self, base: &RulesLayer) -> RulesLayer {
        RulesLayer {
            ignore_headers: Listed::over(self.ignore_headers, &base.ignore_headers),
            ignore_json_paths: Listed::over(self.ignore_json_paths, &base.ignore_json_paths),
            unordered_arrays: Listed::over(self.unordered_arrays, &base.unordered_arrays),
            number_tolerance: self.number_tolerance.or(base.number_tolerance),
            null_equals_missing: self.null_equals_missing.or(base.null_equals_missing),
            status: self.status.or(base.status),
            status_equivalent: Listed::over(self.status_equivalent, &base.status_equivalent),
            masks: Listed::over(self.masks, &base.masks),
            header_masks: match (self.header_masks, &base.header_masks) {
                (None, base) => base.clone(),
                (Some(own), None) => Some(own),
                (Some(mut own), Some(base)) => {
                    // Its own entry for a header replaces the defaults'.
                    let inherited: Vec<_> = base
                        .iter()
                        .filter(|(name, _, _)| !own.iter().any(|(n, _, _)| n == name))
                        .cloned()
                        .collect();
                    own.extend(inherited);
                    Some(own)
                }
            },
            case_insensitive_keys: match (self.case_insensitive_keys, &base.case_insensitive_keys) {
                (None, base) => base.clone(),
                (Some(CaseLayer::At(own)), Some(CaseLayer::At(base))) => {
                    Listed::over(Some(own), &Some(base.clone())).map(CaseLayer::At)
                }
                // Locations added to every object are every object.
                (Some(CaseLayer::At(own)), Some(CaseLayer::All)) if !own.replace => Some(CaseLayer::All),
                (Some(own), _) => Some(own),
            },
            body: self.body.or(base.body),
        }
    }

    /// The rules an operation compares by; bodies decode into at most
    /// `max_decoded_bytes` (its `max_body_bytes`).
    pub(super) fn into_rules(self, max_decoded_bytes: usize, key_names: KeyNames) -> CompareRules {
        CompareRules {
            ignore_headers: Listed::items(self.ignore_headers),
            ignore_json_paths: Listed::items(self.ignore_json_paths),
            unordered_arrays: Listed::items(self.unordered_arrays),
            number_tolerance: self.number_tolerance,
            null_equals_missing: self.null_equals_missing.unwrap_or(false),
            status: StatusRules {
                matching: self.status.unwrap_or_default(),
                equivalent: Listed::items(self.status_equivalent),
            },
            masks: Listed::items(self.masks),
            max_decoded_bytes,
            key_names,
            header_masks: self
                .header_masks
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(_, pattern, mask)| Some((pattern, mask?)))
                .collect(),
            case_insensitive_keys: match self.case_insensitive_keys {
                None | Some(CaseLayer::Off) => CaseKeys::None,
                Some(CaseLayer::All) => CaseKeys::All,
                Some(CaseLayer::At(list)) => CaseKeys::At(list.items),
            },
            body: self.body.unwrap_or_default(),
        }
    }
}

fn check_count<T>(list: &[T], max: usize, at: &str) -> Result<(), ConfigError> {
    if list.len() > max {
        return Err(ConfigError::new(
            at,
            format!("{} entries, at most {max} are allowed", list.len()),
        ));
    }
    Ok(())
}

/// A JSON Pointer's length, before it is parsed or quoted.
fn check_pointer(pointer: &str, at: &str) -> Result<(), ConfigError> {
    if pointer.len() > MAX_POINTER_BYTES {
        return Err(ConfigError::new(
            at,
            format!(
                "{} bytes, a JSON Pointer has at most {MAX_POINTER_BYTES}",
                pointer.len()
            ),
        ));
    }
    Ok(())
}

fn ignore_headers(list: &[String], at: &str) -> Result<Vec<HeaderPattern>, ConfigError> {
    check_count(list, MAX_IGNORE_HEADERS, at)?;
    let mut patterns = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        // A pattern is a header name with an optional trailing '*'.
        names::check_header_length(name, &at)?;
        patterns.push(HeaderPattern::parse(name).map_err(|msg| ConfigError::new(at, msg))?);
    }
    Ok(patterns)
}

fn ignore_json_paths(list: &[String], at: &str) -> Result<Vec<PointerPattern>, ConfigError> {
    check_count(list, MAX_IGNORE_JSON_PATHS, at)?;
    let mut patterns = Vec::with_capacity(list.len());
    for (i, pointer) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        check_pointer(pointer, &at)?;
        patterns.push(PointerPattern::parse(pointer).map_err(|msg| ConfigError::new(at, msg))?);
    }
    Ok(patterns)
}

fn unordered_arrays(list: &[StringOr<RawUnordered>], at: &str) -> Result<Vec<UnorderedArray>, ConfigError> {
    check_count(list, MAX_UNORDERED_ARRAYS, at)?;
    let mut arrays = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let (path, key, path_at) = match entry {
            StringOr::Str(path) => (path, None, at.clone()),
            StringOr::Obj(RawUnordered { path, key }) => (path, key.as_deref(), format!("{at}.path")),
        };
        check_pointer(path, &path_at)?;
        let path = PointerPattern::parse_location(path).map_err(|msg| ConfigError::new(path_at, msg))?;
        let key = match key {
            Some(key) => {
                let key_at = format!("{at}.key");
                check_pointer(key, &key_at)?;
                Some(UnorderedArray::parse_key(key).map_err(|msg| ConfigError::new(key_at, msg))?)
            }
            None => None,
        };
        arrays.push(UnorderedArray { path, key });
    }
    Ok(arrays)
}

fn number_tolerance(absolute: Option<f64>, relative: Option<f64>, at: &str) -> Result<NumberTolerance, ConfigError> {
    if absolute.is_none() && relative.is_none() {
        return Err(ConfigError::new(at, "set \"absolute\" and/or \"relative\""));
    }
    for (name, bound) in [("absolute", absolute), ("relative", relative)] {
        if let Some(bound) = bound {
            if !(bound.is_finite() && bound >= 0.0) {
                return Err(ConfigError::new(
                    format!("{at}.{name}"),
                    format!("{bound} is not a finite number >= 0"),
                ));
            }
        }
    }
    Ok(NumberTolerance { absolute, relative })
}

/// Groups of equal codes. Bounded without a limit of its own: a code is in
/// one group at most, so 500 codes in all; a duplicate is refused when it
/// is met, before the next one is read.
fn status_equivalent(groups: &[Vec<RawNumber>], at: &str) -> Result<Vec<Vec<u16>>, ConfigError> {
    let mut out: Vec<Vec<u16>> = Vec::with_capacity(groups.len().min(250));
    for (i, group) in groups.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if group.len() < 2 {
            return Err(ConfigError::new(at, "a group needs at least two status codes"));
        }
        let mut codes = Vec::with_capacity(group.len().min(500));
        for (j, RawNumber(number)) in group.iter().enumerate() {
            let code = number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (100.0..=599.0).contains(f))
                .map(|f| f as u16)
                .ok_or_else(|| {
                    ConfigError::new(format!("{at}[{j}]"), format!("{number} is not a status code (100-599)"))
                })?;
            if codes.contains(&code) {
                return Err(ConfigError::new(
                    format!("{at}[{j}]"),
                    format!("{code} appears twice in the group"),
                ));
            }
            if let Some(other) = out.iter().position(|g| g.contains(&code)) {
                return Err(ConfigError::new(
                    format!("{at}[{j}]"),
                    format!("{code} is already in status_equivalent[{other}]; merge the two groups"),
                ));
            }
            codes.push(code);
        }
        out.push(codes);
    }
    Ok(out)
}

/// JSON Pointer patterns of objects; `""` is the document itself.
fn locations(list: &[String], at: &str) -> Result<Vec<PointerPattern>, ConfigError> {
    check_count(list, MAX_IGNORE_JSON_PATHS, at)?;
    let mut patterns = Vec::with_capacity(list.len());
    for (i, pointer) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        check_pointer(pointer, &at)?;
        patterns.push(PointerPattern::parse_location(pointer).map_err(|msg| ConfigError::new(at, msg))?);
    }
    Ok(patterns)
}

fn header_masks(
    map: &std::collections::BTreeMap<String, Option<StringOr<RawMask>>>,
    at: &str,
    in_defaults: bool,
) -> Result<Vec<(String, HeaderPattern, Option<Mask>)>, ConfigError> {
    if map.len() > MAX_MASKS {
        return Err(ConfigError::new(
            at,
            format!("{} header masks, at most {MAX_MASKS} are allowed", map.len()),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, entry) in map {
        let entry_at = format!("{at}.{name}");
        names::check_header_length(name, &entry_at)?;
        let pattern = HeaderPattern::parse(name).map_err(|msg| ConfigError::new(entry_at.clone(), msg))?;
        let mask = match entry {
            None if in_defaults => {
                return Err(ConfigError::new(
                    entry_at,
                    "null drops an inherited mask, and the defaults inherit none",
                ))
            }
            None => None,
            Some(entry) => Some(mask(entry, &entry_at)?),
        };
        out.push((name.to_ascii_lowercase(), pattern, mask));
    }
    Ok(out)
}

fn masks(list: &[StringOr<RawMask>], at: &str) -> Result<Vec<Mask>, ConfigError> {
    if list.len() > MAX_MASKS {
        return Err(ConfigError::new(
            at,
            format!("{} masks, at most {MAX_MASKS} are allowed", list.len()),
        ));
    }
    let mut masks = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        masks.push(mask(entry, &format!("{at}[{i}]"))?);
    }
    Ok(masks)
}

/// One mask: a built-in name, or `{"pattern": ..., "name": ...}`.
fn mask(entry: &StringOr<RawMask>, at: &str) -> Result<Mask, ConfigError> {
    match entry {
        StringOr::Str(name) => {
            names::check_id_length(name, at)?;
            Mask::builtin(name).map_err(|msg| ConfigError::new(at, msg))
        }
        StringOr::Obj(RawMask { pattern, name }) => {
            let name = name.as_deref().unwrap_or("masked");
            let name_at = format!("{at}.name");
            names::check_id_length(name, &name_at)?;
            Mask::check_name(name).map_err(|msg| ConfigError::new(name_at, msg))?;
            // The mask module bounds the pattern's length itself.
            Mask::custom(name, pattern).map_err(|msg| ConfigError::new(format!("{at}.pattern"), msg))
        }
    }
}
