//! Arbitrary bytes as a plugin configuration: `Plan::parse` must return an
//! error or a plan, never panic or hang. A plan it accepts must also answer
//! lookups for its own operations (by id only where it names an operation
//! header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallel_run_core::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::parse(data) else {
        return;
    };
    for (index, op) in plan.operations.iter().enumerate() {
        // The template itself as a path: `{id}` is a valid segment value.
        let _ = plan.classify(&op.method, &op.path, None);
        // A known id in the operation header wins when the method agrees,
        // and only when the configuration names an operation header.
        let by_id = plan.classify(&op.method, "/", Some(op.id.as_bytes()));
        if plan.operation_header.is_some() {
            assert_eq!(by_id, Some(index));
        } else {
            assert_eq!(by_id, plan.classify(&op.method, "/", None));
        }
        let _ = plan.classify(&op.method, &format!("{}?q=1#f", op.path), None);
    }
});
