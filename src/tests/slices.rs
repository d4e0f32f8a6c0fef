//! A large configuration applied between requests: a VM that already
//! serves one, given a configuration another VM of the proxy validated,
//! compiles it a slice per tick and serves the previous one meanwhile; any
//! other configuration is compiled whole before `on_configure` answers.

use std::rc::Rc;

use proxy_wasm::traits::{Context, RootContext};

use super::{Vmx, CONFIG};
use crate::root::Root;

/// `n` legacy operations `op<i>` on `/p<i>/{id}`.
fn big(n: usize) -> String {
    let ops: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":"op{i}","method":"GET","path":"/p{i}/{{id}}"}}"#))
        .collect();
    format!(
        r#"{{"revision":"big","legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}},"operations":[{}]}}"#,
        ops.join(",")
    )
}

fn unknown(vmx: &Vmx) -> u64 {
    vmx.fake.metric("parallel_run.unknown_operation.requests")
}

/// A GET of `path` through a stream of `root`, headers only.
fn get(vmx: &Vmx, root: &Root<crate::fake::Fake>, path: &str) {
    vmx.fake.state().request_headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.example".to_vec()),
    ];
    let mut stream = root.stream().expect("a stream, from either configuration");
    proxy_wasm::traits::HttpContext::on_http_request_headers(&mut stream, 3, true);
}

/// A new root for `config` in `vmx`'s VM: a push, as Envoy makes it.
fn push(vmx: &Vmx, config: &str) -> (Root<crate::fake::Fake>, bool) {
    vmx.fake.state().config = config.as_bytes().to_vec();
    let mut root = Root::new(vmx.fake.clone(), Rc::clone(&vmx.vm));
    let accepted = root.on_configure(config.len());
    (root, accepted)
}

#[test]
fn a_validated_configuration_is_applied_a_slice_per_tick_while_the_previous_one_serves() {
    let worker = Vmx::start(CONFIG);
    let config = big(1_200);
    // The validating VM on Envoy's main thread compiles it whole first.
    let validator = Vmx::on(worker.fake.clone(), &config);
    assert!(validator.root.stream().is_some());

    worker.fake.take_hostcalls();
    let (mut root, accepted) = push(&worker, &config);
    assert!(accepted);
    assert!(
        worker.fake.take_hostcalls().contains(&"set_tick_period"),
        "the next slice is a tick away"
    );
    assert!(worker
        .fake
        .logs()
        .iter()
        .any(|l| l.contains("configuration validated; applying its other 700 operations 500 per tick")));
    // Not applied yet: the stream runs the previous configuration.
    let stream = |root: &Root<_>| get(&worker, root, "/p7/x");
    stream(&root);
    assert_eq!(unknown(&worker), 1, "the previous configuration has no op7");
    assert_eq!(worker.fake.metric("parallel_run.operation.op7.requests"), 0);
    let revision = |vmx: &Vmx| vmx.fake.metric("parallel_run.config.revision");
    assert_eq!(
        revision(&worker),
        parallel_run_core::counters::revision_fingerprint("big"),
        "the validator set it"
    );

    // 500 operations at configure, 500 on the first tick, the last 200 and
    // the plan on the second.
    root.on_tick();
    stream(&root);
    assert_eq!(unknown(&worker), 2, "still the previous one after one more slice");
    root.on_tick();
    assert!(
        worker
            .fake
            .logs()
            .iter()
            .filter(|l| l.contains("configuration applied"))
            .count()
            >= 3
    );
    stream(&root);
    assert_eq!(worker.fake.metric("parallel_run.operation.op7.requests"), 1, "applied");
    assert_eq!(unknown(&worker), 2);
}

#[test]
fn a_configuration_nobody_validated_is_compiled_whole_before_it_is_accepted() {
    let worker = Vmx::start(CONFIG);
    // One operation past the first slice is broken: only a whole compile
    // can refuse it before `on_configure` answers.
    let config = big(1_200).replace(r#""id":"op900","method":"GET""#, r#""id":"op900","method":"get""#);
    worker.fake.take_hostcalls();
    let (root, accepted) = push(&worker, &config);
    assert!(!accepted, "{:?}", worker.fake.logs());
    assert!(worker
        .fake
        .logs()
        .iter()
        .any(|l| l.contains("configuration refused: operations[900].method")));
    // Its streams, were Envoy to make any, would run the previous one.
    assert!(root.stream().is_some());

    // A valid one nobody validated is applied at once, and recorded as
    // validated for the VMs after it.
    let (root, accepted) = push(&worker, &big(1_200));
    assert!(accepted);
    get(&worker, &root, "/p1100/x");
    assert_eq!(worker.fake.metric("parallel_run.operation.op1100.requests"), 1);
}

#[test]
fn a_fresh_vm_compiles_even_a_validated_configuration_whole() {
    // Nothing to serve with meanwhile: the first configuration of a VM is
    // applied before `on_configure` answers.
    let config = big(1_200);
    let validator = Vmx::start(&config);
    let fresh = Vmx::on(validator.fake.clone(), &config);
    get(&fresh, &fresh.root, "/p1100/x");
    assert_eq!(fresh.fake.metric("parallel_run.operation.op1100.requests"), 1);
}

#[test]
fn a_root_replaced_before_its_configuration_was_applied_never_applies_it() {
    let worker = Vmx::start(CONFIG);
    let config = big(1_200);
    let _validator = Vmx::on(worker.fake.clone(), &config);
    let (mut root, accepted) = push(&worker, &config);
    assert!(accepted);
    // The next push replaces it while it compiles.
    worker.fake.take_hostcalls();
    assert!(root.on_done(), "no calls open: done at once");
    assert!(
        worker.fake.take_hostcalls().contains(&"set_tick_period"),
        "back to ticks of a second, which a retiring root counts"
    );
    for _ in 0..3 {
        root.on_tick();
    }
    let applied = worker
        .fake
        .logs()
        .iter()
        .filter(|l| l.contains("configuration applied: revision=\"big\""))
        .count();
    assert_eq!(applied, 1, "the validator's only");
    assert!(root.stream().is_some_and(|_| worker
        .vm
        .borrow()
        .serving
        .as_ref()
        .is_some_and(|p| p.plan.revision == "r1")));
}
