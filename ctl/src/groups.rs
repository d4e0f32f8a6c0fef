//! Operation groups: operations that must flip together ("an atomic
//! cross-endpoint contract"). An operation names its group in the
//! configuration (`operations[i].group`, `parallel_run_core::Operation::group`,
//! validated by the core).

use std::collections::BTreeMap;

use parallel_run_core::Plan;

/// Operation id -> group, for the operations of `plan` that have one.
pub fn of(plan: &Plan) -> BTreeMap<String, String> {
    plan.operations
        .iter()
        .filter_map(|op| Some((op.id.clone(), op.group.clone()?)))
        .collect()
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

    const CONFIG: &[u8] = br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[
        {"id":"getReturn","method":"GET","path":"/r/{id}","group":"returns"},
        {"id":"listReturns","method":"GET","path":"/r","group":"returns"},
        {"id":"getLabel","method":"GET","path":"/l"},
        {"id":"getRefund","method":"GET","path":"/f","group":"refunds"}]}"#;

    fn read(config: &[u8]) -> Result<BTreeMap<String, String>, String> {
        Plan::parse(config).map(|plan| of(&plan)).map_err(|err| err.to_string())
    }

    #[test]
    fn groups_are_read_from_the_operations() {
        let groups = read(CONFIG).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(members(&groups, "returns"), ["getReturn", "listReturns"]);
        // The core validates the field, naming it.
        let bad = |group: &str| {
            read(
                format!(
                    r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},
                    "operations":[{{"id":"a","method":"GET","path":"/a","group":{group}}}]}}"#
                )
                .as_bytes(),
            )
            .unwrap_err()
        };
        assert!(bad("1").contains("operations[0].group"), "{}", bad("1"));
        assert!(bad("\"a b\"").contains("operations[0].group"), "{}", bad("\"a b\""));
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
