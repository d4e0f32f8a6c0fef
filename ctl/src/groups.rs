//! Operation groups: operations that must flip together ("an atomic
//! cross-endpoint contract"). An operation names its group in the
//! configuration (`operations[i].group`); read here from the JSON itself,
//! so that the CLI works the same before and after the core's `Operation`
//! has the field. Should move to core once it does.

use std::collections::BTreeMap;

use serde_json::Value;

/// Operation id -> group, for the operations that have one.
pub fn read(config: &str) -> Result<BTreeMap<String, String>, String> {
    let document: Value = serde_json::from_str(config).map_err(|err| format!("invalid JSON: {err}"))?;
    let mut groups = BTreeMap::new();
    let Some(operations) = document.get("operations").and_then(Value::as_array) else {
        return Ok(groups);
    };
    for (i, operation) in operations.iter().enumerate() {
        let Some(group) = operation.get("group") else {
            continue;
        };
        let name = group
            .as_str()
            .ok_or_else(|| format!("operations[{i}].group: not a string"))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(format!("operations[{i}].group: {name:?} is not [A-Za-z0-9_-]+"));
        }
        if let Some(id) = operation.get("id").and_then(Value::as_str) {
            groups.insert(id.to_string(), name.to_string());
        }
    }
    Ok(groups)
}

/// The members of `group`, in id order.
pub fn members<'a>(groups: &'a BTreeMap<String, String>, group: &str) -> Vec<&'a str> {
    groups
        .iter()
        .filter(|(_, g)| g.as_str() == group)
        .map(|(id, _)| id.as_str())
        .collect()
}

/// The units a command moves: each group once, each ungrouped operation once.
pub fn units<'a>(ids: &[&'a str], groups: &'a BTreeMap<String, String>) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for id in ids {
        let unit = groups
            .get(*id)
            .map_or_else(|| (*id).to_string(), |group| format!("group {group}"));
        if !units.contains(&unit) {
            units.push(unit);
        }
    }
    units
}

/// For every group that `ids` touch, the members `ids` leave out.
pub fn splits(ids: &[&str], groups: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids {
        let Some(group) = groups.get(*id) else { continue };
        if out.iter().any(|(g, _)| g == group) {
            continue;
        }
        let missing: Vec<String> = members(groups, group)
            .into_iter()
            .filter(|member| !ids.contains(member))
            .map(String::from)
            .collect();
        if !missing.is_empty() {
            out.push((group.clone(), missing));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"operations":[
        {"id":"getReturn","group":"returns"},{"id":"listReturns","group":"returns"},
        {"id":"getLabel"},{"id":"getRefund","group":"refunds"}]}"#;

    #[test]
    fn groups_are_read_from_the_operations() {
        let groups = read(CONFIG).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(members(&groups, "returns"), ["getReturn", "listReturns"]);
        assert!(read(r#"{"operations":[{"id":"a","group":1}]}"#)
            .unwrap_err()
            .starts_with("operations[0].group: not a string"));
        assert!(read(r#"{"operations":[{"id":"a","group":"a b"}]}"#)
            .unwrap_err()
            .contains("is not [A-Za-z0-9_-]+"));
        assert!(read("{}").unwrap().is_empty());
    }

    #[test]
    fn a_command_that_names_part_of_a_group_splits_it() {
        let groups = read(CONFIG).unwrap();
        assert_eq!(
            splits(&["getReturn", "getLabel"], &groups),
            [("returns".to_string(), vec!["listReturns".to_string()])]
        );
        assert!(splits(&["getReturn", "listReturns", "getRefund"], &groups).is_empty());
        assert_eq!(
            units(&["getReturn", "listReturns", "getLabel", "getRefund"], &groups),
            ["group returns", "getLabel", "group refunds"]
        );
    }
}
